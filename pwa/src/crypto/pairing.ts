// pairing.ts — linking a new device by QR code or PIN (docs/e2ee.md "Linking a new device"),
// the same protocol as NewDeviceLink / ExistingDeviceLink in e2e-tests/src/e2ee.rs:
// - the new device opens the pairing with an ECIES key and shows the PIN and the QR code;
// - the existing device finds it (typed PIN or scanned QR), opens the channel with HELLO;
// - both show the channel's check code; once the person confirmed, the new device sends
//   CONFIRMED; the existing device then sends `0x01 || account key secret (32)` and approves;
// - the new device's next GetPairing carries its session.
// The channel's secrets stay in WASM; the account key secret is in JS memory only between
// the channel and the engine, and is wiped after use.
import {
  NewDevicePairing,
  PairingQr,
  normalizePairingPin,
  pairingConnect,
  type PairingChannel,
  type PairingStart,
} from "kitsulan-crypto";
import { pairingClient } from "../api";
import type { Session } from "../gen/kitsulan/v1/auth_pb";
import { PairingState, type PairingMessage } from "../gen/kitsulan/v1/pairing_pb";
import { bytesEqual, bytesToUuid, uuidBytes, uuidv7 } from "../lib/ids";
import { loadCrypto } from "./engine";

const te = new TextEncoder();
/** The first plaintext in the channel (existing device to new device). */
const PAIRING_HELLO = te.encode("KITSULAN-LINK/1 hello");
/** What the new device sends once the person confirmed the check codes match. */
const PAIRING_CONFIRMED = te.encode("KITSULAN-LINK/1 confirmed");
/** Kind byte of the channel message carrying the account key secret. */
const PAIRING_ACCOUNT_KEY = 0x01;
const ACCOUNT_KEY_LEN = 32;

/** A pairing that can no longer go on (cancelled, expired, or finished). */
export function pairingOver(state: PairingState): boolean {
  return state === PairingState.CANCELLED || state === PairingState.EXPIRED || state === PairingState.COMPLETED;
}

/** Takes the channel out of a PairingStart and frees it. */
function channelOf(start: PairingStart): { channel: PairingChannel; bytes: Uint8Array } {
  const bytes = start.bytes;
  const channel = start.takeChannel();
  start.free();
  if (!channel) throw new Error("the pairing channel did not open");
  return { channel, bytes };
}

/** Messages must come in order, each once. */
function checkIndex(message: PairingMessage, after: number): number {
  if (message.index <= after) throw new Error(`pairing message ${message.index} repeated`);
  return message.index;
}

/** The new device's side: no session until the existing device approves. */
export class NewDeviceLink {
  private channel: PairingChannel | null = null;
  private afterIndex = 0;
  private accountKey: Uint8Array | null = null;

  private constructor(
    readonly pairingId: string,
    readonly pin: string,
    readonly qrText: string,
    readonly expiresAtMs: number,
    private readonly secret: string,
    private ecies: NewDevicePairing | null,
  ) {}

  /** Chooses a pairing id and an ephemeral key, and calls CreatePairing. */
  static async open(serverUrl: string): Promise<NewDeviceLink> {
    await loadCrypto();
    const pairingId = uuidv7();
    const ecies = new NewDevicePairing(uuidBytes(pairingId), serverUrl);
    try {
      const res = await pairingClient.createPairing({ pairingId, publicKey: ecies.publicKey() });
      return new NewDeviceLink(pairingId, res.pin, ecies.qrText(), Number(res.expiresAtMs), res.secret, ecies);
    } catch (err) {
      ecies.free();
      throw err;
    }
  }

  /** The check code, once the existing device opened the channel. */
  get checkCode(): string | null {
    return this.channel?.checkCode ?? null;
  }

