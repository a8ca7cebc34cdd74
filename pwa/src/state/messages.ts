// messages.ts — each conversation's history as this device holds it (pages loaded backwards,
// live messages); what we send, edit and delete goes through the outbox (outbox.ts).
// Messages are kept by id, so an event delivered twice (after a reconnect) changes nothing;
// an edit or deletion replaces a message only when it is newer than what we hold.
import { readCloudContent, type Content } from "../crypto/content";
import type { E2ee } from "../crypto/engine";
import { HistoryDirection, type Message } from "../gen/kitsulan/v1/conversation_pb";
import { MessageChange } from "../gen/kitsulan/v1/gateway_pb";
import type { ConversationClient, Conversations } from "./conversations";
import type { ChatEvent, StateAccess } from "./store";

export interface Item {
  message: Message;
  content: Content;
  /** Our own send, edit or deletion still in the outbox (outbox.ts): waiting, or not sent. */
  local?: "sending" | "failed";
  /** Why it is not sent (a server reason, or one of outbox.ts's). */
  failure?: string;
  /** Its outbox record (Retry, Delete). */
  outboxKey?: string;
  /** Our own message: the members who had no device that could read it when it was encrypted
   * (engine.encrypt's `unreadableBy`); the bubble warns, and it never shows as read by them. */
  unreadableBy?: string[];
}

export interface Thread {
  items: Item[];
  more: boolean;
  loaded: boolean;
}

export interface MessagesState {
  threads: Record<string, Thread>;
}

/** A new message from someone else, as it arrived live (for notifications). */
export interface Incoming {
  conversationId: string;
  senderAccountId: string;
  content: Content;
}

const EMPTY_THREAD: Thread = { items: [], more: true, loaded: false };

/** Whether `m` has disappeared by `now` (its conversation's timer: Message.expires_at_ms). The
 * server deletes it too; a device that was offline, and local copies, hide it themselves. */
export function expired(m: Pick<Message, "expiresAtMs">, now: number): boolean {
  return m.expiresAtMs !== 0n && m.expiresAtMs <= BigInt(Math.floor(now));
}

/**
 * What a message says, in either kind of conversation: one code path for both. A cloud
 * conversation's message carries its Content (read by the same rules as a decrypted one:
 * crypto/content.ts, readCloudContent); an E2EE one's is decrypted by the engine.
 * # Security
 * `cloud` comes from the conversation's mode as the list gives it, never from the message: a
 * Content the server puts on a message of an E2EE conversation is ignored (that message is
 * decrypted, and without ciphertext does not decrypt), so nothing shows as end-to-end encrypted
 * that was not.
 */
export function readMessage(
  engine: Pick<E2ee, "decrypt">,
  cloud: (conversationId: string) => boolean,
  now: () => number = Date.now,
): (m: Message) => Promise<Content> {
  return async (m) => {
    if (m.system) return { kind: "system", event: m.system };
    if (m.deletedAtMs !== 0n || expired(m, now())) return { kind: "deleted" };
    if (!cloud(m.conversationId)) return engine.decrypt(m);
    return m.content ? readCloudContent(m.content, m.id) : { kind: "deleted" };
  };
}

/** Whether `next` is a later state of the message than `have`: states are ordered by
 * (deleted_at_ms, edited_at_ms, updated_at_ms); `updated_at_ms` moves with a change of the
 * reactions or the pin (MESSAGE_CHANGE_EDITED with the message as it is now, its text unchanged). */
export function newerState(next: Message, have: Message): boolean {
  if (next.deletedAtMs !== have.deletedAtMs) return next.deletedAtMs > have.deletedAtMs;
  if (next.editedAtMs !== have.editedAtMs) return next.editedAtMs > have.editedAtMs;
  return next.updatedAtMs > have.updatedAtMs;
}

/** `thread` with `incoming` merged in by id (a duplicate, or an older state of a message we
 * hold, is dropped: newerState), ordered by sequence number with our unsent messages last. */
