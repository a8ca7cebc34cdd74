import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it, vi } from "vitest";
import { contentOf, encodeContent, MALFORMED_REACTION, MAX_REACTION_BYTES, reactionProblem, shownInThread, type Content } from "../crypto/content";
import { ContentSchema, ReactionSchema } from "../gen/kitsulan/v1/content_pb";
import type { SendMessageRequest } from "../gen/kitsulan/v1/conversation_pb";
import type { Item } from "./messages";
import { TIMED_OUT, withOutbox } from "./outbox";
import { memoryStorage, offline, outboxSetup, plainContent } from "./outbox.testkit";
import { MAX_REACTIONS_PER_PERSON, reactionsOf, unreadOf } from "./reactions";
import { BOB, CAROL, CONV, ME, conversation, item, message, text } from "./testkit";

const TARGET = "00000000-0000-7000-8000-0000000000f1";
const SECOND = "00000000-0000-7000-8000-0000000000f2";
let seq = 10n;

const react = (from: string, emoji: string, extra: { remove?: boolean; target?: string; deleted?: boolean; local?: Item["local"]; key?: string } = {}): Item => {
  seq++;
  const content: Content = { kind: "reaction", messageId: extra.target ?? TARGET, emoji, remove: extra.remove ?? false };
  const m = message({ id: `r${seq}`, seq: extra.local ? 0n : seq, senderAccountId: from, deletedAtMs: extra.deleted ? 5n : 0n });
  const i = item(m, content);
  if (extra.local) i.local = extra.local;
  if (extra.key) i.outboxKey = extra.key;
  return i;
};
const target = (id = TARGET, patch: Partial<Item> = {}) => ({ ...item(message({ id, seq: 1n, senderAccountId: BOB }), text("hi")), ...patch });
const chipsOf = (items: Item[], id = TARGET) =>
  (reactionsOf(items, ME).get(id) ?? []).map((c) => ({ emoji: c.emoji, accounts: c.accounts, mine: c.mine }));

describe("reactions aggregated from the thread", () => {
  it("counts who reacted with each emoji, in order of first appearance, ours marked", () => {
    const items = [target(), react(BOB, "🦊"), react(ME, "👍"), react(CAROL, "🦊"), react(ME, "🦊")];
    expect(chipsOf(items)).toEqual([
      { emoji: "🦊", accounts: [BOB, CAROL, ME], mine: true },
      { emoji: "👍", accounts: [ME], mine: true },
    ]);
  });

  it("the latest word of each person wins: taken back, added again; duplicates count once", () => {
    const items = [target(), react(BOB, "🦊"), react(BOB, "🦊"), react(CAROL, "🦊"), react(BOB, "🦊", { remove: true })];
    expect(chipsOf(items)).toEqual([{ emoji: "🦊", accounts: [CAROL], mine: false }]);
    items.push(react(CAROL, "🦊", { remove: true }));
    expect(reactionsOf(items, ME).has(TARGET)).toBe(false);
    items.push(react(BOB, "🦊"));
    expect(chipsOf(items)).toEqual([{ emoji: "🦊", accounts: [BOB], mine: false }]);
  });

  it("taking back what was never said, or another person's reaction, changes nothing", () => {
    const items = [target(), react(BOB, "🦊"), react(CAROL, "🦊", { remove: true }), react(ME, "🎉", { remove: true })];
    expect(chipsOf(items)).toEqual([{ emoji: "🦊", accounts: [BOB], mine: false }]);
  });

  it("a reaction to a message this device does not hold, a deleted one or a system line shows nowhere", () => {
    const system = item(message({ id: SECOND, seq: 2n }), { kind: "system", event: {} as never });
    const deleted = target("gone", { content: { kind: "deleted" } });
    const items = [system, deleted, react(BOB, "🦊", { target: "unknown" }), react(BOB, "🦊", { target: SECOND }), react(BOB, "🦊", { target: "gone" })];
    expect(reactionsOf(items, ME).size).toBe(0);
    // The target loads later (an older page): the reaction shows then.
    expect(chipsOf([target("unknown"), ...items], "unknown")).toEqual([{ emoji: "🦊", accounts: [BOB], mine: false }]);
  });

  it("a reaction message deleted since says nothing", () => {
    expect(reactionsOf([target(), react(BOB, "🦊", { deleted: true })], ME).size).toBe(0);
  });

  it("a malformed emoji held from before (an older app's copy) is ignored", () => {
    const items = [target(), react(BOB, "not an emoji"), react(BOB, "🦊🦊"), react(BOB, "x".repeat(200)), react(BOB, "")];
    expect(reactionsOf(items, ME).size).toBe(0);
  });

  it(`one person has at most ${MAX_REACTIONS_PER_PERSON} different emoji on a message; more are ignored`, () => {
    const emoji = [...Array(MAX_REACTIONS_PER_PERSON + 5).keys()].map((i) => String.fromCodePoint(0x1f600 + i));
    const items = [target(), ...emoji.map((e) => react(BOB, e)), react(CAROL, emoji.at(-1) ?? "")];
    const chips = reactionsOf(items, ME).get(TARGET) ?? [];
    expect(chips.filter((c) => c.accounts.includes(BOB))).toHaveLength(MAX_REACTIONS_PER_PERSON);
    // Another person's is not affected; taking one back makes room again.
    expect(chips.find((c) => c.emoji === emoji.at(-1))?.accounts).toEqual([CAROL]);
    items.push(react(BOB, emoji[0] ?? "", { remove: true }), react(BOB, emoji.at(-1) ?? ""));
    expect(reactionsOf(items, ME).get(TARGET)?.find((c) => c.emoji === emoji.at(-1))?.accounts).toEqual([CAROL, BOB]);
  });

  it("ours still in the outbox counts as said, marked sending or failed with its record", () => {
    const items = [target(), react(BOB, "🦊"), react(ME, "🦊", { local: "sending", key: "k1" }), react(ME, "🎉", { local: "failed", key: "k2" })];
    const chips = reactionsOf(items, ME).get(TARGET);
    expect(chips).toEqual([
      { emoji: "🦊", accounts: [BOB, ME], mine: true, local: "sending", outboxKey: "k1" },
      { emoji: "🎉", accounts: [ME], mine: true, local: "failed", outboxKey: "k2" },
    ]);
    // A take-back that is not sent: the chip stays (to be retried), without us.
    const back = [target(), react(ME, "🦊"), react(ME, "🦊", { remove: true, local: "failed", key: "k3" })];
    expect(reactionsOf(back, ME).get(TARGET)).toEqual([{ emoji: "🦊", accounts: [], mine: false, local: "failed", outboxKey: "k3" }]);
  });
});

