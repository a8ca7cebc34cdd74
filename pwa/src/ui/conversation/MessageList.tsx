// MessageList.tsx — a conversation's history: scrolling back loads older pages (the view keeps its
// place), new messages keep it at the bottom when it was there, day separators, bubbles
// (MessageBubble.tsx) with our messages' ticks from the others' receipts, and the typing line.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, type MutableRefObject } from "react";
import { replyOf, shownInThread } from "../../crypto/content";
import { ConversationKind, ConversationMode, type Conversation } from "../../gen/kitsulan/v1/conversation_pb";
import { useI18n, type Translate } from "../../i18n/i18n";
import { useChat, type Chat, type Item, type Receipt } from "../../state/chat";
import { withOutbox } from "../../state/outbox";
import { errorText } from "../../i18n/messages";
import { reasonOf } from "../../errors";
import { mentionsMe } from "../../state/mentions";
import { canPin } from "../../state/pins";
import { cloudReactionsOf, MAX_REACTIONS_PER_PERSON, ownReactions, reactionsOf, type ReactionChip } from "../../state/reactions";
import { copyText } from "../copyText";
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
  onForward,
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
  onReply: (item: Item, quote?: string) => void;
  onEdit: (item: Item) => void;
  /** Forwards a message to another conversation. */
  onForward?: ((item: Item) => void) | undefined;
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
  // Reactions: the chips under each message, from the reaction messages in the thread (E2EE),
  // or as the server keeps them (cloud).
  const cloud = conversation.mode === ConversationMode.CLOUD;
  const reactions = useMemo(() => (cloud ? cloudReactionsOf(items, me.accountId) : reactionsOf(items, me.accountId)), [cloud, items, me]);
  const mayPin = !readOnly && canPin(conversation, me.accountId);
  /** Why a reaction or a pin was refused (the server's reason), shown above the history. */
  const [problem, setProblem] = useState<string | null>(null);
  const refused = (what: string) => (err: unknown) => {
    console.warn(`${what} refused`, err);
    setProblem(errorText(t, reasonOf(err)));
  };
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

  // A forwarded message names who wrote the original, who may be in none of our conversations:
  // their name is fetched once, as a member's is (an account that is gone is not asked again).
  const authorsAsked = useRef(new Set<string>());
  useEffect(() => {
    const unknown: string[] = [];
    for (const { content: c } of items) {
      const author = (c.kind === "text" || c.kind === "attachment") && c.forwarded ? c.forwarded.fromAccountId : "";
      if (author && !authorsAsked.current.has(author) && !chat.nameOf(author)) {
        authorsAsked.current.add(author);
        unknown.push(author);
      }
    }
    if (unknown.length > 0) void chat.profiles.load(unknown).catch(() => undefined);
  }, [chat, items]);

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

  // Groups and guild channels name each message's sender.
  const isGroup = conversation.kind !== ConversationKind.DIRECT;
  // A channel's members are too many for receipts: our message is sent, or still in the outbox.
  const isChannel = conversation.kind === ConversationKind.CHANNEL;
  const byId = new Map(items.map((i) => [i.message.id, i]));
  /** The quote of the message `replyTo` (null when not a reply). */
  const quote = (replyTo: string, quoted?: string) =>
    replyTo
      ? {
          name: byId.has(replyTo) ? personName(chat, t, byId.get(replyTo)?.message.senderAccountId ?? "") : "",
          text: quoted ? `“${quoted}”` : snippet(byId.get(replyTo)),
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
    if (cloud) {
      // Cloud: the server keeps the reactions (React); the message comes back with them.
      void chat.messages.react(conversationId, target, emoji, chip?.mine ?? false).catch(refused("reaction"));
      return null;
    }
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
      {problem && (
        <p role="alert" className="error action-problem">
          {problem}{" "}
          <button type="button" className="icon" aria-label={t("close")} onClick={() => setProblem(null)}>
            ×
          </button>
        </p>
      )}
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
        const tick = mine ? (isChannel ? (item.local ?? "sent") : tickOf(item)) : null;
        return (
          <div key={m.id} className="msg-wrap">
            {showDay && <DaySeparator label={dayLabel(t, lang, ms)} />}
            <MessageBubble
              item={item}
              mine={mine}
              sender={showName ? personName(chat, t, m.senderAccountId) : null}
              quoted={quote(replyOf(item.content, m.replyTo), item.content.kind === "text" || item.content.kind === "attachment" ? item.content.quote : undefined)}
              forwardedFrom={
                (item.content.kind === "text" || item.content.kind === "attachment") && item.content.forwarded
                  ? item.content.forwarded.fromAccountId
                    ? personName(chat, t, item.content.forwarded.fromAccountId)
                    : ""
                  : null
              }
              mentionsMe={!mine && mentionsMe(item.content, me.accountId)}
              onPin={
                mayPin && m.seq > 0n
                  ? () =>
                      void chat.pins.pin(conversationId, m.id, m.pinnedAtMs !== 0n).catch(refused("pin"))
                  : undefined
              }
              onCopy={
                item.content.kind === "text"
                  ? () => void copyText(item.content.kind === "text" ? item.content.text : "").catch(() => undefined)
                  : undefined
              }
              onForward={onForward && m.seq > 0n ? () => onForward(item) : undefined}
              tick={tick}
              unreadableBy={mine ? unreadable(item).map((m) => personName(chat, t, m.accountId)) : undefined}
              canDelete={mine || administers}
              readOnly={readOnly}
              onReact={(emoji) => toggleReaction(m.id, emoji)}
              onReply={(q) => onReply(item, q)}
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