export function merge(thread: Thread | undefined, incoming: Item[], patch: Partial<Thread> = {}): Thread {
  const before = thread ?? EMPTY_THREAD;
  const byId = new Map(before.items.map((i) => [i.message.id, i]));
  for (const item of incoming) {
    const have = byId.get(item.message.id);
    if (
      have &&
      !have.local &&
      have.content.kind !== "undecryptable" &&
      // Read again by a newer app (an offline copy restored after an update): it may know it now.
      have.content.kind !== "unsupported" &&
      !newerState(item.message, have.message)
    ) {
      continue; // a duplicate
    }
    // The server's copy of our message does not know who could not read it: keep that.
    const unreadableBy = item.unreadableBy ?? have?.unreadableBy;
    byId.set(item.message.id, unreadableBy && !item.unreadableBy ? { ...item, unreadableBy } : item);
  }
  const items = [...byId.values()].sort((a, b) => {
    const sa = a.message.seq || BigInt(Number.MAX_SAFE_INTEGER);
    const sb = b.message.seq || BigInt(Number.MAX_SAFE_INTEGER);
    return sa < sb ? -1 : sa > sb ? 1 : 0;
  });
  return { ...before, ...patch, items };
}

function merged<S extends MessagesState>(state: S, conversationId: string, items: Item[], patch?: Partial<Thread>): S {
  return { ...state, threads: { ...state.threads, [conversationId]: merge(state.threads[conversationId], items, patch) } };
}

export function apply<S extends MessagesState>(state: S, event: ChatEvent): S {
  switch (event.type) {
    case "historyLoaded":
      return merged(firstPage(state, event.conversationId, event.items, event.more), event.conversationId, event.items, {
        more: event.more,
        loaded: true,
      });
    case "messagesChanged":
    case "decrypted":
      return merged(state, event.conversationId, event.items);
    case "messageSent": {
      const item: Item = { message: event.message, content: event.content };
      if (event.unreadableBy && event.unreadableBy.length > 0) item.unreadableBy = event.unreadableBy;
      return merged(state, event.conversationId, [item]);
    }
    case "messageArrived":
      return merged(state, event.message.conversationId, [{ message: event.message, content: event.content }]);
    case "expire":
      return withoutExpired(state, event.now);
    default:
      return state;
  }
}

/** The threads without the messages that disappeared by `now` (the same state when none did). */
function withoutExpired<S extends MessagesState>(state: S, now: number): S {
  let threads: Record<string, Thread> | null = null;
  for (const [id, thread] of Object.entries(state.threads)) {
    if (!thread.items.some((i) => expired(i.message, now))) continue;
    threads ??= { ...state.threads };
    threads[id] = { ...thread, items: thread.items.filter((i) => !expired(i.message, now)) };
  }
  return threads ? { ...state, threads } : state;
}

/** Before the first page of a thread (the newest messages) merges: what it held below that page
 * (an edit or deletion of an older message that arrived first, e.g. from the outbox) is dropped,
 * so paging back starts below the page and leaves no gap; those messages come back with their
 * page. */
function firstPage<S extends MessagesState>(state: S, conversationId: string, page: Item[], more: boolean): S {
  const before = state.threads[conversationId];
  if (!before || before.loaded || !more || page.length === 0) return state;
  const floor = page.reduce((min, i) => (i.message.seq > 0n && i.message.seq < min ? i.message.seq : min), page[0]?.message.seq ?? 0n);
  const items = before.items.filter((i) => i.message.seq === 0n || i.message.seq >= floor);
  return { ...state, threads: { ...state.threads, [conversationId]: { ...before, items } } };
}

/** The messages, conversation by conversation, that wait for the room key `sessionId`. */
export function waitingFor(state: MessagesState, sessionId: string): Array<[string, Item[]]> {
  const out: Array<[string, Item[]]> = [];
  for (const [conversationId, thread] of Object.entries(state.threads)) {
    const waiting = thread.items.filter((i) => i.content.kind === "undecryptable" && i.content.sessionId === sessionId);
    if (waiting.length > 0) out.push([conversationId, waiting]);
  }
  return out;
}

