import { describe, expect, it, vi } from "vitest";
import type { Content } from "../crypto/content";
import { create } from "@bufbuild/protobuf";
import { ContentSchema, TextContentSchema } from "../gen/kitsulan/v1/content_pb";
import { ReactionCountSchema, type Message } from "../gen/kitsulan/v1/conversation_pb";
import { MessageChange } from "../gen/kitsulan/v1/gateway_pb";
import type { ConversationClient } from "./conversations";
import { apply, merge, Messages, readMessage, waitingFor, type Item } from "./messages";
import { BOB, CONV, ME, OTHER_CONV, TestState, conversation, fakeClient, item, message, state, text } from "./testkit";

const seqs = (items: Item[]) => items.map((i) => i.message.seq);
const texts = (items: Item[]) => items.map((i) => (i.content.kind === "text" ? i.content.text : i.content.kind));

describe("merge", () => {
  const m1 = message({ id: "m1", seq: 1n });
  const m2 = message({ id: "m2", seq: 2n });

  it("orders by sequence number, our unsent messages last", () => {
    const pending = message({ id: "p", seq: 0n, senderAccountId: ME });
    const t = merge(undefined, [item(pending, text("p"), { local: "sending" }), item(m2), item(m1)]);
    expect(texts(t.items)).toEqual(["hello", "hello", "p"]);
    expect(seqs(t.items)).toEqual([1n, 2n, 0n]);
    expect(t).toMatchObject({ more: true, loaded: false });
  });

  it("drops a duplicate (a message delivered twice after a reconnect)", () => {
    const t = merge(merge(undefined, [item(m1, text("first"))]), [item(m1, text("again"))]);
    expect(texts(t.items)).toEqual(["first"]);
  });

  it("replaces a message by a newer edit or its deletion, never by an older version", () => {
    const held = merge(undefined, [item({ ...m1, editedAtMs: 5n }, text("v2"))]);
    expect(texts(merge(held, [item({ ...m1, editedAtMs: 9n }, text("v3"))]).items)).toEqual(["v3"]);
    expect(texts(merge(held, [item({ ...m1, editedAtMs: 3n }, text("v1"))]).items)).toEqual(["v2"]);
    expect(texts(merge(held, [item({ ...m1, editedAtMs: 5n, deletedAtMs: 7n }, { kind: "deleted" })]).items)).toEqual(["deleted"]);
  });

  it("replaces our pending copy and an undecryptable one by whatever comes", () => {
    const pending = merge(undefined, [item(m1, text("mine"), { local: "sending" })]);
    expect(merge(pending, [item(m1, text("mine"))]).items[0]?.local).toBeUndefined();
    const waiting = merge(undefined, [item(m1, { kind: "undecryptable", reason: "no key", sessionId: "s" })]);
    expect(texts(merge(waiting, [item(m1, text("now readable"))]).items)).toEqual(["now readable"]);
  });
});

describe("messages.apply", () => {
  it("a page of history says whether there is more", () => {
    const s = apply(state(), { type: "historyLoaded", conversationId: CONV, items: [item(message({ id: "m1", seq: 1n }))], more: false });
    expect(s.threads[CONV]).toMatchObject({ more: false, loaded: true });
  });

  it("a message arriving joins its conversation's thread", () => {
    const m = message({ id: "m1", seq: 1n, conversationId: OTHER_CONV });
    const s = apply(state(), { type: "messageArrived", message: m, content: text("hi"), known: false, fromOther: true, visible: false });
    expect(texts(s.threads[OTHER_CONV]?.items ?? [])).toEqual(["hi"]);
    expect(s.threads[CONV]).toBeUndefined();
  });

  it("finds the messages that wait for a room key", () => {
    const undecryptable = (sessionId: string): Content => ({ kind: "undecryptable", reason: "", sessionId });
    let s = apply(state(), {
      type: "messagesChanged",
      conversationId: CONV,
      items: [item(message({ id: "a", seq: 1n }), undecryptable("s1")), item(message({ id: "b", seq: 2n }), undecryptable("s2"))],
    });
    s = apply(s, { type: "messagesChanged", conversationId: OTHER_CONV, items: [item(message({ id: "c", seq: 1n }), text("ok"))] });
    expect(waitingFor(s, "s1").map(([c, items]) => [c, items.map((i) => i.message.id)])).toEqual([[CONV, ["a"]]]);
    expect(waitingFor(s, "s3")).toEqual([]);
  });
});


