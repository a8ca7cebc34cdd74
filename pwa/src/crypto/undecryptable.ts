// undecryptable.ts — messages this device could not decrypt ("unable to decrypt"; docs/e2ee.md
// "Key requests and unable to decrypt"): why, in words a person understands, and how many.
//
// - categoryOf: the machine's reason codes (crypto/src/client: UndecryptableReason and the
//   primitives' error codes) and content.ts's reasons, sorted into what the person can expect:
//   the key may still come ("waiting"), the message was refused (moved to another conversation,
//   replayed, a key shared for something else), it was changed after it was sent, or it is
//   damaged.
// - explainWaiting: for a message that waits for its key, which lines to show (i18n keys) and
//   whether a restore from the recovery key would read it.
// - UndecryptableStats: this device's telemetry. Each distinct message that ends undecryptable
//   for a reason other than waiting is counted once; messages waiting for a key are a gauge, and
//   those waiting longer than STUCK_AFTER_MS another. Every change is a `kitsulan:undecryptable`
//   event on window, and Settings → Diagnostics shows the counts.
import type { Content } from "./content";
import type { MessageKey } from "../i18n/messages";

/** The reason engine.ts gives a message whose key this device does not hold (yet). */
export const WAITING_FOR_KEY = "waiting for the key";
/** A message still waiting for its key after this long is counted as stuck. */
export const STUCK_AFTER_MS = 30_000;
/** How many distinct message ids the counter remembers (the oldest are forgotten, still counted). */
export const MAX_REMEMBERED = 5000;
/** The window event each change of the counts is (detail: UndecryptableEvent). */
export const UNDECRYPTABLE_EVENT = "kitsulan:undecryptable";

export type Category = "waiting" | "refused" | "tampered" | "malformed";

/** Reasons whose key may still arrive (a share, a forwarded key, a backup restore). */
const WAITING = new Set([WAITING_FOR_KEY, "missing_key", "unknown_index", "megolm_unknown_index"]);
/** Reasons of a message the machine refused: used twice, moved, or under a key bound elsewhere. */
const REFUSED = new Set([
  "replayed",
  "megolm_replay",
  "megolm_index_conflict",
  "shared_for_something_else",
  // content.ts: an edit whose Content names another message than the one it replaces.
  "edit for another message",
  "edit_for_another_message",
  // The machine's text for these before codes were kept (an offline copy of an older app).
  "the key was shared for something else",
]);
/** Reasons of a message whose ciphertext did not authenticate. */
const TAMPERED = new Set(["megolm_decryption"]);

/** What `reason` (a machine code, or content.ts's text) means for the person. */
export function categoryOf(reason: string): Category {
  if (WAITING.has(reason)) return "waiting";
  if (REFUSED.has(reason)) return "refused";
  if (TAMPERED.has(reason)) return "tampered";
  return "malformed";
}

/** The line that says why a message that will not decrypt was not (not for "waiting"). */
export function refusalLine(category: Exclude<Category, "waiting">): MessageKey {
  switch (category) {
    case "refused":
      return "utdRefused";
    case "tampered":
      return "utdTampered";
    case "malformed":
      return "utdMalformed";
  }
}

/** What the bubble of a waiting message knows about where its key could come from. */
export interface WaitingContext {
  /** This device holds the account key (else nobody can share keys with it). */
  deviceReady: boolean;
  /** The sender is this account (another device of ours). */
  fromOwnAccount: boolean;
  /** The sender's device name, when known (our own devices). */
  senderDeviceName: string | null;
  /** The message was sent before this device was signed in (null: not known yet). */
  beforeThisDevice: boolean | null;
  /** How many other devices this account has (null: not known yet). */
  otherDevices: number | null;
  /** A key request for this message's key went to our other devices and is not answered. */
  asked: boolean;
  /** The account has a key backup (null: not known yet). */
  backup: boolean | null;
}

export interface Explanation {
  /** The lines, in order (each an i18n key taking {sender} and {device}). */
  lines: MessageKey[];
  /** Offer Settings → Recovery key (this device can restore from the backup). */
  restore: boolean;
}

/** Why a message waits for its key, and what will bring it. */
export function explainWaiting(c: WaitingContext): Explanation {
  if (!c.deviceReady) {
    // Nobody shares keys with a device without a certificate: only a restore or a link helps.
    return c.backup
      ? { lines: ["utdNoAccountKey", "utdRestoreHint"], restore: true }
      : { lines: ["utdNoAccountKey", "utdLinkHint"], restore: false };
  }
  const lines: MessageKey[] = [];
  if (c.beforeThisDevice) lines.push("utdBeforeDevice");
  else if (c.fromOwnAccount) lines.push(c.senderDeviceName ? "utdOwnDeviceNotShared" : "utdOwnNotShared");
  else lines.push("utdNotShared");
  if (c.otherDevices === 0) lines.push(c.beforeThisDevice ? "utdNoOtherDeviceBefore" : "utdNoOtherDevice");
  else if (c.asked) lines.push("utdAskedOwn");
  else if (c.otherDevices !== null) lines.push("utdAskingOwn");
  return { lines, restore: false };
}

