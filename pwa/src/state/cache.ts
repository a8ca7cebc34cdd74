// cache.ts — the offline copy: the conversation list (the MAX_CONVERSATIONS most recent, with
// their previews, read marks and receipts, and who we are) and the newest MAX_ITEMS messages of
// each, as this device decrypted them. Kept in IndexedDB store "cache", each record sealed under
// the device's pickle key (storage/sealed.ts), so a copy of the browser profile reads nothing;
// signing out deletes the database. Written behind the state (at most every WRITE_DELAY_MS, and
// when the page is hidden), restored by Chat.start before the network answers: a signed-in reload
// paints at once, an offline start shows conversations and history. What the server says then
// replaces the list; a restored thread is brought up to date when it is opened (refresh: the
// newest page, merged, or instead of the cached items when a gap lies between them).
// Generic over the state: whatever ChatState.conversations holds (marks other parts put on a
// conversation included) is kept. Messages that did not decrypt stay marked undecryptable (with
// their ciphertext, to decrypt when the key comes), and those of a kind this app did not know
// stay "unsupported" with theirs (read again when restored: the app may have been updated since);
// our sends still in flight are left to the outbox.
import type { Content } from "../crypto/content";
import { HistoryDirection, type Conversation, type Message } from "../gen/kitsulan/v1/conversation_pb";
import * as db from "../storage/db";
import { entriesSealed, putManySealed, type Sealer } from "../storage/sealed";
import type { ConversationClient } from "./conversations";
import { merge, type Item, type Thread } from "./messages";
import type { Me } from "./profiles";
import type { Receipt } from "./receipts";
import type { ChatEvent, ChatState, StateAccess } from "./store";

export const MAX_CONVERSATIONS = 50;
export const MAX_ITEMS = 100;
export const WRITE_DELAY_MS = 1000;
/** The page the refresh of a restored thread asks for. */
const PAGE = 50;
const FORMAT = 1;

/** The list and what goes with it (one record, "index"). */
export interface CachedIndex {
  format: typeof FORMAT;
  me: Me;
  conversations: Conversation[];
  previews: Record<string, string>;
  receipts: Record<string, Record<string, Receipt>>;
}

/** One conversation's newest messages (record "thread:<conversation id>"). */
export interface CachedThread {
  items: Item[];
  more: boolean;
}

export interface Snapshot {
  index: CachedIndex;
  threads: Record<string, CachedThread>;
}

type CacheState = Pick<ChatState, "me" | "conversations" | "previews" | "threads" | "receipts">;

/** An item as it is kept: decrypted ones without their ciphertext (the content is there), but
 * the undecryptable and the unsupported ones with it (to be read again). */
function keptItem(i: Item): Item {
  if (i.content.kind === "undecryptable" || i.content.kind === "unsupported") return i;
  return { ...i, message: { ...i.message, ciphertext: new Uint8Array() } };
}

/** The thread as it is kept: its newest MAX_ITEMS sent messages (not our sends in flight). */
export function cachedThread(thread: Thread): CachedThread {
  const sent = thread.items.filter((i) => !i.local && i.message.seq > 0n);
  const items = sent.slice(-MAX_ITEMS).map(keptItem);
  return { items, more: thread.more || sent.length > items.length };
}

/** The conversations kept: the MAX_CONVERSATIONS most recent (the state's order). */
export function keptConversations(state: Pick<ChatState, "conversations">): Conversation[] {
  return state.conversations.slice(0, MAX_CONVERSATIONS);
}

/** What the cache keeps of `state`. */
export function snapshotOf(state: CacheState): Snapshot {
  const conversations = keptConversations(state);
  const ids = new Set(conversations.map((c) => c.id));
  const pick = <T,>(r: Record<string, T>) => Object.fromEntries(Object.entries(r).filter(([id]) => ids.has(id)));
  const threads: Record<string, CachedThread> = {};
  for (const c of conversations) {
    const t = state.threads[c.id];
    if (t && t.items.length > 0) threads[c.id] = cachedThread(t);
  }
  return {
    index: { format: FORMAT, me: state.me, conversations, previews: pick(state.previews), receipts: pick(state.receipts) },
    threads,
  };
}

/** The state with a restored snapshot: only where the state holds nothing yet (what the server
 * said first wins). A snapshot of another account or device is ignored. */
