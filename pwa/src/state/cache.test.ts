import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { generatePickleKey, initSync, openLocal, sealLocal } from "kitsulan-crypto";
import type { Content } from "../crypto/content";
import type { Message } from "../gen/kitsulan/v1/conversation_pb";
import { decodeValue, encodeValue, type Sealer } from "../storage/sealed";
import {
  Cache,
  MAX_CONVERSATIONS,
  MAX_ITEMS,
  WRITE_DELAY_MS,
  restored,
  sealedStorage,
  snapshotOf,
  type CacheStorage,
  type CachedIndex,
  type CachedThread,
  type Snapshot,
} from "./cache";
import type { ConversationClient } from "./conversations";
import type { Item, Thread } from "./messages";
import { applyChat, type ChatState } from "./store";
import { BOB, CONV, ME, MY_DEVICE, OTHER_CONV, TestState, conversation, fakeClient, item, message, state, text } from "./testkit";

// storage/db.ts over a Map (the tests run in Node, without IndexedDB).
const idb = vi.hoisted(() => new Map<string, unknown>());
vi.mock("../storage/db", () => ({
  put: (store: string, key: string, value: unknown) => Promise.resolve(void idb.set(`${store}/${key}`, value)),
  putMany: (store: string, entries: Array<[string, unknown]>) =>
    Promise.resolve(entries.forEach(([k, v]) => idb.set(`${store}/${k}`, v))),
  get: (store: string, key: string) => Promise.resolve(idb.get(`${store}/${key}`)),
  del: (store: string, key: string) => Promise.resolve(void idb.delete(`${store}/${key}`)),
  entries: (store: string, prefix: string) =>
    Promise.resolve(
      [...idb.entries()]
        .filter(([k]) => k.startsWith(`${store}/${prefix}`))
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, v]) => [k.slice(store.length + 1), v]),
    ),
}));

const waiting: Content = { kind: "undecryptable", reason: "waiting for the key", sessionId: "s1" };
const seqItem = (seq: number, extra: Partial<Item> = {}, content: Content = text(`m${seq}`)) =>
  item(message({ id: `m${seq}`, seq: BigInt(seq), ciphertext: new Uint8Array([seq % 256, 1, 2]) }), content, extra);
const thread = (items: Item[], more = false): Thread => ({ items, more, loaded: true });
const me = { accountId: ME, deviceId: MY_DEVICE, displayName: "Me", username: "me", avatarId: "", avatarVersion: 0 };

/** The snapshot of a state with one conversation (CONV) holding `items`. */
const copyOf = (items: Item[], more = false, c = conversation({})) =>
  snapshotOf(state({ me, conversations: [c], threads: { [CONV]: thread(items, more) } }));

/** The snapshot as it comes back from storage (the sealed records' encoding). */
const stored = (s: Snapshot): Snapshot => decodeValue<Snapshot>(encodeValue(s));

