// pairing.ts — linking a new device by QR code or PIN (docs/e2ee.md "Linking a new device"),
// the same protocol as NewDeviceLink / ExistingDeviceLink in client/src/e2ee.rs:
// - the new device opens the pairing with an ECIES key and shows the PIN and the QR code;
// - the existing device finds it (typed PIN or scanned QR), opens the channel with HELLO;
// - a SAS runs inside the channel, every message `kind (1) || body`:
//     new → existing  0x02 commitment to its SAS key (sas::commitment)
//     existing → new  0x03 its SAS key
//     new → existing  0x03 the new device's SAS key (checked against the commitment)
//   both screens show the same 7 emoji (transaction id = the pairing id); once the person
//   confirmed on a device, it sends 0x04 SAS MAC over the channel keys as it saw them (new
//   device's ECIES key || existing device's ephemeral key), and checks the other's MAC;
// - only after both MACs does the existing device send `0x01 || account key secret (32)` and
//   approve (and only then does the new device accept it);
// - the new device's next GetPairing carries its session.
// Anything out of turn, a key that breaks its commitment or a MAC that does not verify cancels
// the pairing. The same SAS runs for QR and PIN pairing: the emoji replace the check code.
// The channel's secrets stay in WASM; the account key secret is in JS memory only between
// the channel and the engine, and is wiped after use.
import {
  NewDevicePairing,
  PairingQr,
  SasVerification,
  normalizePairingPin,
  pairingConnect,
  sasCommitment,
  sasEmoji,
  type EstablishedSas,
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
const PAIRING_HELLO = te.encode("KITSULAN-LINK/2 hello");
/** Kinds of the later channel messages. */
const KIND_ACCOUNT_KEY = 0x01;
const KIND_SAS_COMMITMENT = 0x02;
const KIND_SAS_KEY = 0x03;
const KIND_SAS_MAC = 0x04;
/** The key id of the SAS MAC over the channel keys. */
const MAC_KEY_ID = "pairing_channel";
const KEY_LEN = 32;

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

function withKind(kind: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + body.length);
  out[0] = kind;
  out.set(body, 1);
  return out;
}

function key32(body: Uint8Array, what: string): Uint8Array {
  if (body.length !== KEY_LEN) throw new PairingVerificationError(`${what} is not ${KEY_LEN} bytes`);
  return body;
}

/** The SAS inside the channel, the same on both sides. */
class ChannelSas {
  ours: SasVerification | null = null;
  theirCommitment: Uint8Array | null = null;
  established: EstablishedSas | null = null;
  /** We sent our MAC: the person confirmed the emoji here. */
  confirmed = false;
  /** The other side's MAC verified. */
  verified = false;
  failed = false;

  /** `channelKeys`: new device's ECIES key (32) || existing device's ephemeral key (32). */
  constructor(
    private readonly pairingId: string,
    private readonly channelKeys: Uint8Array,
  ) {}

  get emoji(): number[] | null {
    if (!this.established || this.failed) return null;
    return Array.from(this.established.emojiIndices(this.pairingId));
  }

  mac(): Uint8Array {
    if (this.failed) throw new PairingVerificationError("the pairing was stopped");
    if (!this.established) throw new Error("the SAS keys were not exchanged yet");
    return this.established.mac(this.pairingId, MAC_KEY_ID, this.channelKeys);
  }

  verifyMac(mac: Uint8Array): void {
    if (!this.established) throw new PairingVerificationError("a SAS MAC came before the SAS keys");
    if (this.verified) throw new PairingVerificationError("a second SAS MAC");
    try {
      this.established.verifyMac(this.pairingId, MAC_KEY_ID, this.channelKeys, mac);
    } catch {
      throw new PairingVerificationError("the other device's SAS MAC does not match");
    }
    this.verified = true;
  }

  /** Whether the account key may go (existing device) or be taken (new device). */
  get done(): boolean {
    return !this.failed && this.confirmed && this.verified;
  }

  dispose(): void {
    this.ours?.free();
    this.ours = null;
    this.established?.free();
    this.established = null;
  }
}

/**
 * Posts channel messages one at a time: each is encrypted just before it is posted, so the
 * server stores them in the order of the channel's counter.
 */
class Sender {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly send: (plaintext: Uint8Array) => Promise<void>) {}

  post(plaintext: Uint8Array): Promise<void> {
    const run = () => this.send(plaintext);
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }
}

