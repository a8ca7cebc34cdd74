// conversations.ts — the conversation list (newest activity first, message requests included and
// marked `request`), each one's preview line, and which one is open; the RPCs that change the list
// (requests, blocking, opening a direct conversation, groups).
import type { Client } from "@connectrpc/connect";
import type { Content } from "../crypto/content";
import {
  ConversationKind,
  type BlockedAccount,
  type Conversation,
  type ConversationService,
  type Message,
} from "../gen/kitsulan/v1/conversation_pb";
import type { Profiles } from "./profiles";
import type { ChatEvent, StateAccess } from "./store";

export interface ConversationsState {
  conversations: Conversation[];
  /** The last message's text (or file name) of each conversation, at most 120 characters. */
  previews: Record<string, string>;
  /** The conversation on screen. */
  active: string | null;
}

export function find(state: ConversationsState, id: string): Conversation | undefined {
  return state.conversations.find((c) => c.id === id);
}

function byActivity(list: Conversation[]): Conversation[] {
  return list.sort((a, b) => Number(b.lastActivityAtMs - a.lastActivityAtMs));
}

/** `c` replaces the conversation with its id (or joins the list), first among equals. */
function upsert<S extends ConversationsState>(state: S, c: Conversation): S {
  const rest = state.conversations.filter((x) => x.id !== c.id);
  return { ...state, conversations: byActivity([c, ...rest]) };
}

function withPreview<S extends ConversationsState>(state: S, conversationId: string, content: Content): S {
  const text = content.kind === "text" ? content.text : content.kind === "attachment" ? content.file.name : null;
  if (text === null) return state;
  return { ...state, previews: { ...state.previews, [conversationId]: text.slice(0, 120) } };
}

export function apply<S extends ConversationsState>(state: S, event: ChatEvent): S {
  switch (event.type) {
    case "conversationsLoaded": {
      // Pages follow activity: one that moved while we paged may come twice.
      const byId = new Map<string, Conversation>();
      for (const c of event.conversations) if (!byId.has(c.id)) byId.set(c.id, c);
      return { ...state, conversations: byActivity([...byId.values()]) };
    }
    case "conversationChanged":
      return upsert(state, event.conversation);
    case "conversationLeft": {
      const conversations = state.conversations.filter((c) => c.id !== event.conversationId);
      return { ...state, conversations, active: state.active === event.conversationId ? null : state.active };
    }
    case "opened":
      return { ...state, active: event.conversationId };
    case "previewLoaded":
      return withPreview(state, event.conversationId, event.content);
    case "messageSent": {
      const s = withPreview(state, event.conversationId, event.content);
      const c = find(s, event.conversationId);
      return c ? upsert(s, { ...c, lastSeq: event.message.seq, lastActivityAtMs: event.message.sentAtMs }) : s;
    }
    case "messageArrived": {
      const m = event.message;
      const s = withPreview(state, m.conversationId, event.content);
      const c = find(s, m.conversationId);
      if (!c || event.known) return s;
      const unread = event.fromOther && !event.visible && m.deletedAtMs === 0n;
      return upsert(s, {
        ...c,
        lastSeq: m.seq > c.lastSeq ? m.seq : c.lastSeq,
        lastActivityAtMs: m.sentAtMs > c.lastActivityAtMs ? m.sentAtMs : c.lastActivityAtMs,
        unreadCount: c.unreadCount + (unread ? 1 : 0),
      });
    }
    case "decrypted": {
      const last = event.items[event.items.length - 1];
      return last ? withPreview(state, event.conversationId, last.content) : state;
    }
    case "receipt": {
      // Our own read mark (from another of our devices, or this one): the unread count.
      const r = event.receipt;
      if (r.accountId !== event.me) return state;
      const c = find(state, r.conversationId);
      if (!c) return state;
      const members = c.members.map((m) =>
        m.accountId === r.accountId && r.readSeq > m.readSeq ? { ...m, readSeq: r.readSeq } : m,
      );
      return upsert(state, { ...c, members, unreadCount: r.unreadCount });
    }
    case "markedRead": {
      const c = find(state, event.conversationId);
      if (!c) return state;
      const members = c.members.map((m) => (m.accountId === event.accountId ? { ...m, readSeq: event.readSeq } : m));
      return upsert(state, { ...c, members, unreadCount: event.unreadCount });
    }
    case "avatar": {
      // A group's picture; an older version than the one we hold is ignored.
      if (event.owner.case !== "conversationId") return state;
      const avatar = event.avatar;
      const c = find(state, event.owner.value);
      if (!c || (c.avatar && c.avatar.avatarVersion > avatar.avatarVersion)) return state;
      return { ...state, conversations: state.conversations.map((x) => (x.id === c.id ? { ...c, avatar } : x)) };
    }
    default:
      return state;
  }
}

export type ConversationClient = Client<typeof ConversationService>;

