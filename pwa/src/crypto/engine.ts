// engine.ts — this device's end-to-end encryption: glue between the crypto crate's client
// machine (CryptoMachine, crypto/src/client; the protocol of FORMAT.md "Client protocol" and
// docs/e2ee.md lives there once, for the browser and every Rust client) and the world. This file
// only does what the machine cannot: the RPCs its steps ask for (QueryKeys, ClaimKeys,
// SendToDevice, UploadKeys), IndexedDB persistence of its sealed records (every step's changes
// drained and written in one transaction, store "machine"), and running operations one at a
// time (they advance ratchets).
//
// A device updated from the engine before the machine (its pickles in store "crypto": "device",
// "accountKey", "olm:…", "in:…", …) is converted once on load (CryptoMachine.fromLegacy) and the
// old records deleted in the same transaction.
import {
  AccountKey,
  BackupKey,
  CryptoMachine,
  SignedKey as WasmSignedKey,
  generatePickleKey,
  openLocal,
  sealLocal,
  type MachineMissingKey,
  type MachineReceived,
  type MachineToDevice,
} from "kitsulan-crypto";
import { keyClient, toDeviceClient } from "../api";
import { contentOf, type Content } from "./content";
import { legacyDeletions, readLegacy } from "./legacy";
import { loadCrypto } from "./load";
import { undecryptableStats, WAITING_FOR_KEY } from "./undecryptable";
import { reasonOf } from "../errors";
import type { Message } from "../gen/kitsulan/v1/conversation_pb";
import type { DeviceKeys } from "../gen/kitsulan/v1/keys_pb";
import type { ToDeviceMessage } from "../gen/kitsulan/v1/to_device_pb";
import { uuidv7 } from "../lib/ids";
import * as db from "../storage/db";
import type { Sealer } from "../storage/sealed";

/** Accounts per QueryKeys, devices per ClaimKeys, messages per SendToDevice. */
const BATCH = 100;
const UPLOAD_ONE_TIME_KEYS = 50;
/** How long a missing key waits for its share before this device asks its own devices. */
const KEY_REQUEST_DELAY_MS = 1500;

/** A contact's account key is not the one pinned when they were first seen. */
export class AccountKeyChanged extends Error {
  constructor(readonly accountId: string) {
    super(`the account key of ${accountId} changed`);
    this.name = "AccountKeyChanged";
  }
}

export { contentOf, type Content };

/** Another device, as its verified certificate describes it. */
export interface Peer {
  accountId: string;
  deviceId: string;
  ed25519: Uint8Array;
  curve25519: Uint8Array;
}

/** What a to-device message brought: a room key (its Megolm session id), a verification message,
 * or a voice room's media key (SFrame kid and 16-byte base key) from a participant's device. */
export type Taken =
  | { kind: "roomKey"; sessionId: string }
  | { kind: "verification"; from: Peer; bytes: Uint8Array }
  | { kind: "voiceKey"; from: Peer; conversationId: string; kid: number; key: Uint8Array };

/** What a call signal's payload is bound to (the machine makes the bytes). */
export interface CallContext {
  conversationId: string;
  callId: string;
  action: number;
}

export function callContext(conversationId: string, callId: string, action: number): CallContext {
  return { conversationId, callId, action };
}

/** Why this device cannot do E2EE yet. */
export type DeviceState = "ready" | "needs-link";

/** The crate's error code of a thrown error (`KitsulanCryptoError.code`). */
function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** AccountKeyChanged for the machine's `account_key_changed`, else null. */
function keyChangeOf(err: unknown): AccountKeyChanged | null {
  if (codeOf(err) !== "account_key_changed") return null;
  return new AccountKeyChanged(String((err as { accountId?: unknown }).accountId));
}

const td = new TextDecoder();
const te = new TextEncoder();

// ---------------------------------------------------------------------------------------------

