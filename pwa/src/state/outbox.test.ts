import { Code } from "@connectrpc/connect";
import { describe, expect, it, vi } from "vitest";
import { MAX_TEXT_LENGTH } from "../crypto/content";
import { create, toBinary } from "@bufbuild/protobuf";
import { ContentSchema, type Content } from "../gen/kitsulan/v1/content_pb";
import { ConversationMode, type SendMessageRequest } from "../gen/kitsulan/v1/conversation_pb";
import { BACKOFF_MS, GIVE_UP_MS, KEY_CHANGED, TEXT_TOO_LONG, TIMED_OUT, withOutbox, type OutboxRecord } from "./outbox";
import { memoryStorage, offline, outboxSetup, plainContent, refusal } from "./outbox.testkit";
import { BOB, CONV, ME, MY_DEVICE, OTHER_CONV, TestState, conversation, item, message, state, text } from "./testkit";

type Req = Partial<SendMessageRequest> & { messageId: string; ciphertext?: Uint8Array };

const td = new TextDecoder();
const ct = (req: unknown) => td.decode((req as Req).ciphertext);
const acked = (req: unknown) => ({
  message: message({ id: (req as Req).messageId, seq: 5n, senderAccountId: ME, ciphertext: (req as Req).ciphertext ?? new Uint8Array() }),
});
const records = (st: TestState, c = CONV) => st.s.outbox[c] ?? [];
const sent = (calls: Array<[string, unknown]>) => calls.filter(([m]) => m === "sendMessage").map(([, r]) => r as Req);

