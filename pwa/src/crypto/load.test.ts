// load.test.ts — crypto/load.ts: the module is loaded once however many callers wait for it, a
// failed load is tried again by the next caller (not cached for the page's life), and whenIdle
// (the prefetch's timing) waits for an idle moment or the next frame.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const glue = vi.hoisted(() => ({
  init: vi.fn<(opts: { module_or_path: string }) => Promise<void>>(),
}));
vi.mock("kitsulan-crypto", () => ({ default: glue.init, marker: "the glue" }));
vi.mock("kitsulan-crypto/kitsulan_crypto_bg.wasm?url", () => ({ default: "/assets/kitsulan_crypto_bg-x.wasm" }));

/** A fresh copy of load.ts (its promise is module state). */
async function fresh() {
  vi.resetModules();
  return import("./load");
}

beforeEach(() => {
  glue.init.mockReset();
});

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe("loadCrypto", () => {
  it("instantiates the WASM from the built file once for every caller", async () => {
    glue.init.mockResolvedValue(undefined);
    const { loadCrypto } = await fresh();
    const [a, b] = await Promise.all([loadCrypto(), loadCrypto()]);
    const c = await loadCrypto();
    expect(glue.init).toHaveBeenCalledTimes(1);
    expect(glue.init).toHaveBeenCalledWith({ module_or_path: "/assets/kitsulan_crypto_bg-x.wasm" });
    expect(a).toBe(b);
    expect(c).toBe(a);
    expect((a as unknown as { marker: string }).marker).toBe("the glue");
  });

  it("fails every waiting caller, then tries again on the next call", async () => {
    glue.init.mockRejectedValueOnce(new TypeError("Failed to fetch")).mockResolvedValue(undefined);
    const { loadCrypto } = await fresh();
    const first = [loadCrypto(), loadCrypto()];
    for (const p of first) await expect(p).rejects.toThrow("Failed to fetch");
    expect(glue.init).toHaveBeenCalledTimes(1);
    await expect(loadCrypto()).resolves.toBeDefined();
    expect(glue.init).toHaveBeenCalledTimes(2);
    await loadCrypto();
    expect(glue.init).toHaveBeenCalledTimes(2);
  });
});

describe("whenIdle", () => {
  it("waits for an idle moment, with a deadline", async () => {
    const idle: Array<{ cb: () => void; timeout: number }> = [];
    vi.stubGlobal("requestIdleCallback", (cb: () => void, opts: { timeout: number }) => idle.push({ cb, timeout: opts.timeout }));
    const { whenIdle } = await fresh();
    const fn = vi.fn();
    whenIdle(fn);
    await Promise.resolve();
    expect(fn).not.toHaveBeenCalled();
    expect(idle).toHaveLength(1);
    expect(idle[0]!.timeout).toBeGreaterThan(0);
    idle[0]!.cb();
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it("without requestIdleCallback, runs after the next frame", async () => {
    vi.stubGlobal("requestIdleCallback", undefined);
    const frames: Array<() => void> = [];
    vi.stubGlobal("requestAnimationFrame", (cb: () => void) => frames.push(cb));
    vi.useFakeTimers();
    const { whenIdle } = await fresh();
    const fn = vi.fn();
    whenIdle(fn);
    await vi.runAllTimersAsync();
    expect(fn).not.toHaveBeenCalled();
    frames[0]!();
    expect(fn).not.toHaveBeenCalled();
    await vi.runAllTimersAsync();
    expect(fn).toHaveBeenCalledTimes(1);
  });
});
