// receipts.ts — how far the others got in each conversation (delivered, read; our messages'
// ticks), who is typing (each indicator lasts TYPING_MS after its last update), and our own read
// marks (MarkRead when a conversation is on screen) and typing updates.
import type { ChatState, ChatEvent, StateAccess } from "./store";
import type { ConversationClient } from "./conversations";

export interface Receipt {
  delivered: bigint;
  read: bigint;
}

export interface ReceiptsState {
  /** Conversation id -> account id -> how far that member got. */
  receipts: Record<string, Record<string, Receipt>>;
  /** Conversation id -> account id -> until when (ms) it shows as typing. */
  typing: Record<string, Record<string, number>>;
}

/** Others send typing updates every 3 s while they type: an indicator older than this is stale. */
export const TYPING_MS = 6000;

const NONE: Receipt = { delivered: 0n, read: 0n };

export function apply<S extends ReceiptsState>(state: S, event: ChatEvent): S {
  switch (event.type) {
    case "receipt": {
      // Ours change the conversation's unread count (conversations.ts).
      const r = event.receipt;
      if (r.accountId === event.me) return state;
      const forConv = { ...(state.receipts[r.conversationId] ?? {}) };
      const before = forConv[r.accountId] ?? NONE;
      forConv[r.accountId] = {
        delivered: r.deliveredSeq > before.delivered ? r.deliveredSeq : before.delivered,
        read: r.readSeq > before.read ? r.readSeq : before.read,
      };
      return { ...state, receipts: { ...state.receipts, [r.conversationId]: forConv } };
    }
    case "typing": {
      const t = event.typing;
      if (t.accountId === event.me) return state;
      const who = { ...(state.typing[t.conversationId] ?? {}) };
      if (t.typing) who[t.accountId] = event.now + TYPING_MS;
      else delete who[t.accountId];
      return { ...state, typing: { ...state.typing, [t.conversationId]: who } };
    }
    case "typingExpired": {
      let changed = false;
      const typing: ReceiptsState["typing"] = {};
      for (const [conv, who] of Object.entries(state.typing)) {
        const kept = Object.fromEntries(Object.entries(who).filter(([, until]) => until > event.now));
        if (Object.keys(kept).length !== Object.keys(who).length) changed = true;
        typing[conv] = kept;
      }
      return changed ? { ...state, typing } : state;
    }
    default:
      return state;
  }
}

/** The sequence number to mark `conversationId` read up to, or null when there is nothing new
 * to mark (no message yet, or our mark is there already and nothing is unread). A device marks
 * read only what it could decrypt and show: the mark stops before the first message from
 * someone else that is not decrypted (waiting for its key); when the key comes and it
 * decrypts, the mark moves on (messages.retryUndecrypted). */
export function readMarkDue(
  state: Pick<ChatState, "conversations" | "threads" | "me"> & { guilds?: Pick<ChatState["guilds"], "channels"> },
  conversationId: string,
): bigint | null {
  // A guild's channel is a conversation too (guilds.ts).
  const c = state.conversations.find((x) => x.id === conversationId) ?? state.guilds?.channels[conversationId];
  const thread = state.threads[conversationId];
  let upTo = 0n;
  let blocked = false;
  for (const i of thread?.items ?? []) {
    const seq = i.message.seq;
    if (seq === 0n) continue; // ours, not sent yet
    if (i.content.kind === "undecryptable" && i.message.senderAccountId !== state.me.accountId) {
      blocked = true;
      break;
    }
    if (seq > upTo) upTo = seq;
  }
  const mine = c?.members.find((m) => m.accountId === state.me.accountId);
  if (!c || upTo === 0n) return null;
  if (mine && mine.readSeq >= upTo && (blocked || c.unreadCount === 0)) return null;
  return upTo;
}

export interface ReceiptsDeps {
  client: Pick<ConversationClient, "markRead">;
  /** Sends a typing update over the gateway (live only). */
  sendTyping: (conversationId: string, typing: boolean) => void;
  /** Whether the page is visible. */
  visible: () => boolean;
  now: () => number;
}

export class Receipts {
  constructor(
    private readonly state: StateAccess,
    private readonly deps: ReceiptsDeps,
  ) {}

  /** Marks the conversation read up to its newest message when it is on screen. */
  markReadIfVisible(conversationId: string): void {
    const s = this.state.get();
    if (s.active !== conversationId || !this.deps.visible()) return;
    const seq = readMarkDue(s, conversationId);
    if (seq === null) return;
    void this.deps.client
      .markRead({ conversationId, seq })
      .then((res) =>
        this.state.dispatch({
          type: "markedRead",
          conversationId,
          accountId: this.state.get().me.accountId,
          readSeq: res.readSeq,
          unreadCount: res.unreadCount,
        }),
      )
      .catch(() => undefined);
  }

  /** Tells the conversation's members we are typing (or stopped). */
  typing(conversationId: string, typing: boolean): void {
    this.deps.sendTyping(conversationId, typing);
  }

  /** Drops the typing indicators whose time is up (called every second). */
  expireTyping(): void {
    this.state.dispatch({ type: "typingExpired", now: this.deps.now() });
  }
}
