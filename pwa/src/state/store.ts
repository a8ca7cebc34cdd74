// store.ts — the app's state: one immutable object, changed only by dispatching a ChatEvent.
// Each concern has its own part of it and a pure `apply(state, event)` for that part:
// conversations.ts (the list, previews, the open one), messages.ts (threads), receipts.ts
// (receipts and typing), profiles.ts (names and avatars, ours included), files.ts (attachment
// states, TTL choices), presence.ts (contacts online), guilds.ts (guilds and their channels). `applyChat` runs them in turn; an event several concerns care about (a
// message arrived: its thread, its conversation's preview and unread count) is seen by each.
// The stores' classes beside the reducers do the RPCs (clients passed in) and dispatch what
// came back; chat.ts wires them to the real clients, the gateway and the E2EE engine.
import type { Content } from "../crypto/content";
import type { VerificationView } from "../crypto/verification";
import type { GatewayStatus } from "../gateway/client";
import type { AttachmentEvent } from "../gen/kitsulan/v1/attachment_pb";
import type { AvatarInfo } from "../gen/kitsulan/v1/avatar_pb";
import type { Conversation, Message, SystemEvent } from "../gen/kitsulan/v1/conversation_pb";
import type { ReceiptEvent, TypingEvent } from "../gen/kitsulan/v1/gateway_pb";
import type { GetGuildResponse, Guild } from "../gen/kitsulan/v1/guild_pb";
import * as cache from "./cache";
import * as conversations from "./conversations";
import * as files from "./files";
import * as guilds from "./guilds";
import * as messages from "./messages";
import * as outbox from "./outbox";
import * as pins from "./pins";
import * as presence from "./presence";
import * as profiles from "./profiles";
import * as receipts from "./receipts";
import type { FileState } from "./files";
import type { Item, Thread } from "./messages";
import type { OutboxRecord } from "./outbox";
import type { AvatarOwner, Me, PersonProfile, ProfileMessage } from "./profiles";
import type { Receipt } from "./receipts";

export interface ChatState {
  me: Me;
  conversations: Conversation[];
  previews: Record<string, string>;
  /** Groups whose last line is a system entry (conversations.ts, group management). */
  systemPreviews?: Record<string, SystemEvent>;
  threads: Record<string, Thread>;
  receipts: Record<string, Record<string, Receipt>>;
  typing: Record<string, Record<string, number>>;
  /** Public profiles of the people we share conversations with (cached in IndexedDB). */
  profiles: Record<string, PersonProfile>;
  status: GatewayStatus;
  active: string | null;
  keyWarning: string | null;
  /** Accounts this device verified with SAS emoji (and whose key has not changed since). */
  verified: Record<string, true>;
  /** The verification in flight (ours, or a request from someone), for the verify dialog. */
  verification: VerificationView | null;
  /** The attachment TTLs (seconds) to offer besides "none" (from ServerInfo). */
  ttlChoices: number[];
  /** Attachments by id: expired, and downloads of our own. */
  files: Record<string, FileState>;
  /** What this device has yet to send, by conversation (outbox.ts). */
  outbox: Record<string, OutboxRecord[]>;
  /** Contacts online now (presence.ts). */
  online: Record<string, true>;
  /** Pinned messages of the conversations opened, most recent pin first (pins.ts). */
  pins: Record<string, Item[]>;
  /** The guilds we are in, their channels as conversations, the one on screen (guilds.ts). */
  guilds: guilds.GuildsPart;
}

/** Everything that changes the state. Times (`now`) and "who am I" come in the event, so the
 * reducers stay pure. */
