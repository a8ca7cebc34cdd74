import { describe, expect, it, vi } from "vitest";
import type { ReceiptEvent, TypingEvent } from "../gen/kitsulan/v1/gateway_pb";
import type { ConversationClient } from "./conversations";
import { apply, readMarkDue, Receipts, TYPING_MS } from "./receipts";
import { BOB, CAROL, CONV, ME, OTHER_CONV, TestState, conversation, fakeClient, item, message, state } from "./testkit";

const receipt = (accountId: string, deliveredSeq: bigint, readSeq: bigint) =>
  ({ conversationId: CONV, accountId, deliveredSeq, readSeq, unreadCount: 0 }) as ReceiptEvent;
const typing = (accountId: string, on: boolean, conversationId = CONV) => ({ conversationId, accountId, typing: on }) as TypingEvent;

describe("receipts.apply", () => {
  it("keeps how far each member got, never going back", () => {
    let s = apply(state(), { type: "receipt", receipt: receipt(BOB, 5n, 3n), me: ME });
    expect(s.receipts[CONV]?.[BOB]).toEqual({ delivered: 5n, read: 3n });
    s = apply(s, { type: "receipt", receipt: receipt(BOB, 4n, 4n), me: ME });
    expect(s.receipts[CONV]?.[BOB]).toEqual({ delivered: 5n, read: 4n });
    s = apply(s, { type: "receipt", receipt: receipt(CAROL, 1n, 0n), me: ME });
    expect(Object.keys(s.receipts[CONV] ?? {})).toEqual([BOB, CAROL]);
  });

  it("leaves our own receipts to the conversation (its unread count)", () => {
    const s = state();
    expect(apply(s, { type: "receipt", receipt: receipt(ME, 9n, 9n), me: ME })).toBe(s);
  });

  it("shows someone typing for TYPING_MS after their last update, until they stop", () => {
    let s = apply(state(), { type: "typing", typing: typing(BOB, true), me: ME, now: 1000 });
    expect(s.typing[CONV]).toEqual({ [BOB]: 1000 + TYPING_MS });
    s = apply(s, { type: "typing", typing: typing(CAROL, true), me: ME, now: 2000 });
    s = apply(s, { type: "typing", typing: typing(BOB, false), me: ME, now: 2500 });
    expect(s.typing[CONV]).toEqual({ [CAROL]: 2000 + TYPING_MS });
  });

  it("ignores our own typing (from another device)", () => {
    const s = state();
    expect(apply(s, { type: "typing", typing: typing(ME, true), me: ME, now: 1 })).toBe(s);
  });

  it("expires the indicators whose time is up, and changes nothing before", () => {
    let s = apply(state(), { type: "typing", typing: typing(BOB, true), me: ME, now: 0 });
    s = apply(s, { type: "typing", typing: typing(CAROL, true, OTHER_CONV), me: ME, now: 3000 });
    expect(apply(s, { type: "typingExpired", now: TYPING_MS - 1 })).toBe(s);
    const later = apply(s, { type: "typingExpired", now: TYPING_MS });
    expect(later.typing).toEqual({ [CONV]: {}, [OTHER_CONV]: { [CAROL]: 3000 + TYPING_MS } });
    expect(apply(later, { type: "typingExpired", now: 3000 + TYPING_MS }).typing).toEqual({ [CONV]: {}, [OTHER_CONV]: {} });
  });
});

