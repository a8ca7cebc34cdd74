// GuildSettings.tsx — a guild's settings, one tab per concern, each shown to those whose
// permissions allow it (the server checks every change again): the overview (name, description;
// leave; the owner transfers or deletes it, typing its name), roles (make, rename, colour, the
// permission bits, order), channels (make, change, delete, order by drag and drop or the arrow
// buttons: ArrangeChannels takes the whole layout; who may do what in each: Overwrites.tsx), invites (Invites.tsx), bans and the audit log.
import { useCallback, useEffect, useId, useState, type DragEvent, type FormEvent } from "react";
import { AuditAction, GuildChannelKind, type AuditLogEntry, type GuildBan, type GuildChannel, type GuildMember, type GuildRole } from "../../gen/kitsulan/v1/guild_pb";
import { reasonOf } from "../../errors";
import { useI18n, type Translate } from "../../i18n/i18n";
import { errorText, type MessageKey } from "../../i18n/messages";
import { useChat, type Chat } from "../../state/chat";
import { dropped, grouped, has, moved, myRank, Perm, PERM_NAMES, type ChannelGroup, type GuildView } from "../../state/guilds";
import { AvatarPicker } from "../AvatarPicker";
import { Confirm } from "../Confirm";
import { Dialog } from "../Dialog";
import { durationText } from "../duration";
import { personName } from "../names";
import { MAX_NAME, MAX_TEXT } from "./AddGuild";
import { channelKindName, channelMark } from "./ChannelSidebar";
import { roleColor } from "./GuildMembers";
import { GuildIcon } from "./GuildRail";
import { InvitesTab } from "./Invites";
import { Overwrites } from "./Overwrites";

type Tab = "overview" | "roles" | "channels" | "invites" | "bans" | "audit";

/** The tabs our permissions open (the overview always: leaving is there). */
export function tabsFor(view: GuildView): Tab[] {
  const p = view.myPermissions;
  const tabs: Tab[] = ["overview"];
  if (has(p, Perm.MANAGE_ROLES)) tabs.push("roles");
  if (has(p, Perm.MANAGE_CHANNELS)) tabs.push("channels");
  if (has(p, Perm.CREATE_INVITES) || has(p, Perm.MANAGE_GUILD)) tabs.push("invites");
  if (has(p, Perm.BAN_MEMBERS)) tabs.push("bans");
  if (has(p, Perm.VIEW_AUDIT_LOG)) tabs.push("audit");
  return tabs;
}

const TAB_NAMES: Record<Tab, MessageKey> = {
  overview: "settingsOverview",
  roles: "roles",
  channels: "channels",
  invites: "invites",
  bans: "bans",
  audit: "auditLog",
};

function useAction(t: Translate) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = useCallback(
    async (f: () => Promise<unknown>): Promise<boolean> => {
      setBusy(true);
      setError(null);
      try {
        await f();
        return true;
      } catch (err) {
        setError(errorText(t, reasonOf(err)));
        return false;
      } finally {
        setBusy(false);
      }
    },
    [t],
  );
  return { busy, error, run, setError };
}

function Problem({ error }: { error: string | null }) {
  return error ? (
    <p role="alert" className="error">
      {error}
    </p>
  ) : null;
}