export class E2ee implements Sealer {
  private chain: Promise<unknown> = Promise.resolve();
  /** Accounts whose devices were listed since this page loaded (each is listed at least once). */
  private readonly fresh = new Set<string>();
  /** Keys messages wait for, to ask our own devices for (by sender device and session). */
  private readonly wanted = new Map<string, MachineMissingKey>();
  private requestTimer: ReturnType<typeof setTimeout> | null = null;
  private disposed = false;
  /**
   * Called after a step stored inbound sessions that are not in the key backup yet (backup.ts
   * then takes them with sessionsToBackUp; it must not throw). Not called for sessions
   * imported from the backup (they are in it).
   */
  onSessionsToBackUp: (() => void) | null = null;

  private constructor(
    readonly accountId: string,
    readonly deviceId: string,
    private readonly pickleKey: Uint8Array,
    private readonly machine: CryptoMachine,
  ) {}

  /** Whether this device holds the account key (else it must be linked from another device). */
  get state(): DeviceState {
    // A disposed engine (signed out, or replaced by a restored one) is asked by what still shows.
    return !this.disposed && this.machine.isReady ? "ready" : "needs-link";
  }

  /** Runs `fn` after every operation queued before it. */
  private run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Runs `fn` in turn, then writes what it changed in the machine (also when it failed). */
  private step<T>(fn: () => Promise<T> | T): Promise<T> {
    return this.run(async () => {
      if (this.disposed) throw new Error("signed out: the E2EE engine is gone");
      const hook = this.onSessionsToBackUp;
      const before = hook ? this.machine.sessionsNotBackedUp() : 0;
      try {
        return await fn();
      } finally {
        await this.persist();
        if (hook && !this.disposed && this.machine.sessionsNotBackedUp() > before) {
          try {
            hook();
          } catch (err) {
            console.warn("the key backup did not take the new sessions", err);
          }
        }
      }
    });
  }

  /** Writes the machine's changed records in one transaction. */
  private async persist(): Promise<void> {
    if (this.disposed || !this.machine.hasChanges) return;
    const writes: db.Write[] = this.machine
      .takeChanges()
      .map((c) => (c.value === undefined ? { store: "machine", key: c.name } : { store: "machine", key: c.name, value: c.value }));
    await db.writeAll(writes);
  }

  /**
   * Sets up a freshly signed-in device: a new Olm account, and — when the person has no account
   * key yet (first device) — a new account key, published. Then certificate and keys go up.
   */
  static async setUp(accountId: string, deviceId: string): Promise<E2ee> {
    await loadCrypto();
    const accountKey = AccountKey.generate();
    try {
      await keyClient.publishAccountKey({ accountKey: accountKey.publicKey, replace: false });
    } catch (err) {
      accountKey.free();
      if (reasonOf(err) !== "ACCOUNT_KEY_EXISTS") throw err;
      // Another device holds this person's key: this one must be linked (pairing) instead.
      return E2ee.create(accountId, deviceId, null);
    }
    return E2ee.create(accountId, deviceId, accountKey);
  }

  /**
   * Sets up a device linked by pairing, with the account key `secret` (32 bytes) received
   * through the pairing channel: publishes the same key again (a no-op the server checks) and
   * uploads a certificate signed by it. The caller should wipe `secret` afterwards.
   */
  static async setUpLinked(accountId: string, deviceId: string, secret: Uint8Array): Promise<E2ee> {
    await loadCrypto();
    const accountKey = AccountKey.fromSecretBytes(secret);
    try {
      await keyClient.publishAccountKey({ accountKey: accountKey.publicKey, replace: false });
    } catch (err) {
      accountKey.free();
      throw err;
    }
    return E2ee.create(accountId, deviceId, accountKey);
  }

