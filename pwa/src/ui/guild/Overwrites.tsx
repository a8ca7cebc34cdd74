// Overwrites.tsx — a channel's permissions: for a role (`@everyone` included) or a member, each
// channel permission allowed, denied, or left to their roles, as Discord shows it. A private
// channel starts with `@everyone` denied "View channels": allow it here for the roles or people
// who should see it. The server applies them (docs/guilds.md: denies, then allows; roles, then
// the member) and refuses a permission the editor does not have there.
import { useState } from "react";
import type { GuildChannel, PermissionOverwrite } from "../../gen/kitsulan/v1/guild_pb";
import { reasonOf } from "../../errors";
import { useI18n } from "../../i18n/i18n";
import { errorText } from "../../i18n/messages";
import type { Chat } from "../../state/chat";
import { CHANNEL_PERMS, overwriteState, Perm, withOverwrite, type GuildView, type OverwriteState, type OverwriteTarget } from "../../state/guilds";
import { personName } from "../names";
import { roleColor } from "./GuildMembers";

const key = (t: OverwriteTarget) => `${t.case}:${t.value}`;

function targetOf(o: PermissionOverwrite): OverwriteTarget | null {
  return o.target.case === "roleId" || o.target.case === "accountId" ? { case: o.target.case, value: o.target.value } : null;
}

export function Overwrites({ chat, view, channel }: { chat: Chat; view: GuildView; channel: GuildChannel }) {
  const { t } = useI18n();
  const guildId = view.guild.id;
  const existing = channel.overwrites.flatMap((o) => {
    const target = targetOf(o);
    return target ? [{ target, allow: o.allow, deny: o.deny }] : [];
  });
  const [editing, setEditing] = useState<{ target: OverwriteTarget; allow: bigint; deny: bigint } | null>(null);
  const [adding, setAdding] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const members = chat.guilds.listedMembers(guildId);

  const nameOf = (target: OverwriteTarget) =>
    target.case === "roleId" ? (view.roles.find((r) => r.id === target.value)?.name ?? "?") : personName(chat, t, target.value);
  const taken = new Set(existing.map((o) => key(o.target)));
  const roleChoices = view.roles.filter((r) => !taken.has(`roleId:${r.id}`));
  const memberChoices = members.filter((m) => !taken.has(`accountId:${m.accountId}`));

  async function run(f: () => Promise<unknown>) {
    setBusy(true);
    setError(null);
    try {
      await f();
      setEditing(null);
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  return (
    <fieldset className="overwrites">
      <legend>{t("channelPermissions")}</legend>
      <ul className="settings-list">
        {existing.map((o) => (
          <li key={key(o.target)} className="settings-row">
            <span className="fill" style={{ color: o.target.case === "roleId" ? roleColor(view.roles.find((r) => r.id === o.target.value)) : undefined }}>
              {o.target.case === "roleId" ? "" : "👤 "}
              {nameOf(o.target)}
            </span>
            <button type="button" aria-label={t("editNamed", { name: nameOf(o.target) })} onClick={() => setEditing(o)}>
              {t("edit")}
            </button>
            <button
              type="button"
              className="danger"
              disabled={busy}
              aria-label={t("removeOverwrite", { name: nameOf(o.target) })}
              onClick={() => void run(() => chat.guilds.removeOverwrite(guildId, channel.id, o.target))}
            >
              {t("remove")}
            </button>
          </li>
        ))}
      </ul>
      {(roleChoices.length > 0 || memberChoices.length > 0) && !editing && (
        <div className="inline-form">
          <label>
            {t("overwriteFor")}
            <select value={adding} onChange={(e) => setAdding(e.target.value)}>
              <option value="">—</option>
              <optgroup label={t("roles")}>
                {roleChoices.map((r) => (
                  <option key={r.id} value={`roleId:${r.id}`}>
                    {r.name}
                  </option>
                ))}
              </optgroup>
              {memberChoices.length > 0 && (
                <optgroup label={t("members")}>
                  {memberChoices.map((m) => (
                    <option key={m.accountId} value={`accountId:${m.accountId}`}>
                      {personName(chat, t, m.accountId)}
                    </option>
                  ))}
                </optgroup>
              )}
            </select>
          </label>
          <button
            type="button"
            disabled={!adding}
            onClick={() => {
              const [kind, value] = adding.split(":");
              if (!value) return;
              setEditing({ target: kind === "roleId" ? { case: "roleId", value } : { case: "accountId", value }, allow: 0n, deny: 0n });
              setAdding("");
            }}
          >
            {t("add")}
          </button>
        </div>
      )}
      {editing && (
        <div className="overwrite-editor" role="group" aria-label={t("overwriteOf", { name: nameOf(editing.target) })}>
          <h5>{t("overwriteOf", { name: nameOf(editing.target) })}</h5>
          <table className="overwrite-table">
            <thead>
              <tr>
                <th scope="col">{t("permissions")}</th>
                <th scope="col">{t("overwriteAllow")}</th>
                <th scope="col">{t("overwriteInherit")}</th>
                <th scope="col">{t("overwriteDeny")}</th>
              </tr>
            </thead>
            <tbody>
              {CHANNEL_PERMS.map((p) => {
                const bit = Perm[p];
                const state = overwriteState(editing.allow, editing.deny, bit);
                const set = (s: OverwriteState) => setEditing({ ...editing, ...withOverwrite(editing, bit, s) });
                return (
                  <tr key={p}>
                    <th scope="row">{t(`perm.${p}`)}</th>
                    {(["allow", "inherit", "deny"] as const).map((s) => (
                      <td key={s}>
                        <input
                          type="radio"
                          name={`ow-${p}`}
                          aria-label={`${t(`perm.${p}`)}: ${t(s === "allow" ? "overwriteAllow" : s === "deny" ? "overwriteDeny" : "overwriteInherit")}`}
                          checked={state === s}
                          onChange={() => set(s)}
                        />
                      </td>
                    ))}
                  </tr>
                );
              })}
            </tbody>
          </table>
          <div className="row">
            <button type="button" onClick={() => setEditing(null)}>
              {t("cancel")}
            </button>
            <button
              type="button"
              className="primary"
              disabled={busy}
              onClick={() => void run(() => chat.guilds.setOverwrite(guildId, channel.id, editing.target, editing.allow, editing.deny))}
            >
              {t("save")}
            </button>
          </div>
        </div>
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </fieldset>
  );
}
