// pins.ts — each conversation's pinned messages (PinMessage, ListPins), most recently pinned
// first, for the pinned bar of its header and the pin list. Works the same in both kinds of
// conversation: a pin is a message's id, never its content (an E2EE pin is decrypted here). The
// list is loaded when a conversation opens and then follows the messages as they arrive: a
// message whose `pinned_at_ms` is set (MESSAGE_CHANGE_EDITED, the message as it is now) joins
// it, one unpinned, deleted or expired leaves it.
import type { Content } from "../crypto/content";
import { ConversationKind, MemberRole, type Conversation, type Message } from "../gen/kitsulan/v1/conversation_pb";
import type { ConversationClient } from "./conversations";
import { expired, type Item } from "./messages";
import type { ChatEvent, StateAccess } from "./store";

/** The most pins a conversation holds (the server refuses more: TOO_MANY_PINS). */
export const MAX_PINS = 50;

export interface PinsState {
  /** The pinned messages of the conversations whose list was loaded, most recent pin first. */
  pins: Record<string, Item[]>;
}

/** Whether `me` may pin in `c`: any member of a direct conversation, owners and admins of a group. */
export function canPin(c: Conversation, me: string): boolean {
  const role = c.members.find((m) => m.accountId === me)?.role;
  if (role === undefined) return false;
  // In a group, its owner and admins; in a guild's channel, those with MANAGE_MESSAGES (guilds.ts
  // makes them the channel's admin).
  return c.kind === ConversationKind.DIRECT || role === MemberRole.OWNER || role === MemberRole.ADMIN;
}

/** `list` with `item` as its message is now: in it (by pin time) when pinned, out when not. */
export function withPin(list: Item[], item: Item, now: number): Item[] {
  const m = item.message;
  const rest = list.filter((i) => i.message.id !== m.id);
  if (m.pinnedAtMs === 0n || m.deletedAtMs !== 0n || expired(m, now)) return rest.length === list.length ? list : rest;
  return [item, ...rest].sort((a, b) => (b.message.pinnedAtMs > a.message.pinnedAtMs ? 1 : b.message.pinnedAtMs < a.message.pinnedAtMs ? -1 : 0));
}

function changed<S extends PinsState>(state: S, conversationId: string, items: Item[], now: number): S {
  const before = state.pins[conversationId];
  if (!before) return state; // not loaded: ListPins will say
  let list = before;
  for (const item of items) {
    const held = list.some((i) => i.message.id === item.message.id);
    if (held || item.message.pinnedAtMs !== 0n) list = withPin(list, item, now);
  }
  return list === before ? state : { ...state, pins: { ...state.pins, [conversationId]: list } };
}

export function apply<S extends PinsState>(state: S, event: ChatEvent): S {
  switch (event.type) {
    case "pinsLoaded":
      return { ...state, pins: { ...state.pins, [event.conversationId]: event.items } };
    case "messageArrived":
      return changed(state, event.message.conversationId, [{ message: event.message, content: event.content }], 0);
    case "messagesChanged":
      return changed(state, event.conversationId, event.items, 0);
    case "expire": {
      let pins: Record<string, Item[]> | null = null;
      for (const [id, list] of Object.entries(state.pins)) {
        if (!list.some((i) => expired(i.message, event.now))) continue;
        pins ??= { ...state.pins };
        pins[id] = list.filter((i) => !expired(i.message, event.now));
      }
      return pins ? { ...state, pins } : state;
    }
    default:
      return state;
  }
}

export interface PinsDeps {
  client: Pick<ConversationClient, "pinMessage" | "listPins">;
  /** What a message says (messages.ts, readMessage). */
  read: (m: Message) => Promise<Content>;
}

export class Pins {
  constructor(
    private readonly state: StateAccess,
    private readonly deps: PinsDeps,
  ) {}

  /** Loads the pin list of a conversation (when it is opened). */
  async load(conversationId: string): Promise<void> {
    const res = await this.deps.client.listPins({ conversationId });
    const items: Item[] = [];
    for (const message of res.messages) items.push({ message, content: await this.deps.read(message) });
    this.state.dispatch({ type: "pinsLoaded", conversationId, items });
  }

  /** Pins a message, or unpins it (`unpin`). */
  async pin(conversationId: string, messageId: string, unpin = false): Promise<void> {
    const res = await this.deps.client.pinMessage({ conversationId, messageId, unpin });
    if (res.message) {
      this.state.dispatch({ type: "messagesChanged", conversationId, items: [{ message: res.message, content: await this.deps.read(res.message) }] });
    }
  }
}
