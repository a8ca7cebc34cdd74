import { describe, expect, it, vi } from "vitest";
import { LocalIndex, queryWords, searchEntries, snippetAround, type IndexEntry } from "./search";
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