  private static async create(accountId: string, deviceId: string, accountKey: AccountKey | null): Promise<E2ee> {
    const pickleKey = generatePickleKey();
    const secret = accountKey?.toSecretBytes();
    accountKey?.free();
    let machine: CryptoMachine;
    try {
      machine = CryptoMachine.create(pickleKey, accountId, deviceId, secret);
    } finally {
      secret?.fill(0);
    }
    const engine = new E2ee(accountId, deviceId, pickleKey, machine);
    // A new device replaces whatever an earlier one left in this browser (a device set up
    // without the account key, then linked), in the same transaction as its first records.
    const writes: db.Write[] = (await db.all("machine")).map(([key]) => ({ store: "machine", key }));
    writes.push(...(await legacyDeletions()), { store: "crypto", key: "pickleKey", value: pickleKey });
    for (const c of machine.takeChanges()) writes.push({ store: "machine", key: c.name, value: c.value });
    await db.writeAll(writes);
    if (machine.accountPublicKey) await engine.step(() => engine.uploadKeys(UPLOAD_ONE_TIME_KEYS));
    return engine;
  }

  /**
   * The account key's 32-byte secret, for the pairing channel only (it is encrypted for the
   * new device at once; the caller wipes it).
   */
  accountKeySecret(): Uint8Array {
    return this.machine.accountKeySecret();
  }

  /** Restores the engine from IndexedDB (null when nothing is stored), converting the records
   * of the engine before the machine once. */
  static async load(accountId: string, deviceId: string): Promise<E2ee | null> {
    await loadCrypto();
    const pickleKey = await db.get<Uint8Array>("crypto", "pickleKey");
    if (!pickleKey) return null;
    const records = await db.all<string>("machine");
    if (records.length > 0) {
      const machine = CryptoMachine.restore(
        pickleKey,
        records.map(([name]) => name),
        records.map(([, value]) => value),
      );
      if (machine.accountId !== accountId || machine.deviceId !== deviceId) {
        machine.free();
        throw new Error("the stored E2EE state belongs to another device");
      }
      return new E2ee(accountId, deviceId, pickleKey, machine);
    }
    const legacy = await readLegacy(accountId, deviceId);
    if (!legacy) return null;
    const machine = CryptoMachine.fromLegacy(pickleKey, legacy);
    const writes = await legacyDeletions();
    for (const c of machine.takeChanges()) writes.push({ store: "machine", key: c.name, value: c.value });
    try {
      await db.writeAll(writes);
    } catch (err) {
      machine.free();
      throw err;
    }
    return new E2ee(accountId, deviceId, pickleKey, machine);
  }

  // -------------------------------------------------------------------------------------------
  // Trust (the machine keeps pinned and verified keys)

  /** Whether `accountId` was verified with SAS, with the account key pinned for them now. */
  isVerified(accountId: string): boolean {
    try {
      return this.machine.isVerified(accountId);
    } catch {
      return false;
    }
  }

  /** The accounts verified now (see isVerified). */
  verifiedAccounts(): string[] {
    return this.machine.verifiedAccounts();
  }

  /** Whether `accountId`'s key changed after this device verified them (a stronger warning). */
  changedAfterVerification(accountId: string): boolean {
    try {
      return this.machine.changedAfterVerification(accountId);
    } catch {
      return false;
    }
  }

  /** Records `accountKey` as verified for `accountId` (only if it is the key pinned for them). */
  markVerified(accountId: string, accountKey: Uint8Array): Promise<boolean> {
    return this.step(() => accountKey.length === 32 && this.machine.markVerified(accountId, accountKey));
  }

  // -------------------------------------------------------------------------------------------
  // Own keys

  /** Uploads what the machine has for the server: certificate (first time), `count` one-time
   * keys, fallback key (first time). Runs inside a step. */
  private async uploadKeys(count: number): Promise<void> {
    const up = this.machine.keysToUpload(count, Date.now());
    // The new one-time keys are stored before the server can hand them out.
    await this.persist();
    const wire = (k: WasmSignedKey) => ({ keyId: k.keyId, publicKey: k.publicKey, signature: k.signature });
    try {
      await keyClient.uploadKeys({
        deviceCertificate: up.certificate ?? new Uint8Array(),
        oneTimeKeys: up.oneTimeKeys.map(wire),
        ...(up.fallbackKey ? { fallbackKey: wire(up.fallbackKey) } : {}),
      });
    } finally {
      for (const k of up.oneTimeKeys) k.free();
      up.fallbackKey?.free();
    }
    this.machine.keysUploaded();
  }

