// ConversationView.tsx — one conversation: history (scrolling back loads older pages), day
// separators, bubbles with sender names in groups, delivered/read ticks, the typing indicator,
// and the composer (Enter sends, Shift+Enter makes a new line).
import { useEffect, useLayoutEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { ConversationKind, ConversationMode } from "../gen/kitsulan/v1/conversation_pb";
import { useI18n, type Translate } from "../i18n/i18n";
import { SafeMarkdown } from "../markdown/SafeMarkdown";
import { useChat, type Chat, type Item, type Receipt } from "../state/chat";
import { LockIcon } from "./LockIcon";
import { conversationTitle, personName } from "./names";

const EMPTY: Item[] = [];
const NO_RECEIPTS: Record<string, Receipt> = {};
const NO_TYPING: Record<string, number> = {};

function dayLabel(t: Translate, lang: string, ms: number): string {
  const d = new Date(ms);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86_400_000);
  if (d.toDateString() === today.toDateString()) return t("today");
  if (d.toDateString() === yesterday.toDateString()) return t("yesterday");
  return d.toLocaleDateString(lang, { day: "numeric", month: "long", year: "numeric" });
}

type Tick = "sending" | "failed" | "sent" | "delivered" | "read";

export function ConversationView({ chat, conversationId }: { chat: Chat; conversationId: string }) {
  const { t, lang } = useI18n();
  const conversation = useChat(chat, (s) => s.conversations.find((c) => c.id === conversationId));
  const thread = useChat(chat, (s) => s.threads[conversationId]);
  const receipts = useChat(chat, (s) => s.receipts[conversationId] ?? NO_RECEIPTS);
  const typing = useChat(chat, (s) => s.typing[conversationId] ?? NO_TYPING);
  const keyWarning = useChat(chat, (s) => s.keyWarning);
  const me = useChat(chat, (s) => s.me);
  const needsLink = chat.engine.state !== "ready";
  const items = thread?.items ?? EMPTY;
  const [draft, setDraft] = useState("");
  const listRef = useRef<HTMLDivElement>(null);
  const topRef = useRef<HTMLDivElement>(null);
  const stickToBottom = useRef(true);
  const heightBefore = useRef<number | null>(null);
  const lastTyping = useRef(0);

  // Keep the view at the bottom when new messages arrive (if it was there), and keep the
  // position when older ones are prepended.
  useLayoutEffect(() => {
    const el = listRef.current;
    if (!el) return;
    if (heightBefore.current !== null) {
      el.scrollTop += el.scrollHeight - heightBefore.current;
      heightBefore.current = null;
    } else if (stickToBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [items]);

  useEffect(() => {
    chat.markReadIfVisible(conversationId);
  }, [chat, conversationId, items]);

  const loadOlder = () => {
    if (!thread?.more) return;
    heightBefore.current = listRef.current?.scrollHeight ?? null;
    void chat.loadOlder(conversationId);
  };

  useEffect(() => {
    const top = topRef.current;
    const root = listRef.current;
    if (!top || !root) return;
    const io = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting) && thread?.loaded && thread.more) loadOlder();
      },
      { root },
    );
    io.observe(top);
    return () => io.disconnect();
  });

  if (!conversation) return null;
  const title = conversationTitle(chat, t, conversation);
  const isGroup = conversation.kind === ConversationKind.GROUP;
  const others = conversation.members.filter((m) => m.accountId !== me.accountId);

  const tickOf = (item: Item): Tick => {
    if (item.local) return item.local;
    const seq = item.message.seq;
    const all = (f: (r: Receipt, readSeq: bigint) => boolean) =>
      others.length > 0 && others.every((m) => f(receipts[m.accountId] ?? { delivered: 0n, read: 0n }, m.readSeq));
    if (all((r, readSeq) => r.read >= seq || readSeq >= seq)) return "read";
    if (all((r, readSeq) => r.delivered >= seq || r.read >= seq || readSeq >= seq)) return "delivered";
    return "sent";
  };

  async function submit(e?: FormEvent) {
    e?.preventDefault();
    const text = draft.trim();
    if (!text) return;
    setDraft("");
    stickToBottom.current = true;
    chat.typing(conversationId, false);
    lastTyping.current = 0;
    try {
      await chat.send(conversationId, text);
    } catch (err) {
      console.warn("send failed", err);
    }
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void submit();
    }
  }

  function onDraft(value: string) {
    setDraft(value);
    const now = Date.now();
    if (value && now - lastTyping.current > 3000) {
      lastTyping.current = now;
      chat.typing(conversationId, true);
    }
  }

  const typingNames = Object.keys(typing).map((id) => personName(chat, t, id));
  let lastDay = "";
  let lastSender = "";

  return (
    <section className="conversation" aria-label={title}>
      <header className="bar">
        <button type="button" className="icon back" aria-label={t("backToList")} onClick={() => chat.setActive(null)}>
          ←
        </button>
        <div className="conv-head">
          <h2>{title}</h2>
          {conversation.mode !== ConversationMode.CLOUD && (
            <span className="e2ee-mark" title={t("encryptedNote")}>
              <LockIcon /> {t("e2ee")}
            </span>
          )}
        </div>
      </header>
      {needsLink && (
        <p role="alert" className="warning">
          {t("needsLink")}
        </p>
      )}
      {keyWarning && (
        <p role="alert" className="warning">
          {t("keyChanged", { name: personName(chat, t, keyWarning) })}
        </p>
      )}
      <div
        className="messages"
        ref={listRef}
        role="log"
        aria-live="polite"
        aria-label={title}
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget;
          stickToBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
        }}
      >
        <div ref={topRef} className="top-sentinel" />
        {thread?.more && thread.loaded && (
          <button type="button" className="load-older" onClick={loadOlder}>
            {t("loadOlder")}
          </button>
        )}
        {thread?.loaded && items.length === 0 && <p className="muted pad">{t("noMessages")}</p>}
        {items.map((item) => {
          const m = item.message;
          const ms = Number(m.sentAtMs);
          const day = new Date(ms).toDateString();
          const mine = m.senderAccountId === me.accountId;
          const showDay = day !== lastDay;
          const showName = isGroup && !mine && (showDay || lastSender !== m.senderAccountId);
          lastDay = day;
          lastSender = m.senderAccountId;
          const tick = mine ? tickOf(item) : null;
          return (
            <div key={m.id} className="msg-wrap">
              {showDay && (
                <div className="day" role="separator" aria-label={dayLabel(t, lang, ms)}>
                  <span>{dayLabel(t, lang, ms)}</span>
                </div>
              )}
              <article className={mine ? "bubble mine" : "bubble"} data-message-id={m.id}>
                {showName && <div className="sender">{personName(chat, t, m.senderAccountId)}</div>}
                {item.content.kind === "text" && <SafeMarkdown text={item.content.text} />}
                {item.content.kind === "deleted" && <p className="muted">{t("deleted")}</p>}
                {item.content.kind === "undecryptable" && (
                  <p className="muted">
                    {item.content.reason === "waiting for the key" ? t("waitingForKey") : t("undecryptable")}
                  </p>
                )}
                <div className="meta">
                  <time dateTime={new Date(ms).toISOString()}>
                    {new Date(ms).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" })}
                  </time>
                  {tick &&
                    (tick === "failed" ? (
                      <button
                        type="button"
                        className="tick failed"
                        aria-label={t("failed")}
                        onClick={() => void chat.send(conversationId, item.text ?? "", item).catch(() => undefined)}
                      >
                        !
                      </button>
                    ) : (
                      <span className={`tick ${tick}`} role="img" aria-label={t(tick)} title={t(tick)}>
                        {tick === "sending" ? "◷" : tick === "sent" ? "✓" : "✓✓"}
                      </span>
                    ))}
                </div>
              </article>
            </div>
          );
        })}
      </div>
      <p className="typing" aria-live="polite">
        {typingNames.length > 0 ? t("typing", { name: typingNames.join(", ") }) : " "}
      </p>
      <form className="composer" onSubmit={submit}>
        <textarea
          aria-label={t("message")}
          placeholder={t("message")}
          rows={1}
          value={draft}
          disabled={needsLink}
          onChange={(e) => onDraft(e.target.value)}
          onKeyDown={onKeyDown}
        />
        <button type="submit" className="primary" disabled={needsLink || !draft.trim()}>
          {t("send")}
        </button>
      </form>
    </section>
  );
}
