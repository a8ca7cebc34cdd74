// uploader.ts — the key backup's upload queue (used by backup.ts): session entries, already
// encrypted under the backup key, go up in batches of at most 100 (PutBackupSessions' limit), a
// moment after they were queued, so a burst of new sessions makes one call. A failed call is
// retried with growing pauses (never blocking anything else: sends do not wait for it); the
// queue is kept durably by the caller (`save` / `remove`), so a reload resumes it. When the
// server says the version is gone (another device rotated the key, or backup was turned off),
// the queue is dropped and `onGone` says so, once; a batch refused for good (backup full, an
// entry too large) is left out, so it cannot hold up the rest.

/** One session entry: its Megolm session id and the blob BackupKey.encryptSession made. */
export interface PendingEntry {
  sessionId: string;
  data: Uint8Array;
}

export interface UploaderDeps {
  /** PutBackupSessions for `version` (1 to 100 entries). */
  put(version: string, sessions: PendingEntry[]): Promise<void>;
  /** Keeps queued entries durably (replacing any with the same session id). */
  save(entries: PendingEntry[]): Promise<void>;
  /** Forgets entries that went up. */
  remove(sessionIds: string[]): Promise<void>;
  /** Whether a failed put means the version is gone for good (no retry). */
  isGone(err: unknown): boolean;
  /** Whether the server refused this batch for good (too large, backup full): it is dropped
   * (a retry would block the queue forever) and the rest goes on. */
  isRefused(err: unknown): boolean;
  /** The version is gone: the queue was dropped. Called once. */
  onGone(): void;
}

export interface UploaderTiming {
  /** Wait this long after the first queued entry before uploading (gathers a burst). */
  delayMs: number;
  /** The first retry pause; doubled after each further failure, up to maxRetryMs. */
  retryMs: number;
  maxRetryMs: number;
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (handle: unknown) => void;
}

export const BATCH = 100;

export const DEFAULT_TIMING: UploaderTiming = {
  delayMs: 1000,
  retryMs: 2000,
  maxRetryMs: 5 * 60 * 1000,
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export class Uploader {
  private queue = new Map<string, PendingEntry>();
  private timer: unknown = null;
  private running: Promise<void> | null = null;
  private failures = 0;
  private stopped = false;
  private gone = false;
  private idleWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];

  constructor(
    readonly version: string,
    private readonly deps: UploaderDeps,
    private readonly timing: UploaderTiming = DEFAULT_TIMING,
  ) {}

  /** How many entries wait to go up. */
  get pending(): number {
    return this.queue.size;
  }

  /**
   * Queues entries (a later entry for the same session replaces the queued one). `durable`:
   * they are saved first (false for entries restored from the durable copy).
   */
  add(entries: PendingEntry[], durable = true): void {
    if (this.stopped || entries.length === 0) return;
    for (const e of entries) this.queue.set(e.sessionId, e);
    if (durable) {
      this.deps.save(entries).catch((err: unknown) => console.warn("the backup queue was not saved", err));
    }
    this.schedule(this.failures === 0 ? this.timing.delayMs : null);
  }

  /** Resolves once the queue is empty (rejects if the version is gone or the uploader stops). */
  whenIdle(): Promise<void> {
    if (this.gone) return Promise.reject(new Error("the backup version is gone"));
    // Entries leave the queue only once they went up (or were refused): empty means done.
    if (this.queue.size === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.idleWaiters.push({ resolve, reject }));
  }

  /** Uploads now what is queued (waits for an upload under way first). */
  async flush(): Promise<void> {
    if (this.timer !== null) {
      this.timing.clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.running) await this.running;
    if (this.stopped || this.queue.size === 0) return;
    this.running = this.upload().finally(() => {
      this.running = null;
    });
    await this.running;
  }

  /** Stops uploading (sign-out, rotation, turned off): nothing more is sent. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.timing.clearTimeout(this.timer);
    this.timer = null;
    this.settle(new Error("the backup uploader stopped"));
  }

  /** `ms` null: keep the retry already scheduled. */
  private schedule(ms: number | null): void {
    if (this.stopped || this.timer !== null) return;
    if (ms === null) return;
    this.timer = this.timing.setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, ms);
  }

  private async upload(): Promise<void> {
    while (!this.stopped && this.queue.size > 0) {
      const batch = [...this.queue.values()].slice(0, BATCH);
      try {
        await this.deps.put(this.version, batch);
      } catch (err) {
        if (this.stopped) return;
        if (this.deps.isGone(err)) {
          this.gone = true;
          this.stopped = true;
          const ids = [...this.queue.keys()];
          this.queue.clear();
          this.deps.remove(ids).catch(() => undefined);
          this.settle(new Error("the backup version is gone"));
          this.deps.onGone();
          return;
        }
        if (this.deps.isRefused(err)) {
          console.warn(`the server refused ${batch.length} backup entries; left out`, err);
          this.drop(batch);
          await this.deps.remove(batch.map((e) => e.sessionId)).catch(() => undefined);
          continue;
        }
        this.failures++;
        const pause = Math.min(this.timing.maxRetryMs, this.timing.retryMs * 2 ** (this.failures - 1));
        console.warn(`backing up keys failed (attempt ${this.failures}), again in ${pause} ms`, err);
        this.timer = this.timing.setTimeout(() => {
          this.timer = null;
          void this.flush();
        }, pause);
        return;
      }
      this.failures = 0;
      const sent = this.drop(batch);
      await this.deps.remove(sent).catch((err: unknown) => console.warn("the backup queue was not trimmed", err));
    }
    if (this.queue.size === 0) this.settle(null);
  }

  /** Takes `batch` off the queue; an entry replaced meanwhile stays for the next batch. */
  private drop(batch: PendingEntry[]): string[] {
    const ids = batch.filter((e) => this.queue.get(e.sessionId) === e).map((e) => e.sessionId);
    for (const id of ids) this.queue.delete(id);
    return ids;
  }

  private settle(err: Error | null): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }
}