// ---------------------------------------------------------------------------------------------

/** The counts (Settings → Diagnostics). */
export interface UndecryptableCounts {
  /** Distinct messages that ended undecryptable for a reason other than waiting for a key. */
  failed: number;
  /** Messages waiting for their key now. */
  waiting: number;
  /** Of those, the ones waiting for longer than STUCK_AFTER_MS. */
  stuck: number;
}

/** What a `kitsulan:undecryptable` event says (its detail). */
export interface UndecryptableEvent {
  /** "failed": a message counted as not readable; "waiting": one waits for its key; "stuck":
   * one waited longer than STUCK_AFTER_MS; "resolved": one that waited decrypted (or was deleted). */
  change: "failed" | "waiting" | "stuck" | "resolved";
  messageId: string;
  /** The reason's category ("waiting" for waiting, stuck and resolved). */
  category: Category;
  counts: UndecryptableCounts;
}

export class UndecryptableStats {
  /** Messages counted as failed (ids, oldest first; at most MAX_REMEMBERED kept). */
  private readonly failedIds = new Set<string>();
  private failedCount = 0;
  /** Messages waiting: id -> when first seen waiting. */
  private readonly waitingSince = new Map<string, number>();
  private readonly stuckIds = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly listeners = new Set<(e: UndecryptableEvent) => void>();

  constructor(
    private readonly now: () => number = () => Date.now(),
    private readonly emit: (e: UndecryptableEvent) => void = dispatchOnWindow,
  ) {}

  counts(): UndecryptableCounts {
    return { failed: this.failedCount, waiting: this.waitingSince.size, stuck: this.stuckIds.size };
  }

  /** Calls `listener` after every change; returns the unsubscribe. */
  subscribe(listener: (e: UndecryptableEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** What decrypting message `messageId` gave this time. */
  record(messageId: string, content: Content): void {
    if (content.kind !== "undecryptable") {
      if (this.waitingSince.delete(messageId)) {
        this.stuckIds.delete(messageId);
        this.changed("resolved", messageId, "waiting");
      }
      return;
    }
    const category = categoryOf(content.reason);
    if (category === "waiting") {
      if (this.failedIds.has(messageId) || this.waitingSince.has(messageId)) return;
      this.waitingSince.set(messageId, this.now());
      this.schedule();
      this.changed("waiting", messageId, category);
      return;
    }
    // A message that waited and is now refused (a key that came but does not fit) moves over.
    if (this.waitingSince.delete(messageId)) this.stuckIds.delete(messageId);
    if (this.failedIds.has(messageId)) return;
    this.failedIds.add(messageId);
    this.failedCount++;
    if (this.failedIds.size > MAX_REMEMBERED) {
      const oldest = this.failedIds.values().next();
      if (!oldest.done) this.failedIds.delete(oldest.value);
    }
    this.changed("failed", messageId, category);
  }

  /** Marks as stuck the messages waiting longer than STUCK_AFTER_MS (the timer calls it). */
  checkStuck(): void {
    const now = this.now();
    for (const [id, since] of this.waitingSince) {
      if (!this.stuckIds.has(id) && now - since >= STUCK_AFTER_MS) {
        this.stuckIds.add(id);
        this.changed("stuck", id, "waiting");
      }
    }
    this.schedule();
  }

  /** Forgets what was waiting (sign-out); the failed count stays (it is this page's history). */
  clearWaiting(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.waitingSince.clear();
    this.stuckIds.clear();
  }

  private schedule(): void {
    if (this.timer) return;
    let next = Infinity;
    for (const [id, since] of this.waitingSince) if (!this.stuckIds.has(id)) next = Math.min(next, since + STUCK_AFTER_MS);
    if (next === Infinity) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.checkStuck();
      },
      Math.max(0, next - this.now()),
    );
  }

  private changed(change: UndecryptableEvent["change"], messageId: string, category: Category): void {
    const e: UndecryptableEvent = { change, messageId, category, counts: this.counts() };
    this.emit(e);
    for (const l of this.listeners) l(e);
  }
}

function dispatchOnWindow(e: UndecryptableEvent): void {
  if (typeof window !== "undefined") window.dispatchEvent(new CustomEvent(UNDECRYPTABLE_EVENT, { detail: e }));
}

/** This page's counts (the engine records every decryption here). */
export const undecryptableStats = new UndecryptableStats();
