// conversations.ts — the conversation list (newest activity first, message requests included and
// marked `request`), each one's preview line, and which one is open; the RPCs that change the list
// (requests, blocking, opening a direct conversation, groups and managing them).
//
// Group management: the server writes system entries into a group's history (Message.system:
// a member added, removed or leaving, a role or the title changed); they preview like messages,
// never count as unread, and a title change renames the group here at once. A group we were
// removed from stays in the list with the history this device holds, read-only: it is the
// conversation without us among its members (`removedFrom`), kept across reloads of the list
// until we delete it (`forget`). Leaving by choice takes it out of the list.
import type { Client } from "@connectrpc/connect";
import type { Content } from "../crypto/content";
import {
  ConversationKind,
  ConversationMode,
  MemberRole,
  SystemEventKind,
  type BlockedAccount,
  type Conversation,
  type ConversationService,
  type Message,
  type SystemEvent,
} from "../gen/kitsulan/v1/conversation_pb";
import { mentionsMe } from "./mentions";
import type { Profiles } from "./profiles";
import type { ChatEvent, StateAccess } from "./store";

export interface ConversationsState {
  conversations: Conversation[];
  /** The last message's text (or file name) of each conversation, at most 120 characters. */
  previews: Record<string, string>;
  /** The conversation on screen. */
  active: string | null;
  /** Conversations whose last line is a system entry (shown as its sentence instead of a preview). */
  systemPreviews?: Record<string, SystemEvent>;
  /** Who we are (to tell a group we were removed from). */
  me?: { accountId: string };
}

/** A group we were removed from (we are no longer among its members): kept read-only. */
export function removedFrom(c: Conversation, me: string): boolean {
  return c.kind === ConversationKind.GROUP && !c.request && !c.members.some((m) => m.accountId === me);
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
  if (content.kind === "system") {
    return { ...state, systemPreviews: { ...state.systemPreviews, [conversationId]: content.event } };
  }
  const text = content.kind === "text" ? content.text : content.kind === "attachment" ? content.file.name : null;
  if (text === null) return state;
  const previews = { ...state.previews, [conversationId]: text.slice(0, 120) };
  if (!state.systemPreviews?.[conversationId]) return { ...state, previews };
  const { [conversationId]: _dropped, ...systemPreviews } = state.systemPreviews;
  return { ...state, previews, systemPreviews };
}

/** A conversation as a system entry changes it: a new title, a member's new role. (Who joins or
 * leaves comes with the MemberEvent that reloads the list.) */
function withSystem(c: Conversation, e: SystemEvent): Conversation {
  switch (e.kind) {
    case SystemEventKind.TITLE_CHANGED:
      return { ...c, title: e.title };
    case SystemEventKind.TIMER_CHANGED:
      return { ...c, messageTimerSeconds: e.timerSeconds };
    case SystemEventKind.ROLE_CHANGED:
      return {
        ...c,
        members: c.members.map((m) => (m.accountId === e.targetAccountId && e.role !== MemberRole.UNSPECIFIED ? { ...m, role: e.role } : m)),
      };
    default:
      return c;
  }
}

function without<S extends ConversationsState>(state: S, conversationId: string): S {
  const conversations = state.conversations.filter((c) => c.id !== conversationId);
  return { ...state, conversations, active: state.active === conversationId ? null : state.active };
}

