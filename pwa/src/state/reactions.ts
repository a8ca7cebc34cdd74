// reactions.ts — the reactions under each message, as the thread's reaction messages say them.
// A reaction is a message of its own (Content.reaction: an emoji added to a message, or taken back
// with `remove`), encrypted like any other and kept in the thread as an item without a bubble;
// ours go through the outbox like any send (outbox.ts, action "react"). The chips are computed
// from the items in the thread's order: the latest word of each (person, emoji) on a message wins.
// A reaction to a message this device does not hold (not loaded, unknown, deleted, a system line)
// shows nowhere; a malformed one never got this far (crypto/content.ts refuses it).
import { reactionProblem, shownInThread, type Content } from "../crypto/content";
import type { Conversation } from "../gen/kitsulan/v1/conversation_pb";
import type { Item } from "./messages";

/** How many different emoji one person may have on one message; more are ignored. */
export const MAX_REACTIONS_PER_PERSON = 20;

/** The quick choices of the React menu. */
export const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🦊"] as const;

/** One emoji under a message: who put it there (in the order they did), and ours. */
export interface ReactionChip {
  emoji: string;
  /** The accounts that reacted with it, oldest first (ours included). */
  accounts: string[];
  /** We reacted with it (sent, or still in the outbox). */
  mine: boolean;
  /** Our reaction (or taking it back) is still in the outbox: "sending", or "failed" (its record). */
  local?: "sending" | "failed";
  /** The outbox record of our pending reaction (Retry, Discard). */
  outboxKey?: string;
  /** How many reacted, when more did than `accounts` names (a cloud message names at most 50). */
  count?: number;
}

type Reaction = Extract<Content, { kind: "reaction" }>;

interface Entry {
  /** Order of first appearance, so chips keep their place while counts change. */
  order: number;
  accounts: Set<string>;
  /** Our latest word on it still in the outbox (add or take back), and its record. */
  own?: { local: "sending" | "failed"; outboxKey?: string };
}

/** Whether a message can carry reactions: shown as a bubble, not deleted, not a system line. */
function reactable(item: Item): boolean {
  return (
    shownInThread(item.content) &&
    item.content.kind !== "system" &&
    item.content.kind !== "deleted" &&
    item.message.deletedAtMs === 0n
  );
}

/**
 * The reaction chips of every message in `items` (a thread as shown: the server's history with
 * the outbox over it, in order), by message id. `me`: our account (our chips are marked). Our
 * reactions still in the outbox count as said (sending, or "Not sent" to retry); a chip whose
 * only news is our failed take-back stays, with its count, so it can be retried.
 */
export function reactionsOf(items: Item[], me: string): Map<string, ReactionChip[]> {
  const targets = new Set(items.filter(reactable).map((i) => i.message.id));
  const byTarget = new Map<string, Map<string, Entry>>();
  let order = 0;
  for (const item of items) {
    if (item.content.kind !== "reaction") continue;
    // A reaction message deleted since (by its sender or an admin) says nothing any more.
    if (item.message.deletedAtMs !== 0n) continue;
    const r: Reaction = item.content;
    if (!targets.has(r.messageId) || reactionProblem(r.emoji)) continue;
    const sender = item.message.senderAccountId;
    const emojis = byTarget.get(r.messageId) ?? new Map<string, Entry>();
    byTarget.set(r.messageId, emojis);
    let entry = emojis.get(r.emoji);
    if (r.remove) {
      entry?.accounts.delete(sender);
    } else {
      if (!entry?.accounts.has(sender)) {
        let theirs = 0;
        for (const e of emojis.values()) if (e.accounts.has(sender)) theirs++;
        if (theirs >= MAX_REACTIONS_PER_PERSON) continue;
      }
      entry ??= { order: order++, accounts: new Set() };
      entry.accounts.add(sender);
      emojis.set(r.emoji, entry);
    }
    if (entry && sender === me) {
      if (item.local) entry.own = item.outboxKey ? { local: item.local, outboxKey: item.outboxKey } : { local: item.local };
      else delete entry.own;
    }
  }
  const out = new Map<string, ReactionChip[]>();
  for (const [target, emojis] of byTarget) {
    const chips = [...emojis.entries()]
      .filter(([, e]) => e.accounts.size > 0 || e.own?.local === "failed")
      .sort(([, a], [, b]) => a.order - b.order)
      .map(([emoji, e]) => {
        const chip: ReactionChip = { emoji, accounts: [...e.accounts], mine: e.accounts.has(me) };
        if (e.own) chip.local = e.own.local;
        if (e.own?.outboxKey) chip.outboxKey = e.own.outboxKey;
        return chip;
      });
    if (chips.length > 0) out.set(target, chips);
  }
  return out;
}

/** The reaction chips of a cloud conversation's messages: the server keeps them
 * (Message.reactions, most used first, changed through React), by message id. */
export function cloudReactionsOf(items: Item[], me: string): Map<string, ReactionChip[]> {
  const out = new Map<string, ReactionChip[]>();
  for (const item of items) {
    if (!reactable(item) || item.message.reactions.length === 0) continue;
    out.set(
      item.message.id,
      item.message.reactions
        .filter((r) => r.count > 0)
        .map((r) => ({ emoji: r.emoji, accounts: [...r.accountIds], mine: r.accountIds.includes(me), count: r.count })),
    );
  }
  return out;
}

/** How many different emoji `me` has on a message now (MAX_REACTIONS_PER_PERSON bounds it). */
export function ownReactions(chips: ReactionChip[] | undefined): number {
  return chips?.filter((c) => c.mine).length ?? 0;
}

/**
 * The unread count to show for a conversation. The server counts every message from others
 * after our read mark (it cannot read them); reactions (and deletions announced inside the
 * encryption) are not news: those this device holds are taken off. `thread`: what it holds.
 */
export function unreadOf(c: Conversation, thread: { items: Item[] } | undefined, me: string): number {
  if (c.unreadCount === 0 || !thread) return c.unreadCount;
  const readSeq = c.members.find((m) => m.accountId === me)?.readSeq ?? 0n;
  let notNews = 0;
  for (const i of thread.items) {
    const m = i.message;
    if (m.seq > readSeq && m.senderAccountId !== me && m.deletedAtMs === 0n && !m.system && !shownInThread(i.content)) notNews++;
  }
  return Math.max(0, c.unreadCount - notNews);
}