describe("malformed reactions are refused in decoding", () => {
  const raw = (emoji: string) => {
    const c = create(ContentSchema, { version: 1, body: { case: "reaction", value: create(ReactionSchema, { messageId: TARGET, emoji }) } });
    return Uint8Array.from([0x00, 0x01, ...toBinary(ContentSchema, c)]);
  };

  it("one emoji of any kind is a reaction", () => {
    const scotland = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
    const family = "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}";
    const rainbow = "\u{1F3F3}\uFE0F\u200D\u{1F308}";
    const holdingHands = "\u{1F9D1}\u{1F3FD}\u200D\u{1F91D}\u200D\u{1F9D1}\u{1F3FB}";
    for (const emoji of ["🦊", "❤️", "☺", "👍🏽", family, rainbow, holdingHands, "🇷🇺", "1️⃣", "#\u20E3", scotland]) {
      expect(reactionProblem(emoji), emoji).toBeNull();
      expect(contentOf(raw(emoji), "m", "s"), emoji).toEqual({ kind: "reaction", messageId: TARGET, emoji, remove: false });
    }
  });

  it("empty, words, several emoji, an emoji with text or controls around it, or an over-long one: refused with a reason, never shown", () => {
    const zalgo = `🦊${"\u0301".repeat(40)}`;
    expect(new TextEncoder().encode(zalgo).length).toBeGreaterThan(MAX_REACTION_BYTES);
    const refused = ["", "a", "1", "ok", "🦊🦊", "🦊 ", " 🦊", "\u202e🦊", "🦊\u0000", "🦊\u0301", "\u200D🦊", "🦊\u200D", "🇷", "🇷🇺🇺", "<img>", zalgo, "🦊".repeat(20)];
    for (const emoji of refused) {
      expect(reactionProblem(emoji), JSON.stringify(emoji)).not.toBeNull();
      const read = contentOf(raw(emoji), "m", "s");
      expect(read.kind === "undecryptable" ? read.reason : read.kind, JSON.stringify(emoji)).toBe(emoji === "" ? "malformed content" : MALFORMED_REACTION);
      if (emoji !== "") expect(shownInThread(read)).toBe(false);
    }
    // Nor is one ever written.
    expect(() => encodeContent({ kind: "reaction", messageId: TARGET, emoji: "two words" })).toThrow(/not a reaction/);
    // The crate's rule (crypto/src/content/emoji.rs), with its stable code and reasons.
    expect(() => encodeContent({ kind: "reaction", messageId: TARGET, emoji: "🦊🦊" })).toThrow(expect.objectContaining({ code: "invalid_reaction" }));
    expect([reactionProblem(""), reactionProblem("ok"), reactionProblem("🦊".repeat(20))]).toEqual(["empty", "not one emoji", "too long"]);
  });
});

describe("the crate's emoji tables", () => {
  it("agree with this engine's Unicode data on every single code point", () => {
    // A lone code point is one emoji exactly when it is Extended_Pictographic (the crate's
    // table from emoji-data.txt); JS's own property, an independent oracle, must agree.
    const pictographic = /^\p{Extended_Pictographic}$/u;
    const disagree: string[] = [];
    for (let c = 0; c <= 0x10ffff; c++) {
      if (c >= 0xd800 && c <= 0xdfff) continue;
      const s = String.fromCodePoint(c);
      if ((reactionProblem(s) === null) !== pictographic.test(s)) disagree.push(c.toString(16));
    }
    expect(disagree).toEqual([]);
  });
});

