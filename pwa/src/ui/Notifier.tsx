// Notifier.tsx — tells the person about new messages from others: a banner in the app when the
// message is in another conversation than the open one, and a system notification when the tab
// is hidden and they turned those on (content-free unless they opted in to the text). Clicking
// either opens that conversation.
import { useEffect, useState } from "react";
import { ConversationKind } from "../gen/kitsulan/v1/conversation_pb";
import { useI18n } from "../i18n/i18n";
import {
  OPEN_CONVERSATION,
  conversationFromUrl,
  loadPrefs,
  showSystem,
} from "../notify/notifications";
import { pushTexts, refreshPushTexts } from "../notify/push";
import { markdownToText } from "../markdown/plainText";
import { useChat, type Chat, type Incoming } from "../state/chat";
import { mentionsMe } from "../state/mentions";
import { conversationTitle, personName } from "./names";

interface Toast {
  conversationId: string;
  title: string;
  text: string;
}

const TOAST_MS = 8000;

export function Notifier({ chat }: { chat: Chat }) {
  const { t } = useI18n();
  const [toast, setToast] = useState<Toast | null>(null);
  const active = useChat(chat, (s) => s.active);

  // The service worker shows push notifications in the language chosen here.
  useEffect(() => {
    void refreshPushTexts(pushTexts(t)).catch(() => undefined);
  }, [t]);

  // A notification clicked while the app is open (the service worker posts to the page), or
  // one that opened this window.
  useEffect(() => {
    const fromUrl = conversationFromUrl();
    if (fromUrl) chat.setActive(fromUrl);
    if (!("serviceWorker" in navigator)) return;
    const onMessage = (e: MessageEvent) => {
      const data = e.data as { type?: unknown; conversationId?: unknown } | null;
      if (data?.type === OPEN_CONVERSATION && typeof data.conversationId === "string") {
        chat.setActive(data.conversationId);
      }
    };
    navigator.serviceWorker.addEventListener("message", onMessage);
    return () => navigator.serviceWorker.removeEventListener("message", onMessage);
  }, [chat]);

  useEffect(
    () =>
      chat.onIncoming((m: Incoming) => {
        const c = chat.conversation(m.conversationId);
        // A message request waits among the requests: no toast, no system notification.
        if (!c || c.request) return;
        // A guild's channel is busy: only a message that mentions us notifies, as in Discord.
        if (c.kind === ConversationKind.CHANNEL && !mentionsMe(m.content, chat.get().me.accountId)) return;
        const name = conversationTitle(chat, t, c);
        const text =
          m.content.kind === "text"
            ? markdownToText(m.content.text).slice(0, 140)
            : m.content.kind === "attachment"
              ? m.content.file.name.slice(0, 140)
              : "";
        const sender = personName(chat, t, m.senderAccountId);
        const line = c.kind !== ConversationKind.DIRECT && text ? `${sender}: ${text}` : text;
        if (document.visibilityState === "hidden") {
          const prefs = loadPrefs();
          if (!prefs.system) return;
          const [title, body] = prefs.preview ? [name, line] : [t("newMessageIn", { name }), ""];
          void showSystem(title, body, c.id, () => chat.setActive(c.id)).catch((err: unknown) =>
            console.warn("notification", err),
          );
        } else if (chat.get().active !== c.id) {
          setToast({ conversationId: c.id, title: t("newMessageIn", { name }), text: line });
        }
      }),
    [chat, t],
  );

  // Opening the conversation (from the list, too) answers the banner.
  useEffect(() => {
    if (active !== null) setToast((cur) => (cur?.conversationId === active ? null : cur));
  }, [active]);

  useEffect(() => {
    if (!toast) return;
    const timer = setTimeout(() => setToast(null), TOAST_MS);
    return () => clearTimeout(timer);
  }, [toast]);

  // The live region stays in the page so screen readers announce what appears in it.
  return (
    <div className="toast-region" role="status" aria-live="polite">
      {toast && (
        <div className="toast">
          <p>
            <strong>{toast.title}</strong>
            {toast.text && <span className="toast-text">{toast.text}</span>}
          </p>
          <button
            type="button"
            onClick={() => {
              chat.setActive(toast.conversationId);
              setToast(null);
            }}
          >
            {t("open")}
          </button>
          <button type="button" className="icon" aria-label={t("dismiss")} onClick={() => setToast(null)}>
            ×
          </button>
        </div>
      )}
    </div>
  );
}
