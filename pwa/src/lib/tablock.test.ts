import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { acquireTabLock, STORAGE_KEY, TIMING, type Acquired, type ChannelLike, type TabLockEnv } from "./tablock";

/** One browser: a shared localStorage, BroadcastChannels and Web Locks across fake tabs. */
class FakeBrowser {
  readonly storage = new Map<string, string>();
  private channels = new Set<FakeChannel>();
  private storageListeners = new Map<string, Set<() => void>>();
  /** Tabs whose tasks do not run (frozen): they neither answer nor beat. */
  readonly frozen = new Set<string>();
  /** How late a removal reaches the storage the other tabs read (it crosses processes). */
  removalDelayMs = 0;
  private lockHolder: string | null = null;
  private lockWaiters: Array<{ tab: string; grant: () => void }> = [];

  env(tab: string, id: string, withLocks = false): TabLockEnv {
    const storageFor = (key: string) => {
      let set = this.storageListeners.get(key);
      if (!set) this.storageListeners.set(key, (set = new Set()));
      return set;
    };
    const browser = this;
    return {
      locks: withLocks ? this.locks(tab) : null,
      storage: {
        getItem: (k) => this.storage.get(k) ?? null,
        setItem: (k, v) => {
          this.storage.set(k, v);
          // The storage event reaches the other tabs only.
          for (const [owner, l] of this.listenersOf(k)) if (owner !== tab) setTimeout(l, 0);
        },
        removeItem: (k) => {
          if (this.removalDelayMs === 0) this.storage.delete(k);
          else setTimeout(() => this.storage.delete(k), this.removalDelayMs);
        },
      },
      channel: () => {
        const c = new FakeChannel(tab, this);
        this.channels.add(c);
        return c;
      },
      onStorage: (key, l) => {
        const entry = () => {
          if (!browser.frozen.has(tab)) l();
        };
        (entry as unknown as { tab: string }).tab = tab;
        storageFor(key).add(entry);
        return () => storageFor(key).delete(entry);
      },
      onPageHide: () => () => undefined,
      onWake: () => () => undefined,
      now: () => Date.now(),
      newId: () => id,
    };
  }

  private listenersOf(key: string): Array<[string, () => void]> {
    return [...(this.storageListeners.get(key) ?? [])].map((l) => [(l as unknown as { tab: string }).tab, l]);
  }

  deliver(from: FakeChannel, data: unknown): void {
    for (const c of this.channels) {
      if (c === from || c.closed) continue;
      setTimeout(() => {
        if (!c.closed && !this.frozen.has(c.tab)) c.onmessage?.({ data });
      }, 1);
    }
  }

  forget(c: FakeChannel): void {
    this.channels.delete(c);
  }

  private locks(tab: string): TabLockEnv["locks"] {
    return {
      request: ((name: string, opts: LockOptions, cb: (lock: Lock | null) => unknown) => {
        const hold = () => {
          this.lockHolder = tab;
          return Promise.resolve(cb({ name, mode: "exclusive" } as Lock)).then(() => {
            this.lockHolder = null;
            const next = this.lockWaiters.shift();
            next?.grant();
          });
        };
        if (this.lockHolder === null) return hold();
        if (opts.ifAvailable) return Promise.resolve(cb(null));
        return new Promise((resolve, reject) => {
          const waiter = { tab, grant: () => resolve(hold()) };
          this.lockWaiters.push(waiter);
          opts.signal?.addEventListener("abort", () => {
            this.lockWaiters = this.lockWaiters.filter((w) => w !== waiter);
            reject(new DOMException("aborted", "AbortError"));
          });
        });
      }) as never,
    };
  }

  get webLockHolder(): string | null {
    return this.lockHolder;
  }
}

class FakeChannel implements ChannelLike {
  onmessage: ((event: { data: unknown }) => void) | null = null;
  closed = false;
  constructor(
    readonly tab: string,
    private readonly browser: FakeBrowser,
  ) {}
  postMessage(message: unknown): void {
    if (!this.closed) this.browser.deliver(this, structuredClone(message));
  }
  close(): void {
    this.closed = true;
    this.browser.forget(this);
  }
}

const beat = (b: FakeBrowser) => JSON.parse(b.storage.get(STORAGE_KEY) ?? "null") as { owner: string; at: number } | null;

