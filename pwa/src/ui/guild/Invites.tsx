// Invites.tsx — making an invite (how long it lasts, how many people it admits) and showing it
// once: the link `/invite/CODE` on this server, a Copy button and its QR code to scan; and the
// guild's invites (those who manage the guild): who made each, its uses, expiry, Revoke.
import { useCallback, useEffect, useRef, useState } from "react";
import type { GuildInvite } from "../../gen/kitsulan/v1/guild_pb";
import { reasonOf } from "../../errors";
import { useI18n } from "../../i18n/i18n";
import { errorText } from "../../i18n/messages";
import { inviteLink } from "../../lib/invite";
import type { Chat } from "../../state/chat";
import { has, Perm, type GuildView } from "../../state/guilds";
import { CopyButton } from "../CopyButton";
import { durationText } from "../duration";
import { QrCode } from "../link/QrCode";
import { personName } from "../names";

/** Expiry choices (seconds; 0: never). */
const EXPIRIES = [1_800, 3_600, 21_600, 43_200, 86_400, 604_800, 0];
/** Use limits (0: any number). */
const MAX_USES = [0, 1, 5, 10, 25, 50, 100];

/** Makes an invite and shows its link and QR code (the code is shown this once). */
export function InviteMaker({ chat, guildId, onMade }: { chat: Chat; guildId: string; onMade?: () => void }) {
  const { t, lang } = useI18n();
  const [expires, setExpires] = useState(604_800);
  const [maxUses, setMaxUses] = useState(0);
  const [link, setLink] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const linkRef = useRef<HTMLElement>(null);

  async function make() {
    setBusy(true);
    setError(null);
    try {
      const { code } = await chat.guilds.createInvite(guildId, expires, maxUses);
      setLink(inviteLink(window.location.origin, code));
      onMade?.();
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="invite-maker">
      <div className="prefs">
        <label>
          {t("inviteExpiresAfter")}
          <select value={expires} onChange={(e) => setExpires(Number(e.target.value))}>
            {EXPIRIES.map((s) => (
              <option key={s} value={s}>
                {s === 0 ? t("never") : durationText(lang, s)}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t("inviteMaxUses")}
          <select value={maxUses} onChange={(e) => setMaxUses(Number(e.target.value))}>
            {MAX_USES.map((n) => (
              <option key={n} value={n}>
                {n === 0 ? t("noLimit") : String(n)}
              </option>
            ))}
          </select>
        </label>
      </div>
      <div className="row start">
        <button type="button" className="primary" disabled={busy} onClick={() => void make()}>
          {link ? t("inviteMakeAnother") : t("inviteMake")}
        </button>
      </div>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {link && (
        <div className="invite-made">
          <p className="muted">{t("inviteShownOnce")}</p>
          <code className="mono invite-link" ref={linkRef} aria-label={t("inviteLink")}>
            {link}
          </code>
          <div className="row start">
            <CopyButton text={link} select={linkRef} />
          </div>
          <QrCode text={link} label={t("inviteQr")} size={200} />
        </div>
      )}
    </div>
  );
}

export function InvitesTab({ chat, view }: { chat: Chat; view: GuildView }) {
  const { t, lang } = useI18n();
  const guildId = view.guild.id;
  const manages = has(view.myPermissions, Perm.MANAGE_GUILD);
  const [invites, setInvites] = useState<GuildInvite[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(() => {
    if (!manages) return;
    chat.guilds
      .invites(guildId)
      .then(setInvites)
      .catch((err: unknown) => setError(errorText(t, reasonOf(err))));
  }, [chat, guildId, manages, t]);
  useEffect(load, [load]);

  async function revoke(id: string) {
    try {
      await chat.guilds.revokeInvite(guildId, id);
      load();
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    }
  }

  const date = (ms: bigint) => new Date(Number(ms)).toLocaleString(lang, { dateStyle: "short", timeStyle: "short" });
  return (
    <div className="settings-tab">
      {has(view.myPermissions, Perm.CREATE_INVITES) && <InviteMaker chat={chat} guildId={guildId} onMade={load} />}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {manages && (
        <>
          <h3>{t("invitesList")}</h3>
          {invites && invites.length === 0 && <p className="muted">{t("invitesNone")}</p>}
          <ul className="settings-list">
            {invites?.map((i) => {
              const over = i.revoked || (i.expiresAtMs > 0n && Number(i.expiresAtMs) < Date.now()) || (i.maxUses > 0 && i.uses >= i.maxUses);
              return (
                <li key={i.id} className={over ? "settings-row spent" : "settings-row"}>
                  <span className="mono">{i.codeHint}…</span>
                  <span className="fill">
                    {t("inviteBy", { name: personName(chat, t, i.createdBy) })}
                    <span className="muted">
                      {" · "}
                      {i.maxUses > 0 ? t("inviteUsesOf", { n: i.uses, max: i.maxUses }) : t("inviteUses", { n: i.uses })}
                      {" · "}
                      {i.revoked ? t("inviteRevoked") : i.expiresAtMs > 0n ? t("inviteExpires", { time: date(i.expiresAtMs) }) : t("inviteNeverExpires")}
                    </span>
                  </span>
                  {!i.revoked && (
                    <button type="button" className="danger" aria-label={t("inviteRevokeNamed", { code: i.codeHint })} onClick={() => void revoke(i.id)}>
                      {t("inviteRevoke")}
                    </button>
                  )}
                </li>
              );
            })}
          </ul>
        </>
      )}
    </div>
  );
}