  /**
   * One GetPairing: opens the channel on the first message, keeps the account key when it
   * comes. The session is there once, after approval.
   */
  async poll(): Promise<{ state: PairingState; session: Session | undefined }> {
    const res = await pairingClient.getPairing({
      pairingId: this.pairingId,
      secret: this.secret,
      afterIndex: this.afterIndex,
    });
    for (const message of res.messages) {
      this.afterIndex = checkIndex(message, this.afterIndex);
      if (!this.channel) {
        const ecies = this.ecies;
        if (!ecies) throw new Error("the pairing key was used already");
        this.ecies = null;
        const { channel, bytes } = channelOf(ecies.accept(message.payload));
        ecies.free();
        this.channel = channel;
        if (!bytesEqual(bytes, PAIRING_HELLO)) throw new Error("unexpected first pairing message");
        continue;
      }
      const plaintext = this.channel.decrypt(message.payload);
      if (plaintext[0] === PAIRING_ACCOUNT_KEY && plaintext.length === 1 + ACCOUNT_KEY_LEN) {
        this.accountKey = plaintext.slice(1);
      }
      plaintext.fill(0);
    }
    return { state: res.state, session: res.session };
  }

  /** Tells the existing device the person saw the same check code on both screens. */
  async confirm(): Promise<void> {
    if (!this.channel) throw new Error("the channel is not open yet");
    await pairingClient.postPairingMessage({
      pairingId: this.pairingId,
      secret: this.secret,
      payload: this.channel.encrypt(PAIRING_CONFIRMED),
    });
  }

  /** The account key secret received through the channel (once). */
  takeAccountKey(): Uint8Array | null {
    const key = this.accountKey;
    this.accountKey = null;
    return key;
  }

  /** Ends the pairing on the server (best effort). */
  async cancel(): Promise<void> {
    await pairingClient.cancelPairing({ pairingId: this.pairingId, secret: this.secret }).catch(() => undefined);
  }

  dispose(): void {
    this.ecies?.free();
    this.ecies = null;
    this.channel?.free();
    this.channel = null;
    this.accountKey?.fill(0);
    this.accountKey = null;
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
  private confirmed = false;

  private constructor(
    readonly pairingId: string,
    private channel: PairingChannel | null,
  ) {}

  /** Opens the channel to the new device's key and posts HELLO (which takes the pairing). */
  static async connect(found: FoundPairing): Promise<ExistingDeviceLink> {
    await loadCrypto();
    const { channel, bytes } = channelOf(pairingConnect(found.publicKey, PAIRING_HELLO));
    try {
      await pairingClient.postPairingMessage({ pairingId: found.pairingId, secret: "", payload: bytes });
    } catch (err) {
      channel.free();
      throw err;
    }
    return new ExistingDeviceLink(found.pairingId, channel);
  }

  get checkCode(): string {
    return this.channel?.checkCode ?? "";
  }

  /** One GetPairing; returns the state and whether the new device has confirmed the code. */
  async poll(): Promise<{ state: PairingState; confirmed: boolean }> {
    const res = await pairingClient.getPairing({ pairingId: this.pairingId, secret: "", afterIndex: this.afterIndex });
    for (const message of res.messages) {
      this.afterIndex = checkIndex(message, this.afterIndex);
      if (!this.channel) continue;
      const plaintext = this.channel.decrypt(message.payload);
      if (bytesEqual(plaintext, PAIRING_CONFIRMED)) this.confirmed = true;
    }
    return { state: res.state, confirmed: this.confirmed };
  }

  /**
   * Sends the account key through the channel, then approves: the new device becomes a device
   * of this account named `deviceName`. Returns its device id.
   */
  async approve(accountKeySecret: Uint8Array, deviceName: string): Promise<string> {
    if (!this.channel) throw new Error("the pairing channel is closed");
    if (!this.confirmed) throw new Error("the new device has not confirmed the check code");
    const plaintext = new Uint8Array(1 + accountKeySecret.length);
    plaintext[0] = PAIRING_ACCOUNT_KEY;
    plaintext.set(accountKeySecret, 1);
    const payload = this.channel.encrypt(plaintext);
    plaintext.fill(0);
    await pairingClient.postPairingMessage({ pairingId: this.pairingId, secret: "", payload });
    const res = await pairingClient.approvePairing({ pairingId: this.pairingId, deviceName });
    return res.deviceId;
  }

  async cancel(): Promise<void> {
    await pairingClient.cancelPairing({ pairingId: this.pairingId, secret: "" }).catch(() => undefined);
  }

  dispose(): void {
    this.channel?.free();
    this.channel = null;
  }
}