describe("unread", () => {
  it("reactions from others after our read mark are not unread (the server counts every message)", () => {
    const c = conversation({ unreadCount: 3, members: [{ accountId: ME, readSeq: 1n }, BOB] });
    const thread = { items: [target(), react(BOB, "🦊"), item(message({ id: "n1", seq: 50n }), text("news")), react(BOB, "🎉")] };
    expect(unreadOf(c, thread, ME)).toBe(1);
    // Those before the read mark were never counted; without the thread, the server's count.
    const later = conversation({ unreadCount: 1, members: [{ accountId: ME, readSeq: 10_000n }, BOB] });
    expect(unreadOf(later, thread, ME)).toBe(1);
    expect(unreadOf(c, undefined, ME)).toBe(3);
  });

  it("a live reaction bumps nothing shown: the count the state keeps, less the reaction it holds", () => {
    const c = conversation({ unreadCount: 0, members: [{ accountId: ME, readSeq: 1n }, BOB] });
    expect(unreadOf({ ...c, unreadCount: 1 }, { items: [react(BOB, "🦊")] }, ME)).toBe(0);
    expect(unreadOf({ ...c, unreadCount: 1 }, { items: [react(ME, "🦊")] }, ME)).toBe(1);
  });
});

type Req = Partial<SendMessageRequest> & { messageId: string; ciphertext?: Uint8Array };
const acked = (req: unknown) => ({
  message: message({ id: (req as Req).messageId, seq: 90n, senderAccountId: ME, ciphertext: (req as Req).ciphertext ?? new Uint8Array() }),
});

describe("our reactions go through the outbox", () => {
  it("encrypts a Content reaction naming the message, shows at once, and the sent one stays in the thread", async () => {
    const { outbox, st, engine } = outboxSetup({ client: { sendMessage: acked as never } });
    st.dispatch({ type: "messagesChanged", conversationId: CONV, items: [target()] });
    const key = await outbox.react(CONV, TARGET, "🦊");
    expect(key).toMatch(/^msg\//);
    await vi.waitFor(() => expect(st.s.outbox[CONV]).toBeUndefined());
    const plaintext = engine.encrypt.mock.calls[0]?.[2];
    expect(plainContent(plaintext)).toEqual({ kind: "reaction", messageId: TARGET, emoji: "🦊", remove: false });
    expect(chipsOf(st.s.threads[CONV]?.items ?? [])).toEqual([{ emoji: "🦊", accounts: [ME], mine: true }]);
    await outbox.react(CONV, TARGET, "🦊", true);
    await vi.waitFor(() => expect(engine.encrypt).toHaveBeenCalledTimes(2));
    expect(plainContent(engine.encrypt.mock.calls[1]?.[2])).toMatchObject({ kind: "reaction", remove: true });
  });

  it("refuses a malformed emoji before keeping anything", async () => {
    const { outbox, storage } = outboxSetup({ client: { sendMessage: acked as never } });
    await expect(outbox.react(CONV, TARGET, "not one")).rejects.toThrow(/not a reaction/);
    await expect(outbox.react(CONV, TARGET, "")).rejects.toThrow(/not a reaction/);
    expect(storage.records.size).toBe(0);
  });

  it("offline: kept and shown, survives a reload, Not sent after a while, and Retry sends it", async () => {
    const storage = memoryStorage();
    const first = outboxSetup({ storage, waits: "blocked", client: { sendMessage: (() => { throw offline(); }) as never } });
    await first.outbox.react(CONV, TARGET, "🎉");
    await vi.waitFor(() => expect(first.waits).toHaveLength(1));
    first.outbox.stop();

    let down = true;
    const second = outboxSetup({
      storage,
      client: {
        sendMessage: ((req: Req) => {
          if (down) throw offline();
          return acked(req);
        }) as never,
      },
    });
    await second.outbox.load();
    const shown = () => withOutbox([target()], second.st.s.outbox[CONV], second.st.s.me);
    expect(reactionsOf(shown(), ME).get(TARGET)?.[0]).toMatchObject({ emoji: "🎉", mine: true });
    await vi.waitFor(() => expect(second.st.s.outbox[CONV]?.[0]?.failed).toBe(TIMED_OUT));
    const chip = reactionsOf(shown(), ME).get(TARGET)?.[0];
    expect(chip).toMatchObject({ emoji: "🎉", local: "failed" });
    down = false;
    await second.outbox.retry(chip?.outboxKey ?? "");
    await vi.waitFor(() => expect(storage.records.size).toBe(0));
    // The very bytes encrypted on the first page.
    expect(second.engine.encrypt).not.toHaveBeenCalled();
  });
});
