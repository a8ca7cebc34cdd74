// tablock.ts — one tab at a time drives this device: two tabs advancing the same Olm/Megolm
// ratchets from two copies of the state would corrupt them (the other side could no longer
// decrypt). Where the page has Web Locks (secure contexts: https, localhost) the lock is a Web
// Lock, released by the browser when the tab closes or crashes. Plain-http pages (an insecure
// context, e.g. http://kitsulan.lan:8080) have no Web Locks; there the lock is a heartbeat in
// localStorage (owner id + time, refreshed every BEAT_MS) plus a BroadcastChannel:
// - a tab that sees another owner's fresh heartbeat, or gets an answer to its probe on the
//   channel, yields; a heartbeat older than STALE_MS with nobody answering is taken over, so a
//   crashed tab does not lock the person out;
// - two tabs opening at once both probe, hear each other, and the lower id wins; the winner
//   writes the heartbeat and checks it again after SETTLE_MS;
// - an owner that finds another owner in the heartbeat (it was frozen past STALE_MS and missed
//   the probe) stops at once.
// "Use here" (takeover) asks the owner over the channel to stop: it stops its chat, waits for
// the engine to finish what it was doing, then releases and answers. Without an answer the
// lock is taken only if it is free (the owner is gone), never from a living tab.

/** The channel's messages. */
type Signal =
  | { t: "probe"; from: string }
  | { t: "claiming"; from: string }
  | { t: "here"; from: string }
  | { t: "takeover"; from: string }
  | { t: "released"; from: string };

export interface ChannelLike {
  postMessage(message: unknown): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  close(): void;
}

type WebLocks = Pick<LockManager, "request">;

/** What the lock uses of the browser (fakes in the unit tests). */
export interface TabLockEnv {
  /** Web Locks, when the context has them (null: use the heartbeat). */
  locks: WebLocks | null;
  storage: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null;
  /** A new BroadcastChannel on `name` (null when the browser has none). */
  channel: ((name: string) => ChannelLike) | null;
  /** Calls `l` when another tab changes `key` in the storage; returns the unsubscribe. */
  onStorage: (key: string, l: () => void) => () => void;
  /** Calls `l` when the page goes away (pagehide); returns the unsubscribe. */
  onPageHide: (l: () => void) => () => void;
  /** Calls `l` when the page wakes up (shown again, or resumed after being frozen). */
  onWake: (l: () => void) => () => void;
  now: () => number;
  newId: () => string;
}

export interface Timing {
  beatMs: number;
  staleMs: number;
  probeMs: number;
  settleMs: number;
  takeoverMs: number;
}

export const TIMING: Timing = { beatMs: 1000, staleMs: 5000, probeMs: 300, settleMs: 150, takeoverMs: 4000 };

export const LOCK_NAME = "kitsulan-device";
export const STORAGE_KEY = "kitsulan-tab-lock";

interface Heartbeat {
  owner: string;
  at: number;
}

export interface TabLock {
  readonly id: string;
  /** "web-locks" or "heartbeat": which mechanism holds it. */
  readonly kind: "web-locks" | "heartbeat";
  /** Gives the lock up (the page goes away, or the person signs in elsewhere). */
  release(): void;
}

export interface AcquireOptions {
  /** Ask a living owner to hand over (the person chose "Use here"). */
  takeover?: boolean;
  /** Another tab took over: stop everything that touches the device's state, then resolve.
   * "handed-over": asked, this tab may still write what it holds before it resolves;
   * "overtaken": this tab was frozen and another took over meanwhile, it must write nothing. */
  onLost: (how: "handed-over" | "overtaken") => Promise<void> | void;
}

export type Acquired = { lock: TabLock } | { lock: null; why: "other-tab" | "no-answer" };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function isSignal(v: unknown): v is Signal {
  return typeof v === "object" && v !== null && typeof (v as Signal).t === "string" && typeof (v as Signal).from === "string";
}

function readBeat(env: TabLockEnv): Heartbeat | null {
  try {
    const raw = env.storage?.getItem(STORAGE_KEY);
    if (!raw) return null;
    const v = JSON.parse(raw) as Partial<Heartbeat>;
    return typeof v.owner === "string" && typeof v.at === "number" ? { owner: v.owner, at: v.at } : null;
  } catch {
    return null;
  }
}

function writeBeat(env: TabLockEnv, owner: string): void {
  env.storage?.setItem(STORAGE_KEY, JSON.stringify({ owner, at: env.now() }));
}