/** Runs an acquisition to its end under fake timers. */
async function settle<T>(p: Promise<T>, ms = 10_000): Promise<T> {
  let done = false;
  let value: T | undefined;
  void p.then((v) => {
    done = true;
    value = v;
  });
  for (let t = 0; t < ms && !done; t += 10) await vi.advanceTimersByTimeAsync(10);
  if (!done) throw new Error("did not settle");
  return value as T;
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("tab lock over a heartbeat (no Web Locks: plain http)", () => {
  it("is taken by the first tab, which keeps its heartbeat fresh", async () => {
    const b = new FakeBrowser();
    const a = await settle(acquireTabLock({ onLost: vi.fn() }, b.env("A", "a")));
    expect(a.lock?.kind).toBe("heartbeat");
    expect(beat(b)?.owner).toBe("a");
    const first = beat(b)?.at ?? 0;
    await vi.advanceTimersByTimeAsync(3 * TIMING.beatMs);
    expect((beat(b)?.at ?? 0) - first).toBeGreaterThanOrEqual(2 * TIMING.beatMs);
  });

  it("makes a second tab yield while the first lives, and the first keeps it", async () => {
    const b = new FakeBrowser();
    const onLost = vi.fn();
    const a = await settle(acquireTabLock({ onLost }, b.env("A", "a")));
    const second = await settle(acquireTabLock({ onLost: vi.fn() }, b.env("B", "0-lower-id")));
    expect(second).toEqual({ lock: null, why: "other-tab" });
    await vi.advanceTimersByTimeAsync(10 * TIMING.beatMs);
    expect(beat(b)?.owner).toBe(a.lock?.id);
    expect(onLost).not.toHaveBeenCalled();
  });

  it("yields to an owner whose heartbeat is stale but who answers (a throttled background tab)", async () => {
    const b = new FakeBrowser();
    await settle(acquireTabLock({ onLost: vi.fn() }, b.env("A", "a")));
    // The background tab's timers ran late: its heartbeat is old, but it answers the channel.
    b.storage.set(STORAGE_KEY, JSON.stringify({ owner: "a", at: Date.now() - 60_000 }));
    const second = await settle(acquireTabLock({ onLost: vi.fn() }, b.env("B", "b")));
    expect(second.lock).toBeNull();
  });

  it("takes over the stale heartbeat of a crashed tab (nobody answers)", async () => {
    const b = new FakeBrowser();
    b.storage.set(STORAGE_KEY, JSON.stringify({ owner: "crashed", at: Date.now() }));
    const early = await settle(acquireTabLock({ onLost: vi.fn() }, b.env("B", "b")));
    expect(early.lock).toBeNull();
    await vi.advanceTimersByTimeAsync(TIMING.staleMs);
    const later = await settle(acquireTabLock({ onLost: vi.fn() }, b.env("B", "b")));
    expect(later.lock?.id).toBe("b");
    expect(beat(b)?.owner).toBe("b");
  });

  it("lets exactly one of two tabs opening at once win: the lower id", async () => {
    for (const [x, y] of [
      ["1", "2"],
      ["2", "1"],
    ] as const) {
      const b = new FakeBrowser();
      const [p, q] = await settle(
        Promise.all([acquireTabLock({ onLost: vi.fn() }, b.env("X", x)), acquireTabLock({ onLost: vi.fn() }, b.env("Y", y))]),
      );
      const winners = [p, q].filter((r: Acquired) => r.lock !== null);
      expect(winners.map((w) => w.lock?.id)).toEqual(["1"]);
      expect(beat(b)?.owner).toBe("1");
    }
  });

  it("frees the lock at once when released (a reload does not wait for the heartbeat to go stale)", async () => {
    const b = new FakeBrowser();
    const a = await settle(acquireTabLock({ onLost: vi.fn() }, b.env("A", "a")));
    a.lock?.release();
    expect(beat(b)).toBeNull();
    const again = await settle(acquireTabLock({ onLost: vi.fn() }, b.env("A2", "z")));
    expect(again.lock?.id).toBe("z");
  });

  it("hands over on request: the owner stops first, then the new tab holds it", async () => {
    const b = new FakeBrowser();
    const order: string[] = [];
    const onLost = vi.fn(async () => {
      order.push("owner stopping");
      await new Promise((r) => setTimeout(r, 500)); // the engine finishing what it was doing
      order.push("owner stopped");
    });
    await settle(acquireTabLock({ onLost }, b.env("A", "a")));
    const second = await settle(
      acquireTabLock({ takeover: true, onLost: vi.fn() }, b.env("B", "b")).then((r) => {
        order.push("new tab holds");
        return r;
      }),
    );
    expect(second.lock?.id).toBe("b");
    expect(order).toEqual(["owner stopping", "owner stopped", "new tab holds"]);
    expect(onLost).toHaveBeenCalledWith("handed-over");
    await vi.advanceTimersByTimeAsync(10 * TIMING.beatMs);
    expect(beat(b)?.owner).toBe("b"); // the old owner beats no more
    expect(onLost).toHaveBeenCalledTimes(1);
    // And back: the new owner answers a takeover in turn.
    const back = await settle(acquireTabLock({ takeover: true, onLost: vi.fn() }, b.env("A", "a2")));
    expect(back.lock?.id).toBe("a2");
    expect(beat(b)?.owner).toBe("a2");
  });

  it("'Use here' right after the other tab crashed: taken once its heartbeat is stale and nobody answers", async () => {
    const b = new FakeBrowser();
    b.storage.set(STORAGE_KEY, JSON.stringify({ owner: "crashed", at: Date.now() - 2000 }));
    const taken = await settle(acquireTabLock({ takeover: true, onLost: vi.fn() }, b.env("B", "b")));
    expect(taken.lock?.id).toBe("b");
  });

  it("hands over even when the released heartbeat reaches the new tab after the channel's answer", async () => {
    const b = new FakeBrowser();
    b.removalDelayMs = 2000;
    const onLost = vi.fn();
    await settle(acquireTabLock({ onLost }, b.env("A", "a")));
    const taken = await settle(acquireTabLock({ takeover: true, onLost: vi.fn() }, b.env("B", "b")));
    expect(onLost).toHaveBeenCalledWith("handed-over");
    expect(taken.lock?.id).toBe("b");
    await vi.advanceTimersByTimeAsync(3 * TIMING.beatMs);
    expect(beat(b)?.owner).toBe("b");
  });

  it("never takes over from a living owner that does not answer", async () => {
    const b = new FakeBrowser();
    const onLost = vi.fn();
    await settle(acquireTabLock({ onLost }, b.env("A", "a")));
    b.frozen.add("A");
    const second = await settle(acquireTabLock({ takeover: true, onLost: vi.fn() }, b.env("B", "b")));
    expect(second).toEqual({ lock: null, why: "no-answer" });
    expect(beat(b)?.owner).toBe("a");
  });

  it("stops an owner that finds another owner in the heartbeat (it was frozen and taken over)", async () => {
    const b = new FakeBrowser();
    const onLost = vi.fn();
    await settle(acquireTabLock({ onLost }, b.env("A", "a")));
    b.frozen.add("A");
    await vi.advanceTimersByTimeAsync(TIMING.staleMs + 10);
    // The frozen tab's heartbeat went stale and nobody answered: another tab took it.
    b.storage.set(STORAGE_KEY, JSON.stringify({ owner: "b", at: Date.now() }));
    b.frozen.delete("A");
    await vi.advanceTimersByTimeAsync(TIMING.beatMs);
    expect(onLost).toHaveBeenCalledTimes(1);
    expect(onLost).toHaveBeenCalledWith("overtaken");
    expect(beat(b)?.owner).toBe("b");
  });
});

describe("tab lock over Web Locks (secure contexts)", () => {
  it("makes a second tab yield, and hands over on request after the owner stopped", async () => {
    const b = new FakeBrowser();
    const onLost = vi.fn(async () => {
      await new Promise((r) => setTimeout(r, 200));
    });
    const a = await settle(acquireTabLock({ onLost }, b.env("A", "a", true)));
    expect(a.lock?.kind).toBe("web-locks");
    expect(b.webLockHolder).toBe("A");
    expect(b.storage.size).toBe(0);
    expect(await settle(acquireTabLock({ onLost: vi.fn() }, b.env("B", "b", true)))).toEqual({ lock: null, why: "other-tab" });
    const taken = await settle(acquireTabLock({ takeover: true, onLost: vi.fn() }, b.env("B", "b", true)));
    expect(onLost).toHaveBeenCalledTimes(1);
    expect(taken.lock?.id).toBe("b");
    expect(b.webLockHolder).toBe("B");
    // And back: the new owner answers a takeover in turn (long after it took the lock).
    await vi.advanceTimersByTimeAsync(2 * TIMING.takeoverMs);
    const back = await settle(acquireTabLock({ takeover: true, onLost: vi.fn() }, b.env("A", "a2", true)));
    expect(back.lock?.id).toBe("a2");
    expect(b.webLockHolder).toBe("A");
  });

  it("gives up a takeover when the owner does not answer", async () => {
    const b = new FakeBrowser();
    await settle(acquireTabLock({ onLost: vi.fn() }, b.env("A", "a", true)));
    b.frozen.add("A");
    expect(await settle(acquireTabLock({ takeover: true, onLost: vi.fn() }, b.env("B", "b", true)))).toEqual({
      lock: null,
      why: "no-answer",
    });
    expect(b.webLockHolder).toBe("A");
  });
});