/** The new device's side: no session until the existing device approves. */
export class NewDeviceLink {
  private channel: PairingChannel | null = null;
  private sas: ChannelSas | null = null;
  private afterIndex = 0;
  private accountKey: Uint8Array | null = null;
  private readonly sender = new Sender(async (plaintext) => {
    if (!this.channel) throw new Error("the channel is not open yet");
    await pairingClient.postPairingMessage({
      pairingId: this.pairingId,
      secret: this.secret,
      payload: this.channel.encrypt(plaintext),
    });
  });

  private constructor(
    readonly pairingId: string,
    readonly pin: string,
    readonly qrText: string,
    readonly expiresAtMs: number,
    private readonly secret: string,
    private readonly publicKey: Uint8Array,
    private ecies: NewDevicePairing | null,
  ) {}

  /** Chooses a pairing id and an ephemeral key, and calls CreatePairing. */
  static async open(serverUrl: string): Promise<NewDeviceLink> {
    await loadCrypto();
    const pairingId = uuidv7();
    const ecies = new NewDevicePairing(uuidBytes(pairingId), serverUrl);
    try {
      const publicKey = ecies.publicKey();
      const res = await pairingClient.createPairing({ pairingId, publicKey });
      return new NewDeviceLink(
        pairingId,
        res.pin,
        ecies.qrText(),
        Number(res.expiresAtMs),
        res.secret,
        publicKey,
        ecies,
      );
    } catch (err) {
      ecies.free();
      throw err;
    }
  }

  /** Whether the existing device opened the channel (the SAS is under way). */
  get channelOpen(): boolean {
    return this.channel !== null;
  }

  /** The 7 emoji indices to compare, once both SAS keys are known. */
  get emoji(): number[] | null {
    return this.sas?.emoji ?? null;
  }