describe("what the cache keeps", () => {
  it("keeps the most recent conversations and the newest items of each, as decrypted here", () => {
    const conversations = Array.from({ length: MAX_CONVERSATIONS + 5 }, (_, n) =>
      conversation({ id: `c${n}`, lastActivityAtMs: BigInt(1000 - n) }),
    );
    const many = Array.from({ length: MAX_ITEMS + 20 }, (_, n) => seqItem(n + 1));
    const s = state({
      me,
      conversations,
      previews: { c0: "hi", [`c${MAX_CONVERSATIONS + 1}`]: "dropped" },
      threads: {
        c0: thread([
          ...many,
          seqItem(0, { local: "sending", content: { kind: "text", text: "in flight" } }), // the outbox's, not the cache's
        ]),
        c1: thread([seqItem(1), seqItem(2, {}, waiting), seqItem(3)]),
        [`c${MAX_CONVERSATIONS + 1}`]: thread([seqItem(1)]),
      },
    });
    const snap = snapshotOf(s);
    expect(snap.index.conversations.map((c) => c.id)).toEqual(conversations.slice(0, MAX_CONVERSATIONS).map((c) => c.id));
    expect(snap.index.previews).toEqual({ c0: "hi" });
    expect(Object.keys(snap.threads).sort()).toEqual(["c0", "c1"]);
    const c0 = snap.threads.c0 as CachedThread;
    expect(c0.items.map((i) => i.message.seq)).toEqual(many.slice(-MAX_ITEMS).map((i) => i.message.seq));
    expect(c0.more).toBe(true); // older ones were left out
    // Decrypted: kept as text, without the ciphertext. Not decrypted: kept as such, never as text.
    expect(c0.items[0]?.message.ciphertext).toEqual(new Uint8Array());
    const c1 = snap.threads.c1 as CachedThread;
    expect(c1.items.map((i) => i.content.kind)).toEqual(["text", "undecryptable", "text"]);
    expect(c1.items[1]?.content).toEqual(waiting);
    expect(c1.items[1]?.message.ciphertext).toEqual(new Uint8Array([2, 1, 2]));
    expect(c1.more).toBe(false);
  });

  it("keeps whatever the state marks on a conversation (another part's marks, e.g. removed from a group)", () => {
    const marked = { ...conversation({}), removed: true } as ReturnType<typeof conversation>;
    const back = stored(snapshotOf(state({ me, conversations: [marked] })));
    expect((back.index.conversations[0] as unknown as { removed: boolean }).removed).toBe(true);
  });

  it("paints a state that has nothing yet, and survives the sealed records' encoding", () => {
    const c = conversation({ lastSeq: 3n, unreadCount: 1, lastActivityAtMs: 99n });
    const s = state({
      me,
      conversations: [c],
      previews: { [CONV]: "m3" },
      receipts: { [CONV]: { [BOB]: { delivered: 3n, read: 2n } } },
      threads: { [CONV]: thread([seqItem(1), seqItem(2), seqItem(3, { unreadableBy: [BOB] })], true) },
    });
    const back = stored(snapshotOf(s));
    const fresh = restored(state(), back);
    expect(fresh.conversations).toEqual([c]);
    expect(fresh.me.displayName).toBe("Me");
    expect(fresh.previews).toEqual({ [CONV]: "m3" });
    expect(fresh.receipts[CONV]?.[BOB]).toEqual({ delivered: 3n, read: 2n });
    expect(fresh.threads[CONV]).toMatchObject({ more: true, loaded: true });
    expect(fresh.threads[CONV]?.items.map((i) => [i.message.seq, i.content])).toEqual([
      [1n, text("m1")],
      [2n, text("m2")],
      [3n, text("m3")],
    ]);
    expect(fresh.threads[CONV]?.items[2]?.unreadableBy).toEqual([BOB]);
  });

  it("never replaces what the server said first, and ignores another account's copy", () => {
    const back = stored(snapshotOf(state({ me, conversations: [conversation({})], threads: { [CONV]: thread([seqItem(1)]) } })));
    const server = conversation({ id: OTHER_CONV });
    const s = restored(state({ conversations: [server], threads: { [CONV]: thread([seqItem(7)]) } }), back);
    expect(s.conversations).toEqual([server]);
    expect(s.threads[CONV]?.items.map((i) => i.message.seq)).toEqual([7n]);
    const other = restored(state({ me: { ...me, accountId: BOB } }), back);
    expect(other.conversations).toEqual([]);
  });
});