describe("readMarkDue", () => {
  const withThread = (readSeq: bigint, unreadCount: number) =>
    state({ conversations: [conversation({ members: [{ accountId: ME, readSeq }, BOB], unreadCount })] });
  const thread = (s: ReturnType<typeof state>) => ({
    ...s,
    threads: { [CONV]: { items: [item(message({ id: "a", seq: 4n })), item(message({ id: "b", seq: 6n }))], more: false, loaded: true } },
  });

  it("is the newest message's sequence number while something is unread or not marked", () => {
    expect(readMarkDue(thread(withThread(4n, 0)), CONV)).toBe(6n);
    expect(readMarkDue(thread(withThread(6n, 1)), CONV)).toBe(6n);
  });

  // offline (issue 17): a device marks read only what it could decrypt and show.
  it("stops before the first message from someone else that is not decrypted yet", () => {
    const waiting = { kind: "undecryptable" as const, reason: "waiting for the key", sessionId: "s" };
    const s = {
      ...withThread(0n, 3),
      threads: {
        [CONV]: {
          items: [
            item(message({ id: "a", seq: 4n })),
            // Ours from another device, not decrypted here: we wrote it, it does not stop the mark.
            item(message({ id: "o", seq: 5n, senderAccountId: ME }), waiting),
            item(message({ id: "b", seq: 6n })),
            item(message({ id: "c", seq: 7n }), waiting),
            item(message({ id: "d", seq: 8n })),
          ],
          more: false,
          loaded: true,
        },
      },
    };
    expect(readMarkDue(s, CONV)).toBe(6n);
    // Marked that far already: nothing more to mark until it decrypts (even with unread left).
    const marked = { ...s, conversations: [conversation({ members: [{ accountId: ME, readSeq: 6n }, BOB], unreadCount: 2 })] };
    expect(readMarkDue(marked, CONV)).toBeNull();
    // The first message not decrypted: nothing at all.
    const first = { ...s, threads: { [CONV]: { items: [item(message({ id: "c", seq: 7n }), waiting)], more: false, loaded: true } } };
    expect(readMarkDue(first, CONV)).toBeNull();
  });

  it("is null when all is read, there is no message, or no such conversation", () => {
    expect(readMarkDue(thread(withThread(6n, 0)), CONV)).toBeNull();
    expect(readMarkDue(withThread(0n, 0), CONV)).toBeNull();
    expect(readMarkDue(thread(state()), CONV)).toBeNull();
  });
});

describe("Receipts", () => {
  function setup(active: string | null, visible: boolean) {
    const s = state({
      conversations: [conversation({ members: [ME, BOB], unreadCount: 2 })],
      threads: { [CONV]: { items: [item(message({ id: "a", seq: 3n }))], more: false, loaded: true } },
      active,
    });
    const st = new TestState(s);
    const fake = fakeClient<ConversationClient>({
      markRead: (() => ({ readSeq: 3n, unreadCount: 0 })) as never,
    });
    const sendTyping = vi.fn((_c: string, _t: boolean) => undefined);
    const receipts = new Receipts(st, { client: fake.client, sendTyping, visible: () => visible, now: () => 42_000 });
    return { receipts, st, calls: fake.calls, sendTyping };
  }

  it("marks the conversation on screen read up to its newest message", async () => {
    const { receipts, st, calls } = setup(CONV, true);
    receipts.markReadIfVisible(CONV);
    await vi.waitFor(() => expect(st.s.conversations[0]?.unreadCount).toBe(0));
    expect(calls).toEqual([["markRead", { conversationId: CONV, seq: 3n }]]);
    expect(st.s.conversations[0]?.members[0]?.readSeq).toBe(3n);
  });

  it("marks nothing when the conversation is not on screen or the page is hidden", async () => {
    for (const [active, visible] of [
      [OTHER_CONV, true],
      [CONV, false],
    ] as const) {
      const { receipts, calls } = setup(active, visible);
      receipts.markReadIfVisible(CONV);
      await Promise.resolve();
      expect(calls).toEqual([]);
    }
  });

  it("sends typing updates and expires indicators at the current time", () => {
    const { receipts, st, sendTyping } = setup(null, true);
    receipts.typing(CONV, true);
    expect(sendTyping).toHaveBeenCalledWith(CONV, true);
    st.dispatch({ type: "typing", typing: typing(BOB, true), me: ME, now: 42_000 - TYPING_MS });
    receipts.expireTyping();
    expect(st.s.typing[CONV]).toEqual({});
    expect(st.events.at(-1)).toEqual({ type: "typingExpired", now: 42_000 });
  });
});
