// pairing.ts — linking a new device by QR code or PIN (docs/e2ee.md "Linking a new device"):
// only the I/O. The steps (HELLO, the SAS commitment, keys and MACs over the channel keys, the
// account key only after both MACs, the optional backup key after it) are the crate's
// `linking.rs` state machine (NewDeviceLinkFlow / ExistingDeviceLinkFlow in WASM), the same one
// the Rust client runs. Here: the PairingService RPCs, posting what the flow queued in order,
// and the flow's state for the UI. The channel's secrets stay in WASM; the account key secret
// is in JS memory only between the flow and the engine, and is wiped after use.
import {
  ExistingDeviceLinkFlow,
  NewDeviceLinkFlow,
  PairingQr,
  normalizePairingPin,
  sasEmoji,
} from "kitsulan-crypto";
import { pairingClient } from "../api";
import type { Session } from "../gen/kitsulan/v1/auth_pb";
import { PairingState, type PairingMessage } from "../gen/kitsulan/v1/pairing_pb";
import { bytesToUuid, uuidBytes, uuidv7 } from "../lib/ids";
import { loadCrypto } from "./load";

/** A pairing that can no longer go on (cancelled, expired, or finished). */
export function pairingOver(state: PairingState): boolean {
  return state === PairingState.CANCELLED || state === PairingState.EXPIRED || state === PairingState.COMPLETED;
}

/** The emoji character of SAS table entry `index` (names come from the i18n messages). */
export function sasEmojiChar(index: number): string {
  return sasEmoji(index);
}

/** The two devices could not verify each other; the pairing was cancelled. */
export class PairingVerificationError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = "PairingVerificationError";
  }
}

/** Messages must come in order, each once. */
function checkIndex(message: PairingMessage, after: number): number {
  if (message.index <= after) throw new Error(`pairing message ${message.index} repeated`);
  return message.index;
}

/** What both flows offer the glue. */
interface Flow {
  readonly state: string;
  readonly emojiIndices: Uint8Array | undefined;
  receive(payload: Uint8Array): void;
  takeOutgoing(): Uint8Array | undefined;
}

function emojiOf(flow: Flow | null): number[] | null {
  const indices = flow?.emojiIndices;
  return indices ? Array.from(indices) : null;
}

/** Feeds a flow a payload; a stopped flow becomes PairingVerificationError. */
function receive(flow: Flow, payload: Uint8Array): void {
  try {
    flow.receive(payload);
  } catch (err) {
    throw new PairingVerificationError(err instanceof Error ? err.message : String(err));
  }
}

/**
 * Posts what a flow queued, one at a time and in the order it was queued (each payload was
 * encrypted when queued, so the server must store them in that order). `flush()` moves the
 * queue over synchronously, so calls made one after another keep their order.
 */
class Sender {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly send: (payload: Uint8Array) => Promise<void>) {}

  flush(flow: Flow): Promise<void> {
    let last: Promise<void> = this.queue.then(() => undefined);
    for (let payload = flow.takeOutgoing(); payload; payload = flow.takeOutgoing()) {
      const p = payload;
      const run = () => this.send(p);
      last = this.queue.then(run, run);
      this.queue = last.catch(() => undefined);
    }
    return last;
  }
}

/** The new device's side: no session until the existing device approves. */
export class NewDeviceLink {
  private afterIndex = 0;
  private readonly sender = new Sender(async (payload) => {
    await pairingClient.postPairingMessage({ pairingId: this.pairingId, secret: this.secret, payload });
  });

  private constructor(
    readonly pairingId: string,
    readonly pin: string,
    readonly qrText: string,
    readonly expiresAtMs: number,
    private readonly secret: string,
    private flow: NewDeviceLinkFlow | null,
  ) {}

  /** Chooses a pairing id and an ephemeral key, and calls CreatePairing. */
  static async open(serverUrl: string): Promise<NewDeviceLink> {
    await loadCrypto();
    const pairingId = uuidv7();
    const flow = new NewDeviceLinkFlow(uuidBytes(pairingId), serverUrl);
    try {
      const res = await pairingClient.createPairing({ pairingId, publicKey: flow.publicKey });
      return new NewDeviceLink(pairingId, res.pin, flow.qrText(), Number(res.expiresAtMs), res.secret, flow);
    } catch (err) {
      flow.free();
      throw err;
    }
  }

  /** Whether the existing device opened the channel (the SAS is under way). */
  get channelOpen(): boolean {
    const state = this.flow?.state;
    return state !== undefined && state !== "waiting";
  }

  /** The 7 emoji indices to compare, once both SAS keys are known. */
  get emoji(): number[] | null {
    return emojiOf(this.flow);
  }

  /**
   * One GetPairing: every new message goes to the flow, what it queued is posted. The session
   * is there once, after approval. A broken step cancels the pairing and throws
   * PairingVerificationError.
   */
  async poll(): Promise<{ state: PairingState; session: Session | undefined }> {
    const flow = this.live();
    const res = await pairingClient.getPairing({
      pairingId: this.pairingId,
      secret: this.secret,
      afterIndex: this.afterIndex,
    });
    for (const message of res.messages) {
      this.afterIndex = checkIndex(message, this.afterIndex);
      try {
        receive(flow, message.payload);
      } catch (err) {
        await this.cancel();
        throw err;
      }
      await this.sender.flush(flow);
    }
    return { state: res.state, session: res.session };
  }

  private live(): NewDeviceLinkFlow {
    const flow = this.flow;
    if (!flow || flow.state === "cancelled") throw new PairingVerificationError("the pairing was stopped");
    return flow;
  }

