import { describe, expect, it } from "vitest";
import { ConversationKind, MemberRole, type ListPinsResponse, type PinMessageResponse } from "../gen/kitsulan/v1/conversation_pb";
import type { ConversationClient } from "./conversations";
import { apply, canPin, Pins } from "./pins";
import { BOB, CONV, ME, TestState, conversation, fakeClient, item, message, state, text } from "./testkit";

const ids = (s: { pins: Record<string, { message: { id: string } }[]> }) => s.pins[CONV]?.map((i) => i.message.id);

describe("pins", () => {
  it("lets any member of a direct conversation pin, and a group's owners and admins", () => {
    expect(canPin(conversation({}), ME)).toBe(true);
    const group = (role: MemberRole) => {
      const c = conversation({ kind: ConversationKind.GROUP });
      return { ...c, members: c.members.map((m) => (m.accountId === ME ? { ...m, role } : m)) };
    };
    expect(canPin(group(MemberRole.MEMBER), ME)).toBe(false);
    expect(canPin(group(MemberRole.ADMIN), ME)).toBe(true);
    expect(canPin(conversation({ members: [BOB] }), ME)).toBe(false);
  });

  it("follows the messages: a pin joins the list by time, an unpin or a deletion leaves it", () => {
    let s = apply(state(), { type: "pinsLoaded", conversationId: CONV, items: [item(message({ id: "a", pinnedAtMs: 10n }))] });
    const arrived = (id: string, init: Parameters<typeof message>[0]) =>
      (s = apply(s, { type: "messageArrived", message: message({ ...init, id }), content: text("x"), known: true, fromOther: true, visible: true }));
    arrived("b", { id: "b", pinnedAtMs: 20n });
    expect(ids(s)).toEqual(["b", "a"]);
    arrived("a", { id: "a", pinnedAtMs: 0n });
    expect(ids(s)).toEqual(["b"]);
    arrived("b", { id: "b", pinnedAtMs: 20n, deletedAtMs: 30n });
    expect(ids(s)).toEqual([]);
    // Unloaded conversations wait for ListPins.
    expect(apply(state(), { type: "messagesChanged", conversationId: CONV, items: [item(message({ id: "c", pinnedAtMs: 1n }))] }).pins).toEqual({});
  });

  it("drops pins that disappeared", () => {
    const s = apply(state(), { type: "pinsLoaded", conversationId: CONV, items: [item(message({ id: "a", pinnedAtMs: 1n, expiresAtMs: 5n }))] });
    expect(ids(apply(s, { type: "expire", now: 6 }))).toEqual([]);
    expect(apply(s, { type: "expire", now: 4 })).toBe(s);
  });

  it("loads the list and pins through the RPCs, the message coming back as it is now", async () => {
    const ts = new TestState();
    const pinned = message({ id: "m", pinnedAtMs: 5n, pinnedBy: ME });
    const { client, calls } = fakeClient<ConversationClient>({
      listPins: () => ({ messages: [pinned] }) as unknown as ListPinsResponse,
      pinMessage: () => ({ message: { ...pinned, pinnedAtMs: 0n } }) as unknown as PinMessageResponse,
    });
    const pins = new Pins(ts, { client, read: () => Promise.resolve(text("hi")) });
    await pins.load(CONV);
    expect(ids(ts.s)).toEqual(["m"]);
    await pins.pin(CONV, "m", true);
    expect(calls[1]).toEqual(["pinMessage", { conversationId: CONV, messageId: "m", unpin: true }]);
    expect(ids(ts.s)).toEqual([]);
  });
});
