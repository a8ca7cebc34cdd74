// copyText.test.ts — each way copyText can go, on a small stand-in for the document (the unit
// tests run in Node): the clipboard API, its refusal, its absence (plain HTTP on a LAN) with the
// execCommand fallback working, and both failing ("manual").
import { describe, expect, it } from "vitest";
import { copyText } from "./copyText";

interface FakeArea {
  value: string;
  selectionStart: number;
  selectionEnd: number;
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
  /** The Copy button is in a modal dialog (everything outside it is inert). */
  inDialog?: boolean;
  /** The textarea cannot take focus (inert, as outside a modal dialog). */
  unfocusable?: boolean;
}) {
  const exec = opts.exec ?? (() => false);
  const log = { execCopied: null as string | null, inBody: 0, inDialog: 0, focusedBack: false, removed: 0 };
  let current: FakeArea | null = null;
  const dialog = {
    appendChild: () => {
      log.inDialog += 1;
    },
  };
  const button = {
    focus: () => {
      log.focusedBack = true;
      doc.activeElement = button;
    },
    closest: (sel: string) => (sel === "dialog" && opts.inDialog ? dialog : null),
  };
  const doc: { activeElement: unknown; [k: string]: unknown } = {
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
        selectionStart: 0,
        selectionEnd: 0,
        selected: null,
        attrs: {},
        style: {},
        setAttribute(k, v) {
          this.attrs[k] = v;
        },
        focus() {
          if (!opts.unfocusable) doc.activeElement = this;
        },
        select() {
          this.selected = this.value;
        },
        setSelectionRange(a, b) {
          this.selectionStart = a;
          this.selectionEnd = b;
        },
        remove() {
          if (opts.inDialog) log.inDialog -= 1;
          else log.inBody -= 1;
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

  it("puts the textarea inside the button's modal dialog (outside it would be inert)", async () => {
    const { doc, log } = fakeDoc({ clipboard: undefined, inDialog: true, exec: (a) => a.selected === "id" });
    expect(await copyText("id", doc)).toBe("copied");
    expect(log.execCopied).toBe("id");
    expect(log.inDialog).toBe(0);
    expect(log.inBody).toBe(0);
    expect(log.removed).toBe(1);
  });

  it("does not claim a copy when the textarea could not take focus (nothing selected)", async () => {
    let asked = false;
    const { doc } = fakeDoc({
      clipboard: undefined,
      unfocusable: true,
      exec: () => {
        asked = true;
        return true; // Chromium reports success even with nothing selected
      },
    });
    expect(await copyText("id", doc)).toBe("manual");
    expect(asked).toBe(false);
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