export function restored<S extends CacheState>(state: S, snapshot: Snapshot): S {
  const { index } = snapshot;
  if (index.me.accountId !== state.me.accountId || index.me.deviceId !== state.me.deviceId) return state;
  const threads = { ...state.threads };
  for (const [id, t] of Object.entries(snapshot.threads)) {
    if (!threads[id]) threads[id] = { items: t.items, more: t.more, loaded: true };
  }
  const receipts = { ...state.receipts };
  for (const [id, r] of Object.entries(index.receipts)) receipts[id] ??= r;
  return {
    ...state,
    me: state.me.displayName || state.me.username ? state.me : { ...state.me, ...index.me },
    conversations: state.conversations.length > 0 ? state.conversations : index.conversations,
    previews: { ...index.previews, ...state.previews },
    threads,
    receipts,
  };
}

export function apply<S extends CacheState>(state: S, event: ChatEvent): S {
  switch (event.type) {
    case "cacheRestored":
      return restored(state, event.snapshot);
    case "threadRefreshed": {
      // The newest page instead of a stale copy: keep only what came after it (live messages,
      // our sends in flight).
      const before = state.threads[event.conversationId];
      const newest = event.items.reduce((max, i) => (i.message.seq > max ? i.message.seq : max), 0n);
      const later = (before?.items ?? []).filter((i) => i.local || i.message.seq > newest);
      const thread = merge({ items: [], more: event.more, loaded: true }, [...event.items, ...later]);
      return { ...state, threads: { ...state.threads, [event.conversationId]: thread } };
    }
    default:
      return state;
  }
}

/** Where the records go (IndexedDB, sealed; a fake in the tests). */
export interface CacheStorage {
  load(): Promise<Snapshot | null>;
  /** Writes `put` and deletes `remove` (thread records of conversations no longer kept). */
  save(put: { index?: CachedIndex; threads: Record<string, CachedThread> }, remove: string[]): Promise<void>;
}

const THREAD = "thread:";

/** The records in IndexedDB store "cache", sealed under the engine's pickle key. */
export function sealedStorage(sealer: Sealer): CacheStorage {
  return {
    async load() {
      const records = await entriesSealed<unknown>(sealer, "cache", "");
      const index = records.find(([k]) => k === "index")?.[1] as CachedIndex | undefined;
      if (!index || index.format !== FORMAT) return null;
      const threads: Record<string, CachedThread> = {};
      for (const [k, v] of records) if (k.startsWith(THREAD)) threads[k.slice(THREAD.length)] = v as CachedThread;
      return { index, threads };
    },
    async save(put, remove) {
      const entries: Array<[string, unknown]> = Object.entries(put.threads).map(([id, t]) => [THREAD + id, t]);
      if (put.index) entries.push(["index", put.index]);
      if (entries.length > 0) await putManySealed(sealer, "cache", entries);
      for (const id of remove) await db.del("cache", THREAD + id);
    },
  };
}

export interface CacheDeps {
  storage: CacheStorage;
  /** Calls `l` on every change of the state; returns the unsubscribe. */
  subscribe: (l: () => void) => () => void;
  client: Pick<ConversationClient, "listMessages">;
  decrypt: (m: Message) => Promise<Content>;
  /** Marks a conversation read if it is on screen (receipts.ts). */
  markRead: (conversationId: string) => void;
  /** Calls `l` when the page is hidden (the last chance to write); returns the unsubscribe. */
  onHidden: (l: () => void) => () => void;
  delayMs?: number;
}

export class Cache {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private unsubscribe: Array<() => void> = [];
  /** What was last written (or restored): the index's parts and each thread, by identity. */
  private written: { index: unknown[] | null; threads: Map<string, Thread> } = { index: null, threads: new Map() };
  private writing: Promise<void> = Promise.resolve();
  /** Restored threads not yet brought up to date, with the newest sequence number restored. */
  private stale = new Map<string, bigint>();

  constructor(
    private readonly state: StateAccess,
    private readonly deps: CacheDeps,
  ) {}

