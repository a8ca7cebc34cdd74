import { describe, expect, it, vi } from "vitest";
import { create } from "@bufbuild/protobuf";
import { ConversationSchema, SearchMessagesResponseSchema } from "../gen/kitsulan/v1/conversation_pb";
import { dayRange, LocalIndex, passes, queryWords, searchCloud, searchEntries, searchPeople, snippetAround, type IndexEntry } from "./search";
import { CONV, OTHER_CONV, item, message, text } from "./testkit";

const entry = (id: string, t: string, extra: Partial<IndexEntry> = {}): IndexEntry => ({
  id,
  conversationId: CONV,
  senderAccountId: "bob",
  sentAtMs: Number(id.replace(/\D/g, "")) || 1,
  expiresAtMs: 0,
  text: t,
  ...extra,
});

describe("the local search", () => {
  it("reads a query as plain words: operators and quotes are separators", () => {
    expect(queryWords('"Hello" AND wor*ld -x')).toEqual(["hello", "and", "wor", "ld", "x"]);
    expect(queryWords("  ")).toEqual([]);
  });

  it("finds messages holding every word at a word's start, newest first, with highlights", () => {
    const entries = [entry("m1", "Meet at the Café tonight"), entry("m2", "the cafeteria is closed"), entry("m3", "decaf only")];
    const hits = searchEntries(entries, "caf", { now: 0 });
    expect(hits.map((h) => h.messageId)).toEqual(["m2", "m1"]);
    const first = hits[1];
    expect(first?.snippet.slice(first.highlights[0]?.start, first.highlights[0]?.end)).toBe("Caf");
    expect(searchEntries(entries, "caf tonight", { now: 0 }).map((h) => h.messageId)).toEqual(["m1"]);
    expect(searchEntries(entries, "мышь", { now: 0 })).toEqual([]);
  });

  it("filters by conversation and leaves out what disappeared", () => {
    const entries = [entry("m1", "hello"), entry("m2", "hello", { conversationId: OTHER_CONV }), entry("m3", "hello", { expiresAtMs: 50 })];
    expect(searchEntries(entries, "hello", { now: 100, conversationId: CONV }).map((h) => h.messageId)).toEqual(["m1"]);
  });

  it("cuts a long text to a snippet around the first match, the highlight moved with it", () => {
    const long = `${"a ".repeat(200)}needle ${"b ".repeat(200)}`;
    const at = long.indexOf("needle");
    const { snippet, highlights } = snippetAround(long, [{ start: at, end: at + 6 }]);
    expect(snippet.length).toBeLessThanOrEqual(162);
    expect(snippet.startsWith("…")).toBe(true);
    expect(snippet.slice(highlights[0]?.start, highlights[0]?.end)).toBe("needle");
  });

  it("indexes the E2EE texts the threads hold, drops deleted ones, and keeps them sealed away", async () => {
    vi.useFakeTimers();
    const saved: IndexEntry[][] = [];
    const index = new LocalIndex({
      storage: { load: () => Promise.resolve([entry("m0", "restored words")]), save: (e) => Promise.resolve(void saved.push(e)) },
      e2ee: (id) => id === CONV,
      now: () => 0,
      saveDelayMs: 10,
    });
    await index.restore();
    const m1 = message({ id: "m1", seq: 1n, sentAtMs: 5n });
    index.update({
      [CONV]: { items: [item(m1, text("secret plans"))], more: false, loaded: true },
      [OTHER_CONV]: { items: [item({ ...m1, id: "c1", conversationId: OTHER_CONV }, text("secret cloud"))], more: false, loaded: true },
    });
    expect(index.search("secret").map((h) => h.messageId)).toEqual(["m1"]);
    expect(index.search("restored").map((h) => h.messageId)).toEqual(["m0"]);
    index.update({ [CONV]: { items: [item({ ...m1, deletedAtMs: 9n }, { kind: "deleted" })], more: false, loaded: true } });
    expect(index.search("secret")).toEqual([]);
    await vi.advanceTimersByTimeAsync(20);
    expect(saved.at(-1)?.map((e) => e.id)).toEqual(["m0"]);
    vi.useRealTimers();
  });
});