  /**
   * One GetPairing and the SAS steps it calls for: opens the channel on the first message and
   * commits to our SAS key; answers the existing device's SAS key with ours; checks its MAC;
   * keeps the account key when it comes after both MACs. The session is there once, after
   * approval. A broken step cancels the pairing and throws PairingVerificationError.
   */
  async poll(): Promise<{ state: PairingState; session: Session | undefined }> {
    if (this.sas?.failed) throw new PairingVerificationError("the pairing was stopped");
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
        const keys = new Uint8Array(2 * KEY_LEN);
        keys.set(this.publicKey, 0);
        keys.set(message.payload.subarray(0, KEY_LEN), KEY_LEN);
        const sas = new ChannelSas(this.pairingId, keys);
        sas.ours = new SasVerification();
        this.sas = sas;
        await this.sender.post(withKind(KIND_SAS_COMMITMENT, sasCommitment(sas.ours.publicKey)));
        continue;
      }
      const plaintext = this.channel.decrypt(message.payload);
      try {
        await this.handle(plaintext);
      } catch (err) {
        if (this.sas) this.sas.failed = true;
        await this.cancel();
        throw err instanceof PairingVerificationError ? err : new PairingVerificationError(String(err));
      } finally {
        plaintext.fill(0);
      }
    }
    return { state: res.state, session: res.session };
  }

  private async handle(plaintext: Uint8Array): Promise<void> {
    const sas = this.sas;
    if (!sas || plaintext.length === 0) throw new PairingVerificationError("unexpected pairing message");
    const body = plaintext.subarray(1);
    switch (plaintext[0]) {
      case KIND_SAS_KEY: {
        const ours = sas.ours;
        if (!ours) throw new PairingVerificationError("a second SAS key");
        sas.ours = null;
        const reveal = ours.publicKey;
        try {
          sas.established = ours.establish(key32(body, "the SAS key"));
        } finally {
          ours.free();
        }
        await this.sender.post(withKind(KIND_SAS_KEY, reveal));
        return;
      }
      case KIND_SAS_MAC:
        sas.verifyMac(body);
        return;
      case KIND_ACCOUNT_KEY:
        if (!sas.done) throw new PairingVerificationError("the account key came before both SAS MACs");
        if (this.accountKey) throw new PairingVerificationError("a second account key");
        this.accountKey = key32(body, "the account key").slice();
        return;
      default:
        throw new PairingVerificationError(`unexpected pairing message kind ${plaintext[0]}`);
    }
  }

  /** The person saw the same emoji on both screens: sends our SAS MAC. */
  async confirm(): Promise<void> {
    const sas = this.sas;
    if (!sas) throw new Error("the channel is not open yet");
    if (sas.confirmed) return;
    await this.sender.post(withKind(KIND_SAS_MAC, sas.mac()));
    sas.confirmed = true;
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
    this.sas?.dispose();
    this.sas = null;
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
  private readonly sender = new Sender(async (plaintext) => {
    if (!this.channel) throw new Error("the pairing channel is closed");
    const payload = this.channel.encrypt(plaintext);
    await pairingClient.postPairingMessage({ pairingId: this.pairingId, secret: "", payload });
  });

  private constructor(
    readonly pairingId: string,
    private channel: PairingChannel | null,
    private sas: ChannelSas | null,
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
    const keys = new Uint8Array(2 * KEY_LEN);
    keys.set(found.publicKey, 0);
    keys.set(bytes.subarray(0, KEY_LEN), KEY_LEN);
    return new ExistingDeviceLink(found.pairingId, channel, new ChannelSas(found.pairingId, keys));
  }

  /** The 7 emoji indices to compare, once the new device revealed its SAS key. */
  get emoji(): number[] | null {
    return this.sas?.emoji ?? null;
  }

  /**
   * One GetPairing and the SAS steps it calls for: answers the commitment with our SAS key,
   * checks the revealed key against the commitment, checks the MAC. `verified`: the person
   * confirmed here and the new device's MAC verified, so the account key may go. A broken step
   * cancels the pairing and throws PairingVerificationError.
   */
  async poll(): Promise<{ state: PairingState; emoji: number[] | null; verified: boolean }> {
    const sas = this.sas;
    if (!sas || sas.failed) throw new PairingVerificationError("the pairing was stopped");
    const res = await pairingClient.getPairing({ pairingId: this.pairingId, secret: "", afterIndex: this.afterIndex });
    for (const message of res.messages) {
      this.afterIndex = checkIndex(message, this.afterIndex);
      if (!this.channel) continue;
      const plaintext = this.channel.decrypt(message.payload);
      try {
        await this.handle(sas, plaintext);
      } catch (err) {
        sas.failed = true;
        await this.cancel();
        throw err instanceof PairingVerificationError ? err : new PairingVerificationError(String(err));
      }
    }
    return { state: res.state, emoji: sas.emoji, verified: sas.done };
  }

  private async handle(sas: ChannelSas, plaintext: Uint8Array): Promise<void> {
    if (plaintext.length === 0) throw new PairingVerificationError("an empty pairing message");
    const body = plaintext.subarray(1);
    switch (plaintext[0]) {
      case KIND_SAS_COMMITMENT: {
        if (sas.theirCommitment) throw new PairingVerificationError("a second SAS commitment");
        sas.theirCommitment = key32(body, "the SAS commitment").slice();
        sas.ours = new SasVerification();
        await this.sender.post(withKind(KIND_SAS_KEY, sas.ours.publicKey));
        return;
      }
      case KIND_SAS_KEY: {
        const commitment = sas.theirCommitment;
        const ours = sas.ours;
        if (!commitment) throw new PairingVerificationError("a SAS key before the commitment");
        if (!ours) throw new PairingVerificationError("a second SAS key");
        sas.ours = null;
        try {
          const theirs = key32(body, "the SAS key");
          if (!bytesEqual(sasCommitment(theirs), commitment)) {
            throw new PairingVerificationError("the new device's SAS key does not match its commitment");
          }
          sas.established = ours.establish(theirs);
        } finally {
          ours.free();
        }
        return;
      }
      case KIND_SAS_MAC:
        sas.verifyMac(body);
        return;
      default:
        throw new PairingVerificationError(`unexpected pairing message kind ${plaintext[0]}`);
    }
  }

  /** The person saw the same emoji on both screens: sends our SAS MAC. */
  async confirm(): Promise<void> {
    const sas = this.sas;
    if (!sas) throw new Error("the pairing channel is closed");
    if (sas.confirmed) return;
    await this.sender.post(withKind(KIND_SAS_MAC, sas.mac()));
    sas.confirmed = true;
  }

  /**
   * Sends the account key through the channel, then approves: the new device becomes a device
   * of this account named `deviceName`. Returns its device id. Only after both SAS MACs.
   */
  async approve(accountKeySecret: Uint8Array, deviceName: string): Promise<string> {
    if (!this.channel || !this.sas) throw new Error("the pairing channel is closed");
    if (!this.sas.done) throw new PairingVerificationError("the emoji were not confirmed on both devices");
    const plaintext = withKind(KIND_ACCOUNT_KEY, accountKeySecret);
    try {
      await this.sender.post(plaintext);
    } finally {
      plaintext.fill(0);
    }
    const res = await pairingClient.approvePairing({ pairingId: this.pairingId, deviceName });
    return res.deviceId;
  }

  async cancel(): Promise<void> {
    await pairingClient.cancelPairing({ pairingId: this.pairingId, secret: "" }).catch(() => undefined);
  }

  dispose(): void {
    this.channel?.free();
    this.channel = null;
    this.sas?.dispose();
    this.sas = null;
  }
}
