// uploader.test.ts — the key backup's upload queue: batches of at most 100, a burst gathered
// into one call, retries with growing pauses that never lose an entry, a later entry for the
// same session replacing the queued one, and a version gone for good dropping the queue once.
import { describe, expect, it } from "vitest";
import { Uploader, type PendingEntry, type UploaderDeps, type UploaderTiming } from "./uploader";

/** Timers run only when the test says so. */
class Clock {
  now = 0;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private next = 1;
  timing(): UploaderTiming {
    return {
      delayMs: 1000,
      retryMs: 2000,
      maxRetryMs: 10_000,
      setTimeout: (fn, ms) => {
        const id = this.next++;
        this.timers.push({ at: this.now + ms, fn, id });
        return id;
      },
      clearTimeout: (id) => {
        this.timers = this.timers.filter((t) => t.id !== id);
      },
    };
  }
  get pendingTimers(): number[] {
    return this.timers.map((t) => t.at - this.now);
  }
  /** Moves time on by `ms`, running what falls due, and lets the promises they start settle. */
  async advance(ms: number): Promise<void> {
    this.now += ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= this.now);
      if (due.length === 0) break;
      this.timers = this.timers.filter((t) => t.at > this.now);
      for (const t of due) t.fn();
      await settle();
    }
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

function entry(id: string, byte = 1): PendingEntry {
  return { sessionId: id, data: new Uint8Array([byte]) };
}

function fakeDeps(overrides: Partial<UploaderDeps> = {}) {
  const calls: Array<{ version: string; ids: string[]; bytes: number[] }> = [];
  const saved = new Map<string, PendingEntry>();
  let gone = 0;
  const deps: UploaderDeps = {
    put: (version, sessions) => {
      calls.push({ version, ids: sessions.map((s) => s.sessionId), bytes: sessions.map((s) => s.data[0] ?? 0) });
      return Promise.resolve();
    },
    save: (entries) => {
      for (const e of entries) saved.set(e.sessionId, e);
      return Promise.resolve();
    },
    remove: (ids) => {
      for (const id of ids) saved.delete(id);
      return Promise.resolve();
    },
    isGone: (err) => err instanceof Error && err.message === "stale",
    isRefused: (err) => err instanceof Error && err.message === "refused",
    onGone: () => {
      gone++;
    },
    ...overrides,
  };
  return { deps, calls, saved, gone: () => gone };
}