export interface ConversationsDeps {
  client: Pick<
    ConversationClient,
    | "listConversations"
    | "listMessages"
    | "acceptRequest"
    | "declineRequest"
    | "block"
    | "unblock"
    | "listBlocked"
    | "openDirect"
    | "createGroup"
    | "addMembers"
  >;
  decrypt: (message: Message) => Promise<Content>;
  profiles: Pick<Profiles, "load" | "lookUp">;
}

export class Conversations {
  constructor(
    private readonly state: StateAccess,
    private readonly deps: ConversationsDeps,
  ) {}

  get(id: string): Conversation | undefined {
    return find(this.state.get(), id);
  }

  /** Loads the conversation list (every page; requests included, each marked `request`);
   * `refreshNames` fetches every member's profile again. */
  async load(refreshNames = false): Promise<void> {
    try {
      const pages: Conversation[] = [];
      let pageToken = "";
      do {
        const res = await this.deps.client.listConversations({ limit: 100, pageToken });
        pages.push(...res.conversations);
        pageToken = res.nextPageToken;
      } while (pageToken);
      this.state.dispatch({ type: "conversationsLoaded", conversations: pages });
      const { conversations, previews } = this.state.get();
      void this.deps.profiles
        .load(
          conversations.flatMap((c) => c.members.map((m) => m.accountId)),
          refreshNames,
        )
        .catch(() => undefined);
      for (const c of conversations) {
        if (!previews[c.id] && c.lastSeq > 0n) void this.loadPreview(c.id);
      }
    } catch {
      // offline: the list stays as it was
    }
  }

  private async loadPreview(conversationId: string): Promise<void> {
    const res = await this.deps.client.listMessages({ conversationId, limit: 1 });
    const m = res.messages[0];
    if (m) this.state.dispatch({ type: "previewLoaded", conversationId, content: await this.deps.decrypt(m) });
  }

  /** Shows `id` (null: none). */
  open(id: string | null): void {
    this.state.dispatch({ type: "opened", conversationId: id });
  }

  /** Accepts a message request: it becomes a normal conversation. */
  async acceptRequest(conversationId: string): Promise<void> {
    const res = await this.deps.client.acceptRequest({ conversationId });
    if (res.conversation) this.state.dispatch({ type: "conversationChanged", conversation: res.conversation });
  }

  /** Declines a message request: we leave it (the sender keeps the history). */
  async declineRequest(conversationId: string): Promise<void> {
    await this.deps.client.declineRequest({ conversationId });
    this.state.dispatch({ type: "conversationLeft", conversationId });
  }

  /** Blocks an account: we leave its direct conversation and its requests, and nothing more
   * from it reaches us. */
  async block(accountId: string): Promise<void> {
    await this.deps.client.block({ accountId });
    const gone = this.state
      .get()
      .conversations.filter(
        (c) =>
          (c.kind === ConversationKind.DIRECT && c.members.some((m) => m.accountId === accountId)) ||
          (c.request && c.requestedBy === accountId),
      );
    for (const c of gone) this.state.dispatch({ type: "conversationLeft", conversationId: c.id });
    await this.load();
  }

  async unblock(accountId: string): Promise<void> {
    await this.deps.client.unblock({ accountId });
  }

  /** The accounts we blocked, most recent first (their profiles loaded for the names). */
  async blockedAccounts(): Promise<BlockedAccount[]> {
    const res = await this.deps.client.listBlocked({});
    await this.deps.profiles.load(res.blocked.map((b) => b.accountId)).catch(() => undefined);
    return res.blocked;
  }

  /** Opens (or finds) the direct conversation with the person who has `username`. */
  async openDirect(username: string): Promise<string> {
    const { accountId } = await this.deps.profiles.lookUp(username);
    const res = await this.deps.client.openDirect({ accountId });
    if (!res.conversation) throw new Error("OpenDirect answered without a conversation");
    this.state.dispatch({ type: "conversationChanged", conversation: res.conversation });
    return res.conversation.id;
  }

  /** Creates a group named `title` with the people who have `usernames` (we join as owner). */
  async createGroup(title: string, usernames: string[]): Promise<string> {
    const memberIds: string[] = [];
    for (const u of usernames) memberIds.push((await this.deps.profiles.lookUp(u)).accountId);
    const res = await this.deps.client.createGroup({ title: title.trim(), memberIds });
    if (!res.conversation) throw new Error("CreateGroup answered without a conversation");
    this.state.dispatch({ type: "conversationChanged", conversation: res.conversation });
    return res.conversation.id;
  }

  /** Adds the person with `username` to a group (owners and admins). */
  async addMember(conversationId: string, username: string): Promise<void> {
    const { accountId } = await this.deps.profiles.lookUp(username);
    const res = await this.deps.client.addMembers({ conversationId, accountIds: [accountId] });
    if (res.conversation) this.state.dispatch({ type: "conversationChanged", conversation: res.conversation });
  }
}