/** A storage that keeps what the cache writes (through the sealed records' encoding). */
function memoryStorage(initial: Snapshot | null = null) {
  let index: CachedIndex | undefined = initial?.index;
  const threads = new Map(Object.entries(initial?.threads ?? {}));
  const saves: Array<{ index: boolean; threads: string[]; remove: string[] }> = [];
  const storage: CacheStorage = {
    load: () => Promise.resolve(index ? stored({ index, threads: Object.fromEntries(threads) }) : null),
    save: (put, remove) => {
      saves.push({ index: put.index !== undefined, threads: Object.keys(put.threads).sort(), remove });
      if (put.index) index = put.index;
      for (const [id, t] of Object.entries(put.threads)) threads.set(id, decodeValue<CachedThread>(encodeValue(t)));
      for (const id of remove) threads.delete(id);
      return Promise.resolve();
    },
  };
  return { storage, saves, threads, index: () => index };
}

/** A TestState whose changes reach subscribers (as the real Store's do). */
class Subscribed extends TestState {
  private ls = new Set<() => void>();
  subscribe = (l: () => void) => {
    this.ls.add(l);
    return () => this.ls.delete(l);
  };
  override dispatch(event: Parameters<TestState["dispatch"]>[0]): void {
    super.dispatch(event);
    for (const l of this.ls) l();
  }
}

function setup(initial: Snapshot | null = null, s: ChatState = state({ me })) {
  const st = new Subscribed(s);
  const mem = memoryStorage(initial);
  let hidden: (() => void) | null = null;
  const list = vi.fn((_req: unknown) => ({ messages: [] as Message[], more: false }));
  const fake = fakeClient<ConversationClient>({ listMessages: list as never });
  const markRead = vi.fn((_id: string) => undefined);
  const cache = new Cache(st, {
    storage: mem.storage,
    subscribe: st.subscribe,
    client: fake.client,
    decrypt: (m) => Promise.resolve(text(`decrypted ${m.id}`)),
    markRead,
    onHidden: (l) => {
      hidden = l;
      return () => (hidden = null);
    },
  });
  return { st, cache, mem, list, markRead, hide: () => hidden?.() };
}