  /** Uploads more one-time keys when the server holds few; asks again for keys still missing. */
  topUpKeys(): Promise<void> {
    const done = this.step(async () => {
      if (!this.machine.isReady) return;
      const counts = await keyClient.getKeyCounts({});
      const needed = this.machine.oneTimeKeysNeeded(counts.oneTimeKeyCount);
      if (needed > 0) await this.uploadKeys(needed);
    });
    this.retryKeyRequests();
    return done;
  }

  // -------------------------------------------------------------------------------------------
  // Devices

  /** The server announced a change of an account's devices: list them again before the next send. */
  deviceListChanged(accountId: string): void {
    this.fresh.delete(accountId);
    void this.step(() => this.machine.deviceListChanged(accountId)).catch((err: unknown) =>
      console.warn("device list change not recorded", err),
    );
    // A new device of ours may hold the keys our messages wait for.
    if (accountId === this.accountId) this.retryKeyRequests();
  }

  /** Whether the account key `accountId` publishes now differs from the one pinned for them. */
  accountKeyChanged(accountId: string): Promise<boolean> {
    return this.step(async () => {
      if (accountId === this.accountId || !this.machine.pinnedAccountKey(accountId)) return false;
      try {
        await this.syncDevices([accountId], true);
        return false;
      } catch (err) {
        if (err instanceof AccountKeyChanged) return true;
        throw err;
      }
    });
  }

  /**
   * Lists with QueryKeys the devices of the `accounts` the machine needs listed (never listed,
   * or announced as changed) and those not listed since this page loaded (all with `force`).
   * Throws AccountKeyChanged (after taking every other answer) when a key changed.
   */
  private async syncDevices(accounts: string[], force = false): Promise<void> {
    const unique = [...new Set(accounts)];
    const due = new Set(this.machine.devicesToQuery(unique));
    const wanted = unique.filter((a) => force || due.has(a) || !this.fresh.has(a));
    let changed: AccountKeyChanged | null = null;
    for (let i = 0; i < wanted.length; i += BATCH) {
      const chunk = wanted.slice(i, i + BATCH);
      const res = await keyClient.queryKeys({ accountIds: chunk });
      const answered = new Set<string>();
      for (const keys of res.accounts) {
        if (!chunk.includes(keys.accountId) || answered.has(keys.accountId)) continue;
        answered.add(keys.accountId);
        try {
          this.receiveKeys(keys.accountId, keys.accountKey, keys.devices);
          this.fresh.add(keys.accountId);
        } catch (err) {
          const c = keyChangeOf(err);
          if (!c) throw err;
          changed ??= c;
        }
      }
      // An account the server did not answer for has no devices to send to.
      for (const a of chunk.filter((a) => !answered.has(a))) this.receiveKeys(a, new Uint8Array(), []);
    }
    if (changed) throw changed;
  }

  private receiveKeys(accountId: string, accountKey: Uint8Array, devices: DeviceKeys[]): void {
    const change = this.machine.receiveKeys(
      accountId,
      accountKey,
      devices.map((d) => d.deviceId),
      devices.map((d) => d.certificate),
    );
    for (const r of change.refused) console.warn(`device ${r.deviceId} of ${accountId} left out: ${r.reason}`);
  }

  /** Opens Olm sessions (ClaimKeys) with those of `devices` that have none. */
  private async ensureOlm(devices: string[]): Promise<void> {
    const missing = this.machine.devicesMissingOlm(devices);
    for (let i = 0; i < missing.length; i += BATCH) {
      const chunk = missing.slice(i, i + BATCH);
      const res = await keyClient.claimKeys({ deviceIds: chunk });
      for (const deviceId of chunk) {
        const claim = res.keys.find((k) => k.deviceId === deviceId);
        if (!claim?.key) continue; // a device without keys gets nothing
        const key = new WasmSignedKey(claim.key.keyId, claim.key.publicKey, claim.key.signature, claim.fallback);
        try {
          this.machine.receiveClaimedKey(deviceId, key);
        } catch (err) {
          // A key that does not verify against the device's certified key: it gets nothing.
          console.warn(`no Olm session with ${deviceId}`, err);
        } finally {
          key.free();
        }
      }
    }
  }

