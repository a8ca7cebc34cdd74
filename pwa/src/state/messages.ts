// messages.ts — each conversation's history as this device holds it (pages loaded backwards,
// live messages, our own sends while they go), and the RPCs that send, edit and delete.
// Messages are kept by id, so an event delivered twice (after a reconnect) changes nothing;
// an edit or deletion replaces a message only when it is newer than what we hold.
import { create } from "@bufbuild/protobuf";
import { contentOf, type Content } from "../crypto/content";
import type { E2ee } from "../crypto/engine";
import { HistoryDirection, MessageSchema, type Message } from "../gen/kitsulan/v1/conversation_pb";
import { MessageChange } from "../gen/kitsulan/v1/gateway_pb";
import type { ConversationClient, Conversations } from "./conversations";
import type { ChatEvent, StateAccess } from "./store";

export interface Item {
  message: Message;
  content: Content;
  /** Local state of our own sends. */
  local?: "sending" | "failed";
  text?: string;
  /** The attachment ids our own send names (kept for a retry). */
  attachmentIds?: string[];
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

/** `thread` with `incoming` merged in by id (a duplicate, or an older version of a message we
 * hold, is dropped), ordered by sequence number with our unsent messages last. */
export function merge(thread: Thread | undefined, incoming: Item[], patch: Partial<Thread> = {}): Thread {
  const before = thread ?? EMPTY_THREAD;
  const byId = new Map(before.items.map((i) => [i.message.id, i]));
  for (const item of incoming) {
    const have = byId.get(item.message.id);
    if (
      have &&
      !have.local &&
      have.content.kind !== "undecryptable" &&
      item.message.editedAtMs <= have.message.editedAtMs &&
      item.message.deletedAtMs <= have.message.deletedAtMs
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
      return merged(state, event.conversationId, event.items, { more: event.more, loaded: true });
    case "messagesChanged":
    case "decrypted":
      return merged(state, event.conversationId, event.items);
    case "messageSent":
      return merged(state, event.conversationId, [{ message: event.message, content: event.content }]);
    case "messageArrived":
      return merged(state, event.message.conversationId, [{ message: event.message, content: event.content }]);
    default:
      return state;
  }
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
  client: Pick<ConversationClient, "listMessages" | "sendMessage" | "editMessage" | "deleteMessage">;
  engine: Pick<E2ee, "encrypt" | "decrypt">;
  conversations: Pick<Conversations, "get" | "load">;
  /** Marks a conversation read if it is on screen (receipts.ts). */
  markRead: (conversationId: string) => void;
  /** Whether the page is visible. */
  visible: () => boolean;
  /** Told of an error of encryption before a send or edit rethrows it (a changed account key). */
  onEncryptError: (err: unknown) => void;
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
    const oldest = thread?.items.find((i) => i.message.seq > 0n)?.message.seq ?? 0n;
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

  /** Sends `text` (or again the failed `retryOf`, with its ciphertext when it had one): shown at
   * once as "sending", then as sent or "failed". */
  async send(conversationId: string, text: string, retryOf?: Item, replyTo = "", attachments: string[] = []): Promise<void> {
    const conversation = this.deps.conversations.get(conversationId);
    if (!conversation) return;
    const members = conversation.members.map((m) => m.accountId);
    const reply = retryOf?.message.replyTo ?? replyTo;
    const attachmentIds = retryOf?.attachmentIds ?? attachments;
    const content = contentOf(text);
    const me = this.state.get().me;
    let placeholder: Item | undefined = retryOf;
    try {
      const encrypted = retryOf?.message.ciphertext.length
        ? {
            messageId: retryOf.message.id,
            ciphertext: retryOf.message.ciphertext,
            sessionId: retryOf.message.sessionId,
          }
        : await this.deps.engine.encrypt(conversationId, members, text);
      placeholder = {
        message: create(MessageSchema, {
          id: encrypted.messageId,
          conversationId,
          senderAccountId: me.accountId,
          senderDeviceId: me.deviceId,
          ciphertext: encrypted.ciphertext,
          sessionId: encrypted.sessionId,
          replyTo: reply,
          sentAtMs: BigInt(Date.now()),
        }),
        content,
        local: "sending",
        text,
        attachmentIds,
        ...("unreadableBy" in encrypted && encrypted.unreadableBy.length > 0 ? { unreadableBy: encrypted.unreadableBy } : {}),
      };
      this.state.dispatch({ type: "messagesChanged", conversationId, items: [placeholder] });
      const res = await this.deps.client.sendMessage({
        conversationId,
        messageId: encrypted.messageId,
        ciphertext: encrypted.ciphertext,
        sessionId: encrypted.sessionId,
        replyTo: reply,
        attachmentIds,
      });
      if (res.message) this.state.dispatch({ type: "messageSent", conversationId, message: res.message, content });
    } catch (err) {
      this.deps.onEncryptError(err);
      if (placeholder) {
        this.state.dispatch({ type: "messagesChanged", conversationId, items: [{ ...placeholder, local: "failed", content }] });
      }
      throw err;
    }
  }

  /** Replaces the text of one of our messages (encrypted anew with the current session). */
  async edit(conversationId: string, item: Item, text: string): Promise<void> {
    const conversation = this.deps.conversations.get(conversationId);
    if (!conversation) return;
    const members = conversation.members.map((m) => m.accountId);
    try {
      const encrypted = await this.deps.engine.encrypt(conversationId, members, text);
      const res = await this.deps.client.editMessage({
        conversationId,
        messageId: item.message.id,
        ciphertext: encrypted.ciphertext,
        sessionId: encrypted.sessionId,
      });
      if (res.message) {
        this.state.dispatch({
          type: "messagesChanged",
          conversationId,
          items: [{ message: res.message, content: { kind: "text", text } }],
        });
      }
    } catch (err) {
      this.deps.onEncryptError(err);
      throw err;
    }
  }

  /** Deletes a message (ours, or any in a group we administer). */
  async remove(conversationId: string, item: Item): Promise<void> {
    const res = await this.deps.client.deleteMessage({ conversationId, messageId: item.message.id });
    if (res.message) {
      this.state.dispatch({ type: "messagesChanged", conversationId, items: [{ message: res.message, content: { kind: "deleted" } }] });
    }
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
