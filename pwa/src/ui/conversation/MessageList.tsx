// MessageList.tsx — a conversation's history: scrolling back loads older pages (the view keeps its
// place), new messages keep it at the bottom when it was there, day separators, bubbles
// (MessageBubble.tsx) with our messages' ticks from the others' receipts, and the typing line.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, type MutableRefObject } from "react";
import { replyOf, shownInThread } from "../../crypto/content";
import { ConversationKind, type Conversation } from "../../gen/kitsulan/v1/conversation_pb";
import { useI18n, type Translate } from "../../i18n/i18n";
import { useChat, type Chat, type Item, type Receipt } from "../../state/chat";
import { withOutbox } from "../../state/outbox";
import { MAX_REACTIONS_PER_PERSON, ownReactions, reactionsOf, type ReactionChip } from "../../state/reactions";
import { FileView, sizeLabel } from "../Attachment";
import { FileIcon } from "../call/icons";
import { MessageBubble, snippet, type Tick } from "../MessageBubble";
import { personName } from "../names";
import { ReactionChips } from "./Reactions";
import { SystemLine } from "./SystemLine";
import { UndecryptableNote } from "./UndecryptableNote";

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

/** The line that starts a new day in the history. */
function DaySeparator({ label }: { label: string }) {
  return (
    <div className="day" role="separator" aria-label={label}>
      <span>{label}</span>
    </div>
  );
}