function setup(client: Partial<ConversationClient>, s = state({ conversations: [conversation({ members: [ME, BOB] })] })) {
  const st = new TestState(s);
  const fake = fakeClient<ConversationClient>(client as never);
  const engine = {
    decrypt: vi.fn((m: Message): Promise<Content> => Promise.resolve(text(`text of ${m.id}`))),
  };
  const deps = {
    client: fake.client,
    engine,
    conversations: {
      get: (id: string) => st.s.conversations.find((c) => c.id === id),
      load: vi.fn(() => Promise.resolve()),
    },
    markRead: vi.fn((_id: string) => undefined),
    visible: vi.fn(() => true),
  };
  return { messages: new Messages(st, deps), st, calls: fake.calls, deps };
}

describe("Messages", () => {
  it("loads the newest page first, then backwards from the oldest loaded, and stops when there is no more", async () => {
    const page = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => message({ id: `m${from + i}`, seq: BigInt(from + i) }));
    const { messages, st, calls, deps } = setup({
      listMessages: ((req: { cursor: bigint }) =>
        req.cursor === 0n ? { messages: page(5, 6), more: true } : { messages: page(1, 4), more: false }) as never,
    });
    // Before the conversation is opened: a live message, and an old one edited (e.g. by the outbox).
    st.dispatch({ type: "messagesChanged", conversationId: CONV, items: [item(message({ id: "m6", seq: 6n })), item(message({ id: "m1", seq: 1n }))] });
    await messages.loadOlder(CONV);
    expect(calls[0]?.[1]).toMatchObject({ conversationId: CONV, cursor: 0n, limit: 50 });
    // The old one is dropped until its page comes: no gap in what shows.
    expect(seqs(st.s.threads[CONV]?.items ?? [])).toEqual([5n, 6n]);
    expect(deps.markRead).toHaveBeenCalledWith(CONV);
    await messages.loadOlder(CONV);
    expect(calls[1]?.[1]).toMatchObject({ cursor: 5n });
    expect(seqs(st.s.threads[CONV]?.items ?? [])).toEqual([1n, 2n, 3n, 4n, 5n, 6n]);
    expect(texts(st.s.threads[CONV]?.items ?? []).slice(0, 2)).toEqual(["text of m1", "text of m2"]);
    await messages.loadOlder(CONV);
    expect(calls).toHaveLength(2);
  });

  describe("receive", () => {
    const incoming = message({ id: "m1", seq: 1n, senderAccountId: BOB, sentAtMs: 10n });

    it("a new message from someone else in a conversation not on screen: unread, and told", async () => {
      const { messages, st, deps } = setup({});
      deps.visible.mockReturnValue(false);
      await expect(messages.receive(incoming, MessageChange.NEW)).resolves.toEqual({
        conversationId: CONV,
        senderAccountId: BOB,
        content: text("text of m1"),
      });
      expect(st.s.conversations[0]?.unreadCount).toBe(1);
      expect(deps.markRead).not.toHaveBeenCalled();
      // Delivered again after a reconnect: nothing changes, nobody is told again.
      await expect(messages.receive(incoming, MessageChange.NEW)).resolves.toBeNull();
      expect(st.s.conversations[0]?.unreadCount).toBe(1);
    });

    it("on screen: marked read, not counted", async () => {
      const { messages, st, deps } = setup({}, state({ conversations: [conversation({})], active: CONV }));
      await messages.receive(incoming, MessageChange.NEW);
      expect(st.s.conversations[0]?.unreadCount).toBe(0);
      expect(deps.markRead).toHaveBeenCalledWith(CONV);
    });

    it("ours (from another device), or an edit, is not told", async () => {
      const ours = setup({});
      await expect(ours.messages.receive({ ...incoming, senderAccountId: ME }, MessageChange.NEW)).resolves.toBeNull();
      const edit = setup({});
      await expect(edit.messages.receive(incoming, MessageChange.EDITED)).resolves.toBeNull();
      expect(texts(edit.st.s.threads[CONV]?.items ?? [])).toEqual(["text of m1"]);
    });

    it("in a conversation we do not know yet: the list is loaded first", async () => {
      const { messages, deps } = setup({}, state());
      await expect(messages.receive(incoming, MessageChange.NEW)).resolves.toBeNull();
      expect(deps.conversations.load).toHaveBeenCalled();
    });
  });

  // offline (issue 17, honest receipts): who could not read our message stays on it.
  it("keeps on our message who had no device that could read it, also once the server's copy comes", () => {
    const { st } = setup({});
    // The outbox's acknowledgement (outbox.ts) carries engine.encrypt's unreadableBy.
    st.dispatch({
      type: "messageSent",
      conversationId: CONV,
      message: message({ id: "new-id", seq: 7n, senderAccountId: ME }),
      content: text("can you read this?"),
      unreadableBy: [BOB],
    });
    const sent = st.s.threads[CONV]?.items[0];
    expect(sent?.local).toBeUndefined();
    expect(sent?.unreadableBy).toEqual([BOB]);
    // The same message delivered again over the gateway (the server's copy) keeps it too.
    st.dispatch({
      type: "messageArrived",
      message: message({ id: "new-id", seq: 7n, senderAccountId: ME, editedAtMs: 1n }),
      content: text("x"),
      known: true,
      fromOther: false,
      visible: true,
    });
    expect(st.s.threads[CONV]?.items[0]?.unreadableBy).toEqual([BOB]);
  });

  it("decrypts again the messages that waited for a room key, updates the preview, and marks them read", async () => {
    const { messages, st, deps } = setup({});
    const waiting = message({ id: "w", seq: 4n });
    st.dispatch({
      type: "messagesChanged",
      conversationId: CONV,
      items: [item(waiting, { kind: "undecryptable", reason: "no key", sessionId: "s1" })],
    });
    await messages.retryUndecrypted("s1");
    expect(texts(st.s.threads[CONV]?.items ?? [])).toEqual(["text of w"]);
    expect(st.s.previews[CONV]).toBe("text of w");
    expect(deps.markRead).toHaveBeenCalledWith(CONV);
  });
});