export interface MessagesDeps {
  client: Pick<ConversationClient, "listMessages"> & Partial<Pick<ConversationClient, "react">>;
  engine: Pick<E2ee, "decrypt">;
  conversations: Pick<Conversations, "get" | "load">;
  /** Marks a conversation read if it is on screen (receipts.ts). */
  markRead: (conversationId: string) => void;
  /** Whether the page is visible. */
  visible: () => boolean;
}

export class Messages {
  constructor(
    private readonly state: StateAccess,
    private readonly deps: MessagesDeps,
  ) {}

  /** Loads the page of history before the oldest message we hold. */
  async loadOlder(conversationId: string): Promise<void> {
    const thread = this.state.get().threads[conversationId];
    if (thread?.loaded && !thread.more) return;
    // The first page is the newest one (cursor 0): messages that arrived before it (live, or
    // edited or deleted by the outbox) may be far apart and must not be taken as its start.
    const oldest = thread?.loaded ? (thread.items.find((i) => i.message.seq > 0n)?.message.seq ?? 0n) : 0n;
    const res = await this.deps.client.listMessages({
      conversationId,
      cursor: oldest,
      direction: HistoryDirection.BACKWARD,
      limit: 50,
    });
    const items: Item[] = [];
    for (const m of res.messages) items.push({ message: m, content: await this.deps.engine.decrypt(m) });
    this.state.dispatch({ type: "historyLoaded", conversationId, items, more: res.more });
    this.deps.markRead(conversationId);
  }

  /** A message from the gateway (new, edited or deleted). Returns it for notifications when it
   * is new, from someone else, and not seen before. */
  async receive(m: Message, change: MessageChange): Promise<Incoming | null> {
    if (!this.deps.conversations.get(m.conversationId)) await this.deps.conversations.load();
    const content = await this.deps.engine.decrypt(m);
    const s = this.state.get();
    const known = s.threads[m.conversationId]?.items.some((i) => i.message.id === m.id && !i.local) ?? false;
    const fromOther = m.senderAccountId !== s.me.accountId;
    const visible = s.active === m.conversationId && this.deps.visible();
    this.state.dispatch({ type: "messageArrived", message: m, content, known, fromOther, visible });
    if (known || !this.deps.conversations.get(m.conversationId)) return null;
    if (visible) this.deps.markRead(m.conversationId);
    if (fromOther && change === MessageChange.NEW && m.deletedAtMs === 0n) {
      return { conversationId: m.conversationId, senderAccountId: m.senderAccountId, content };
    }
    return null;
  }

  /** Adds (or takes back, `remove`) our reaction to a message of a cloud conversation: the
   * server keeps them (React), and every member receives the message with its new `reactions`.
   * (An E2EE conversation's reaction is an encrypted message of its own: outbox.ts.) */
  async react(conversationId: string, messageId: string, emoji: string, remove = false): Promise<void> {
    if (!this.deps.client.react) throw new Error("no React client");
    const res = await this.deps.client.react({ conversationId, messageId, emoji, remove });
    if (res.message) {
      const content = await this.deps.engine.decrypt(res.message);
      this.state.dispatch({ type: "messagesChanged", conversationId, items: [{ message: res.message, content }] });
    }
  }

  /** Decrypts again the messages that waited for the key of `sessionId`. */
  async retryUndecrypted(sessionId: string): Promise<void> {
    for (const [conversationId, waiting] of waitingFor(this.state.get(), sessionId)) {
      const items: Item[] = [];
      for (const i of waiting) items.push({ message: i.message, content: await this.deps.engine.decrypt(i.message) });
      this.state.dispatch({ type: "decrypted", conversationId, items });
      // Shown now: the read mark may move past them (receipts.readMarkDue).
      this.deps.markRead(conversationId);
    }
  }
}