  /** The person saw the same emoji on both screens: sends our SAS MAC. */
  async confirm(): Promise<void> {
    const flow = this.live();
    if (flow.confirmed) return;
    flow.confirm();
    await this.sender.flush(flow);
  }

  /** The account key secret received through the channel (once). */
  takeAccountKey(): Uint8Array | null {
    return this.flow?.takeAccountKey() ?? null;
  }

  /** The key-backup key the existing device sent after the account key, if any (once). */
  takeBackupKey(): Uint8Array | null {
    return this.flow?.takeBackupKey() ?? null;
  }

  /** Ends the pairing here and on the server (best effort). */
  async cancel(): Promise<void> {
    this.flow?.cancel();
    await pairingClient.cancelPairing({ pairingId: this.pairingId, secret: this.secret }).catch(() => undefined);
  }

  dispose(): void {
    this.flow?.free();
    this.flow = null;
  }
}

/** What the existing device learned of the pairing: from the camera (QR) or the server (PIN). */
export interface FoundPairing {
  pairingId: string;
  publicKey: Uint8Array;
  by: "qr" | "pin";
}

/** FindPairing with a typed PIN (spaces and dashes allowed). Throws PIN_INVALID-like errors. */
export async function findByPin(typed: string): Promise<FoundPairing> {
  await loadCrypto();
  let pin: string;
  try {
    pin = normalizePairingPin(typed);
  } catch {
    throw new PairingInputError("PIN_INVALID");
  }
  const res = await pairingClient.findPairing({ pin });
  return { pairingId: res.pairingId, publicKey: res.publicKey, by: "pin" };
}

/** Reads a scanned `KITSULAN-PAIR:…` QR text; it must name this server. */
export async function fromQr(text: string, serverUrl: string): Promise<FoundPairing> {
  await loadCrypto();
  let qr: PairingQr;
  try {
    qr = PairingQr.fromText(text);
  } catch {
    throw new PairingInputError("QR_INVALID");
  }
  try {
    if (qr.serverUrl !== serverUrl) throw new PairingInputError("QR_OTHER_SERVER");
    return { pairingId: bytesToUuid(qr.pairingId), publicKey: qr.publicKey, by: "qr" };
  } finally {
    qr.free();
  }
}

/** A PIN or QR code that cannot be used; `reason` is like a server reason code. */
export class PairingInputError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "PairingInputError";
  }
}

/** The existing device's side: it took the pairing with its first message. */
export class ExistingDeviceLink {
  private afterIndex = 0;
  private readonly sender = new Sender(async (payload) => {
    await pairingClient.postPairingMessage({ pairingId: this.pairingId, secret: "", payload });
  });

  private constructor(
    readonly pairingId: string,
    private flow: ExistingDeviceLinkFlow | null,
  ) {}

  /** Opens the channel to the new device's key and posts HELLO (which takes the pairing). */
  static async connect(found: FoundPairing): Promise<ExistingDeviceLink> {
    await loadCrypto();
    const flow = ExistingDeviceLinkFlow.connect(uuidBytes(found.pairingId), found.publicKey);
    const link = new ExistingDeviceLink(found.pairingId, flow);
    try {
      await link.sender.flush(flow);
    } catch (err) {
      link.dispose();
      throw err;
    }
    return link;
  }

  /** The 7 emoji indices to compare, once the new device revealed its SAS key. */
  get emoji(): number[] | null {
    return emojiOf(this.flow);
  }

  private live(): ExistingDeviceLinkFlow {
    const flow = this.flow;
    if (!flow || flow.state === "cancelled") throw new PairingVerificationError("the pairing was stopped");
    return flow;
  }

  /**
   * One GetPairing: every new message goes to the flow, what it queued is posted. `verified`:
   * the person confirmed here and the new device's MAC verified, so the account key may go. A
   * broken step cancels the pairing and throws PairingVerificationError.
   */
  async poll(): Promise<{ state: PairingState; emoji: number[] | null; verified: boolean }> {
    const flow = this.live();
    const res = await pairingClient.getPairing({ pairingId: this.pairingId, secret: "", afterIndex: this.afterIndex });
    for (const message of res.messages) {
      this.afterIndex = checkIndex(message, this.afterIndex);
      try {
        receive(flow, message.payload);
      } catch (err) {
        await this.cancel();
        throw err;
      }
      await this.sender.flush(flow);
    }
    return { state: res.state, emoji: emojiOf(flow), verified: flow.verified };
  }

  /** The person saw the same emoji on both screens: sends our SAS MAC. */
  async confirm(): Promise<void> {
    const flow = this.live();
    if (flow.confirmed) return;
    flow.confirm();
    await this.sender.flush(flow);
  }

  /**
   * Sends the account key (and, when given, the key-backup key) through the channel, then
   * approves: the new device becomes a device of this account named `deviceName`. Returns its
   * device id. Only after both SAS MACs.
   */
  async approve(accountKeySecret: Uint8Array, deviceName: string, backupKey?: Uint8Array): Promise<string> {
    const flow = this.live();
    if (!flow.verified) throw new PairingVerificationError("the emoji were not confirmed on both devices");
    flow.sendAccountKey(accountKeySecret);
    if (backupKey) flow.sendBackupKey(backupKey);
    await this.sender.flush(flow);
    const res = await pairingClient.approvePairing({ pairingId: this.pairingId, deviceName });
    return res.deviceId;
  }

  async cancel(): Promise<void> {
    this.flow?.cancel();
    await pairingClient.cancelPairing({ pairingId: this.pairingId, secret: "" }).catch(() => undefined);
  }

  dispose(): void {
    this.flow?.free();
    this.flow = null;
  }
}
