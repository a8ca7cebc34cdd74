// NewConversation.tsx — opens a direct conversation with someone found by username, or creates
// a group with a name and members given by username; or leads to the contact QR codes (show
// ours, scan theirs).
import { useState, type FormEvent } from "react";
import { reasonOf } from "../errors";
import { useI18n } from "../i18n/i18n";
import { errorText } from "../i18n/messages";
import type { Chat } from "../state/chat";
import { Dialog } from "./Dialog";

const USERNAME_INPUT = { required: true, autoCapitalize: "none", autoComplete: "off", spellCheck: false } as const;

export function NewConversation({
  chat,
  onClose,
  onMyQr,
  onScan,
}: {
  chat: Chat;
  onClose: () => void;
  /** Shows our contact QR code instead (contacts/MyQrCode.tsx). */
  onMyQr: () => void;
  /** Scans someone's contact QR code instead (contacts/AddContact.tsx). */
  onScan: () => void;
}) {
  const { t } = useI18n();
  const [kind, setKind] = useState<"direct" | "group">("direct");
  const [username, setUsername] = useState("");
  const [title, setTitle] = useState("");
  const [members, setMembers] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const conversationId =
        kind === "direct"
          ? await chat.conversations.openDirect(username)
          : await chat.conversations.createGroup(title, members.split(/[\s,]+/).filter(Boolean));
      chat.setActive(conversationId);
      onClose();
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title={t("newConversation")} onClose={onClose}>
      <div className="row qr-actions">
        <button type="button" onClick={onScan}>
          {t("scanContactQr")}
        </button>
        <button type="button" onClick={onMyQr}>
          {t("myQrCode")}
        </button>
      </div>
      <form className="form" onSubmit={submit}>
        <fieldset className="kind">
          <legend>{t("kind")}</legend>
          {(["direct", "group"] as const).map((k) => (
            <label key={k} className="radio">
              <input type="radio" name="kind" value={k} checked={kind === k} onChange={() => setKind(k)} />
              {k === "direct" ? t("directConversation") : t("groupConversation")}
            </label>
          ))}
        </fieldset>
        {kind === "direct" ? (
          <label>
            {t("theirUsername")}
            <input name="username" autoFocus {...USERNAME_INPUT} value={username} onChange={(e) => setUsername(e.target.value)} />
          </label>
        ) : (
          <>
            <label>
              {t("groupTitle")}
              <input name="title" required maxLength={100} value={title} onChange={(e) => setTitle(e.target.value)} />
            </label>
            <label>
              {t("groupMembers")}
              <input name="members" {...USERNAME_INPUT} value={members} onChange={(e) => setMembers(e.target.value)} />
            </label>
          </>
        )}
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <div className="row">
          <button type="button" onClick={onClose}>
            {t("cancel")}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {kind === "direct" ? t("start") : t("createGroup")}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
