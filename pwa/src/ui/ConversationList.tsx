// ConversationList.tsx — conversations by last activity, with unread counts (and "@" when a
// message mentions us), the last message and the kind's mark (the lock, or the cloud). Message requests (from people we share no accepted
// conversation with) are not chats: they wait behind a "Requests" entry, without badges.
import { useEffect, useState } from "react";
import { useI18n } from "../i18n/i18n";
import { useChat, type Chat } from "../state/chat";
import { ConversationAvatar } from "./Avatar";
import { markdownToText } from "../markdown/plainText";
import { KindIcon } from "./KindMark";
import { conversationTitle } from "./names";
import { systemText } from "./conversation/SystemLine";
import { removedFrom } from "../state/conversations";
import { unreadOf } from "../state/reactions";
import { mentionCountOf } from "../state/mentions";

export function ConversationList({ chat }: { chat: Chat }) {
  const { t } = useI18n();
  const conversations = useChat(chat, (s) => s.conversations);
  const previews = useChat(chat, (s) => s.previews);
  const systemPreviews = useChat(chat, (s) => s.systemPreviews);
  const me = useChat(chat, (s) => s.me.accountId);
  const active = useChat(chat, (s) => s.active);
  const threads = useChat(chat, (s) => s.threads);
  useChat(chat, (s) => s.profiles); // re-render when names (and pictures) arrive
  const [showRequests, setShowRequests] = useState(false);
  const requests = conversations.filter((c) => c.request);
  const chats = conversations.filter((c) => !c.request);
  // The last request answered: back to the chats (a later request shows the entry again).
  useEffect(() => {
    if (requests.length === 0) setShowRequests(false);
  }, [requests.length]);
  const viewingRequests = showRequests && requests.length > 0;
  const shown = viewingRequests ? requests : chats;
  return (
    <>
      {viewingRequests ? (
        <button type="button" className="requests-entry" onClick={() => setShowRequests(false)}>
          ← {t("backToChats")}
        </button>
      ) : (
        requests.length > 0 && (
          <button type="button" className="requests-entry" onClick={() => setShowRequests(true)}>
            {t("requestsEntry", { n: requests.length })}
          </button>
        )
      )}
      {viewingRequests && <h2 className="list-heading">{t("requests")}</h2>}
      {shown.length === 0 ? (
        <p className="muted pad">{t("noConversations")}</p>
      ) : (
        <ul className="conv-list" aria-label={viewingRequests ? t("requests") : t("conversations")}>
          {shown.map((c) => {
            const title = conversationTitle(chat, t, c);
            // Group management: the last line may be a system entry; a group we were removed from is marked.
            const systemPreview = systemPreviews?.[c.id];
            const removed = removedFrom(c, me);
            // Reactions are not news: the server's count, less those this device holds.
            const unread = unreadOf(c, threads[c.id], me);
            // Mentions of us count apart: "@" beside the unread count.
            const mentions = mentionCountOf(c, threads[c.id], me);
            return (
              <li key={c.id}>
                <button
                  type="button"
                  className={c.id === active ? "conv active" : "conv"}
                  aria-current={c.id === active ? "true" : undefined}
                  onClick={() => chat.setActive(c.id)}
                >
                  <ConversationAvatar chat={chat} conversation={c} name={title} className="avatar conv-avatar" />
                  <span className="conv-title">
                    <KindIcon mode={c.mode} />
                    <span className="name">{title}</span>
                    {removed && <span className="badge-soft removed-mark">{t("removedMark")}</span>}
                  </span>
                  <span className="conv-preview">
                    {c.request ? t("requestPreview") : systemPreview ? systemText(chat, t, systemPreview) : markdownToText(previews[c.id] ?? "")}
                  </span>
                  <span className="conv-badges">
                    {!c.request && mentions > 0 && (
                      <span className="badge mention-badge" aria-label={t("mentionBadge", { n: mentions })} title={t("mentionBadge", { n: mentions })}>
                        @
                      </span>
                    )}
                    {!c.request && unread > 0 && (
                      <span className="badge" aria-label={t("unread", { n: unread })}>
                        {unread}
                      </span>
                    )}
                  </span>
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </>
  );
}