describe("Cache", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("writes behind the state: once after a burst of changes, only what changed", async () => {
    const { st, cache, mem } = setup();
    cache.start();
    st.dispatch({ type: "conversationsLoaded", conversations: [conversation({}), conversation({ id: OTHER_CONV })] });
    st.dispatch({ type: "historyLoaded", conversationId: CONV, items: [seqItem(1)], more: false });
    st.dispatch({ type: "historyLoaded", conversationId: OTHER_CONV, items: [seqItem(1)], more: false });
    await vi.advanceTimersByTimeAsync(WRITE_DELAY_MS - 10);
    expect(mem.saves).toEqual([]);
    await vi.advanceTimersByTimeAsync(20);
    expect(mem.saves).toEqual([{ index: true, threads: [CONV, OTHER_CONV], remove: [] }]);

    // A message in one conversation: its thread (and the list's order and preview) only.
    st.dispatch({
      type: "messageArrived",
      message: message({ id: "m2", seq: 2n, sentAtMs: 5n }),
      content: text("new"),
      known: false,
      fromOther: true,
      visible: false,
    });
    await vi.advanceTimersByTimeAsync(WRITE_DELAY_MS + 10);
    expect(mem.saves[1]).toEqual({ index: true, threads: [CONV], remove: [] });
    expect(mem.threads.get(CONV)?.items.map((i) => i.content)).toEqual([text("m1"), text("new")]);

    // Typing changes nothing kept: nothing written.
    st.dispatch({ type: "typing", typing: { conversationId: CONV, accountId: BOB, typing: true } as never, me: ME, now: 1 });
    await vi.advanceTimersByTimeAsync(WRITE_DELAY_MS * 3);
    expect(mem.saves).toHaveLength(2);

    // A conversation gone from the list: its record goes too.
    st.dispatch({ type: "conversationLeft", conversationId: OTHER_CONV });
    await vi.advanceTimersByTimeAsync(WRITE_DELAY_MS + 10);
    expect(mem.saves[2]).toEqual({ index: true, threads: [], remove: [OTHER_CONV] });
    expect([...mem.threads.keys()]).toEqual([CONV]);
  });

  it("writes at once when the page is hidden, and nothing after stop (sign-out)", async () => {
    const { st, cache, mem, hide } = setup();
    cache.start();
    st.dispatch({ type: "conversationsLoaded", conversations: [conversation({})] });
    hide();
    await vi.advanceTimersByTimeAsync(0);
    expect(mem.saves).toHaveLength(1);
    st.dispatch({ type: "historyLoaded", conversationId: CONV, items: [seqItem(1)], more: false });
    cache.stop();
    await vi.advanceTimersByTimeAsync(WRITE_DELAY_MS * 5);
    expect(mem.saves).toHaveLength(1);
  });

  it("restores before the network, then a newer page is merged when it reaches the copy", async () => {
    const before = copyOf([seqItem(2), seqItem(3)], true, conversation({ lastSeq: 3n }));
    const { st, cache, list, markRead } = setup(before);
    await cache.restore();
    expect(st.s.conversations.map((c) => c.id)).toEqual([CONV]);
    expect(st.s.threads[CONV]?.items.map((i) => i.message.seq)).toEqual([2n, 3n]);
    expect(cache.isStale(CONV)).toBe(true);
    list.mockReturnValueOnce({ messages: [message({ id: "m3", seq: 3n }), message({ id: "m4", seq: 4n })], more: true });
    await cache.refresh(CONV);
    expect(list.mock.calls[0]?.[0]).toMatchObject({ conversationId: CONV, cursor: 0n });
    expect(st.s.threads[CONV]?.items.map((i) => i.message.seq)).toEqual([2n, 3n, 4n]);
    expect(st.s.threads[CONV]?.more).toBe(true);
    expect(cache.isStale(CONV)).toBe(false);
    expect(markRead).toHaveBeenCalledWith(CONV);
  });

  it("replaces the copy by the newest page when messages were missed in between (keeping live ones)", async () => {
    const before = copyOf([seqItem(1), seqItem(2)]);
    const { st, cache, list } = setup(before);
    await cache.restore();
    // A live message arrives before the refresh answers.
    st.dispatch({
      type: "messageArrived",
      message: message({ id: "m90", seq: 90n }),
      content: text("live"),
      known: false,
      fromOther: true,
      visible: true,
    });
    list.mockReturnValueOnce({ messages: [message({ id: "m50", seq: 50n }), message({ id: "m51", seq: 51n })], more: true });
    await cache.refresh(CONV);
    expect(st.s.threads[CONV]?.items.map((i) => i.message.seq)).toEqual([50n, 51n, 90n]);
    expect(st.s.threads[CONV]).toMatchObject({ more: true, loaded: true });
  });

  it("keeps undecryptable messages waiting for their key after a restore", async () => {
    const before = copyOf([seqItem(1, {}, waiting)]);
    const { st, cache } = setup(before);
    await cache.restore();
    const s = applyChat(st.s, { type: "decrypted", conversationId: CONV, items: [seqItem(1, {}, text("now"))] });
    expect(st.s.threads[CONV]?.items[0]?.content).toEqual(waiting);
    expect(s.threads[CONV]?.items[0]?.content).toEqual(text("now"));
  });
});