export function MessageList({
  chat,
  conversation,
  title,
  administers,
  stickToBottom,
  onReply,
  onEdit,
  readOnly = false,
}: {
  chat: Chat;
  conversation: Conversation;
  /** The conversation's name (the log's label). */
  title: string;
  /** We may delete anyone's messages (a group's owner or admin). */
  administers: boolean;
  /** Whether the view follows new messages (it was at the bottom, or we just sent). */
  stickToBottom: MutableRefObject<boolean>;
  onReply: (item: Item) => void;
  onEdit: (item: Item) => void;
  /** A group we were removed from: its history without reply, edit or delete. */
  readOnly?: boolean;
}) {
  const { t, lang } = useI18n();
  const conversationId = conversation.id;
  const thread = useChat(chat, (s) => s.threads[conversationId]);
  const receipts = useChat(chat, (s) => s.receipts[conversationId] ?? NO_RECEIPTS);
  const me = useChat(chat, (s) => s.me);
  const pending = useChat(chat, (s) => s.outbox[conversationId]);
  useChat(chat, (s) => s.profiles); // re-render when names arrive
  // The server's history with our sends, edits and deletions still in the outbox over it.
  const items = useMemo(() => withOutbox(thread?.items ?? EMPTY, pending, me), [thread, pending, me]);
  // Reactions: the chips under each message, from the reaction messages in the thread.
  const reactions = useMemo(() => reactionsOf(items, me.accountId), [items, me]);
  const listRef = useRef<HTMLDivElement>(null);
  const topRef = useRef<HTMLDivElement>(null);
  const heightBefore = useRef<number | null>(null);

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
  }, [items, stickToBottom]);

  useEffect(() => {
    chat.receipts.markReadIfVisible(conversationId);
  }, [chat, conversationId, items]);

  const loadOlder = useCallback(() => {
    if (!thread?.more) return;
    heightBefore.current = listRef.current?.scrollHeight ?? null;
    void chat.messages.loadOlder(conversationId);
  }, [chat, conversationId, thread]);

  // Scrolling up to the top loads the page before. A new observer for each change of the thread
  // reports at once whether the top is in view, so a page too short to scroll loads the next.
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
  }, [thread, loadOlder]);

  const isGroup = conversation.kind === ConversationKind.GROUP;
  const byId = new Map(items.map((i) => [i.message.id, i]));
  /** The quote of the message `replyTo` (null when not a reply). */
  const quote = (replyTo: string) =>
    replyTo
      ? {
          name: byId.has(replyTo) ? personName(chat, t, byId.get(replyTo)?.message.senderAccountId ?? "") : "",
          text: snippet(byId.get(replyTo)),
        }
      : null;
  const others = conversation.members.filter((m) => m.accountId !== me.accountId);

  /** Others who had no device that could read our message: it never shows as read. */
  const unreadable = (item: Item) => others.filter((m) => item.unreadableBy?.includes(m.accountId));
  const tickOf = (item: Item): Tick => {
    if (item.local) return item.local;
    if (unreadable(item).length > 0) return "sent";
    const seq = item.message.seq;
    const all = (f: (r: Receipt, readSeq: bigint) => boolean) =>
      others.length > 0 && others.every((m) => f(receipts[m.accountId] ?? { delivered: 0n, read: 0n }, m.readSeq));
    if (all((r, readSeq) => r.read >= seq || readSeq >= seq)) return "read";
    if (all((r, readSeq) => r.delivered >= seq || r.read >= seq || readSeq >= seq)) return "delivered";
    return "sent";
  };

  /** Our reaction `emoji` on `target`: added, or taken back when it is ours (a chip's click, or
   * the picker); a "Not sent" one is tried again. Returns an error to show, else null. */
  const toggleReaction = (target: string, emoji: string): string | null => {
    const chips = reactions.get(target);
    const chip: ReactionChip | undefined = chips?.find((c) => c.emoji === emoji);
    const warn = (err: unknown) => console.warn("reaction not kept", err);
    if (chip?.local === "failed" && chip.outboxKey) {
      void chat.outbox.retry(chip.outboxKey).catch(warn);
      return null;
    }
    if (!chip?.mine && ownReactions(chips) >= MAX_REACTIONS_PER_PERSON) return t("reactionLimit", { n: MAX_REACTIONS_PER_PERSON });
    void chat.outbox.react(conversationId, target, emoji, chip?.mine ?? false).catch(warn);
    return null;
  };

  let lastDay = "";
  let lastSender = "";

  return (
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
        // Reactions and deletions act on another message: no bubble of their own.
        if (!shownInThread(item.content)) return null;
        const m = item.message;
        const ms = Number(m.sentAtMs);
        const day = new Date(ms).toDateString();
        const mine = m.senderAccountId === me.accountId;
        const showDay = day !== lastDay;
        const showName = isGroup && !mine && (showDay || lastSender !== m.senderAccountId);
        lastDay = day;
        lastSender = m.senderAccountId;
        if (item.content.kind === "system") {
          lastSender = ""; // the next message names its sender again
          return (
            <div key={m.id} className="msg-wrap">
              {showDay && <DaySeparator label={dayLabel(t, lang, ms)} />}
              <SystemLine chat={chat} t={t} event={item.content.event} />
            </div>
          );
        }
        const tick = mine ? tickOf(item) : null;
        return (
          <div key={m.id} className="msg-wrap">
            {showDay && <DaySeparator label={dayLabel(t, lang, ms)} />}
            <MessageBubble
              item={item}
              mine={mine}
              sender={showName ? personName(chat, t, m.senderAccountId) : null}
              quoted={quote(replyOf(item.content, m.replyTo))}
              tick={tick}
              unreadableBy={mine ? unreadable(item).map((m) => personName(chat, t, m.accountId)) : undefined}
              canDelete={mine || administers}
              readOnly={readOnly}
              onReact={(emoji) => toggleReaction(m.id, emoji)}
              onReply={() => onReply(item)}
              onEdit={() => onEdit(item)}
              onDelete={() =>
                void chat.outbox.remove(conversationId, m.id).catch((err: unknown) => console.warn("delete failed", err))
              }
              onRetry={() => {
                if (item.outboxKey) void chat.outbox.retry(item.outboxKey).catch((err: unknown) => console.warn("retry failed", err));
              }}
              onDiscard={() => {
                if (item.outboxKey) void chat.outbox.discard(item.outboxKey).catch((err: unknown) => console.warn("discard failed", err));
              }}
              undecryptable={item.content.kind === "undecryptable" ? <UndecryptableNote chat={chat} item={item} senderShown={showName} /> : undefined}
              file={
                item.content.kind === "attachment" && item.content.file.attachment === "" ? (
                  <PendingFile name={item.content.file.name} size={item.content.file.size} />
                ) : item.content.kind === "attachment" ? (
                  <FileView chat={chat} file={item.content.file} mine={mine} sending={item.local !== undefined} />
                ) : undefined
              }
            />
            {reactions.has(m.id) && (
              <ReactionChips
                chips={reactions.get(m.id) ?? []}
                mine={mine}
                nameOf={(id) => personName(chat, t, id)}
                disabled={readOnly}
                onToggle={(chip) => void toggleReaction(m.id, chip.emoji)}
              />
            )}
          </div>
        );
      })}
    </div>
  );
}

/** Who is typing in the conversation ("Alice is typing…"; a blank line otherwise). */
export function TypingLine({ chat, conversationId }: { chat: Chat; conversationId: string }) {
  const { t } = useI18n();
  const typing = useChat(chat, (s) => s.typing[conversationId] ?? NO_TYPING);
  useChat(chat, (s) => s.profiles); // re-render when names arrive
  const names = Object.keys(typing).map((id) => personName(chat, t, id));
  return (
    <p className="typing" aria-live="polite">
      {names.length > 0 ? t("typing", { name: names.join(", ") }) : " "}
    </p>
  );
}

/** A file of ours still in the outbox (not uploaded yet): its name and size. */
function PendingFile({ name, size }: { name: string; size: number }) {
  const { t, lang } = useI18n();
  return (
    <div className="file-card">
      <FileIcon />
      <span className="file-name">{name}</span>
      <span className="muted">{sizeLabel(t, lang, size)}</span>
    </div>
  );
}