describe("the outbox", () => {
  it("writes a message before it shows, shows it at once, and removes it only after the server acknowledged", async () => {
    const storage = memoryStorage();
    let release = () => undefined as void;
    let storedWhileSending = false;
    const { outbox, st, calls } = outboxSetup({
      storage,
      client: {
        sendMessage: ((req: Req) => {
          storedWhileSending = storage.records.size === 1;
          return new Promise((resolve) => {
            release = () => resolve(acked(req));
          });
        }) as never,
      },
    });
    const id = await outbox.send(CONV, "hello", "reply-to");
    // Written and shown as soon as send() resolves (the composer may clear its draft).
    expect(storage.records.size).toBe(1);
    expect(records(st)).toHaveLength(1);
    const shown = withOutbox([], records(st), st.s.me);
    expect(shown[0]).toMatchObject({ local: "sending", content: text("hello") });
    expect(shown[0]?.message).toMatchObject({ id, senderAccountId: ME, senderDeviceId: MY_DEVICE, replyTo: "reply-to", seq: 0n });
    await vi.waitFor(() => expect(sent(calls)).toHaveLength(1));
    expect(storedWhileSending).toBe(true);
    expect(sent(calls)[0]).toMatchObject({ conversationId: CONV, messageId: id, replyTo: "reply-to" });
    release();
    await vi.waitFor(() => expect(storage.records.size).toBe(0));
    expect(records(st)).toEqual([]);
    expect(st.s.threads[CONV]?.items.map((i) => [i.message.id, i.message.seq, i.local])).toEqual([[id, 5n, undefined]]);
    expect(st.s.previews[CONV]).toBe("hello");
  });

  it("sends strictly in order per conversation, one at a time, while another conversation goes on its own", async () => {
    const waiting: Array<() => void> = [];
    const st = new TestState(state({ conversations: [conversation({}), conversation({ id: OTHER_CONV })] }));
    const { outbox, calls } = outboxSetup({
      st,
      client: {
        sendMessage: ((req: Req) => new Promise((resolve) => waiting.push(() => resolve(acked(req))))) as never,
      },
    });
    const ids = [await outbox.send(CONV, "one"), await outbox.send(CONV, "two"), await outbox.send(OTHER_CONV, "elsewhere")];
    ids.push(await outbox.send(CONV, "three"));
    await vi.waitFor(() => expect(sent(calls)).toHaveLength(2));
    // One in flight in each conversation.
    expect(sent(calls).map(ct)).toEqual(["one#1", "elsewhere#2"]);
    waiting.shift()?.(); // "one" acknowledged: "two" goes
    await vi.waitFor(() => expect(sent(calls)).toHaveLength(3));
    waiting.shift()?.();
    waiting.shift()?.(); // "two" acknowledged: "three" goes
    await vi.waitFor(() => expect(sent(calls)).toHaveLength(4));
    waiting.shift()?.();
    await vi.waitFor(() => expect(records(st)).toEqual([]));
    expect(sent(calls).filter((r) => r.conversationId === CONV).map(ct)).toEqual(["one#1", "two#3", "three#4"]);
    expect(sent(calls).filter((r) => r.conversationId === CONV).map((r) => r.messageId)).toEqual([ids[0], ids[1], ids[3]]);
    // Ids are chosen at enqueue (UUIDv7), one per message.
    expect(new Set(ids).size).toBe(4);
  });

  it("many quick messages all go, once each, in order", async () => {
    const { outbox, st, calls } = outboxSetup({ client: { sendMessage: acked as never } });
    for (let i = 0; i < 30; i++) {
      await outbox.send(CONV, `n${i}`);
      for (let k = 0; k < i % 7; k++) await Promise.resolve();
    }
    await vi.waitFor(() => expect(records(st)).toEqual([]));
    expect(sent(calls).map((r) => ct(r).split("#")[0])).toEqual(Array.from({ length: 30 }, (_, i) => `n${i}`));
  });

  it("a retry after a network failure sends the same id and the same ciphertext, encrypted once", async () => {
    let failures = 2;
    const { outbox, calls, engine, waits, storage } = outboxSetup({
      client: {
        sendMessage: ((req: Req) => {
          if (failures-- > 0) throw offline();
          return acked(req);
        }) as never,
      },
    });
    await outbox.send(CONV, "hello");
    await vi.waitFor(() => expect(storage.records.size).toBe(0));
    expect(engine.encrypt).toHaveBeenCalledOnce();
    expect(sent(calls)).toHaveLength(3);
    expect(new Set(sent(calls).map((r) => r.messageId)).size).toBe(1);
    expect(sent(calls).map(ct)).toEqual(["hello#1", "hello#1", "hello#1"]);
    expect(waits).toEqual([BACKOFF_MS[0], BACKOFF_MS[1]]);
  });

  it("backs off while the server is unreachable, then says Not sent after GIVE_UP_MS, and Retry sends it", async () => {
    let down = true;
    const { outbox, st, calls, waits, storage, engine } = outboxSetup({
      client: {
        sendMessage: ((req: Req) => {
          if (down) throw offline();
          return acked(req);
        }) as never,
      },
    });
    const id = await outbox.send(CONV, "hello");
    await vi.waitFor(() => expect(records(st)[0]?.failed).toBe(TIMED_OUT));
    expect(waits.slice(0, BACKOFF_MS.length)).toEqual(BACKOFF_MS);
    expect(waits.every((w) => w <= 30_000)).toBe(true);
    expect(waits.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(GIVE_UP_MS);
    const tries = sent(calls).length;
    // Not sent: it stays (also in IndexedDB) and is not tried again on its own.
    outbox.kick();
    await Promise.resolve();
    expect(sent(calls)).toHaveLength(tries);
    expect(storage.records.size).toBe(1);
    const shown = withOutbox([], records(st), st.s.me)[0];
    expect(shown).toMatchObject({ local: "failed", failure: TIMED_OUT });

    down = false;
    await outbox.retry(shown?.outboxKey ?? "");
    await vi.waitFor(() => expect(storage.records.size).toBe(0));
    expect(sent(calls).at(-1)).toMatchObject({ messageId: id });
    expect(engine.encrypt).toHaveBeenCalledOnce();
  });

  it("a refusal that will not change ends as Not sent at once, never retried; the next message still goes", async () => {
    const { outbox, st, calls, waits } = outboxSetup({
      client: {
        sendMessage: ((req: Req) => {
          if (ct(req).startsWith("too big")) throw refusal("MESSAGE_TOO_LARGE", Code.InvalidArgument);
          return acked(req);
        }) as never,
      },
    });
    await outbox.send(CONV, "too big");
    await outbox.send(CONV, "fine");
    await vi.waitFor(() => expect(records(st)).toHaveLength(1));
    expect(records(st)[0]).toMatchObject({ failed: "MESSAGE_TOO_LARGE" });
    expect(sent(calls).map(ct)).toEqual(["too big#1", "fine#2"]);
    expect(waits).toEqual([]);
  });

  it("removed from the conversation (or it is gone): Not sent with the server's reason", async () => {
    const { outbox, st } = outboxSetup({
      client: {
        sendMessage: (() => {
          throw refusal("CONVERSATION_NOT_FOUND", Code.NotFound);
        }) as never,
      },
    });
    await outbox.send(CONV, "hello?");
    await vi.waitFor(() => expect(records(st)[0]?.failed).toBe("CONVERSATION_NOT_FOUND"));
  });

  it("a conversation this device does not list yet: its members are asked for; a gone one is Not sent", async () => {
    const { outbox, st, calls, engine } = outboxSetup({
      st: new TestState(state()),
      client: {
        getConversation: ((req: { conversationId: string }) => {
          if (req.conversationId === OTHER_CONV) throw refusal("CONVERSATION_NOT_FOUND", Code.NotFound);
          return { conversation: conversation({ members: [ME, BOB] }) };
        }) as never,
        sendMessage: acked as never,
      },
    });
    await outbox.send(CONV, "hi");
    await outbox.send(OTHER_CONV, "nobody there");
    await vi.waitFor(() => expect(records(st, OTHER_CONV)[0]?.failed).toBe("CONVERSATION_NOT_FOUND"));
    await vi.waitFor(() => expect(records(st)).toEqual([]));
    expect(engine.encrypt).toHaveBeenCalledOnce();
    expect(engine.encrypt.mock.calls[0]?.slice(0, 2)).toEqual([CONV, [ME, BOB]]);
    expect(plainContent(engine.encrypt.mock.calls[0]?.[2])).toEqual({ kind: "text", text: "hi", replyTo: "" });
    expect(sent(calls)).toHaveLength(1);
  });

  it("a member with no device that can read: the warning is kept with the record and on the sent message", async () => {
    const { outbox, st, engine } = outboxSetup({ client: { sendMessage: acked as never } });
    engine.encrypt.mockResolvedValueOnce({
      messageId: "ignored",
      ciphertext: new Uint8Array([1]),
      sessionId: new Uint8Array([9]),
      unreadableBy: [BOB],
    });
    await outbox.send(CONV, "hello");
    await vi.waitFor(() => expect(records(st)).toEqual([]));
    const items = st.s.threads[CONV]?.items ?? [];
    expect(items).toHaveLength(1);
    expect(items[0]?.unreadableBy).toEqual([BOB]);
  });

  it("a changed account key: Not sent at once (the warning shows), not retried", async () => {
    const { outbox, st, keyChanged, engine } = outboxSetup({ client: { sendMessage: acked as never } });
    const err = Object.assign(new Error("key changed"), { name: "AccountKeyChanged" });
    engine.encrypt.mockRejectedValueOnce(err);
    await outbox.send(CONV, "hello");
    await vi.waitFor(() => expect(records(st)[0]?.failed).toBe(KEY_CHANGED));
    expect(keyChanged).toHaveBeenCalledWith(err);
  });

  it("Delete on a Not-sent message takes it out of the outbox and the thread", async () => {
    const { outbox, st, storage } = outboxSetup({
      client: {
        sendMessage: (() => {
          throw refusal("NOT_ALLOWED", Code.PermissionDenied);
        }) as never,
      },
    });
    await outbox.send(CONV, "hello");
    await vi.waitFor(() => expect(records(st)[0]?.failed).toBe("NOT_ALLOWED"));
    await outbox.discard(records(st)[0]?.key ?? "");
    expect(records(st)).toEqual([]);
    expect(storage.records.size).toBe(0);
    expect(withOutbox([], records(st), st.s.me)).toEqual([]);
  });

  it("survives a reload: a new outbox over what was written resumes with the same id and ciphertext", async () => {
    const storage = memoryStorage();
    const clock = { now: 1_700_000_000_000 };
    // The first page: encrypted and tried once, the network is down, then the tab dies.
    const first = outboxSetup({
      storage,
      clock,
      waits: "blocked",
      client: {
        sendMessage: (() => {
          throw offline();
        }) as never,
      },
    });
    const id1 = await first.outbox.send(CONV, "one");
    const id2 = await first.outbox.send(CONV, "two");
    await vi.waitFor(() => expect(first.waits).toHaveLength(1));
    first.outbox.stop();
    const firstBytes = ct(sent(first.calls)[0]);

    // The next page: what was left shows at once and goes, in order, the first one's bytes as
    // they were (no second encryption of the same id).
    clock.now += 60_000;
    const second = outboxSetup({ storage, clock, client: { sendMessage: acked as never } });
    await second.outbox.load();
    expect(withOutbox([], records(second.st), second.st.s.me).map((i) => [i.message.id, i.local])).toEqual([
      [id1, "sending"],
      [id2, "sending"],
    ]);
    await vi.waitFor(() => expect(storage.records.size).toBe(0));
    expect(sent(second.calls).map((r) => [r.messageId, ct(r)])).toEqual([
      [id1, firstBytes],
      [id2, "two#1"],
    ]);
    expect(second.engine.encrypt).toHaveBeenCalledOnce();
    // A later message goes after them (its record sorts last).
    await second.outbox.send(CONV, "three");
    await vi.waitFor(() => expect(sent(second.calls).map(ct).at(-1)).toBe("three#2"));
  });

  it("after a long time away, what is left gets one try each, then shows Not sent", async () => {
    const storage = memoryStorage();
    const clock = { now: 1_700_000_000_000 };
    const first = outboxSetup({ storage, clock, waits: "blocked", client: { sendMessage: (() => { throw offline(); }) as never } });
    await first.outbox.send(CONV, "one");
    await first.outbox.send(CONV, "two");
    await vi.waitFor(() => expect(first.waits).toHaveLength(1));
    first.outbox.stop();
    clock.now += GIVE_UP_MS * 10;
    const second = outboxSetup({ storage, clock, client: { sendMessage: (() => { throw offline(); }) as never } });
    await second.outbox.load();
    await vi.waitFor(() => expect(records(second.st).map((r) => r.failed)).toEqual([TIMED_OUT, TIMED_OUT]));
    expect(sent(second.calls)).toHaveLength(2);
    expect(second.waits).toEqual([]);
  });

  it("the gateway reconnecting cuts the wait short", async () => {
    let down = true;
    const { outbox, storage, calls } = outboxSetup({
      waits: "blocked",
      client: {
        sendMessage: ((req: Req) => {
          if (down) throw offline();
          return acked(req);
        }) as never,
      },
    });
    await outbox.send(CONV, "hello");
    await vi.waitFor(() => expect(sent(calls)).toHaveLength(1));
    down = false;
    outbox.kick();
    await vi.waitFor(() => expect(storage.records.size).toBe(0));
    expect(sent(calls)).toHaveLength(2);
  });

  it("a reconnect during a failing attempt makes the next attempt go at once, not after the wait", async () => {
    let tries = 0;
    const box = outboxSetup({
      waits: "blocked",
      client: {
        sendMessage: ((req: Req) => {
          tries++;
          if (tries === 1) {
            box.outbox.kick(); // the gateway came back while this attempt was failing
            throw offline();
          }
          return acked(req);
        }) as never,
      },
    });
    await box.outbox.send(CONV, "hello");
    await vi.waitFor(() => expect(box.storage.records.size).toBe(0));
    expect(tries).toBe(2);
    expect(box.waits).toEqual([]);
  });

  it("edits and deletions go through the outbox too, in order with the sends, and show at once", async () => {
    const original = message({ id: "m1", seq: 1n, senderAccountId: ME });
    const other = message({ id: "m2", seq: 2n, senderAccountId: ME });
    const order: string[] = [];
    let release = () => undefined as void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { outbox, st, calls } = outboxSetup({
      client: {
        sendMessage: (async (req: Req) => {
          order.push(`send ${ct(req)}`);
          await gate;
          return acked(req);
        }) as never,
        editMessage: ((req: Req) => {
          order.push(`edit ${req.messageId} ${ct(req)}`);
          return { message: { ...original, editedAtMs: 7n, ciphertext: req.ciphertext } };
        }) as never,
        deleteMessage: ((req: Req) => {
          order.push(`delete ${req.messageId}`);
          return { message: { ...other, deletedAtMs: 8n } };
        }) as never,
      },
    });
    st.dispatch({ type: "messagesChanged", conversationId: CONV, items: [item(original, text("before")), item(other, text("bye"))] });
    await outbox.send(CONV, "new");
    await outbox.edit(CONV, "m1", "after");
    await outbox.remove(CONV, "m2");
    const shown = withOutbox(st.s.threads[CONV]?.items ?? [], records(st), st.s.me);
    expect(shown.map((i) => [i.message.id === "m1" || i.message.id === "m2" ? i.message.id : "new", i.content, i.local])).toEqual([
      ["m1", text("after"), "sending"],
      ["m2", { kind: "deleted" }, "sending"],
      ["new", text("new"), "sending"],
    ]);
    await vi.waitFor(() => expect(order).toHaveLength(1));
    expect(calls.map(([m]) => m)).toEqual(["sendMessage"]);
    release();
    await vi.waitFor(() => expect(records(st)).toEqual([]));
    expect(order).toEqual(["send new#1", "edit m1 after#2", "delete m2"]);
    const items = st.s.threads[CONV]?.items ?? [];
    expect(items.map((i) => [i.message.id.length > 2 ? "new" : i.message.id, i.content.kind === "text" ? i.content.text : i.content.kind])).toEqual([
      ["m1", "after"],
      ["m2", "deleted"],
      ["new", "new"],
    ]);
  });

  it("encrypts typed content: a reply names its message inside, an edit names the message it edits", async () => {
    const original = message({ id: "m1", seq: 1n, senderAccountId: ME });
    const { outbox, st, engine } = outboxSetup({
      client: {
        sendMessage: acked as never,
        editMessage: (() => ({ message: { ...original, editedAtMs: 7n } })) as never,
      },
    });
    st.dispatch({ type: "messagesChanged", conversationId: CONV, items: [item(original, text("before"))] });
    const id = await outbox.send(CONV, '{"attachment":"a1","secrets":"AQ=="}', "m1");
    await outbox.edit(CONV, "m1", "after");
    await vi.waitFor(() => expect(records(st)).toEqual([]));
    const [reply, edit] = engine.encrypt.mock.calls.map((c) => c[2]);
    // Text that looks like the old attachment JSON stays text.
    expect(plainContent(reply, id)).toEqual({ kind: "text", text: '{"attachment":"a1","secrets":"AQ=="}', replyTo: "m1" });
    expect(plainContent(edit, "m1")).toEqual({ kind: "text", text: "after" });
    expect(plainContent(edit, id)).toMatchObject({ kind: "undecryptable", reason: "edit for another message" });
    expect(st.s.threads[CONV]?.items.find((i) => i.message.id === id)?.content).toMatchObject({ kind: "text", replyTo: "m1" });
  });

  it("a text longer than MAX_TEXT_LENGTH is kept but ends as Not sent at once, never encrypted or sent", async () => {
    const original = message({ id: "m1", seq: 1n, senderAccountId: ME });
    const { outbox, st, engine, calls } = outboxSetup({ client: { sendMessage: acked as never } });
    st.dispatch({ type: "messagesChanged", conversationId: CONV, items: [item(original, text("before"))] });
    const long = "x".repeat(MAX_TEXT_LENGTH + 1);
    await outbox.send(CONV, long);
    await outbox.edit(CONV, "m1", long);
    await outbox.send(CONV, "x".repeat(MAX_TEXT_LENGTH));
    await vi.waitFor(() => expect(records(st).map((r) => r.failed)).toEqual([TEXT_TOO_LONG, TEXT_TOO_LONG]));
    expect(engine.encrypt).toHaveBeenCalledOnce(); // the one at the limit
    expect(sent(calls)).toHaveLength(1);
    expect(records(st).map((r) => r.action.kind)).toEqual(["send", "edit"]);
  });

  it("a Not-sent edit is discarded: the message shows as it was", async () => {
    const original = message({ id: "m1", seq: 1n, senderAccountId: ME });
    const { outbox, st } = outboxSetup({
      client: {
        editMessage: (() => {
          throw refusal("MESSAGE_DELETED");
        }) as never,
      },
    });
    st.dispatch({ type: "messagesChanged", conversationId: CONV, items: [item(original, text("before"))] });
    await outbox.edit(CONV, "m1", "after");
    await vi.waitFor(() => expect(records(st)[0]?.failed).toBe("MESSAGE_DELETED"));
    expect(withOutbox(st.s.threads[CONV]?.items ?? [], records(st), st.s.me)[0]).toMatchObject({
      content: text("after"),
      local: "failed",
      failure: "MESSAGE_DELETED",
    });
    await outbox.discard(records(st)[0]?.key ?? "");
    expect(withOutbox(st.s.threads[CONV]?.items ?? [], records(st), st.s.me)[0]).toMatchObject({ content: text("before") });
    expect(withOutbox(st.s.threads[CONV]?.items ?? [], records(st), st.s.me)[0]?.local).toBeUndefined();
  });
});

describe("withOutbox", () => {
  const me = { accountId: ME, deviceId: MY_DEVICE };
  const rec = (over: Partial<OutboxRecord>): OutboxRecord => ({
    key: "msg/c/1",
    conversationId: CONV,
    messageId: "p1",
    action: { kind: "send", text: "pending", replyTo: "" },
    createdAtMs: 5,
    sinceMs: 5,
    ...over,
  });

  it("leaves the thread alone without records", () => {
    const items = [item(message({ id: "m1", seq: 1n }))];
    expect(withOutbox(items, undefined, me)).toBe(items);
  });

  it("drops a send the server already acknowledged (no double bubble), and skips changes to messages not loaded", () => {
    const items = [item(message({ id: "p1", seq: 3n, senderAccountId: ME }), text("pending"))];
    const out = withOutbox(items, [rec({}), rec({ key: "msg/c/2", messageId: "unknown", action: { kind: "delete" } })], me);
    expect(out).toEqual(items);
  });

  it("a pending file shows as a card without an attachment id yet", () => {
    const out = withOutbox(
      [],
      [rec({ action: { kind: "file", file: { ref: { name: "a.txt", type: "text/plain", size: 3, secrets: "k" }, ttlSeconds: 0, kept: true } } })],
      me,
    );
    expect(out[0]?.content).toEqual({ kind: "attachment", file: { name: "a.txt", type: "text/plain", size: 3, secrets: "k", attachment: "" } });
  });

  it("a cloud conversation's message goes as its Content, never encrypted, the same on a retry; edits too", async () => {
    const st = new TestState(state({ conversations: [conversation({ mode: ConversationMode.CLOUD })] }));
    let fail = true;
    const { outbox, calls, engine } = outboxSetup({
      st,
      waits: "instant",
      client: {
        sendMessage: ((req: Req) => {
          if (fail) {
            fail = false;
            return Promise.reject(offline());
          }
          return Promise.resolve(acked(req));
        }) as never,
        editMessage: ((req: { messageId: string }) => Promise.resolve({ message: message({ id: req.messageId, seq: 5n, senderAccountId: ME, editedAtMs: 9n }) })) as never,
      },
    });
    const mentions = [{ accountId: BOB, start: 3, end: 7 }];
    const id = await outbox.send(CONV, "hi @Bob", "", { mentions });
    await vi.waitFor(() => expect(sent(calls)).toHaveLength(2));
    expect(engine.encrypt).not.toHaveBeenCalled();
    const [first, second] = sent(calls) as Array<Req & { content?: Content }>;
    expect(first?.ciphertext ?? new Uint8Array()).toHaveLength(0);
    expect(first?.sessionId ?? new Uint8Array()).toHaveLength(0);
    expect(first?.content?.body.case).toBe("text");
    expect(first?.content?.body.value).toMatchObject({ body: "hi @Bob", mentions: [{ accountId: BOB, start: 3, end: 7 }] });
    expect(toBinary(ContentSchema, second?.content ?? create(ContentSchema))).toEqual(toBinary(ContentSchema, first?.content ?? create(ContentSchema)));
    await vi.waitFor(() => expect(st.s.outbox[CONV] ?? []).toEqual([]));
    expect(st.s.threads[CONV]?.items[0]?.content).toMatchObject({ kind: "text", text: "hi @Bob", mentions });
    await outbox.edit(CONV, id, "hello again");
    await vi.waitFor(() => expect(calls.some(([m]) => m === "editMessage")).toBe(true));
    const edit = calls.find(([m]) => m === "editMessage")?.[1] as { content?: Content; ciphertext?: Uint8Array };
    expect(edit.content?.body).toMatchObject({ case: "text", value: { body: "hello again" } });
    expect(edit.ciphertext ?? new Uint8Array()).toHaveLength(0);
  });

  it("an E2EE message carries its quote, forwarded mark and mentions inside the encryption", async () => {
    const { outbox, engine } = outboxSetup({ client: { sendMessage: ((req: Req) => Promise.resolve(acked(req))) as never } });
    await outbox.send(CONV, "yes", "m0", { quote: "the part", forwarded: { fromAccountId: BOB, sentAtMs: 42 }, mentions: [] });
    await vi.waitFor(() => expect(engine.encrypt).toHaveBeenCalled());
    const plaintext = engine.encrypt.mock.calls[0]?.[2];
    expect(plainContent(plaintext, "x")).toMatchObject({ kind: "text", text: "yes", replyTo: "m0", quote: "the part", forwarded: { fromAccountId: BOB, sentAtMs: 42 } });
  });
});
