// copyText.test.ts — each way copyText can go, on a small stand-in for the document (the unit
// tests run in Node): the clipboard API, its refusal, its absence (plain HTTP on a LAN) with the
// execCommand fallback working, and both failing ("manual").
import { describe, expect, it } from "vitest";
import { copyText } from "./copyText";

interface FakeArea {
  value: string;
  selected: string | null;
  attrs: Record<string, string>;
  style: Record<string, string>;
  setAttribute(k: string, v: string): void;
  focus(): void;
  select(): void;
  setSelectionRange(a: number, b: number): void;
  remove(): void;
}

function fakeDoc(opts: {
  clipboard?: { writeText(t: string): Promise<void> } | undefined;
  exec?: ((area: FakeArea) => boolean) | "missing" | "throws";
}) {
  const exec = opts.exec ?? (() => false);
  const log = { execCopied: null as string | null, inBody: 0, focusedBack: false, removed: 0 };
  let current: FakeArea | null = null;
  const button = { focus: () => (log.focusedBack = true) };
  const doc = {
    defaultView: { navigator: { clipboard: opts.clipboard } },
    activeElement: button,
    body: {
      appendChild: () => {
        log.inBody += 1;
      },
    },
    createElement: (tag: string) => {
      expect(tag).toBe("textarea");
      const area: FakeArea = {
        value: "",
        selected: null,
        attrs: {},
        style: {},
        setAttribute(k, v) {
          this.attrs[k] = v;
        },
        focus() {},
        select() {
          this.selected = this.value;
        },
        setSelectionRange() {},
        remove() {
          log.inBody -= 1;
          log.removed += 1;
        },
      };
      current = area;
      return area;
    },
    execCommand:
      exec === "missing"
        ? undefined
        : (cmd: string) => {
            expect(cmd).toBe("copy");
            if (exec === "throws") throw new Error("no");
            const ok = exec(current!);
            if (ok) log.execCopied = current!.selected;
            return ok;
          },
  };
  return { doc: doc as unknown as Document, log };
}

describe("copyText", () => {
  it("uses the clipboard API when there is one, and touches nothing else", async () => {
    const written: string[] = [];
    const { doc, log } = fakeDoc({
      clipboard: { writeText: async (t) => void written.push(t) },
      exec: () => {
        throw new Error("execCommand must not be used");
      },
    });
    expect(await copyText("abc-123", doc)).toBe("copied");
    expect(written).toEqual(["abc-123"]);
    expect(log.inBody).toBe(0);
  });

  it("without the clipboard API (plain HTTP), copies the selected text of a hidden textarea", async () => {
    const { doc, log } = fakeDoc({ clipboard: undefined, exec: (a) => a.selected === "key one two" });
    expect(await copyText("key one two", doc)).toBe("copied");
    expect(log.execCopied).toBe("key one two");
    // The textarea is gone and focus is back on the button.
    expect(log.inBody).toBe(0);
    expect(log.removed).toBe(1);
    expect(log.focusedBack).toBe(true);
  });

  it("falls back to execCommand when the clipboard API refuses", async () => {
    const { doc, log } = fakeDoc({
      clipboard: { writeText: () => Promise.reject(new DOMException("denied", "NotAllowedError")) },
      exec: () => true,
    });
    expect(await copyText("x", doc)).toBe("copied");
    expect(log.execCopied).toBe("x");
  });

  it("says manual when execCommand returns false, is missing, or throws", async () => {
    for (const exec of [() => false, "missing", "throws"] as const) {
      const { doc, log } = fakeDoc({ clipboard: undefined, exec });
      expect(await copyText("x", doc), String(exec)).toBe("manual");
      expect(log.inBody).toBe(0);
      expect(log.execCopied).toBeNull();
    }
  });

  it("says manual when the clipboard API refuses and execCommand fails too", async () => {
    const { doc } = fakeDoc({ clipboard: { writeText: () => Promise.reject(new Error("no")) }, exec: () => false });
    expect(await copyText("x", doc)).toBe("manual");
  });
});
