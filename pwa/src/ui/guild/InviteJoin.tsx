// InviteJoin.tsx — an invite's page: what it leads to (GetInvite: the guild's name, description,
// member count, when the invite expires) and Join; or why not (an unknown, expired or used-up
// invite, a ban, too many lookups), in words.
import { useEffect, useState } from "react";
import type { GetInviteResponse } from "../../gen/kitsulan/v1/guild_pb";
import { reasonOf } from "../../errors";
import { useI18n } from "../../i18n/i18n";
import { errorText } from "../../i18n/messages";
import type { Chat } from "../../state/chat";
import { Dialog } from "../Dialog";

export function InviteJoin({ chat, code, onClose, onJoined }: { chat: Chat; code: string; onClose: () => void; onJoined: (guildId: string) => void }) {
  const { t, lang } = useI18n();
  const [preview, setPreview] = useState<GetInviteResponse | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let live = true;
    chat.guilds
      .preview(code)
      .then((p) => live && setPreview(p))
      .catch((err: unknown) => live && setError(errorText(t, reasonOf(err))));
    return () => {
      live = false;
    };
  }, [chat, code, t]);

  async function join() {
    setBusy(true);
    setError(null);
    try {
      onJoined(await chat.guilds.join(code));
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title={t("inviteTitle")} onClose={onClose} focusInput={false}>
      {!preview && !error && (
        <p role="status" className="muted">
          {t("working")}
        </p>
      )}
      {preview && (
        <div className="invite-preview">
          <p className="muted">{t("inviteYouAreInvited")}</p>
          <h3 className="invite-guild">{preview.guildName}</h3>
          {preview.guildDescription && <p>{preview.guildDescription}</p>}
          <p className="muted">
            {t("memberCount", { n: String(preview.memberCount) })}
            {preview.expiresAtMs > 0n &&
              ` · ${t("inviteExpires", { time: new Date(Number(preview.expiresAtMs)).toLocaleString(lang, { dateStyle: "medium", timeStyle: "short" }) })}`}
          </p>
          {preview.member && <p className="muted">{t("inviteAlreadyMember")}</p>}
        </div>
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <div className="row">
        <button type="button" onClick={onClose}>
          {preview?.member ? t("close") : t("cancel")}
        </button>
        {preview && (
          <button type="button" className="primary" disabled={busy} onClick={() => (preview.member ? onJoined(preview.guildId) : void join())}>
            {preview.member ? t("openGuild") : t("joinGuildButton")}
          </button>
        )}
      </div>
    </Dialog>
  );
}
