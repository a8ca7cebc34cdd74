// verification.ts — verifying another person with SAS emoji (docs/e2ee.md, "Verifying a
// contact"). The protocol — messages, commitment, MACs, state machine — is the crypto crate's
// `verification` module, run here through its WASM build (`Verification`), exactly as the Rust
// clients run it natively (client/src/verification.rs). This file only carries its messages
// over Olm to-device messages (engine.sendVerification) and keeps one verification in flight:
// - "Verify" sends the request to every device of the other person; the first device that
//   answers is the one we verify with, the others are told `accepted_elsewhere`;
// - an incoming request waits for the person to accept or decline;
// - both screens show the 7 emoji; "They match" sends our MACs; when both sides are done, the
//   other person's account key is recorded as verified (engine.markVerified, in IndexedDB).
// A request that arrives while another verification is under way is declined.
import { Verification, isVerificationRequest, verificationAcceptedElsewhere, verificationTransactionId } from "kitsulan-crypto";
import { bytesEqual, bytesToUuid, uuidBytes, uuidv7 } from "../lib/ids";
import type { E2ee, Peer } from "./engine";

/** What the UI shows of the verification in flight. */
export interface VerificationView {
  transactionId: string;
  otherAccountId: string;
  initiator: boolean;
  state: "requested" | "ready" | "compare" | "confirmed" | "done" | "cancelled";
  emoji: number[] | null;
  /** `user`, `timeout`, `mismatch`, `mac_mismatch`, `key_mismatch`, `unexpected_message`, `accepted_elsewhere`, `other`. */
  cancelReason: string | null;
  cancelledByThem: boolean;
  /** Why it could not start or go on (a network error), if that is why it ended. */
  error: string | null;
}

interface Flight {
  v: Verification;
  otherAccountId: string;
  /** The device we verify with (the initiator learns it from `ready`). */
  otherDevice: Peer | null;
  /** Devices the request went to (initiator). */
  requested: Peer[];
  error: string | null;
}

