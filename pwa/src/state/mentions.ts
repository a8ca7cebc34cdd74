// mentions.ts — `@name` in messages (TextContent.mentions): who a text names, the composer's
// suggestions while typing `@…`, and the mention badge of a conversation, which counts apart from
// unread. A cloud conversation's count is the server's (Conversation.mention_count, mentions of us
// after our read mark); in an E2EE conversation the server cannot read the text, so this device
// counts the unread messages it decrypted that mention us.
import type { Content, Mention } from "../crypto/content";
import { ConversationMode, type Conversation } from "../gen/kitsulan/v1/conversation_pb";
import type { Item } from "./messages";

/** The most mentions one text carries (TextContent.mentions). */
export const MAX_MENTIONS = 50;

/** Whether `content` mentions the account `me`. */
export function mentionsMe(content: Content, me: string): boolean {
  return content.kind === "text" && (content.mentions ?? []).some((m) => m.accountId === me);
}

/** A person the composer may mention: their account and the name written after `@`. */
export interface Mentionable {
  accountId: string;
  name: string;
}

/**
 * The mentions of `text`: every `@name` of the people picked while writing it (`picked`), found
 * again in the final text (the person may have edited around them), as UTF-16 ranges (JavaScript
 * string offsets are UTF-16 code units, as TextContent's). A longer name wins where two start at
 * the same place ("@Ann" and "@Anna").
 */
export function mentionsIn(text: string, picked: Mentionable[]): Mention[] {
  const people = [...picked].filter((p) => p.name !== "").sort((a, b) => b.name.length - a.name.length);
  const out: Mention[] = [];
  const taken: boolean[] = [];
  for (const p of people) {
    const needle = `@${p.name}`;
    for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) {
      const end = at + needle.length;
      // A name must end at a word's end: "@Ann" is not in "@Annabel".
      const next = text.slice(end, end + 1);
      if (next !== "" && /[\p{L}\p{N}_]/u.test(next)) continue;
      if (taken.slice(at, end).some(Boolean)) continue;
      for (let i = at; i < end; i++) taken[i] = true;
      out.push({ accountId: p.accountId, start: at, end });
    }
  }
  return out.sort((a, b) => a.start - b.start).slice(0, MAX_MENTIONS);
}

/** The `@…` being typed just before the caret: its start and what follows the `@` (null when
 * the caret is not in one). An `@` starts one at the start of the text or after a space. */
export function mentionQuery(text: string, caret: number): { start: number; query: string } | null {
  const before = text.slice(0, caret);
  const at = before.lastIndexOf("@");
  if (at === -1) return null;
  if (at > 0 && !/\s/.test(before[at - 1] ?? "")) return null;
  const query = before.slice(at + 1);
  // A name has at most two spaces in it, and no line break.
  if (/\n/.test(query) || (query.match(/ /g) ?? []).length > 2 || query.length > 40) return null;
  return { start: at, query };
}

/** The people whose name starts (or has a word starting) with `query`, case-insensitive. */
export function suggestions(people: Mentionable[], query: string, limit = 6): Mentionable[] {
  const q = query.toLocaleLowerCase();
  return people
    .filter((p) => {
      const n = p.name.toLocaleLowerCase();
      return n.startsWith(q) || n.split(/\s+/).some((w) => w.startsWith(q));
    })
    .slice(0, limit);
}

/** How many unread messages from others in `thread` mention `me` (after our read mark). */
export function unreadMentions(c: Conversation, thread: { items: Item[] } | undefined, me: string): number {
  if (!thread) return 0;
  const readSeq = c.members.find((m) => m.accountId === me)?.readSeq ?? 0n;
  let n = 0;
  for (const i of thread.items) {
    const m = i.message;
    if (m.seq > readSeq && m.senderAccountId !== me && m.deletedAtMs === 0n && mentionsMe(i.content, me)) n++;
  }
  return n;
}

/** The mention badge of a conversation: the server's count in a cloud conversation (or what this
 * device holds, if more arrived since), this device's count in an E2EE one. Nothing once read. */
export function mentionCountOf(c: Conversation, thread: { items: Item[] } | undefined, me: string): number {
  if (c.unreadCount === 0 || c.request) return 0;
  const here = unreadMentions(c, thread, me);
  return c.mode === ConversationMode.CLOUD ? Math.max(c.mentionCount, here) : here;
}