export function apply<S extends ConversationsState>(state: S, event: ChatEvent): S {
  switch (event.type) {
    case "conversationsLoaded": {
      // Pages follow activity: one that moved while we paged may come twice. A guild's private
      // channel is not a direct message: guilds.ts keeps its members.
      const byId = new Map<string, Conversation>();
      for (const c of event.conversations) if (!byId.has(c.id) && c.kind !== ConversationKind.CHANNEL) byId.set(c.id, c);
      // The server no longer lists groups we were removed from: this device keeps them.
      const me = state.me?.accountId;
      if (me) for (const c of state.conversations) if (!byId.has(c.id) && removedFrom(c, me)) byId.set(c.id, c);
      return { ...state, conversations: byActivity([...byId.values()]) };
    }
    case "conversationChanged":
      return event.conversation.kind === ConversationKind.CHANNEL ? state : upsert(state, event.conversation);
    case "conversationLeft":
      return without(state, event.conversationId);
    case "removedFrom": {
      // Kept with what this device holds, without us among the members (read-only).
      const c = find(state, event.conversationId);
      if (!c || c.kind !== ConversationKind.GROUP || c.request) return without(state, event.conversationId);
      const members = c.members.filter((m) => m.accountId !== event.me);
      return { ...state, conversations: state.conversations.map((x) => (x.id === c.id ? { ...c, members, unreadCount: 0 } : x)) };
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
      // We left on another device: this one lets the group go too.
      if (m.system?.kind === SystemEventKind.MEMBER_LEFT && !event.fromOther) return without(state, m.conversationId);
      // An older message changed (an edit, a pin, its reactions): the preview stays the last one's.
      const held = find(state, m.conversationId);
      const s = !held || m.seq >= held.lastSeq ? withPreview(state, m.conversationId, event.content) : state;
      const found = find(s, m.conversationId);
      if (!found || event.known) return s;
      const c = m.system ? withSystem(found, m.system) : found;
      const unread = event.fromOther && !event.visible && m.deletedAtMs === 0n && !m.system;
      return upsert(s, {
        ...c,
        lastSeq: m.seq > c.lastSeq ? m.seq : c.lastSeq,
        lastActivityAtMs: m.sentAtMs > c.lastActivityAtMs ? m.sentAtMs : c.lastActivityAtMs,
        unreadCount: c.unreadCount + (unread ? 1 : 0),
        // The server counts a cloud conversation's mentions; until the list is loaded again, a
        // new one that names us counts here (E2EE: mentions.ts counts what this device holds).
        mentionCount:
          c.mentionCount + (unread && c.mode === ConversationMode.CLOUD && mentionsMe(event.content, state.me?.accountId ?? "") ? 1 : 0),
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
      return upsert(state, { ...c, members, unreadCount: r.unreadCount, mentionCount: r.unreadCount === 0 ? 0 : c.mentionCount });
    }
    case "markedRead": {
      const c = find(state, event.conversationId);
      if (!c) return state;
      const members = c.members.map((m) => (m.accountId === event.accountId ? { ...m, readSeq: event.readSeq } : m));
      return upsert(state, { ...c, members, unreadCount: event.unreadCount, mentionCount: event.unreadCount === 0 ? 0 : c.mentionCount });
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

/** The kind a new conversation is made as: end-to-end encrypted (the default) or cloud. */
export type Mode = ConversationMode.E2EE | ConversationMode.CLOUD;

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
    | "removeMember"
    | "setMemberRole"
    | "leaveConversation"
    | "renameGroup"
    | "setMessageTimer"
  >;
  decrypt: (message: Message) => Promise<Content>;
  profiles: Pick<Profiles, "load" | "lookUp">;
}

export class Conversations {
  constructor(
    private readonly state: StateAccess,
    private readonly deps: ConversationsDeps,
  ) {}

  /** A conversation of the list, or a guild's channel (guilds.ts keeps those). */
  get(id: string): Conversation | undefined {
    const s = this.state.get();
    return find(s, id) ?? s.guilds.channels[id];
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

  /** Opens (or finds) the direct conversation with the person who has `username`: the end-to-end
   * encrypted one, or (`cloud`) the cloud one; a pair may have one of each. */
  async openDirect(username: string, mode: Mode = ConversationMode.E2EE): Promise<string> {
    const { accountId } = await this.deps.profiles.lookUp(username);
    return this.openDirectWith(accountId, mode);
  }

  /** Opens (or finds) the direct conversation of `mode` with the account `accountId`. */
  async openDirectWith(accountId: string, mode: Mode = ConversationMode.E2EE): Promise<string> {
    const res = await this.deps.client.openDirect({ accountId, mode });
    if (!res.conversation) throw new Error("OpenDirect answered without a conversation");
    this.state.dispatch({ type: "conversationChanged", conversation: res.conversation });
    return res.conversation.id;
  }

  /** Creates a group named `title` with the people who have `usernames` (we join as owner). */
  async createGroup(title: string, usernames: string[], mode: Mode = ConversationMode.E2EE): Promise<string> {
    const memberIds: string[] = [];
    for (const u of usernames) memberIds.push((await this.deps.profiles.lookUp(u)).accountId);
    return this.createGroupWith(title, memberIds, mode);
  }

  /** Creates a group of `mode` named `title` with the accounts `memberIds` (we join as owner). */
  async createGroupWith(title: string, memberIds: string[], mode: Mode = ConversationMode.E2EE): Promise<string> {
    const res = await this.deps.client.createGroup({ title: title.trim(), memberIds, mode });
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

  /** Removes a member from a group (owners; admins remove plain members). */
  async removeMember(conversationId: string, accountId: string): Promise<void> {
    const res = await this.deps.client.removeMember({ conversationId, accountId });
    if (res.conversation) this.state.dispatch({ type: "conversationChanged", conversation: res.conversation });
  }

  /** Makes a member an admin, or an admin a member again (the owner only). */
  async setRole(conversationId: string, accountId: string, role: MemberRole.ADMIN | MemberRole.MEMBER): Promise<void> {
    const res = await this.deps.client.setMemberRole({ conversationId, accountId, role });
    if (res.conversation) this.state.dispatch({ type: "conversationChanged", conversation: res.conversation });
  }

  /** Renames a group (owners and admins). */
  async rename(conversationId: string, title: string): Promise<void> {
    const res = await this.deps.client.renameGroup({ conversationId, title: title.trim() });
    if (res.conversation) this.state.dispatch({ type: "conversationChanged", conversation: res.conversation });
  }

  /**
   * "Start an end-to-end encrypted chat with the same people" (a conversation never changes kind):
   * the E2EE direct conversation with the other person, or a new E2EE group with the same title
   * and the other members. Returns its id.
   */
  async startEncryptedCopy(conversationId: string): Promise<string> {
    const c = this.get(conversationId);
    if (!c) throw new Error("unknown conversation");
    const me = this.state.get().me?.accountId ?? "";
    const others = c.members.map((m) => m.accountId).filter((id) => id !== me);
    if (c.kind === ConversationKind.DIRECT && others[0]) return this.openDirectWith(others[0], ConversationMode.E2EE);
    return this.createGroupWith(c.title, others, ConversationMode.E2EE);
  }

  /** Sets the disappearing-message timer (0: off); members see the system entry. */
  async setTimer(conversationId: string, seconds: number): Promise<void> {
    const res = await this.deps.client.setMessageTimer({ conversationId, seconds });
    if (res.conversation) this.state.dispatch({ type: "conversationChanged", conversation: res.conversation });
  }

  /** Leaves a group by choice: it leaves the list too (the others see "… left"). */
  async leave(conversationId: string): Promise<void> {
    await this.deps.client.leaveConversation({ conversationId });
    this.state.dispatch({ type: "conversationLeft", conversationId });
  }

  /** A MemberEvent said we are no longer in `conversationId`: a group we did not leave on this
   * device stays, read-only (a request or a direct conversation goes). Then the list is reloaded. */
  async lostMembership(conversationId: string): Promise<void> {
    const me = this.state.get().me?.accountId ?? "";
    const c = this.get(conversationId);
    if (c && c.members.some((m) => m.accountId === me)) this.state.dispatch({ type: "removedFrom", conversationId, me });
    await this.load();
  }

  /** Deletes a group we were removed from from this device's list (its history here goes too). */
  forget(conversationId: string): void {
    this.state.dispatch({ type: "conversationLeft", conversationId });
  }
}