/** The browser's Web Locks, storage, channel and events. */
export function browserEnv(): TabLockEnv {
  const hasLocks = typeof navigator !== "undefined" && "locks" in navigator && !!navigator.locks;
  let storage: Storage | null = null;
  try {
    storage = typeof localStorage !== "undefined" ? localStorage : null;
  } catch {
    storage = null; // storage disabled for this site
  }
  return {
    locks: hasLocks ? navigator.locks : null,
    storage,
    channel: typeof BroadcastChannel === "undefined" ? null : (name) => new BroadcastChannel(name) as unknown as ChannelLike,
    onStorage: (key, l) => {
      const h = (e: StorageEvent) => {
        if (e.key === key || e.key === null) l();
      };
      window.addEventListener("storage", h);
      return () => window.removeEventListener("storage", h);
    },
    onPageHide: (l) => {
      window.addEventListener("pagehide", l);
      return () => window.removeEventListener("pagehide", l);
    },
    onWake: (l) => {
      document.addEventListener("visibilitychange", l);
      document.addEventListener("resume", l);
      return () => {
        document.removeEventListener("visibilitychange", l);
        document.removeEventListener("resume", l);
      };
    },
    now: () => Date.now(),
    newId: () => `${Date.now().toString(36).padStart(10, "0")}-${crypto.getRandomValues(new Uint32Array(2)).join("")}`,
  };
}

/** Waits up to `ms` for a signal that `match` accepts on `channel` (null on timeout). */
function waitFor(channel: ChannelLike | null, ms: number, match: (s: Signal) => boolean): Promise<Signal | null> {
  return new Promise((resolve) => {
    if (!channel) {
      resolve(null);
      return;
    }
    const before = channel.onmessage;
    const timer = setTimeout(() => done(null), ms);
    const mine = (e: { data: unknown }) => {
      before?.(e);
      if (isSignal(e.data) && match(e.data)) done(e.data);
    };
    const done = (v: Signal | null) => {
      clearTimeout(timer);
      // Not if someone set another handler meanwhile (the lock came: the holder's).
      if (channel.onmessage === mine) channel.onmessage = before;
      resolve(v);
    };
    channel.onmessage = mine;
  });
}

/**
 * Takes the device's tab lock, or says why not. With `takeover`, asks the tab that holds it to
 * hand over first (it stops, then releases); a tab that does not answer keeps it.
 */
export async function acquireTabLock(
  options: AcquireOptions,
  env: TabLockEnv = browserEnv(),
  timing: Timing = TIMING,
): Promise<Acquired> {
  const id = env.newId();
  const channel = env.channel?.(LOCK_NAME) ?? null;
  const no = (why: "other-tab" | "no-answer"): Acquired => {
    channel?.close();
    return { lock: null, why };
  };
  const askToHandOver = async () => {
    const released = waitFor(channel, timing.takeoverMs, (s) => s.t === "released" && s.from !== id);
    channel?.postMessage({ t: "takeover", from: id } satisfies Signal);
    return released;
  };

  if (env.locks) {
    const locks = env.locks;
    let held = await webLock(locks, null);
    if (!held && options.takeover) {
      // Ask the owner to stop, and wait (a while) for the browser to hand the lock over.
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), timing.takeoverMs);
      const waiting = webLock(locks, abort.signal);
      void askToHandOver();
      held = await waiting;
      clearTimeout(timer);
      if (!held) return no("no-answer");
    }
    if (!held) return no("other-tab");
    return { lock: holder(id, "web-locks", env, timing, channel, options, held) };
  }

  // The heartbeat: free, or (takeover) handed over by an owner that answers.
  let won = await claim(id, env, timing, channel, null);
  if (!won && options.takeover) {
    // Handed over, or (no answer) gone meanwhile: the same claim decides, nothing is forced.
    // The owner that answered "released" has removed its heartbeat, but storage reaches other
    // tabs later than the channel's message: its heartbeat counts as gone.
    const released = await askToHandOver();
    won = await claim(id, env, timing, channel, released?.from ?? null);
  }
  if (!won) return no(options.takeover ? "no-answer" : "other-tab");
  return { lock: holder(id, "heartbeat", env, timing, channel, options, null) };
}

/** Requests the Web Lock: at once (`signal` null: only if free) or waiting until `signal`
 * aborts. Resolves with the function that releases it, or null. */
function webLock(locks: WebLocks, signal: AbortSignal | null): Promise<(() => void) | null> {
  return new Promise((resolve) => {
    const opts: LockOptions = signal ? { signal } : { ifAvailable: true };
    locks
      .request(LOCK_NAME, opts, (lock) => {
        if (!lock) {
          resolve(null);
          return undefined;
        }
        // Held until released (or the page goes away).
        return new Promise<void>((release) => resolve(release));
      })
      .catch(() => resolve(null)); // aborted
  });
}

