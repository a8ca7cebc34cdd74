// search.ts — finding messages. Cloud conversations are searched by the server
// (SearchMessages: stemmed full-text search, snippets with the matches highlighted, paged). The
// server cannot read E2EE conversations, so this device keeps its own index of the texts it
// decrypted (LocalIndex): in memory, and in IndexedDB sealed under the device's key like the rest
// of the offline copy (store "cache", record "search-index"; storage/sealed.ts), so a copy of the
// browser profile reads nothing and signing out deletes it. It is never sent anywhere. Deleted
// messages leave it; disappeared ones are never found (and leave it on the next write).
import type { Conversation, Message } from "../gen/kitsulan/v1/conversation_pb";
import { getSealed, putSealed, type Sealer } from "../storage/sealed";
import type { ConversationClient } from "./conversations";
import type { Item, Thread } from "./messages";

/** A range of a snippet to highlight, in UTF-16 code units (TextRange). */
export interface Range {
  start: number;
  end: number;
}

/** One result, from either place. */
export interface Hit {
  conversationId: string;
  messageId: string;
  senderAccountId: string;
  sentAtMs: number;
  snippet: string;
  highlights: Range[];
  /** Found in this device's index of an E2EE conversation (not by the server). */
  local: boolean;
}

/** What the index keeps of a decrypted text message. */
export interface IndexEntry {
  id: string;
  conversationId: string;
  senderAccountId: string;
  sentAtMs: number;
  /** 0: never disappears. */
  expiresAtMs: number;
  text: string;
}

/** What a search is narrowed to, on the server and in the local index alike (all optional). */
export interface SearchFilter {
  conversationId?: string;
  senderAccountId?: string;
  /** Sent at or after this time (ms). */
  afterMs?: number;
  /** Sent before this time (ms). */
  beforeMs?: number;
}

/**
 * The times of a range of local calendar days (the date inputs' "yyyy-mm-dd", either may be
 * ""): from the start of `from` to the end of `to`, that whole day included (the start of the
 * next one, exclusive). A day that is not a date gives no bound.
 */
export function dayRange(from: string, to: string): { afterMs?: number; beforeMs?: number } {
  const start = (day: string, plus: number): number | undefined => {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
    if (!m) return undefined;
    // Local midnight; Date rolls day 32 over into the next month (and counts DST days right).
    const at = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + plus).getTime();
    return Number.isNaN(at) ? undefined : at;
  };
  const afterMs = start(from, 0);
  const beforeMs = start(to, 1);
  return { ...(afterMs !== undefined ? { afterMs } : {}), ...(beforeMs !== undefined ? { beforeMs } : {}) };
}

/** Whether an entry sent by `senderAccountId` at `sentAtMs` in `conversationId` passes `filter`. */
export function passes(filter: SearchFilter, e: { conversationId: string; senderAccountId: string; sentAtMs: number }): boolean {
  if (filter.conversationId && e.conversationId !== filter.conversationId) return false;
  if (filter.senderAccountId && e.senderAccountId !== filter.senderAccountId) return false;
  if (filter.afterMs && e.sentAtMs < filter.afterMs) return false;
  if (filter.beforeMs && e.sentAtMs >= filter.beforeMs) return false;
  return true;
}

/** The people a search can be narrowed to: the members of `where` (every conversation but the
 * requests when ""), once each, in the order met. */
export function searchPeople(conversations: Conversation[], where: string): string[] {
  const people = new Set<string>();
  for (const c of conversations) {
    if (c.request || (where && c.id !== where)) continue;
    for (const m of c.members) people.add(m.accountId);
  }
  return [...people];
}

/** The most entries kept (the oldest go first). */
export const MAX_ENTRIES = 20_000;
/** About how long a snippet is, in characters. */
export const SNIPPET_LENGTH = 160;
/** The longest query (the server's rule too). */
export const MAX_QUERY = 256;

/** The words of a query, lower-cased (punctuation, quotes and operators are plain separators). */
export function queryWords(query: string): string[] {
  return [...new Set(query.toLocaleLowerCase().split(/[^\p{L}\p{N}_]+/u).filter(Boolean))];
}

/** Where each word of `words` starts a word of `text` (prefix match: "мыш" finds "мышка"). */
function matches(text: string, words: string[]): Range[] | null {
  const lower = text.toLocaleLowerCase();
  const ranges: Range[] = [];
  for (const w of words) {
    let found = false;
    for (let at = lower.indexOf(w); at !== -1; at = lower.indexOf(w, at + 1)) {
      const before = at === 0 ? "" : lower.slice(at - 1, at);
      if (before && /[\p{L}\p{N}_]/u.test(before)) continue; // inside another word
      ranges.push({ start: at, end: at + w.length });
      found = true;
    }
    if (!found) return null;
  }
  return ranges.sort((a, b) => a.start - b.start);
}

/** About SNIPPET_LENGTH characters of `text` around its first match, with the matches in it. */
export function snippetAround(text: string, ranges: Range[]): { snippet: string; highlights: Range[] } {
  const flat = text.replace(/\s+/g, " ");
  const first = ranges[0]?.start ?? 0;
  const from = text.length <= SNIPPET_LENGTH ? 0 : Math.max(0, Math.min(first - 40, text.length - SNIPPET_LENGTH));
  const to = Math.min(text.length, from + SNIPPET_LENGTH);
  const prefix = from > 0 ? "…" : "";
  const snippet = `${prefix}${flat.slice(from, to)}${to < text.length ? "…" : ""}`;
  const highlights = ranges
    .filter((r) => r.start >= from && r.end <= to)
    .map((r) => ({ start: r.start - from + prefix.length, end: r.end - from + prefix.length }));
  return { snippet, highlights };
}

