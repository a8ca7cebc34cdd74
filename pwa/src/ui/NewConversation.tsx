// NewConversation.tsx — opens a direct conversation. The API has no lookup by username yet
// (see the PWA README), so the other person's account id is typed or pasted.
import { useState, type FormEvent } from "react";
import { reasonOf } from "../errors";
import { useI18n } from "../i18n/i18n";
import { errorText } from "../i18n/messages";
import { isUuid } from "../lib/ids";
import type { Chat } from "../state/chat";
import { CopyId } from "./CopyId";
import { Dialog } from "./Dialog";

export function NewConversation({ chat, onClose }: { chat: Chat; onClose: () => void }) {
  const { t } = useI18n();
  const [accountId, setAccountId] = useState("");
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const id = accountId.trim().toLowerCase();
    if (!isUuid(id)) {
      setError(errorText(t, "ID_INVALID"));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const conversationId = await chat.openDirect(id, name);
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
      <form className="form" onSubmit={submit}>
        <p className="muted">{t("noUsernameLookup")}</p>
        <label>
          {t("accountId")}
          <input
            name="accountId"
            required
            autoFocus
            spellCheck={false}
            value={accountId}
            onChange={(e) => setAccountId(e.target.value)}
          />
        </label>
        <label>
          {t("contactName")}
          <input name="contactName" value={name} onChange={(e) => setName(e.target.value)} />
        </label>
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
            {t("start")}
          </button>
        </div>
        <CopyId label={t("yourAccountId")} value={chat.get().me.accountId} />
      </form>
    </Dialog>
  );
}