export type ChatEvent =
  // The connection and verification (chat.ts).
  | { type: "status"; status: GatewayStatus }
  | { type: "keyWarning"; accountId: string | null }
  | { type: "verified"; accountIds: string[] }
  | { type: "verification"; verification: VerificationView | null }
  // Conversations.
  | { type: "conversationsLoaded"; conversations: Conversation[] }
  | { type: "conversationChanged"; conversation: Conversation }
  | { type: "conversationLeft"; conversationId: string }
  /** We were removed from a group (or left it on another device): kept read-only (groups). */
  | { type: "removedFrom"; conversationId: string; me: string }
  | { type: "opened"; conversationId: string | null }
  | { type: "previewLoaded"; conversationId: string; content: Content }
  // Messages.
  | { type: "historyLoaded"; conversationId: string; items: Item[]; more: boolean }
  | { type: "messagesChanged"; conversationId: string; items: Item[] }
  /** Our message, acknowledged; `unreadableBy`: members with no device that could read it. */
  | { type: "messageSent"; conversationId: string; message: Message; content: Content; unreadableBy?: string[] }
  /** A message from the gateway; `known`: we already held it (not as our own pending send). */
  | { type: "messageArrived"; message: Message; content: Content; known: boolean; fromOther: boolean; visible: boolean }
  /** Time passed: messages whose disappearing timer ran out leave the threads (messages.ts). */
  | { type: "expire"; now: number }
  /** Messages that waited for their room key, decrypted now. */
  | { type: "decrypted"; conversationId: string; items: Item[] }
  // Receipts and typing.
  | { type: "receipt"; receipt: ReceiptEvent; me: string }
  | { type: "markedRead"; conversationId: string; accountId: string; readSeq: bigint; unreadCount: number }
  | { type: "typing"; typing: TypingEvent; me: string; now: number }
  | { type: "typingExpired"; now: number }
  // Profiles and avatars.
  | { type: "profilesCached"; profiles: Record<string, PersonProfile> }
  | { type: "profilesReceived"; profiles: ProfileMessage[] }
  | { type: "meChanged"; me: Partial<Omit<Me, "accountId" | "deviceId">> }
  | { type: "avatar"; owner: AvatarOwner; avatar: AvatarInfo }
  // Presence: the contacts online when the gateway connected, then each change.
  | { type: "presenceReady"; accountIds: string[] }
  | { type: "presence"; accountId: string; online: boolean }
  // Files.
  | { type: "ttlChoices"; seconds: number[] }
  | { type: "fileExpired"; attachmentId: string }
  | { type: "downloads"; attachmentId: string; downloads: Array<{ accountId: string; atMs: number }> }
  | { type: "attachment"; event: AttachmentEvent }
  // The outbox: a conversation's records as they are now (outbox.ts).
  | { type: "outbox"; conversationId: string; records: OutboxRecord[] }
  // The offline copy (offline, issue 17: cache.ts).
  | { type: "cacheRestored"; snapshot: cache.Snapshot }
  /** The newest page of a restored thread, instead of the cached items (a gap between them). */
  | { type: "threadRefreshed"; conversationId: string; items: Item[]; more: boolean }
  // Pins (pins.ts): a conversation's pin list as ListPins gave it.
  | { type: "pinsLoaded"; conversationId: string; items: Item[] }
  // Guilds (guilds.ts): the list, one guild as GetGuild gave it, one we are no longer in, the
  // one on screen (null: direct messages).
  | { type: "guildsListed"; guilds: Guild[] }
  | { type: "guildLoaded"; guild: GetGuildResponse }
  | { type: "guildRemoved"; guildId: string }
  | { type: "guildSelected"; guildId: string | null }
  /** We are no longer in a private E2EE channel (removed from it, or out of its guild). */
  | { type: "channelLost"; conversationId: string };

/** The state of a device that has just signed in. */
export function initialState(me: { accountId: string; deviceId: string }): ChatState {
  return {
    me: { ...me, displayName: "", username: "", avatarId: "", avatarVersion: 0 },
    conversations: [],
    previews: {},
    threads: {},
    receipts: {},
    typing: {},
    profiles: {},
    status: "connecting",
    active: null,
    keyWarning: null,
    verified: {},
    verification: null,
    ttlChoices: files.DEFAULT_TTL_CHOICES,
    files: {},
    outbox: {},
    online: {},
    pins: {},
    guilds: guilds.EMPTY_GUILDS,
  };
}

type SessionState = Pick<ChatState, "status" | "keyWarning" | "verified" | "verification">;

/** The connection status and verification marks. */
export function applySession<S extends SessionState>(state: S, event: ChatEvent): S {
  switch (event.type) {
    case "status":
      return { ...state, status: event.status };
    case "keyWarning":
      return { ...state, keyWarning: event.accountId };
    case "verified":
      return { ...state, verified: Object.fromEntries(event.accountIds.map((id) => [id, true as const])) };
    case "verification":
      return { ...state, verification: event.verification };
    default:
      return state;
  }
}

/** The whole state after `event`: every concern's reducer in turn (each returns its input when
 * the event is not for it, so an event nobody takes leaves the same object). */
export function applyChat(state: ChatState, event: ChatEvent): ChatState {
  let s = applySession(state, event);
  s = conversations.apply(s, event);
  s = messages.apply(s, event);
  s = receipts.apply(s, event);
  s = profiles.apply(s, event);
  s = files.apply(s, event);
  s = outbox.apply(s, event);
  s = cache.apply(s, event);
  s = presence.apply(s, event);
  s = pins.apply(s, event);
  s = guilds.apply(s, event);
  return s;
}

/** What a store reads and changes: the state and its dispatch. */
export interface StateAccess {
  get(): ChatState;
  dispatch(event: ChatEvent): void;
}

type Listener = () => void;

/** The state and its listeners (useSyncExternalStore's subscribe and getSnapshot). */
export class Store implements StateAccess {
  private listeners = new Set<Listener>();

  constructor(private state: ChatState) {}

  subscribe = (l: Listener): (() => void) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };

  get = (): ChatState => this.state;

  dispatch(event: ChatEvent): void {
    const next = applyChat(this.state, event);
    if (next === this.state) return;
    this.state = next;
    for (const l of this.listeners) l();
  }
}