describe("the new kinds of content", () => {
  const reaction: Content = { kind: "reaction", messageId: "m1", emoji: "👍", remove: false };
  const file: Content = { kind: "attachment", file: { attachment: "a1", secrets: "AQID", name: "x.txt", type: "text/plain", size: 3 }, replyTo: "m1" };

  it("keeps reactions, deletions, files and replies as read; an unsupported one with its ciphertext", () => {
    const items = [
      seqItem(1, {}, reaction),
      seqItem(2, {}, { kind: "deletion", messageId: "m1" }),
      seqItem(3, {}, file),
      seqItem(4, {}, { kind: "unsupported" }),
      seqItem(5, {}, { kind: "text", text: "re", replyTo: "m3", spans: [{ start: 0, end: 2, style: "bold" }] }),
    ];
    const back = stored(copyOf(items)).threads[CONV] as CachedThread;
    expect(back.items.map((i) => i.content)).toEqual(items.map((i) => i.content));
    expect(back.items.map((i) => i.message.ciphertext.length)).toEqual([0, 0, 0, 3, 0]);
  });

  it("reads an unsupported message again when restored (the app may know its kind now)", async () => {
    const before = copyOf([seqItem(1, {}, { kind: "unsupported" }), seqItem(2)]);
    const { st, cache } = setup(before);
    await cache.restore();
    expect(st.s.threads[CONV]?.items.map((i) => i.content)).toEqual([text("decrypted m1"), text("m2")]);
  });

  it("leaves an unsupported message as it is when it is still unsupported", async () => {
    const before = copyOf([seqItem(1, {}, { kind: "unsupported" })]);
    const st = new Subscribed(state({ me }));
    const decrypt = vi.fn((_m: Message) => Promise.resolve<Content>({ kind: "unsupported" }));
    const cache = new Cache(st, {
      storage: memoryStorage(before).storage,
      subscribe: st.subscribe,
      client: fakeClient<ConversationClient>({}).client,
      decrypt,
      markRead: () => undefined,
      onHidden: () => () => undefined,
    });
    await cache.restore();
    expect(decrypt).toHaveBeenCalledOnce();
    expect(st.s.threads[CONV]?.items.map((i) => i.content)).toEqual([{ kind: "unsupported" }]);
    expect(st.events.filter((e) => e.type === "decrypted")).toEqual([]);
  });
});

describe("the sealed records", () => {
  // The real sealing (the crate's WASM, read from disk: the tests run in Node, without types for it).
  beforeAll(async () => {
    const nodeFs = "node:fs";
    const { readFileSync } = (await import(/* @vite-ignore */ nodeFs)) as { readFileSync(path: URL): Uint8Array };
    initSync({ module: readFileSync(new URL("../../../crypto/pkg/kitsulan_crypto_bg.wasm", import.meta.url)) });
  });
  const sealer = (key: Uint8Array): Sealer => ({
    sealLocal: (name, body) => sealLocal(key, name, body),
    openLocal: (name, sealed) => openLocal(key, name, sealed),
  });

  it("are unreadable without the device's key, and open with it", async () => {
    idb.clear();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const key = generatePickleKey();
    const snap = copyOf([seqItem(1, {}, text("top secret text"))]);
    snap.index.previews = { [CONV]: "top secret preview" };
    await sealedStorage(sealer(key)).save({ index: snap.index, threads: snap.threads }, []);
    expect([...idb.keys()].sort()).toEqual(["cache/index", `cache/thread:${CONV}`]);
    for (const v of idb.values()) {
      expect(typeof v).toBe("string");
      expect(v).not.toContain("top secret");
      expect(atobSafe(v as string)).not.toContain("top secret");
    }
    const back = await sealedStorage(sealer(key)).load();
    expect(back?.threads[CONV]?.items[0]?.content).toEqual(text("top secret text"));
    expect(back?.index.previews).toEqual({ [CONV]: "top secret preview" });
    // Another key (another sign-in): nothing opens.
    expect(await sealedStorage(sealer(generatePickleKey())).load()).toBeNull();
    // A thread record moved under another conversation's key does not open there.
    idb.set(`cache/thread:${OTHER_CONV}`, idb.get(`cache/thread:${CONV}`));
    const moved = await sealedStorage(sealer(key)).load();
    expect(Object.keys(moved?.threads ?? {})).toEqual([CONV]);
    expect(warn).toHaveBeenCalled();
    warn.mockRestore();
  });
});

function atobSafe(s: string): string {
  try {
    return atob(s);
  } catch {
    return "";
  }
}
