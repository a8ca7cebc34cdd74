// AddGuild.tsx — the rail's "+": make a new guild (a name and, optionally, a description), or
// join one with an invite link or code (which opens the invite's page, InviteJoin).
import { useState, type FormEvent } from "react";
import { reasonOf } from "../../errors";
import { useI18n } from "../../i18n/i18n";
import { errorText } from "../../i18n/messages";
import { inviteCode } from "../../lib/invite";
import type { Chat } from "../../state/chat";
import { Dialog } from "../Dialog";

/** The longest name (guilds, channels, roles: the rules of group titles). */
export const MAX_NAME = 100;
export const MAX_TEXT = 1000;

export function AddGuild({ chat, onClose, onCreated, onInvite }: { chat: Chat; onClose: () => void; onCreated: (guildId: string) => void; onInvite: (code: string) => void }) {
  const { t } = useI18n();
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [link, setLink] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [linkError, setLinkError] = useState<string | null>(null);

  async function create(e: FormEvent) {
    e.preventDefault();
    if (!name.trim()) return;
    setBusy(true);
    setError(null);
    try {
      onCreated(await chat.guilds.create(name, description));
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  function join(e: FormEvent) {
    e.preventDefault();
    const code = inviteCode(link);
    if (!code) {
      setLinkError(t("inviteLinkInvalid", { origin: window.location.origin }));
      return;
    }
    onInvite(code);
  }

  return (
    <Dialog title={t("addGuild")} onClose={onClose}>
      <form className="form" onSubmit={create} aria-label={t("createGuild")}>
        <h3 className="form-heading">{t("createGuild")}</h3>
        <p className="muted">{t("createGuildNote")}</p>
        <label>
          {t("guildName")}
          <input value={name} maxLength={MAX_NAME} required onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          {t("guildDescription")}
          <textarea value={description} maxLength={MAX_TEXT} rows={2} onChange={(e) => setDescription(e.target.value)} />
        </label>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <div className="row">
          <button type="submit" className="primary" disabled={busy || !name.trim()}>
            {t("createGuildButton")}
          </button>
        </div>
      </form>
      <hr className="sep" />
      <form className="form" onSubmit={join} aria-label={t("joinGuild")}>
        <h3 className="form-heading">{t("joinGuild")}</h3>
        <label>
          {t("inviteLinkOrCode")}
          <input
            value={link}
            placeholder={`${window.location.origin}/invite/…`}
            aria-invalid={linkError ? true : undefined}
            onChange={(e) => {
              setLink(e.target.value);
              setLinkError(null);
            }}
          />
        </label>
        {linkError && (
          <p role="alert" className="error">
            {linkError}
          </p>
        )}
        <div className="row">
          <button type="button" onClick={onClose}>
            {t("cancel")}
          </button>
          <button type="submit" disabled={!link.trim()}>
            {t("joinGuildButton")}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