export class Verifier {
  private flight: Flight | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly engine: E2ee,
    private readonly onChange: (view: VerificationView | null) => void,
    private readonly onVerified: (accountId: string) => void,
  ) {}

  /** Runs `fn` after everything queued before it (the WASM object is not re-entrant). */
  private run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private view(): VerificationView | null {
    const f = this.flight;
    if (!f) return null;
    const emoji = f.v.emojiIndices;
    return {
      transactionId: bytesToUuid(f.v.transactionId),
      otherAccountId: f.otherAccountId,
      initiator: f.v.isInitiator,
      state: f.v.state as VerificationView["state"],
      emoji: emoji ? Array.from(emoji) : null,
      cancelReason: f.v.cancelReason ?? null,
      cancelledByThem: f.v.cancelledByThem,
      error: f.error,
    };
  }

  private changed(): void {
    const view = this.view();
    if (view && (view.state === "done" || view.state === "cancelled")) this.stopTimer();
    this.onChange(view);
  }

  private get busy(): boolean {
    const state = this.flight?.v.state;
    return state !== undefined && state !== "done" && state !== "cancelled";
  }

  private startTimer(): void {
    this.stopTimer();
    this.timer = setInterval(() => {
      void this.run(async () => {
        const f = this.flight;
        if (!f || !f.v.checkTimeout(BigInt(Date.now()))) return;
        await this.flush(f).catch(() => undefined);
        this.changed();
      });
    }, 1000);
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Sends what the state machine queued to the other device; records the result when done. */
  private async flush(f: Flight): Promise<void> {
    // Before a device answered, only a cancel can be queued: it goes to every device asked.
    const targets = f.otherDevice ? [f.otherDevice] : f.requested;
    const messages: Array<{ deviceId: string; bytes: Uint8Array }> = [];
    for (let m = f.v.takeOutgoing(); m; m = f.v.takeOutgoing()) {
      for (const d of targets) messages.push({ deviceId: d.deviceId, bytes: m });
    }
    if (messages.length > 0) await this.engine.sendVerification(messages);
    const key = f.v.verifiedAccountKey;
    if (key && (await this.engine.markVerified(f.otherAccountId, key))) this.onVerified(f.otherAccountId);
  }

  /** Starts verifying `accountId`: the request goes to each of their devices. */
  start(accountId: string): Promise<void> {
    return this.run(async () => {
      if (this.busy) this.cancelNow();
      this.dispose();
      const { accountKey, devices } = await this.engine.contact(accountId);
      const own = this.engine.ownIdentity();
      const txn = uuidBytes(uuidv7());
      const v = Verification.request(txn, own.deviceEd25519, own.accountKey, accountKey, BigInt(Date.now()));
      const f: Flight = { v, otherAccountId: accountId, otherDevice: null, requested: devices, error: null };
      this.flight = f;
      this.startTimer();
      const request = v.takeOutgoing();
      this.changed();
      if (!request) return;
      try {
        if (devices.length === 0) throw new Error("they have no device to verify with");
        await this.engine.sendVerification(devices.map((d) => ({ deviceId: d.deviceId, bytes: request })));
      } catch (err) {
        f.error = String(err);
        v.cancel();
        v.takeOutgoing();
        this.changed();
      }
    });
  }

  /** A verification message from `from` (already decrypted from Olm by the engine). */
  receive(from: Peer, bytes: Uint8Array): Promise<void> {
    return this.run(async () => {
      let txn: Uint8Array;
      try {
        txn = verificationTransactionId(bytes);
      } catch {
        return; // not ours to read
      }
      const f = this.flight;
      if (f && bytesEqual(f.v.transactionId, txn)) {
        if (from.accountId !== f.otherAccountId) return;
        f.v.receive(bytes, from.ed25519);
        const theirs = f.v.theirDeviceEd25519;
        if (!f.otherDevice && theirs && bytesEqual(theirs, from.ed25519)) {
          f.otherDevice = from;
          const others = f.requested.filter((d) => d.deviceId !== from.deviceId);
          if (others.length > 0) {
            const cancel = verificationAcceptedElsewhere(txn);
            void this.engine
              .sendVerification(others.map((d) => ({ deviceId: d.deviceId, bytes: cancel })))
              .catch(() => undefined);
          }
        }
        await this.flush(f);
        this.changed();
        return;
      }
      if (!isVerificationRequest(bytes) || from.accountId === this.engine.accountId) return;
      const { accountKey } = await this.engine.contact(from.accountId);
      const own = this.engine.ownIdentity();
      let v: Verification;
      try {
        v = Verification.fromRequest(bytes, from.ed25519, accountKey, own.deviceEd25519, own.accountKey, BigInt(Date.now()));
      } catch {
        return; // stale or malformed: nothing to show
      }
      if (this.busy) {
        // One at a time: decline the newcomer.
        v.cancel();
        const decline = v.takeOutgoing();
        v.free();
        if (decline) await this.engine.sendVerification([{ deviceId: from.deviceId, bytes: decline }]);
        return;
      }
      this.dispose();
      this.flight = { v, otherAccountId: from.accountId, otherDevice: from, requested: [], error: null };
      this.startTimer();
      this.changed();
    });
  }

  private act(step: (v: Verification) => void): Promise<void> {
    return this.run(async () => {
      const f = this.flight;
      if (!f) return;
      step(f.v);
      try {
        await this.flush(f);
      } catch (err) {
        f.error = String(err);
      }
      this.changed();
    });
  }

  /** The person accepted an incoming request. */
  accept(): Promise<void> {
    return this.act((v) => v.accept());
  }

  /** The person saw the same emoji on both screens. */
  confirm(): Promise<void> {
    return this.act((v) => v.confirm());
  }

  /** The person saw different emoji. */
  mismatch(): Promise<void> {
    return this.act((v) => v.mismatch());
  }

  /** The person cancelled (or declined). */
  cancel(): Promise<void> {
    return this.act((v) => v.cancel());
  }

  private cancelNow(): void {
    const f = this.flight;
    if (!f) return;
    f.v.cancel();
    void this.flush(f).catch(() => undefined);
  }

  /** Closes the finished verification (the UI's "Close"). */
  close(): void {
    void this.run(async () => {
      if (this.busy) {
        const f = this.flight;
        if (f) {
          f.v.cancel();
          await this.flush(f).catch(() => undefined);
        }
      }
      this.dispose();
      this.onChange(null);
    });
  }

  /** Frees the WASM object (sign-out, or a new verification). */
  dispose(): void {
    this.stopTimer();
    this.flight?.v.free();
    this.flight = null;
  }
}