  /** Paints the copy kept from the last session (before the network answers). */
  async restore(): Promise<void> {
    let snapshot: Snapshot | null = null;
    try {
      snapshot = await this.deps.storage.load();
    } catch (err) {
      console.warn("the offline copy could not be read", err);
    }
    if (!snapshot) return;
    this.state.dispatch({ type: "cacheRestored", snapshot });
    const s = this.state.get();
    for (const [id, t] of Object.entries(snapshot.threads)) {
      const newest = t.items.reduce((max, i) => (i.message.seq > max ? i.message.seq : max), 0n);
      this.stale.set(id, newest);
      const thread = s.threads[id];
      if (thread) this.written.threads.set(id, thread);
    }
    // Kinds the app did not know when it kept them: this one (updated since) may.
    for (const [id, t] of Object.entries(snapshot.threads)) {
      const unsupported = t.items.filter((i) => i.content.kind === "unsupported" && i.message.ciphertext.length > 0);
      if (unsupported.length === 0) continue;
      const items: Item[] = [];
      for (const i of unsupported) {
        const content = await this.deps.decrypt(i.message).catch(() => i.content);
        if (content.kind !== "unsupported") items.push({ ...i, content });
      }
      if (items.length > 0) this.state.dispatch({ type: "decrypted", conversationId: id, items });
    }
  }

  /** Writes behind every change from now on. */
  start(): void {
    this.stop();
    this.unsubscribe.push(
      this.deps.subscribe(() => this.changed()),
      this.deps.onHidden(() => {
        if (this.timer !== null) void this.flush();
      }),
    );
  }

  /** Stops writing (sign-out: what is pending is dropped). */
  stop(): void {
    for (const u of this.unsubscribe.splice(0)) u();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private indexParts(s: ChatState): unknown[] {
    return [s.me, s.conversations, s.previews, s.receipts];
  }

  private changed(): void {
    if (this.timer !== null) return;
    const s = this.state.get();
    const index = this.written.index;
    const indexSame = index !== null && this.indexParts(s).every((p, i) => p === index[i]);
    if (indexSame && keptConversations(s).every((c) => this.written.threads.get(c.id) === s.threads[c.id])) return;
    this.timer = setTimeout(() => void this.flush(), this.deps.delayMs ?? WRITE_DELAY_MS);
  }

  /** Writes what changed since the last write, now. */
  flush(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.writing = this.writing
      .then(() => this.write())
      .catch((err: unknown) => console.warn("the offline copy was not written", err));
    return this.writing;
  }

  private async write(): Promise<void> {
    const s = this.state.get();
    const parts = this.indexParts(s);
    const index = this.written.index;
    const snapshot = snapshotOf(s);
    const kept = new Set(snapshot.index.conversations.map((c) => c.id));
    const threads: Record<string, CachedThread> = {};
    const seen = new Map<string, Thread>();
    for (const id of Object.keys(snapshot.threads)) {
      const t = s.threads[id];
      if (!t) continue;
      seen.set(id, t);
      if (this.written.threads.get(id) !== t) threads[id] = snapshot.threads[id] as CachedThread;
    }
    const remove = [...this.written.threads.keys()].filter((id) => !kept.has(id) || !seen.has(id));
    const indexChanged = index === null || parts.some((p, i) => p !== index[i]);
    if (!indexChanged && Object.keys(threads).length === 0 && remove.length === 0) return;
    await this.deps.storage.save({ ...(indexChanged ? { index: snapshot.index } : {}), threads }, remove);
    this.written = { index: parts, threads: seen };
  }

  /** Whether `conversationId`'s thread is the restored copy, not yet brought up to date. */
  isStale(conversationId: string): boolean {
    return this.stale.has(conversationId);
  }

  /** Brings a restored thread up to date with the newest page: merged when it reaches the
   * restored messages, else instead of them (messages were missed in between). */
  async refresh(conversationId: string): Promise<void> {
    const restoredUpTo = this.stale.get(conversationId);
    if (restoredUpTo === undefined) return;
    const res = await this.deps.client.listMessages({
      conversationId,
      cursor: 0n,
      direction: HistoryDirection.BACKWARD,
      limit: PAGE,
    });
    const items: Item[] = [];
    for (const m of res.messages) items.push({ message: m, content: await this.deps.decrypt(m) });
    this.stale.delete(conversationId);
    const oldest = items.reduce((min, i) => (min === null || i.message.seq < min ? i.message.seq : min), null as bigint | null);
    const thread = this.state.get().threads[conversationId];
    if (res.more && oldest !== null && oldest > restoredUpTo + 1n) {
      this.state.dispatch({ type: "threadRefreshed", conversationId, items, more: true });
    } else {
      const more = res.more && (thread?.more ?? true);
      this.state.dispatch({ type: "historyLoaded", conversationId, items, more });
    }
    this.deps.markRead(conversationId);
  }

  /** Refreshes the restored thread on screen, if any (after reconnecting). */
  refreshActive(): void {
    const active = this.state.get().active;
    if (active && this.isStale(active)) void this.refresh(active).catch(() => undefined);
  }
}
