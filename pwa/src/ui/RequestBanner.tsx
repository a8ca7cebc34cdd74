// RequestBanner.tsx — a message request, opened: who it is from, a note on what they cannot see
// yet, and Accept / Decline / Block. The messages show above it (as in Signal: look, then
// decide); there is no composer until the request is accepted.
import { useState } from "react";
import { reasonOf } from "../errors";
import { useI18n } from "../i18n/i18n";
import { errorText } from "../i18n/messages";
import { ConversationKind, type Conversation } from "../gen/kitsulan/v1/conversation_pb";
import type { Chat } from "../state/chat";
import { personName } from "./names";

export function RequestBanner({ chat, conversation }: { chat: Chat; conversation: Conversation }) {
  const { t } = useI18n();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const from = conversation.requestedBy;
  const name = from ? personName(chat, t, from) : t("unknownPerson", { id: "" });
  const username = from ? chat.get().profiles[from]?.username : undefined;

  const act = async (what: () => Promise<void>) => {
    setBusy(true);
    setError("");
    try {
      await what();
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="request-banner" aria-label={t("requests")}>
      <p className="request-from">
        <strong>
          {conversation.kind === ConversationKind.GROUP ? t("requestGroup", { name }) : t("requestFrom", { name })}
        </strong>
        {username && <span className="muted"> @{username}</span>}
      </p>
      <p className="muted">{t("requestNote")}</p>
      {error && (
        <p role="alert" className="warning">
          {error}
        </p>
      )}
      <div className="request-actions">
        <button
          type="button"
          className="primary"
          disabled={busy}
          aria-label={t("acceptRequest", { name })}
          onClick={() => void act(() => chat.conversations.acceptRequest(conversation.id))}
        >
          {t("accept")}
        </button>
        <button
          type="button"
          disabled={busy}
          aria-label={t("declineRequest", { name })}
          onClick={() => void act(() => chat.conversations.declineRequest(conversation.id))}
        >
          {t("decline")}
        </button>
        {from && (
          <button
            type="button"
            className="danger"
            disabled={busy}
            aria-label={t("blockPerson", { name })}
            onClick={() => void act(() => chat.conversations.block(from))}
          >
            {t("block")}
          </button>
        )}
      </div>
    </section>
  );
}