/** The entries that hold every word of `query`, newest first, within the filters. */
export function searchEntries(
  entries: Iterable<IndexEntry>,
  query: string,
  filter: SearchFilter & { now: number; limit?: number },
): Hit[] {
  const words = queryWords(query);
  if (words.length === 0) return [];
  const hits: Hit[] = [];
  for (const e of entries) {
    if (!passes(filter, e)) continue;
    if (e.expiresAtMs !== 0 && e.expiresAtMs <= filter.now) continue;
    const ranges = matches(e.text, words);
    if (!ranges) continue;
    hits.push({
      conversationId: e.conversationId,
      messageId: e.id,
      senderAccountId: e.senderAccountId,
      sentAtMs: e.sentAtMs,
      local: true,
      ...snippetAround(e.text, ranges),
    });
  }
  return hits.sort((a, b) => b.sentAtMs - a.sentAtMs).slice(0, filter.limit ?? 50);
}

/** What the index keeps of `item`: a sent text message, or null (its entry, if any, goes). */
export function entryOf(item: Item): IndexEntry | null {
  const m = item.message;
  if (item.local || m.seq === 0n || m.deletedAtMs !== 0n || item.content.kind !== "text") return null;
  return {
    id: m.id,
    conversationId: m.conversationId,
    senderAccountId: m.senderAccountId,
    sentAtMs: Number(m.sentAtMs),
    expiresAtMs: Number(m.expiresAtMs),
    text: item.content.text,
  };
}

/** Where the index is kept. */
export interface IndexStorage {
  load(): Promise<IndexEntry[] | undefined>;
  save(entries: IndexEntry[]): Promise<void>;
}

const KEY = "search-index";

/** The index in IndexedDB, sealed under the device's key. */
export function sealedIndexStorage(sealer: Sealer): IndexStorage {
  return {
    load: () => getSealed<IndexEntry[]>(sealer, "cache", KEY),
    save: (entries) => putSealed(sealer, "cache", KEY, entries),
  };
}

/** This device's index of the E2EE texts it decrypted. */
export class LocalIndex {
  private entries = new Map<string, IndexEntry>();
  private seen = new Map<string, Thread>();
  private dirty = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly deps: {
      storage: IndexStorage;
      /** Whether the conversation is end-to-end encrypted (only those are indexed here). */
      e2ee: (conversationId: string) => boolean;
      now: () => number;
      saveDelayMs?: number;
    },
  ) {}

  async restore(): Promise<void> {
    const loaded = await this.deps.storage.load().catch(() => undefined);
    for (const e of loaded ?? []) if (!this.entries.has(e.id)) this.entries.set(e.id, e);
  }

  /** Takes in what the threads hold now (those that changed since the last call). */
  update(threads: Record<string, Thread>): void {
    for (const [conversationId, thread] of Object.entries(threads)) {
      if (this.seen.get(conversationId) === thread) continue;
      this.seen.set(conversationId, thread);
      if (!this.deps.e2ee(conversationId)) continue;
      for (const item of thread.items) this.take(item);
    }
    if (this.dirty) this.scheduleSave();
  }

  private take(item: Item): void {
    const entry = entryOf(item);
    const have = this.entries.get(item.message.id);
    if (entry) {
      if (have && have.text === entry.text && have.expiresAtMs === entry.expiresAtMs) return;
      this.entries.set(entry.id, entry);
      this.dirty = true;
    } else if (have && !item.local && (item.message.deletedAtMs !== 0n || item.content.kind === "deleted")) {
      this.entries.delete(item.message.id);
      this.dirty = true;
    }
  }

  search(query: string, filter: SearchFilter & { limit?: number } = {}): Hit[] {
    return searchEntries(this.entries.values(), query, { ...filter, now: this.deps.now() });
  }

  private scheduleSave(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.deps.saveDelayMs ?? 2000);
  }

  /** Writes the index now (the newest MAX_ENTRIES, without what disappeared). */
  async flush(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    const now = this.deps.now();
    for (const [id, e] of this.entries) if (e.expiresAtMs !== 0 && e.expiresAtMs <= now) this.entries.delete(id);
    const kept = [...this.entries.values()].sort((a, b) => b.sentAtMs - a.sentAtMs).slice(0, MAX_ENTRIES);
    if (kept.length < this.entries.size) this.entries = new Map(kept.map((e) => [e.id, e]));
    await this.deps.storage.save(kept).catch((err: unknown) => console.warn("search index not kept", err));
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** A page of the server's search of cloud conversations. */
export async function searchCloud(
  client: Pick<ConversationClient, "searchMessages">,
  query: string,
  filter: SearchFilter & { pageToken?: string },
): Promise<{ hits: Hit[]; next: string; messages: Message[] }> {
  const res = await client.searchMessages({
    query,
    conversationId: filter.conversationId ?? "",
    senderAccountId: filter.senderAccountId ?? "",
    afterMs: BigInt(filter.afterMs ?? 0),
    beforeMs: BigInt(filter.beforeMs ?? 0),
    limit: 20,
    pageToken: filter.pageToken ?? "",
  });
  const hits: Hit[] = [];
  const messages: Message[] = [];
  for (const h of res.hits) {
    const m = h.message;
    if (!m) continue;
    messages.push(m);
    hits.push({
      conversationId: m.conversationId,
      messageId: m.id,
      senderAccountId: m.senderAccountId,
      sentAtMs: Number(m.sentAtMs),
      snippet: h.snippet,
      highlights: h.highlights.map((r) => ({ start: r.start, end: r.end })),
      local: false,
    });
  }
  return { hits, next: res.nextPageToken, messages };
}