  /** Sends to-device messages in batches (`sent` is told of each batch that went). */
  private async sendToDevice(messages: MachineToDevice[], sent: (batch: MachineToDevice[]) => void = () => {}): Promise<void> {
    for (let i = 0; i < messages.length; i += BATCH) {
      const batch = messages.slice(i, i + BATCH);
      await toDeviceClient.sendToDevice({ messages: batch });
      sent(batch);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Conversations

  /**
   * Encrypts `plaintext` (content.ts's encodeContent) for a conversation whose members are
   * `memberIds` (our own account included): lists their devices, and the machine rotates and
   * shares the session key as needed. `unreadableBy`: the other members none of whose devices
   * got the key, who cannot read this message.
   */
  encrypt(
    conversationId: string,
    memberIds: string[],
    plaintext: Uint8Array,
  ): Promise<{ messageId: string; ciphertext: Uint8Array; sessionId: Uint8Array; unreadableBy: string[] }> {
    return this.step(async () => {
      if (!this.machine.isReady) throw new Error("this device is not set up for encryption");
      const members = [...new Set([...memberIds, this.accountId])];
      await this.syncDevices(members);
      await this.ensureOlm(members.flatMap((a) => this.machine.devicesOf(a).map((p) => p.deviceId)));
      const share = this.machine.shareRoomKey(conversationId, members, Date.now());
      // The Olm ratchets the shares advanced are stored before the shares leave.
      await this.persist();
      const reached: string[] = [];
      try {
        await this.sendToDevice(share.messages, (batch) => reached.push(...batch.map((m) => m.recipientDeviceId)));
      } finally {
        if (reached.length > 0) this.machine.confirmRoomKeyShare(conversationId, share.sessionId, reached);
      }
      const e = this.machine.encrypt(conversationId, plaintext);
      return { messageId: uuidv7(), ciphertext: e.ciphertext, sessionId: te.encode(e.sessionId), unreadableBy: e.unreadableBy };
    });
  }

  /**
   * Takes a to-device message (from the gateway): a room key (shared, or forwarded by our own
   * device after a key request: its Megolm session id), a verification message with its sending
   * device, or a key request of our own device (answered here). Null for anything else.
   */
  takeToDevice(message: ToDeviceMessage): Promise<Taken | null> {
    return this.step(async () => {
      const received = await this.receive(message);
      switch (received.kind) {
        case "roomKey":
          return { kind: "roomKey", sessionId: received.sessionId };
        case "forwardedKey":
          return { kind: "roomKey", sessionId: received.key.sessionId };
        case "verification":
          return { kind: "verification", from: received.sender, bytes: received.bytes };
        case "voiceKey":
          return { kind: "voiceKey", from: received.sender, conversationId: received.conversationId, kid: received.kid, key: received.key };
        case "keyRequest":
          await this.persist();
          await this.sendToDevice([received.answer]);
          return null;
        case "refused":
          console.warn(`to-device message ${message.messageId} refused: ${received.message}`);
          return null;
        default:
          return null;
      }
    });
  }

  /** The machine takes a to-device message; a sender not known yet is listed first. */
  private async receive(m: ToDeviceMessage): Promise<MachineReceived> {
    const take = () =>
      this.machine.receiveToDevice(m.senderAccountId, m.senderDeviceId, m.messageId, m.ciphertext, Date.now());
    try {
      return take();
    } catch (err) {
      if (codeOf(err) !== "unknown_device") throw err;
    }
    await this.syncDevices([m.senderAccountId], true);
    return take();
  }

  /** Decrypts a conversation message with the session its sending device shared for it. A
   * message waiting for its key makes this device ask its own devices for it. */
  decrypt(message: Message): Promise<Content> {
    return this.step(() => {
      const content = this.decryptNow(message);
      // Telemetry (undecryptable.ts): what did not decrypt, and what waits for its key.
      undecryptableStats.record(message.id, content);
      return content;
    });
  }

  private decryptNow(message: Message): Content {
    if (message.system) return { kind: "system", event: message.system };
    if (message.deletedAtMs !== 0n) return { kind: "deleted" };
    let r;
    try {
      r = this.machine.decrypt(
        message.id,
        message.conversationId,
        message.senderAccountId,
        message.senderDeviceId,
        message.sessionId,
        message.ciphertext,
      );
    } catch (err) {
      // An id that is not a UUID and the like: the machine's error code.
      return { kind: "undecryptable", reason: codeOf(err) ?? String(err), sessionId: "" };
    }
    const sessionId = !r.ok && r.reason === "bad_session_id" ? "" : td.decode(message.sessionId);
    // The plaintext is `0x00 0x01 || Content`, or a legacy one (content.ts reads both).
    if (r.ok) return contentOf(r.plaintext, message.id, sessionId);
    if (r.missing) this.wantKey(r.missing);
    // A key that may still come (shared late, forwarded, restored): the message waits for it.
    // Otherwise the machine's reason code (undecryptable.ts says what it means to a person).
    const reason = r.missing ? WAITING_FOR_KEY : r.reason;
    return { kind: "undecryptable", reason, sessionId };
  }

  /**
   * Sends this device's voice key (SFrame `kid` and 16-byte `baseKey`) over Olm to every device
   * of the accounts `to`, for the voice room `conversationId` whose participants are
   * `participants` (the machine refuses a device of anyone else, so `to` must be among them). With `onlyDevices`, to those of the
   * devices only (one that reloaded and sent us its new key). Devices without keys to claim
   * get nothing (they cannot be in the room either). Returns the accounts of `to` that had
   * devices to send to but none of which an Olm session could be made with (no one-time key
   * left to claim): they did not get the key, and the room says so (voice.ts).
   */
  shareVoiceKey(
    conversationId: string,
    participants: string[],
    to: string[],
    kid: number,
    baseKey: Uint8Array,
    onlyDevices?: readonly string[],
  ): Promise<{ withoutOlm: string[] }> {
    return this.step(async () => {
      if (!this.machine.isReady) throw new Error("this device is not set up for encryption");
      const members = [...new Set([...participants, this.accountId])];
      const accounts = [...new Set(to)];
      await this.syncDevices(accounts);
      const devicesOf = (a: string) =>
        this.machine
          .devicesOf(a)
          .map((p) => p.deviceId)
          .filter((d) => d !== this.deviceId && (!onlyDevices || onlyDevices.includes(d)));
      const devices = accounts.flatMap(devicesOf);
      if (devices.length === 0) return { withoutOlm: [] };
      await this.ensureOlm(devices);
      const share = this.machine.shareVoiceKey(conversationId, members, devices, kid, baseKey, Date.now());
      for (const d of share.withoutOlm) console.warn(`voice key not sent to ${d}: no Olm session`);
      // The Olm ratchets the shares advanced are stored before the shares leave.
      await this.persist();
      await this.sendToDevice(share.messages);
      const missed = new Set(share.withoutOlm);
      const unreached = (a: string) => {
        const ds = devicesOf(a);
        return ds.length > 0 && ds.every((d) => missed.has(d));
      };
      return { withoutOlm: accounts.filter(unreached) };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Key requests to our own devices

  private wantKey(missing: MachineMissingKey): void {
    if (!this.machine.isReady) return;
    this.wanted.set(`${missing.senderDeviceId}|${missing.sessionId}`, missing);
    this.requestTimer ??= setTimeout(() => {
      this.requestTimer = null;
      void this.requestKeys();
    }, KEY_REQUEST_DELAY_MS);
  }

  /** Whether this device asked its own devices for the key of `sessionId` of `senderDeviceId`
   * ("asking": not sent yet; "asked": sent and not answered; null: not asked). */
  keyRequestOf(senderDeviceId: string, sessionId: string): "asking" | "asked" | null {
    if (this.disposed || !this.machine.isReady) return null;
    if (this.wanted.has(`${senderDeviceId}|${sessionId}`)) return "asking";
    const pending = this.machine.pendingKeyRequests();
    return pending.some((m) => m.senderDeviceId === senderDeviceId && m.sessionId === sessionId) ? "asked" : null;
  }

  /** Asks again for the keys still missing (the machine asks each device again only after a while). */
  private retryKeyRequests(): void {
    if (this.disposed || !this.machine.isReady) return;
    for (const m of this.machine.pendingKeyRequests()) this.wantKey(m);
    const first = this.wanted.values().next();
    if (!first.done) this.wantKey(first.value);
  }

  /** Sends the key requests wanted so far to our own other devices. */
  private requestKeys(): Promise<void> {
    const wanted = [...this.wanted.values()];
    this.wanted.clear();
    return this.step(async () => {
      if (!this.machine.isReady || wanted.length === 0) return;
      try {
        await this.syncDevices([this.accountId]);
      } catch (err) {
        // Offline: asked again at the next reconnect (topUpKeys).
        for (const m of wanted) this.wanted.set(`${m.senderDeviceId}|${m.sessionId}`, m);
        throw err;
      }
      const own = this.machine.ownDevices().map((p) => p.deviceId);
      if (own.length === 0) return; // nobody to ask
      await this.ensureOlm(own);
      const now = Date.now();
      const out = wanted.flatMap((m) =>
        this.machine.requestMissingKey(m.conversationId, m.senderAccountId, m.senderDeviceId, m.sessionId, now),
      );
      // Recorded (pending, asked again later) before the requests leave.
      await this.persist();
      await this.sendToDevice(out);
    }).catch((err: unknown) => console.warn("key request not sent", err));
  }

  // -------------------------------------------------------------------------------------------
  // Key backup (backup.ts; the entries are the machine's, FORMAT.md "Key backup")

  /** Up to `limit` inbound sessions not backed up yet, encrypted under `key`; upload them, then
   * markBackedUp the ids the server took. */
  sessionsToBackUp(key: BackupKey, limit: number): Promise<Array<{ sessionId: string; data: Uint8Array }>> {
    return this.step(() => this.machine.sessionsToBackUp(key, limit));
  }

  /** The server took the entries of these sessions. */
  markBackedUp(sessionIds: string[]): Promise<void> {
    return this.step(() => this.machine.markBackedUp(sessionIds));
  }

  /** Every session goes to the backup again (a new backup key or version). */
  resetBackedUp(): Promise<void> {
    return this.step(() => this.machine.resetBackedUp());
  }

  /** How many inbound sessions are not backed up yet. */
  sessionsNotBackedUp(): number {
    return this.machine.sessionsNotBackedUp();
  }

  /**
   * Imports session entries of this account's backup (as ListBackupSessions gave them), each
   * bound to the sender device, account and conversation its entry names, so decrypt() checks
   * them as any shared key. An entry that does not open, or names a session held for another
   * sender or conversation, is left out. Returns how many sessions were new or better.
   */
  importBackedUp(key: BackupKey, entries: Array<{ sessionId: string; data: Uint8Array }>): Promise<number> {
    return this.step(async () => {
      let stored = 0;
      for (const [i, e] of entries.entries()) {
        try {
          if (this.machine.importBackedUp(key, e.sessionId, e.data).stored) stored++;
        } catch (err) {
          console.warn(`backup entry ${e.sessionId} left out`, err);
        }
        if (i % 500 === 499) await this.persist();
      }
      return stored;
    });
  }

  /** The backup key pickled under this device's pickle key (kept in IndexedDB by backup.ts). */
  pickleBackupKey(key: BackupKey): string {
    return key.pickle(this.pickleKey);
  }

  /** A backup key pickled by pickleBackupKey (throws when it does not open). */
  unpickleBackupKey(pickle: string): BackupKey {
    return BackupKey.fromPickle(pickle, this.pickleKey);
  }

  // -------------------------------------------------------------------------------------------
  // Verification and calls

  /** This device's keys a verification vouches for: its Ed25519 key and the account key. */
  ownIdentity(): { deviceEd25519: Uint8Array; accountKey: Uint8Array } {
    const accountKey = this.machine.accountPublicKey;
    if (!accountKey) throw new Error("this device does not hold the account key");
    return { deviceEd25519: this.machine.ed25519Key, accountKey };
  }

  /**
   * The account key pinned for `accountId` and their devices, looked up again (throws
   * AccountKeyChanged when the key changed).
   */
  contact(accountId: string): Promise<{ accountKey: Uint8Array; devices: Peer[] }> {
    return this.step(async () => {
      await this.syncDevices([accountId], true);
      const accountKey = this.machine.pinnedAccountKey(accountId);
      if (!accountKey) throw new Error(`${accountId} has no account key`);
      return { accountKey, devices: this.machine.devicesOf(accountId) };
    });
  }

  /** Sends verification messages (the machine wraps them for Olm), in order, in one batch. */
  sendVerification(messages: Array<{ deviceId: string; bytes: Uint8Array }>): Promise<void> {
    return this.step(async () => {
      await this.ensureOlm([...new Set(messages.map((m) => m.deviceId))]);
      const now = Date.now();
      const out = messages.map((m) => this.machine.encryptVerification(m.deviceId, m.bytes, now));
      await this.persist();
      await this.sendToDevice(out);
    });
  }

  /**
   * Encrypts a call signal's payload with Olm to one device (`deviceId`) of a member of the
   * conversation (`memberIds`), bound to `context` (conversation, call, action).
   */
  encryptCallPayload(memberIds: string[], deviceId: string, context: CallContext, payload: Uint8Array): Promise<Uint8Array> {
    return this.step(async () => {
      if (!this.machine.isReady) throw new Error("this device is not set up for encryption");
      const peer = this.machine.peer(deviceId);
      if (!peer || !memberIds.includes(peer.accountId)) await this.syncDevices(memberIds, true);
      await this.ensureOlm([deviceId]);
      return this.machine.encryptCallPayload(memberIds, deviceId, context.conversationId, context.callId, context.action, payload);
    });
  }

  /**
   * Decrypts a call signal's payload from `senderDeviceId` of `senderAccountId`; throws when it
   * does not decrypt or was made for another conversation, call or action than `context`.
   */
  decryptCallPayload(senderAccountId: string, senderDeviceId: string, context: CallContext, ciphertext: Uint8Array): Promise<Uint8Array> {
    return this.step(async () => {
      if (!this.machine.peer(senderDeviceId)) await this.syncDevices([senderAccountId], true);
      return this.machine.decryptCallPayload(
        senderAccountId,
        senderDeviceId,
        context.conversationId,
        context.callId,
        context.action,
        ciphertext,
      );
    });
  }

  // -------------------------------------------------------------------------------------------

  /** Seals a record this device keeps for itself (storage/sealed.ts) under the pickle key. */
  sealLocal(name: string, body: Uint8Array): string {
    return sealLocal(this.pickleKey, name, body);
  }

  /** Opens a record sealed by sealLocal under the same name (throws when it does not open). */
  openLocal(name: string, sealed: string): Uint8Array {
    return openLocal(this.pickleKey, name, sealed);
  }

  /** Resolves when every operation queued so far has finished (a tab handing over to another
   * waits for it before the other loads the state). */
  async idle(): Promise<void> {
    await this.chain;
  }

  /** Frees WASM memory (sign-out). */
  dispose(): void {
    if (this.requestTimer) clearTimeout(this.requestTimer);
    this.requestTimer = null;
    this.disposed = true;
    this.machine.free();
    // What waited was this engine's: a restored one decrypts (and counts) them again.
    undecryptableStats.clearWaiting();
  }
}
