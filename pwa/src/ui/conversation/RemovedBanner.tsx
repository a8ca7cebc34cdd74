// RemovedBanner.tsx — in place of the composer of a group we were removed from: says so, and lets
// the person delete the conversation (and the history this device holds) from the list, after a
// confirmation. The history above stays readable.
import { useState } from "react";
import type { Conversation } from "../../gen/kitsulan/v1/conversation_pb";
import { useI18n } from "../../i18n/i18n";
import type { Chat } from "../../state/chat";
import { conversationTitle } from "../names";

export function RemovedBanner({ chat, conversation }: { chat: Chat; conversation: Conversation }) {
  const { t } = useI18n();
  const [confirming, setConfirming] = useState(false);
  const title = conversationTitle(chat, t, conversation);
  return (
    <section className="request-banner removed-banner" aria-label={t("removedFromGroup")}>
      <p role="status">
        <strong>{t("removedFromGroup")}</strong>
      </p>
      {confirming ? (
        <>
          <p>{t("deleteChatConfirm", { title })}</p>
          <div className="request-actions">
            <button type="button" className="danger" autoFocus onClick={() => chat.conversations.forget(conversation.id)}>
              {t("delete")}
            </button>
            <button type="button" onClick={() => setConfirming(false)}>
              {t("cancel")}
            </button>
          </div>
        </>
      ) : (
        <div className="request-actions">
          <button type="button" className="danger" onClick={() => setConfirming(true)}>
            {t("deleteChat")}
          </button>
        </div>
      )}
    </section>
  );
}