describe("cloud messages, pins, reactions and timers (issue 20)", () => {
  it("reads a cloud message from its Content, an E2EE one by decrypting, whatever the message carries", async () => {
    const decrypt = vi.fn(() => Promise.resolve(text("decrypted")));
    const read = readMessage({ decrypt }, (id) => id === CONV, () => 1000);
    const content = create(ContentSchema, { version: 1, body: { case: "text", value: create(TextContentSchema, { body: "cloud hi" }) } });
    const id = "0193a0a0-0000-7000-8000-000000000001";
    expect(await read(message({ id, content }))).toMatchObject({ kind: "text", text: "cloud hi" });
    expect(decrypt).not.toHaveBeenCalled();
    // A Content on a message of an E2EE conversation is not believed.
    expect(await read(message({ id, conversationId: OTHER_CONV, content }))).toEqual(text("decrypted"));
    expect(await read(message({ id, expiresAtMs: 999n, content }))).toEqual({ kind: "deleted" });
    expect(await read(message({ id }))).toEqual({ kind: "deleted" });
  });

  it("takes a message again when its pin or its reactions changed (not a text edit), never an older state", () => {
    const m1 = message({ id: "m1", seq: 1n, editedAtMs: 5n });
    const held = merge(undefined, [item(m1)]);
    const pinned = { ...m1, pinnedAtMs: 5n, pinnedBy: ME, updatedAtMs: 6n };
    expect(merge(held, [item(pinned)]).items[0]?.message.pinnedAtMs).toBe(5n);
    const reacted = { ...pinned, updatedAtMs: 7n, reactions: [create(ReactionCountSchema, { emoji: "🦊", count: 1, accountIds: [BOB] })] };
    const now = merge(merge(held, [item(pinned)]), [item(reacted)]);
    expect(now.items[0]?.message.reactions).toHaveLength(1);
    // The pin's event arriving late changes nothing; nor does the same state again.
    expect(merge(now, [item(pinned)]).items[0]?.message.reactions).toHaveLength(1);
    expect(merge(now, [item(reacted, text("other"))]).items[0]?.content).toEqual(text("hello"));
    // A text edit after it wins, whatever its updated_at_ms.
    expect(merge(now, [item({ ...m1, editedAtMs: 9n }, text("v2"))]).items[0]?.content).toEqual(text("v2"));
  });

  it("hides messages whose timer ran out, and keeps the state when none did", () => {
    const s = apply(state(), {
      type: "historyLoaded",
      conversationId: CONV,
      items: [item(message({ id: "a", seq: 1n, expiresAtMs: 100n })), item(message({ id: "b", seq: 2n }))],
      more: false,
    });
    expect(apply(s, { type: "expire", now: 99 })).toBe(s);
    expect(texts(apply(s, { type: "expire", now: 100 }).threads[CONV]?.items ?? [])).toEqual(["hello"]);
    expect(apply(s, { type: "expire", now: 100 }).threads[CONV]?.items[0]?.message.id).toBe("b");
  });
});