describe("the search filters", () => {
  it("turns local days into times: from the start of the first to the end of the last, that day included", () => {
    expect(dayRange("2026-03-01", "2026-03-02")).toEqual({
      afterMs: new Date(2026, 2, 1).getTime(),
      beforeMs: new Date(2026, 2, 3).getTime(),
    });
    // The last day of a month (and of a year) ends where the next month begins.
    expect(dayRange("", "2026-01-31")).toEqual({ beforeMs: new Date(2026, 1, 1).getTime() });
    expect(dayRange("", "2026-12-31")).toEqual({ beforeMs: new Date(2027, 0, 1).getTime() });
    expect(dayRange("2026-05-04", "")).toEqual({ afterMs: new Date(2026, 4, 4).getTime() });
    expect(dayRange("", "")).toEqual({});
    expect(dayRange("yesterday", "2026-13")).toEqual({});
  });

  it("narrows the local index by sender and time as the server does (after inclusive, before exclusive)", () => {
    const entries = [
      entry("m10", "lunch?", { senderAccountId: "alice" }),
      entry("m20", "lunch at noon", { senderAccountId: "bob" }),
      entry("m30", "lunch moved", { senderAccountId: "bob" }),
      entry("m40", "lunch done", { senderAccountId: "bob", conversationId: OTHER_CONV }),
    ];
    const ids = (filter: Parameters<typeof searchEntries>[2]) => searchEntries(entries, "lunch", filter).map((h) => h.messageId);
    expect(ids({ now: 0, senderAccountId: "bob" })).toEqual(["m40", "m30", "m20"]);
    expect(ids({ now: 0, senderAccountId: "bob", afterMs: 20, beforeMs: 40 })).toEqual(["m30", "m20"]);
    expect(ids({ now: 0, afterMs: 21 })).toEqual(["m40", "m30"]);
    expect(ids({ now: 0, beforeMs: 20 })).toEqual(["m10"]);
    expect(ids({ now: 0, senderAccountId: "bob", conversationId: CONV, beforeMs: 30 })).toEqual(["m20"]);
    expect(passes({ senderAccountId: "alice" }, { conversationId: CONV, senderAccountId: "bob", sentAtMs: 1 })).toBe(false);
  });

  it("asks the server with the same filters, unset ones as 0 and empty", async () => {
    const searchMessages = vi.fn((_req: unknown) => Promise.resolve(create(SearchMessagesResponseSchema, {})));
    await searchCloud({ searchMessages } as never, "lunch", { senderAccountId: "bob", afterMs: 20, beforeMs: 40, pageToken: "p2" });
    expect(searchMessages).toHaveBeenCalledWith(
      expect.objectContaining({ query: "lunch", senderAccountId: "bob", conversationId: "", afterMs: 20n, beforeMs: 40n, pageToken: "p2" }),
    );
    await searchCloud({ searchMessages } as never, "lunch", {});
    expect(searchMessages).toHaveBeenLastCalledWith(expect.objectContaining({ afterMs: 0n, beforeMs: 0n, senderAccountId: "" }));
  });

  it("offers the members of the conversation chosen, or of every conversation but requests", () => {
    const conv = (id: string, members: string[], request = false) =>
      create(ConversationSchema, { id, request, members: members.map((accountId) => ({ accountId })) });
    const list = [conv("a", ["me", "bob"]), conv("b", ["me", "bob", "carol"]), conv("r", ["me", "stranger"], true)];
    expect(searchPeople(list, "")).toEqual(["me", "bob", "carol"]);
    expect(searchPeople(list, "a")).toEqual(["me", "bob"]);
  });
});
