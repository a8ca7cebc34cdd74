// testkit.ts — what the stores' unit tests share: protobuf values made short, a state holder that
// records what was dispatched, and fake RPC clients (only the methods a test gives exist).
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { Content } from "../crypto/content";
import { AvatarInfoSchema, type AvatarInfo } from "../gen/kitsulan/v1/avatar_pb";
import {
  ConversationKind,
  ConversationSchema,
  MemberSchema,
  MessageSchema,
  type Conversation,
  type Message,
} from "../gen/kitsulan/v1/conversation_pb";
import type { Item } from "./messages";
import { applyChat, initialState, type ChatEvent, type ChatState, type StateAccess } from "./store";

export const ME = "00000000-0000-7000-8000-00000000000a";
export const MY_DEVICE = "00000000-0000-7000-8000-0000000000d1";
export const BOB = "00000000-0000-7000-8000-00000000000b";
export const CAROL = "00000000-0000-7000-8000-00000000000c";
export const CONV = "00000000-0000-7000-8000-0000000000c1";
export const OTHER_CONV = "00000000-0000-7000-8000-0000000000c2";

export function state(patch: Partial<ChatState> = {}): ChatState {
  return { ...initialState({ accountId: ME, deviceId: MY_DEVICE }), ...patch };
}

export function conversation(
  init: Partial<Omit<Conversation, "$typeName" | "$unknown" | "members">> & {
    members?: Array<string | { accountId: string; readSeq: bigint }>;
  },
): Conversation {
  const { members, ...rest } = init;
  return create(ConversationSchema, {
    id: CONV,
    kind: ConversationKind.DIRECT,
    ...rest,
    members: (members ?? [ME, BOB]).map((m) => create(MemberSchema, typeof m === "string" ? { accountId: m } : m)),
  });
}

export function message(init: MessageInitShape<typeof MessageSchema> & { id: string }): Message {
  return create(MessageSchema, { conversationId: CONV, senderAccountId: BOB, ...init });
}

export function text(t: string): Content {
  return { kind: "text", text: t };
}

export function item(m: Message, content: Content = text("hello"), extra: Partial<Item> = {}): Item {
  return { message: m, content, ...extra };
}

export function avatar(avatarId: string, avatarVersion: bigint): AvatarInfo {
  return create(AvatarInfoSchema, { avatarId, avatarVersion });
}

/** A state holder for a store under test: the real reducers, and every event kept in order. */
export class TestState implements StateAccess {
  readonly events: ChatEvent[] = [];
  constructor(public s: ChatState = state()) {}
  get = (): ChatState => this.s;
  dispatch(event: ChatEvent): void {
    this.events.push(event);
    this.s = applyChat(this.s, event);
  }
  types(): string[] {
    return this.events.map((e) => e.type);
  }
}

/** A fake client: `calls` records each request by method name; an absent method throws. */
export function fakeClient<T extends object>(methods: { [K in keyof T]?: (req: never) => unknown }) {
  const calls: Array<[string, unknown]> = [];
  const client = new Proxy(
    {},
    {
      get(_target, name: string) {
        const m = (methods as Record<string, ((req: unknown) => unknown) | undefined>)[name];
        if (!m) return undefined;
        return (req: unknown) => {
          calls.push([name, req]);
          return Promise.resolve(m(req));
        };
      },
    },
  ) as T;
  return { client, calls };
}
