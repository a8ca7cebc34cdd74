// Forward.tsx — "Forward" a message to another conversation: the person picks one; the text is
// sent there as a new message of its own, marked forwarded (who wrote it and when:
// Content.forwarded), through the outbox like any send. Into a cloud chat it goes as new cloud
// content, which the picker says; the server never unwraps an E2EE message.
import { useState } from "react";
import { ConversationMode } from "../gen/kitsulan/v1/conversation_pb";
import { useI18n } from "../i18n/i18n";
import { useChat, type Chat, type Item } from "../state/chat";
import { removedFrom } from "../state/conversations";
import { Dialog } from "./Dialog";
import { KindIcon } from "./KindMark";
import { conversationTitle } from "./names";

export function Forward({ chat, item, onClose }: { chat: Chat; item: Item; onClose: () => void }) {
  const { t } = useI18n();
  const conversations = useChat(chat, (s) => s.conversations);
  const me = useChat(chat, (s) => s.me.accountId);
  const [error, setError] = useState<string | null>(null);
  const fromE2ee = !chat.isCloud(item.message.conversationId);
  if (item.content.kind !== "text") return null;
  const text = item.content.text;
  const targets = conversations.filter((c) => !c.request && !removedFrom(c, me));

  async function forward(conversationId: string) {
    try {
      // The original's mentions named members of its own conversation: not carried over.
      await chat.outbox.send(conversationId, text, "", {
        forwarded: { fromAccountId: item.message.senderAccountId, sentAtMs: Number(item.message.sentAtMs) },
      });
      onClose();
      chat.setActive(conversationId);
    } catch (err) {
      console.warn("forward not kept", err);
      setError(t("outboxNotKept"));
    }
  }

  return (
    <Dialog title={t("forwardTo")} onClose={onClose} focusInput={false}>
      <ul className="forward-list" aria-label={t("forwardTo")}>
        {targets.map((c) => (
          <li key={c.id}>
            <button type="button" onClick={() => void forward(c.id)}>
              <span className="conv-title">
                <KindIcon mode={c.mode} />
                <span className="name">{conversationTitle(chat, t, c)}</span>
              </span>
              {fromE2ee && c.mode === ConversationMode.CLOUD && <small className="muted">{t("forwardToCloud")}</small>}
            </button>
          </li>
        ))}
      </ul>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </Dialog>
  );
}