export function GuildSettings({ chat, guildId, initialTab = "overview", onClose }: { chat: Chat; guildId: string; initialTab?: Tab; onClose: () => void }) {
  const { t } = useI18n();
  const view = useChat(chat, (s) => s.guilds.views[guildId]);
  const [tab, setTab] = useState<Tab>(initialTab);
  const baseId = useId();
  // The guild went (deleted, left, kicked): the settings close.
  useEffect(() => {
    if (!view) onClose();
  }, [view, onClose]);
  if (!view) return null;
  const tabs = tabsFor(view);
  const shown = tabs.includes(tab) ? tab : "overview";
  return (
    <Dialog title={t("guildSettingsOf", { name: view.guild.name })} onClose={onClose} focusInput={false} wide>
      <div className="settings-tabs" role="tablist" aria-label={t("guildSettings")}>
        {tabs.map((x) => (
          <button
            key={x}
            type="button"
            role="tab"
            id={`${baseId}-${x}`}
            aria-selected={x === shown}
            aria-controls={`${baseId}-panel`}
            className={x === shown ? "tab active" : "tab"}
            onClick={() => setTab(x)}
            onKeyDown={(e) => {
              if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
              const at = tabs.indexOf(x) + (e.key === "ArrowRight" ? 1 : tabs.length - 1);
              const next = tabs[at % tabs.length] ?? "overview";
              setTab(next);
              document.getElementById(`${baseId}-${next}`)?.focus();
            }}
          >
            {t(TAB_NAMES[x])}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`${baseId}-panel`} aria-labelledby={`${baseId}-${shown}`} className="settings-panel">
        {shown === "overview" && <Overview chat={chat} view={view} onGone={onClose} />}
        {shown === "roles" && <Roles chat={chat} view={view} />}
        {shown === "channels" && <Channels chat={chat} view={view} />}
        {shown === "invites" && <InvitesTab chat={chat} view={view} />}
        {shown === "bans" && <Bans chat={chat} view={view} />}
        {shown === "audit" && <Audit chat={chat} view={view} />}
      </div>
      <div className="row">
        <button type="button" onClick={onClose}>
          {t("close")}
        </button>
      </div>
    </Dialog>
  );
}

function Overview({ chat, view, onGone }: { chat: Chat; view: GuildView; onGone: () => void }) {
  const { t } = useI18n();
  const me = chat.get().me.accountId;
  const g = view.guild;
  const owner = g.ownerId === me;
  const manages = has(view.myPermissions, Perm.MANAGE_GUILD);
  const [name, setName] = useState(g.name);
  const [description, setDescription] = useState(g.description);
  const [saved, setSaved] = useState(false);
  const [confirmName, setConfirmName] = useState("");
  const [leaving, setLeaving] = useState(false);
  const [members, setMembers] = useState<GuildMember[]>([]);
  const [heir, setHeir] = useState("");
  const [transferring, setTransferring] = useState(false);
  const { busy, error, run } = useAction(t);

  useEffect(() => {
    if (!owner) return;
    void chat.guilds
      .members(g.id, "", 1000)
      .then((m) => setMembers(m.filter((x) => x.accountId !== me)))
      .catch(() => undefined);
  }, [chat, g.id, owner, me]);

  async function save(e: FormEvent) {
    e.preventDefault();
    if (await run(() => chat.guilds.update(g.id, name, description))) setSaved(true);
  }

  return (
    <div className="settings-tab">
      {manages && (
        <section aria-label={t("guildIcon")} className="form">
          <AvatarPicker
            name="guildIcon"
            preview={
              <span className="rail-icon guild-icon-preview" aria-hidden="true">
                <GuildIcon id={g.id} iconId={g.iconId} name={g.name} />
              </span>
            }
            hasPicture={!!g.iconId}
            onSet={(file) => chat.guilds.setIcon(g.id, file)}
            onRemove={() => chat.guilds.removeIcon(g.id)}
          />
        </section>
      )}
      {manages ? (
        <form className="form" onSubmit={save} aria-label={t("settingsOverview")}>
          <label>
            {t("guildName")}
            <input value={name} maxLength={MAX_NAME} required onChange={(e) => (setName(e.target.value), setSaved(false))} />
          </label>
          <label>
            {t("guildDescription")}
            <textarea value={description} maxLength={MAX_TEXT} rows={3} onChange={(e) => (setDescription(e.target.value), setSaved(false))} />
          </label>
          <div className="row start">
            <button type="submit" className="primary" disabled={busy || !name.trim()}>
              {t("save")}
            </button>
            {saved && (
              <span role="status" className="muted">
                {t("saved")}
              </span>
            )}
          </div>
        </form>
      ) : (
        <>
          <h3>{g.name}</h3>
          {g.description && <p>{g.description}</p>}
        </>
      )}
      <p className="muted">{t("memberCount", { n: String(g.memberCount) })}</p>
      <Problem error={error} />
      {owner ? (
        <>
          <h3>{t("transferGuild")}</h3>
          <p className="muted">{t("transferGuildNote")}</p>
          <div className="row start">
            <label className="inline">
              {t("newOwner")}
              <select value={heir} onChange={(e) => setHeir(e.target.value)}>
                <option value="">—</option>
                {members.map((m) => (
                  <option key={m.accountId} value={m.accountId}>
                    {personName(chat, t, m.accountId)}
                  </option>
                ))}
              </select>
            </label>
            <button type="button" disabled={!heir || busy} onClick={() => setTransferring(true)}>
              {t("transferGuildButton")}
            </button>
          </div>
          <h3>{t("deleteGuild")}</h3>
          <p className="muted">{t("deleteGuildNote")}</p>
          <label className="form">
            {t("deleteGuildType", { name: g.name })}
            <input value={confirmName} onChange={(e) => setConfirmName(e.target.value)} autoComplete="off" />
          </label>
          <div className="row start">
            <button
              type="button"
              className="danger"
              disabled={confirmName !== g.name || busy}
              onClick={() => void run(() => chat.guilds.remove(g.id, confirmName)).then((ok) => ok && onGone())}
            >
              {t("deleteGuildButton")}
            </button>
          </div>
        </>
      ) : (
        <div className="row start">
          <button type="button" className="danger" onClick={() => setLeaving(true)}>
            {t("leaveGuild")}
          </button>
        </div>
      )}
      {leaving && (
        <Confirm
          title={t("leaveGuildTitle", { name: g.name })}
          action={t("leaveGuild")}
          busy={busy}
          onCancel={() => setLeaving(false)}
          onConfirm={() => void run(() => chat.guilds.leave(g.id)).then((ok) => (ok ? onGone() : setLeaving(false)))}
        >
          <p>{t("leaveGuildNote")}</p>
        </Confirm>
      )}
      {transferring && (
        <Confirm
          title={t("transferGuildTitle", { name: personName(chat, t, heir) })}
          action={t("transferGuildButton")}
          busy={busy}
          onCancel={() => setTransferring(false)}
          onConfirm={() => void run(() => chat.guilds.transfer(g.id, heir)).then(() => setTransferring(false))}
        >
          <p>{t("transferGuildConfirm")}</p>
        </Confirm>
      )}
    </div>
  );
}

const hex = (c: number) => `#${c.toString(16).padStart(6, "0")}`;

function Roles({ chat, view }: { chat: Chat; view: GuildView }) {
  const { t } = useI18n();
  const me = chat.get().me.accountId;
  const rank = myRank(view, me);
  const guildId = view.guild.id;
  const [editing, setEditing] = useState<string | null>(null);
  const [newName, setNewName] = useState("");
  const [deleting, setDeleting] = useState<GuildRole | null>(null);
  const { busy, error, run } = useAction(t);
  // Highest first, as people read a hierarchy; `@everyone` last.
  const roles = [...view.roles].sort((a, b) => b.position - a.position);
  const ordered = view.roles.filter((r) => r.id !== guildId).sort((a, b) => a.position - b.position);

  function move(role: GuildRole, delta: 1 | -1) {
    const ids = ordered.map((r) => r.id);
    const at = ids.indexOf(role.id);
    const to = at + delta;
    if (to < 0 || to >= ids.length) return;
    [ids[at], ids[to]] = [ids[to] ?? "", ids[at] ?? ""];
    void run(() => chat.guilds.arrangeRoles(guildId, ids));
  }

  return (
    <div className="settings-tab">
      <form
        className="inline-form"
        aria-label={t("createRole")}
        onSubmit={(e) => {
          e.preventDefault();
          if (newName.trim()) void run(() => chat.guilds.createRole(guildId, newName, 0, 0n)).then((ok) => ok && setNewName(""));
        }}
      >
        <label>
          {t("roleName")}
          <input value={newName} maxLength={MAX_NAME} onChange={(e) => setNewName(e.target.value)} />
        </label>
        <button type="submit" className="primary" disabled={busy || !newName.trim()}>
          {t("createRole")}
        </button>
      </form>
      <Problem error={error} />
      <ul className="settings-list">
        {roles.map((r) => {
          const everyone = r.id === guildId;
          const mine = r.position < rank;
          const at = ordered.findIndex((x) => x.id === r.id);
          return (
            <li key={r.id} className="settings-block">
              <div className="settings-row">
                <span className="swatch" style={{ background: roleColor(r) ?? "transparent" }} aria-hidden="true" />
                <span className="fill" style={{ color: roleColor(r) }}>
                  {r.name}
                </span>
                {!everyone && mine && (
                  <>
                    <button type="button" className="icon" aria-label={t("moveUpNamed", { name: r.name })} disabled={busy || at >= ordered.length - 1 || (ordered[at + 1]?.position ?? 0) >= rank} onClick={() => move(r, 1)}>
                      ↑
                    </button>
                    <button type="button" className="icon" aria-label={t("moveDownNamed", { name: r.name })} disabled={busy || at <= 0} onClick={() => move(r, -1)}>
                      ↓
                    </button>
                  </>
                )}
                {(mine || everyone) && (
                  <button type="button" aria-expanded={editing === r.id} aria-label={t("editNamed", { name: r.name })} onClick={() => setEditing(editing === r.id ? null : r.id)}>
                    {t("edit")}
                  </button>
                )}
                {!everyone && mine && (
                  <button type="button" className="danger" aria-label={t("deleteNamed", { name: r.name })} onClick={() => setDeleting(r)}>
                    {t("delete")}
                  </button>
                )}
              </div>
              {editing === r.id && <RoleEditor chat={chat} view={view} role={r} onDone={() => setEditing(null)} />}
            </li>
          );
        })}
      </ul>
      {deleting && (
        <Confirm
          title={t("deleteRoleTitle", { name: deleting.name })}
          action={t("delete")}
          busy={busy}
          onCancel={() => setDeleting(null)}
          onConfirm={() => void run(() => chat.guilds.deleteRole(guildId, deleting.id)).then(() => setDeleting(null))}
        >
          <p>{t("deleteRoleNote")}</p>
        </Confirm>
      )}
    </div>
  );
}

function RoleEditor({ chat, view, role, onDone }: { chat: Chat; view: GuildView; role: GuildRole; onDone: () => void }) {
  const { t } = useI18n();
  const everyone = role.id === view.guild.id;
  const [name, setName] = useState(role.name);
  const [color, setColor] = useState(role.color);
  const [perms, setPerms] = useState(role.permissions);
  const { busy, error, run } = useAction(t);
  const mine = view.myPermissions;
  return (
    <form
      className="form role-editor"
      aria-label={t("editNamed", { name: role.name })}
      onSubmit={(e) => {
        e.preventDefault();
        void run(() => chat.guilds.updateRole(view.guild.id, role.id, name, color, perms)).then((ok) => ok && onDone());
      }}
    >
      {!everyone && (
        <label>
          {t("roleName")}
          <input value={name} maxLength={MAX_NAME} required onChange={(e) => setName(e.target.value)} />
        </label>
      )}
      {!everyone && (
        <div className="row start">
          <label className="inline">
            {t("roleColor")}
            <input type="color" className="color" value={color === 0 ? "#99aab5" : hex(color)} onChange={(e) => setColor(parseInt(e.target.value.slice(1), 16) || 0x000001)} />
          </label>
          <label className="check">
            <input type="checkbox" checked={color === 0} onChange={(e) => setColor(e.target.checked ? 0 : 0x99aab5)} />
            {t("roleNoColor")}
          </label>
        </div>
      )}
      <fieldset className="perm-grid">
        <legend>{t("permissions")}</legend>
        {PERM_NAMES.map((p) => {
          const bit = Perm[p];
          // Nobody grants what they do not have (the server refuses it too).
          const allowed = has(mine, bit);
          return (
            <label key={p} className="check" title={t(`permHint.${p}`)}>
              <input
                type="checkbox"
                checked={(perms & bit) === bit}
                disabled={!allowed && (perms & bit) !== bit}
                onChange={(e) => setPerms((x) => (e.target.checked ? x | bit : x & ~bit))}
              />
              {t(`perm.${p}`)}
            </label>
          );
        })}
      </fieldset>
      <Problem error={error} />
      <div className="row">
        <button type="button" onClick={onDone}>
          {t("cancel")}
        </button>
        <button type="submit" className="primary" disabled={busy}>
          {t("save")}
        </button>
      </div>
    </form>
  );
}

/** Slow mode choices (seconds; 0: off). */
const SLOW_MODES = [0, 5, 10, 30, 60, 300, 900, 3_600, 21_600];

function Channels({ chat, view }: { chat: Chat; view: GuildView }) {
  const { t, lang } = useI18n();
  const guildId = view.guild.id;
  const groups = grouped(view.channels);
  const categories = groups.flatMap((g) => (g.category ? [g.category] : []));
  const [kind, setKind] = useState<GuildChannelKind>(GuildChannelKind.TEXT);
  const [name, setName] = useState("");
  const [parent, setParent] = useState(categories[0]?.id ?? "");
  const [isPrivate, setPrivate] = useState(false);
  const [e2ee, setE2ee] = useState(false);
  const [editing, setEditing] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<GuildChannel | null>(null);
  const [dragging, setDragging] = useState<string | null>(null);
  const { busy, error, run } = useAction(t);

  const arrange = (next: ChannelGroup[] | null) => {
    if (next) void run(() => chat.guilds.arrange(guildId, next));
  };

  const dropOn = (e: DragEvent, target: { beforeId?: string; intoCategory?: string | null }) => {
    e.preventDefault();
    const id = dragging ?? e.dataTransfer.getData("text/plain");
    setDragging(null);
    if (!id || id === target.beforeId) return;
    if (groups.some((g) => g.category?.id === id)) {
      // A category dropped on another category's head goes before it.
      const at = groups.findIndex((g) => g.category?.id === (target.beforeId ?? target.intoCategory));
      const from = groups.findIndex((g) => g.category?.id === id);
      if (at < 0 || from < 0) return;
      const next = [...groups];
      const [g] = next.splice(from, 1);
      if (g) next.splice(next.findIndex((x) => x.category?.id === (target.beforeId ?? target.intoCategory)), 0, g);
      arrange(next);
      return;
    }
    arrange(dropped(groups, id, target));
  };

  const row = (c: GuildChannel, group: ChannelGroup) => (
    <li
      key={c.id}
      className={dragging === c.id ? "settings-block dragging" : "settings-block"}
      draggable
      onDragStart={(e) => {
        setDragging(c.id);
        e.dataTransfer.setData("text/plain", c.id);
        e.dataTransfer.effectAllowed = "move";
      }}
      onDragEnd={() => setDragging(null)}
      onDragOver={(e) => e.preventDefault()}
      onDrop={(e) => dropOn(e, { beforeId: c.id, intoCategory: group.category?.id ?? null })}
    >
      <div className="settings-row">
        <span className="drag-handle" aria-hidden="true">
          ⠿
        </span>
        <span aria-hidden="true">{channelMark(c)}</span>
        <span className="fill">
          {c.name}
          {c.slowModeS > 0 && <span className="muted"> · {t("slowMode", { time: durationText(lang, c.slowModeS) })}</span>}
        </span>
        <button type="button" className="icon" aria-label={t("moveUpNamed", { name: c.name })} disabled={busy} onClick={() => arrange(moved(groups, c.id, -1))}>
          ↑
        </button>
        <button type="button" className="icon" aria-label={t("moveDownNamed", { name: c.name })} disabled={busy} onClick={() => arrange(moved(groups, c.id, 1))}>
          ↓
        </button>
        <button type="button" aria-expanded={editing === c.id} aria-label={t("editNamed", { name: c.name })} onClick={() => setEditing(editing === c.id ? null : c.id)}>
          {t("edit")}
        </button>
        <button type="button" className="danger" aria-label={t("deleteNamed", { name: c.name })} onClick={() => setDeleting(c)}>
          {t("delete")}
        </button>
      </div>
      {editing === c.id && <ChannelEditor chat={chat} guildId={guildId} channel={c} onDone={() => setEditing(null)} />}
      {editing === c.id && has(view.myPermissions, Perm.MANAGE_ROLES) && <Overwrites chat={chat} view={view} channel={c} />}
    </li>
  );

  return (
    <div className="settings-tab">
      <form
        className="form"
        aria-label={t("createChannel")}
        onSubmit={(e) => {
          e.preventDefault();
          if (!name.trim()) return;
          const encrypted = e2ee && kind === GuildChannelKind.TEXT;
          void run(() => chat.guilds.createChannel(guildId, kind, name, { parentId: parent, private: isPrivate, e2ee: encrypted })).then((ok) => {
            if (ok) {
              setName("");
              setPrivate(false);
              setE2ee(false);
            }
          });
        }}
      >
        <h3 className="form-heading">{t("createChannel")}</h3>
        <div className="prefs">
          <label>
            {t("channelKind")}
            <select value={kind} onChange={(e) => setKind(Number(e.target.value) as GuildChannelKind)}>
              {[GuildChannelKind.TEXT, GuildChannelKind.ANNOUNCEMENT, GuildChannelKind.VOICE, GuildChannelKind.CATEGORY].map((k) => (
                <option key={k} value={k}>
                  {channelKindName(t, k)}
                </option>
              ))}
            </select>
          </label>
          <label>
            {t("channelName")}
            <input value={name} maxLength={MAX_NAME} onChange={(e) => setName(e.target.value)} />
          </label>
          {kind !== GuildChannelKind.CATEGORY && (
            <label>
              {t("channelCategory")}
              <select value={parent} onChange={(e) => setParent(e.target.value)}>
                <option value="">{t("noCategory")}</option>
                {categories.map((c) => (
                  <option key={c.id} value={c.id}>
                    {c.name}
                  </option>
                ))}
              </select>
            </label>
          )}
        </div>
        {kind === GuildChannelKind.TEXT && (
          <>
            <label className="check">
              <input type="checkbox" checked={e2ee} onChange={(e) => setE2ee(e.target.checked)} />
              {t("channelE2ee")}
            </label>
            <p className="muted small">{t("channelE2eeNote")}</p>
          </>
        )}
        {/* An encrypted channel is private whatever this says. */}
        {!(e2ee && kind === GuildChannelKind.TEXT) && (
          <>
            <label className="check">
              <input type="checkbox" checked={isPrivate} onChange={(e) => setPrivate(e.target.checked)} />
              {t("channelPrivate")}
            </label>
            <p className="muted small">{t("channelPrivateNote")}</p>
          </>
        )}
        <div className="row start">
          <button type="submit" className="primary" disabled={busy || !name.trim()}>
            {t("createChannelButton")}
          </button>
        </div>
      </form>
      <Problem error={error} />
      <p className="muted small">{t("channelsOrderNote")}</p>
      {groups.map((g) =>
        g.category ? (
          <section key={g.category.id} className="settings-group" aria-label={g.category.name}>
            <div
              className={dragging === g.category.id ? "settings-row category-row dragging" : "settings-row category-row"}
              draggable
              onDragStart={(e) => {
                setDragging(g.category?.id ?? null);
                e.dataTransfer.setData("text/plain", g.category?.id ?? "");
              }}
              onDragEnd={() => setDragging(null)}
              onDragOver={(e) => e.preventDefault()}
              onDrop={(e) => dropOn(e, { intoCategory: g.category?.id ?? null })}
            >
              <span className="drag-handle" aria-hidden="true">
                ⠿
              </span>
              <h4 className="fill">{g.category.name}</h4>
              <button type="button" className="icon" aria-label={t("moveUpNamed", { name: g.category.name })} disabled={busy} onClick={() => arrange(moved(groups, g.category?.id ?? "", -1))}>
                ↑
              </button>
              <button type="button" className="icon" aria-label={t("moveDownNamed", { name: g.category.name })} disabled={busy} onClick={() => arrange(moved(groups, g.category?.id ?? "", 1))}>
                ↓
              </button>
              <button type="button" aria-expanded={editing === g.category.id} aria-label={t("editNamed", { name: g.category.name })} onClick={() => setEditing(editing === g.category?.id ? null : (g.category?.id ?? null))}>
                {t("edit")}
              </button>
              <button type="button" className="danger" aria-label={t("deleteNamed", { name: g.category.name })} onClick={() => setDeleting(g.category)}>
                {t("delete")}
              </button>
            </div>
            {editing === g.category.id && <ChannelEditor chat={chat} guildId={guildId} channel={g.category} onDone={() => setEditing(null)} />}
            {editing === g.category.id && has(view.myPermissions, Perm.MANAGE_ROLES) && <Overwrites chat={chat} view={view} channel={g.category} />}
            <ul className="settings-list">{g.channels.map((c) => row(c, g))}</ul>
          </section>
        ) : (
          <ul key="top" className="settings-list" aria-label={t("noCategory")}>
            {g.channels.map((c) => row(c, g))}
          </ul>
        ),
      )}
      {deleting && (
        <Confirm
          title={t("deleteChannelTitle", { name: deleting.name })}
          action={t("delete")}
          busy={busy}
          onCancel={() => setDeleting(null)}
          onConfirm={() => void run(() => chat.guilds.deleteChannel(guildId, deleting.id)).then(() => setDeleting(null))}
        >
          <p>{deleting.kind === GuildChannelKind.CATEGORY ? t("deleteCategoryNote") : t("deleteChannelNote")}</p>
        </Confirm>
      )}
    </div>
  );
}

function ChannelEditor({ chat, guildId, channel, onDone }: { chat: Chat; guildId: string; channel: GuildChannel; onDone: () => void }) {
  const { t, lang } = useI18n();
  const [name, setName] = useState(channel.name);
  const [topic, setTopic] = useState(channel.topic);
  const [slow, setSlow] = useState(channel.slowModeS);
  const { busy, error, run } = useAction(t);
  const category = channel.kind === GuildChannelKind.CATEGORY;
  const choices = SLOW_MODES.includes(slow) ? SLOW_MODES : [...SLOW_MODES, slow].sort((a, b) => a - b);
  return (
    <form
      className="form channel-editor"
      aria-label={t("editNamed", { name: channel.name })}
      onSubmit={(e) => {
        e.preventDefault();
        void run(() => chat.guilds.updateChannel(guildId, channel.id, name, topic, slow)).then((ok) => ok && onDone());
      }}
    >
      <label>
        {t("channelName")}
        <input value={name} maxLength={MAX_NAME} required onChange={(e) => setName(e.target.value)} />
      </label>
      {!category && (
        <label>
          {t("channelTopic")}
          <textarea value={topic} maxLength={MAX_TEXT} rows={2} onChange={(e) => setTopic(e.target.value)} />
        </label>
      )}
      {!category && channel.kind !== GuildChannelKind.VOICE && (
        <label>
          {t("slowModeLabel")}
          <select value={slow} onChange={(e) => setSlow(Number(e.target.value))}>
            {choices.map((s) => (
              <option key={s} value={s}>
                {s === 0 ? t("off") : durationText(lang, s)}
              </option>
            ))}
          </select>
        </label>
      )}
      <Problem error={error} />
      <div className="row">
        <button type="button" onClick={onDone}>
          {t("cancel")}
        </button>
        <button type="submit" className="primary" disabled={busy || !name.trim()}>
          {t("save")}
        </button>
      </div>
    </form>
  );
}

function Bans({ chat, view }: { chat: Chat; view: GuildView }) {
  const { t, lang } = useI18n();
  const guildId = view.guild.id;
  const [bans, setBans] = useState<GuildBan[] | null>(null);
  const { busy, error, run } = useAction(t);
  const load = useCallback(() => {
    void run(() => chat.guilds.bans(guildId).then(setBans));
  }, [chat, guildId, run]);
  useEffect(load, [load]);
  return (
    <div className="settings-tab">
      <Problem error={error} />
      {bans && bans.length === 0 && <p className="muted">{t("bansNone")}</p>}
      <ul className="settings-list">
        {bans?.map((b) => {
          const name = personName(chat, t, b.accountId);
          return (
            <li key={b.accountId} className="settings-row">
              <span className="fill">
                {name}
                <span className="muted">
                  {" · "}
                  {t("bannedBy", { name: personName(chat, t, b.bannedBy), date: new Date(Number(b.createdAtMs)).toLocaleDateString(lang, { dateStyle: "medium" }) })}
                  {b.reason && ` · ${b.reason}`}
                </span>
              </span>
              <button type="button" disabled={busy} aria-label={t("unbanNamed", { name })} onClick={() => void run(() => chat.guilds.unban(guildId, b.accountId)).then(load)}>
                {t("unban")}
              </button>
            </li>
          );
        })}
      </ul>
    </div>
  );
}

/** What an audit entry's action was, in words. */
export function auditText(t: Translate, action: AuditAction): string {
  const name = AuditAction[action] as keyof typeof AuditAction | undefined;
  if (!name || name === "UNSPECIFIED") return t("auditUnknown");
  return t(`audit.${name}`);
}

function Audit({ chat, view }: { chat: Chat; view: GuildView }) {
  const { t, lang } = useI18n();
  const guildId = view.guild.id;
  const [entries, setEntries] = useState<AuditLogEntry[]>([]);
  const [more, setMore] = useState(true);
  const { busy, error, run } = useAction(t);
  useChat(chat, (s) => s.profiles);
  const loadMore = useCallback(
    (before: string) => {
      void run(async () => {
        const page = await chat.guilds.auditLog(guildId, before, 50);
        setEntries((e) => (before ? [...e, ...page] : page));
        setMore(page.length === 50);
      });
    },
    [chat, guildId, run],
  );
  useEffect(() => loadMore(""), [loadMore]);
  return (
    <div className="settings-tab">
      <Problem error={error} />
      {!busy && entries.length === 0 && !error && <p className="muted">{t("auditNone")}</p>}
      <ol className="settings-list audit">
        {entries.map((e) => (
          <li key={e.id} className="settings-row">
            <time className="muted" dateTime={new Date(Number(e.atMs)).toISOString()}>
              {new Date(Number(e.atMs)).toLocaleString(lang, { dateStyle: "short", timeStyle: "short" })}
            </time>
            <span className="fill">
              <strong>{personName(chat, t, e.actorId)}</strong> — {auditText(t, e.action)}
              {e.detail && <span className="muted"> · {e.detail}</span>}
            </span>
          </li>
        ))}
      </ol>
      {more && entries.length > 0 && (
        <button type="button" disabled={busy} onClick={() => loadMore(entries[entries.length - 1]?.id ?? "")}>
          {t("loadOlder")}
        </button>
      )}
    </div>
  );
}
