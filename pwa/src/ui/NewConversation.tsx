// NewConversation.tsx — opens a direct conversation with someone found by username, or creates
// a group with a name and members given by username, end-to-end encrypted (the default) or cloud,
// each choice with its sentence on what the server can read; or leads to the contact QR codes
// (show ours, scan theirs).
import { useState, type FormEvent } from "react";
import { reasonOf } from "../errors";
import { ConversationMode } from "../gen/kitsulan/v1/conversation_pb";
import type { Mode } from "../state/conversations";
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
  const [mode, setMode] = useState<Mode>(ConversationMode.E2EE);
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
          ? await chat.conversations.openDirect(username, mode)
          : await chat.conversations.createGroup(title, members.split(/[\s,]+/).filter(Boolean), mode);
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
        <fieldset className="kind">
          <legend>{t("security")}</legend>
          {([ConversationMode.E2EE, ConversationMode.CLOUD] as const).map((m) => (
            <label key={m} className="radio mode-choice">
              <input type="radio" name="mode" value={m} checked={mode === m} onChange={() => setMode(m)} />
              <span>
                {m === ConversationMode.E2EE ? t("kindE2ee") : t("kindCloud")}
                <small className="muted mode-note">{m === ConversationMode.E2EE ? t("encryptedNote") : t("cloudNote")}</small>
              </span>
            </label>
          ))}
        </fieldset>
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