describe("Uploader", () => {
  it("gathers a burst into batches of at most 100, after the delay", async () => {
    const clock = new Clock();
    const f = fakeDeps();
    const u = new Uploader("v1", f.deps, clock.timing());
    for (let i = 0; i < 250; i++) u.add([entry(`s${String(i).padStart(3, "0")}`)]);
    await settle();
    expect(f.saved.size).toBe(250);
    await clock.advance(999);
    expect(f.calls).toEqual([]);
    await clock.advance(1);
    expect(f.calls.map((c) => c.ids.length)).toEqual([100, 100, 50]);
    expect(new Set(f.calls.flatMap((c) => c.ids)).size).toBe(250);
    expect(f.calls.every((c) => c.version === "v1")).toBe(true);
    expect(u.pending).toBe(0);
    expect(f.saved.size).toBe(0);
  });

  it("retries a failed upload with growing pauses and loses nothing", async () => {
    const clock = new Clock();
    let failures = 3;
    const f = fakeDeps();
    const put = f.deps.put;
    f.deps.put = (version, sessions) => {
      if (failures > 0) {
        failures--;
        return Promise.reject(new Error("offline"));
      }
      return put(version, sessions);
    };
    const u = new Uploader("v1", f.deps, clock.timing());
    u.add([entry("a"), entry("b")]);
    await clock.advance(1000); // first try fails
    expect(clock.pendingTimers).toEqual([2000]);
    await clock.advance(2000); // second fails
    expect(clock.pendingTimers).toEqual([4000]);
    u.add([entry("c")]); // does not cut the pause short
    await settle();
    expect(clock.pendingTimers).toEqual([4000]);
    await clock.advance(4000); // third fails
    expect(clock.pendingTimers).toEqual([8000]);
    expect(f.calls).toEqual([]);
    expect(u.pending).toBe(3);
    await clock.advance(8000);
    expect(f.calls.map((c) => c.ids)).toEqual([["a", "b", "c"]]);
    expect(u.pending).toBe(0);
    expect(f.saved.size).toBe(0);
  });

  it("caps the pause", async () => {
    const clock = new Clock();
    const f = fakeDeps({ put: () => Promise.reject(new Error("offline")) });
    const u = new Uploader("v1", f.deps, clock.timing());
    u.add([entry("a")]);
    await clock.advance(1000);
    for (const pause of [2000, 4000, 8000, 10_000, 10_000]) {
      expect(clock.pendingTimers).toEqual([pause]);
      await clock.advance(pause);
    }
    expect(u.pending).toBe(1);
  });

  it("a later entry for a session replaces the queued one, also while its batch is in flight", async () => {
    const clock = new Clock();
    const f = fakeDeps();
    let release: () => void = () => undefined;
    const put = f.deps.put;
    let first = true;
    f.deps.put = (version, sessions) => {
      const p = put(version, sessions);
      if (!first) return p;
      first = false;
      return new Promise<void>((resolve) => {
        release = resolve;
      });
    };
    const u = new Uploader("v1", f.deps, clock.timing());
    u.add([entry("a", 1), entry("b", 1)]);
    u.add([entry("a", 2)]);
    await clock.advance(1000);
    expect(f.calls[0]?.bytes).toEqual([2, 1]);
    u.add([entry("b", 3)]); // replaces b while the batch with the old b is in flight
    release();
    await settle();
    // The old b left the queue only if it was still the queued one: the new b goes up next.
    expect(f.calls.map((c) => c.bytes)).toEqual([[2, 1], [3]]);
    expect(u.pending).toBe(0);
    await clock.advance(1000);
    expect(f.calls).toHaveLength(2);
  });

  it("drops the queue once when the version is gone, and sends nothing more", async () => {
    const clock = new Clock();
    let puts = 0;
    const f = fakeDeps({
      put: () => {
        puts++;
        return Promise.reject(new Error("stale"));
      },
    });
    const u = new Uploader("v1", f.deps, clock.timing());
    u.add([entry("a"), entry("b")]);
    const idle = u.whenIdle();
    await clock.advance(1000);
    await expect(idle).rejects.toThrow("gone");
    expect(f.gone()).toBe(1);
    expect(u.pending).toBe(0);
    expect(f.saved.size).toBe(0);
    expect(clock.pendingTimers).toEqual([]);
    u.add([entry("c")]);
    await clock.advance(60_000);
    expect(puts).toBe(1);
  });

  it("leaves out a batch the server refuses for good, and goes on with the rest", async () => {
    const clock = new Clock();
    const f = fakeDeps();
    const put = f.deps.put;
    let first = true;
    f.deps.put = (version, sessions) => {
      if (first) {
        first = false;
        return Promise.reject(new Error("refused"));
      }
      return put(version, sessions);
    };
    const u = new Uploader("v1", f.deps, clock.timing());
    for (let i = 0; i < 150; i++) u.add([entry(`s${String(i).padStart(3, "0")}`)]);
    await clock.advance(1000);
    expect(f.calls.map((c) => c.ids.length)).toEqual([50]);
    expect(u.pending).toBe(0);
    expect(f.saved.size).toBe(0);
    expect(clock.pendingTimers).toEqual([]);
  });

  it("resumes entries from the durable copy without saving them again", async () => {
    const clock = new Clock();
    let saves = 0;
    const f = fakeDeps();
    const save = f.deps.save;
    f.deps.save = (entries) => {
      saves++;
      return save(entries);
    };
    const u = new Uploader("v1", f.deps, clock.timing());
    u.add([entry("a"), entry("b")], false);
    await clock.advance(1000);
    expect(saves).toBe(0);
    expect(f.calls.map((c) => c.ids)).toEqual([["a", "b"]]);
  });

  it("whenIdle resolves once everything went up; stop cancels what is scheduled", async () => {
    const clock = new Clock();
    const f = fakeDeps();
    const u = new Uploader("v1", f.deps, clock.timing());
    await expect(u.whenIdle()).resolves.toBeUndefined();
    u.add([entry("a")]);
    let done = false;
    void u.whenIdle().then(() => {
      done = true;
    });
    await settle();
    expect(done).toBe(false);
    await clock.advance(1000);
    expect(done).toBe(true);
    // Asked again the moment it resolved (as the set-up does after each chunk): idle too.
    u.add([entry("a2")]);
    let again = false;
    void (async () => {
      await u.whenIdle();
      await u.whenIdle();
      again = true;
    })();
    await clock.advance(1000);
    expect(again).toBe(true);

    u.add([entry("b")]);
    const waiting = u.whenIdle();
    u.stop();
    await expect(waiting).rejects.toThrow("stopped");
    await clock.advance(10_000);
    expect(f.calls.map((c) => c.ids)).toEqual([["a"], ["a2"]]);
  });
});
