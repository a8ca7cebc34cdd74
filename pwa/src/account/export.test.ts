import { describe, expect, it } from "vitest";
import { collectExport, exportFileName } from "./export";

async function* stream(...chunks: Uint8Array[]): AsyncGenerator<{ json: Uint8Array }> {
  for (const json of chunks) {
    await Promise.resolve();
    yield { json };
  }
}

describe("the account export", () => {
  it("joins the chunks before decoding: a character split between two chunks comes out whole", async () => {
    const doc = JSON.stringify({ text: "Привет, мир 👋 café" });
    const enc = new TextEncoder();
    const bytes = enc.encode(doc);
    const at = (s: string) => enc.encode(doc.slice(0, doc.indexOf(s))).length;
    // Cut inside "П" (2 bytes), inside the emoji (4 bytes) and inside "é".
    const cuts = [at("П") + 1, at("👋") + 3, bytes.length - 3];
    const pieces = [0, ...cuts].map((from, i) => bytes.slice(from, cuts[i] ?? bytes.length));
    expect(() => new TextDecoder("utf-8", { fatal: true }).decode(pieces[0])).toThrow();
    const text = await collectExport(stream(...pieces));
    expect(text).toBe(doc);
    expect((JSON.parse(text) as { text: string }).text).toBe("Привет, мир 👋 café");
  });

  it("gives an empty stream as an empty text and refuses bytes that are not UTF-8", async () => {
    expect(await collectExport(stream())).toBe("");
    await expect(collectExport(stream(new Uint8Array([0x7b, 0xff, 0x7d])))).rejects.toThrow();
  });

  it("names the file after the username and the local day", () => {
    expect(exportFileName("alice", new Date(2026, 2, 5, 23, 59))).toBe("kitsulan-alice-2026-03-05.json");
    expect(exportFileName("bob.k_9", new Date(2026, 11, 31))).toBe("kitsulan-bob.k_9-2026-12-31.json");
    expect(exportFileName("a/../b", new Date(2026, 0, 1))).toBe("kitsulan-a..b-2026-01-01.json");
  });
});