/** The heartbeat claim: yields to a fresh heartbeat (not that of `released`, an owner that
 * released it), an owner that answers, or a lower id claiming at the same time; else writes its
 * own heartbeat and checks it again. */
async function claim(
  id: string,
  env: TabLockEnv,
  timing: Timing,
  channel: ChannelLike | null,
  released: string | null,
): Promise<boolean> {
  const fresh = (b: Heartbeat | null) =>
    b !== null && b.owner !== id && b.owner !== released && env.now() - b.at < timing.staleMs;
  if (fresh(readBeat(env))) return false;
  const contenders = new Set<string>();
  let answered = false;
  if (channel) {
    channel.onmessage = (e) => {
      if (!isSignal(e.data) || e.data.from === id) return;
      const s = e.data;
      if (s.t === "here") answered = true;
      if (s.t === "probe" || s.t === "claiming") contenders.add(s.from);
      if (s.t === "probe") channel.postMessage({ t: "claiming", from: id } satisfies Signal);
    };
    channel.postMessage({ t: "probe", from: id } satisfies Signal);
    await sleep(timing.probeMs);
  }
  if (answered || [...contenders].some((other) => other < id)) {
    if (channel) channel.onmessage = null;
    return false;
  }
  // Ours, unless someone wrote in the meantime: from here on we answer probes as the owner.
  if (channel) {
    channel.onmessage = (e) => {
      if (isSignal(e.data) && e.data.from !== id && e.data.t === "probe") {
        channel.postMessage({ t: "here", from: id } satisfies Signal);
      }
    };
  }
  if (fresh(readBeat(env))) {
    if (channel) channel.onmessage = null;
    return false;
  }
  writeBeat(env, id);
  await sleep(timing.settleMs);
  let settled = readBeat(env);
  if (settled === null) {
    // Removed by a releasing owner whose removal landed after our write: nobody else claims it.
    writeBeat(env, id);
    settled = readBeat(env);
  }
  if (settled?.owner !== id) {
    if (channel) channel.onmessage = null;
    return false;
  }
  return true;
}

/** A held lock: answers probes and takeovers, keeps the heartbeat, notices being overtaken. */
function holder(
  id: string,
  kind: TabLock["kind"],
  env: TabLockEnv,
  timing: Timing,
  channel: ChannelLike | null,
  options: AcquireOptions,
  releaseWebLock: (() => void) | null,
): TabLock {
  let held = true;
  let handingOver = false;
  const cleanups: Array<() => void> = [];
  const release = () => {
    if (!held) return;
    held = false;
    for (const c of cleanups.splice(0)) c();
    if (kind === "heartbeat" && readBeat(env)?.owner === id) env.storage?.removeItem(STORAGE_KEY);
    releaseWebLock?.();
  };
  /** Another tab owns the device now: stop using it (nothing to give back). */
  const overtaken = () => {
    if (!held || handingOver) return;
    held = false;
    for (const c of cleanups.splice(0)) c();
    channel?.close();
    releaseWebLock?.();
    void options.onLost("overtaken");
  };
  const handOver = async () => {
    if (!held || handingOver) return;
    handingOver = true;
    try {
      await options.onLost("handed-over");
    } finally {
      release();
      channel?.postMessage({ t: "released", from: id } satisfies Signal);
      channel?.close();
    }
  };
  if (channel) {
    channel.onmessage = (e) => {
      if (!isSignal(e.data) || e.data.from === id || !held) return;
      if (e.data.t === "probe") channel.postMessage({ t: "here", from: id } satisfies Signal);
      if (e.data.t === "takeover") void handOver();
    };
    cleanups.push(() => {
      channel.onmessage = null;
    });
  }
  if (kind === "heartbeat") {
    const beat = () => {
      if (!held || handingOver) return;
      const now = readBeat(env);
      if (now && now.owner !== id) overtaken();
      else writeBeat(env, id);
    };
    const timer = setInterval(beat, timing.beatMs);
    cleanups.push(() => clearInterval(timer));
    // A tab frozen past STALE_MS (and so taken over) stops before it does anything else.
    const check = () => {
      const now = readBeat(env);
      if (now && now.owner !== id) overtaken();
    };
    cleanups.push(env.onStorage(STORAGE_KEY, check), env.onWake(check));
  }
  cleanups.push(env.onPageHide(() => release()));
  return {
    id,
    kind,
    release: () => {
      release();
      channel?.close();
    },
  };
}
