// engine.ts — this device's end-to-end encryption, over the crypto crate's WASM build only.
//
// It speaks the protocol of client/src/e2ee.rs and conversations.rs, so browsers and the
// Rust clients read each other:
// - the first device of a person makes the account key and publishes it; every device uploads a
//   certificate signed by it, signed one-time keys and a fallback key;
// - other people's devices come from QueryKeys, each certificate checked against the account key
//   pinned the first time that person was seen (a changed key is refused and shown as a warning);
// - one outbound Megolm session per conversation, its key shared over Olm to every member device
//   as `0x02 || conversation id (16) || session key`, in to-device messages `0x01 || Olm message`;
//   rotated when the member devices change, after 100 messages or 7 days;
// - a message's ciphertext is the Megolm message, its session_id the Megolm session id (ASCII),
//   its plaintext `0x00 0x01 || Content` (content.ts; legacy plaintexts are still read);
// - verification messages (verification.ts) go to one device as `0x03 || message` over Olm;
//   account keys verified that way are kept beside the pinned ones, and dropped (noting that
//   they had been verified, for a stronger warning) when that person's key changes.
// - a call signal's payload (SDP, ICE candidates; docs/calls.md) goes over the same Olm sessions
//   to the one device it is for: `0x01 || Olm message` of `0x04 || conversation id (16) ||
//   call id (16) || action (1) || payload`, so it cannot be moved to another call or action.
//
// Every secret stays in WASM memory and is written to IndexedDB only pickled under the device's
// pickle key. Operations run one at a time (they advance ratchets), each persisting what it changed.
import init, {
  AccountKey,
  BackupKey,
  DeviceAccount,
  InboundGroupSession,
  OlmSession,
  OutboundGroupSession,
  SignedKey as WasmSignedKey,
  generatePickleKey,
  isPreKeyMessage,
  openLocal,
  sealLocal,
  verifyDeviceCertificate,
} from "kitsulan-crypto";
import wasmUrl from "kitsulan-crypto/kitsulan_crypto_bg.wasm?url";
import { keyClient, toDeviceClient } from "../api";
import { contentOf, type Content } from "./content";
import { reasonOf } from "../errors";
import type { Message } from "../gen/kitsulan/v1/conversation_pb";
import type { AccountKeys } from "../gen/kitsulan/v1/keys_pb";
import type { ToDeviceMessage } from "../gen/kitsulan/v1/to_device_pb";
import { bytesEqual, bytesToUuid, uuidBytes, uuidv7 } from "../lib/ids";
import * as db from "../storage/db";
import type { Sealer } from "../storage/sealed";

const ENVELOPE_OLM = 0x01;
const OLM_ROOM_KEY = 0x01;
const OLM_CONVERSATION_KEY = 0x02;
const OLM_VERIFICATION = 0x03;
const OLM_CALL_SIGNAL = 0x04;
const ROTATE_AFTER_MESSAGES = 100;
const ROTATE_AFTER_MS = 7 * 24 * 3600 * 1000;
const BATCH = 100;
/** Keep at least this many one-time keys on the server. */
const MIN_ONE_TIME_KEYS = 25;
const UPLOAD_ONE_TIME_KEYS = 50;

let ready: Promise<unknown> | null = null;
/** Loads the WASM module once. */
export function loadCrypto(): Promise<unknown> {
  ready ??= init({ module_or_path: wasmUrl });
  return ready;
}

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

/** What a to-device message brought: a room key (its Megolm session id) or a verification message. */
export type Taken = { kind: "roomKey"; sessionId: string } | { kind: "verification"; from: Peer; bytes: Uint8Array };

interface Outbound {
  session: OutboundGroupSession;
  sharedWith: Set<string>;
  createdAtMs: number;
}

interface StoredOutbound {
  pickle: string;
  sharedWith: string[];
  createdAtMs: number;
}

interface Inbound {
  session: InboundGroupSession;
  senderAccountId: string;
  conversationId: string | null;
}

interface StoredInbound {
  pickle: string;
  senderAccountId: string;
  conversationId: string | null;
}

/** An inbound Megolm session with what it is bound to (for the key backup, crypto/backup.ts). */
export interface InboundRecord {
  sessionId: string;
  senderAccountId: string;
  senderDeviceId: string;
  conversationId: string | null;
  /** Owned by the engine: use it at once, never keep or free it. */
  session: InboundGroupSession;
}

/** What a call signal's payload is bound to: conversation id (16) || call id (16) || action (1). */
export function callContext(conversationId: string, callId: string, action: number): Uint8Array {
  const out = new Uint8Array(33);
  out.set(uuidBytes(conversationId), 0);
  out.set(uuidBytes(callId), 16);
  out[32] = action;
  return out;
}

/** Why this device cannot do E2EE yet. */
export type DeviceState = "ready" | "needs-link";

const td = new TextDecoder("utf-8", { fatal: true });
const te = new TextEncoder();

export class E2ee implements Sealer {
  private chain: Promise<unknown> = Promise.resolve();
  private pinned = new Map<string, Uint8Array>();
  private peers = new Map<string, Peer>();
  private devicesByAccount = new Map<string, string[]>();
  private olm = new Map<string, OlmSession[]>();
  private outbound = new Map<string, Outbound>();
  private inbound = new Map<string, Inbound>();
  private seen = new Map<string, string>();
  private taken = new Set<string>();
  /** Account keys verified with SAS, by account (kept while equal to the pinned key). */
  private verified = new Map<string, Uint8Array>();
  /** Accounts whose key changed after this device had verified them. */
  private verifiedThenChanged = new Set<string>();
  /**
   * Called after a new inbound session is stored (the key backup queues it; it must not throw
   * nor keep `session`). Not called for sessions imported from the backup.
   */
  onInboundStored: ((record: InboundRecord) => void) | null = null;

  private constructor(
    readonly accountId: string,
    readonly deviceId: string,
    private readonly pickleKey: Uint8Array,
    private account: DeviceAccount,
    private accountKey: AccountKey | null,
    private certificateUploaded: boolean,
  ) {}

  /** Whether this device holds the account key (else it must be linked from another device). */
  get state(): DeviceState {
    return this.accountKey && this.certificateUploaded ? "ready" : "needs-link";
  }

  /** Runs `fn` after every operation queued before it. */
  private run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
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
    const engine = new E2ee(accountId, deviceId, pickleKey, new DeviceAccount(), accountKey, false);
    await db.put("crypto", "pickleKey", pickleKey);
    await engine.saveIdentity();
    if (engine.accountKey) await engine.uploadKeys(UPLOAD_ONE_TIME_KEYS);
    return engine;
  }

  /**
   * The account key's 32-byte secret, for the pairing channel only (it is encrypted for the
   * new device at once; the caller wipes it).
   */
  accountKeySecret(): Uint8Array {
    if (!this.accountKey) throw new Error("this device does not hold the account key");
    return this.accountKey.toSecretBytes();
  }

  /** Restores the engine from IndexedDB (null when nothing is stored). */
  static async load(accountId: string, deviceId: string): Promise<E2ee | null> {
    await loadCrypto();
    const pickleKey = await db.get<Uint8Array>("crypto", "pickleKey");
    const devicePickle = await db.get<string>("crypto", "device");
    if (!pickleKey || !devicePickle) return null;
    const accountKeyPickle = await db.get<string>("crypto", "accountKey");
    const engine = new E2ee(
      accountId,
      deviceId,
      pickleKey,
      DeviceAccount.fromPickle(devicePickle, pickleKey),
      accountKeyPickle ? AccountKey.fromPickle(accountKeyPickle, pickleKey) : null,
      (await db.get<boolean>("crypto", "certificateUploaded")) ?? false,
    );
    for (const [id, key] of Object.entries((await db.get<Record<string, Uint8Array>>("crypto", "pinned")) ?? {})) {
      engine.pinned.set(id, key);
    }
    for (const peer of (await db.get<Peer[]>("crypto", "peers")) ?? []) engine.peers.set(peer.deviceId, peer);
    for (const [id, list] of Object.entries((await db.get<Record<string, string[]>>("crypto", "devices")) ?? {})) {
      engine.devicesByAccount.set(id, list);
    }
    for (const [key, pickles] of await db.entries<string[]>("crypto", "olm:")) {
      engine.olm.set(key.slice(4), pickles.map((p) => OlmSession.fromPickle(p, pickleKey)));
    }
    for (const [key, o] of await db.entries<StoredOutbound>("crypto", "out:")) {
      engine.outbound.set(key.slice(4), {
        session: OutboundGroupSession.fromPickle(o.pickle, pickleKey),
        sharedWith: new Set(o.sharedWith),
        createdAtMs: o.createdAtMs,
      });
    }
    for (const [key, i] of await db.entries<StoredInbound>("crypto", "in:")) {
      engine.inbound.set(key.slice(3), {
        session: InboundGroupSession.fromPickle(i.pickle, pickleKey),
        senderAccountId: i.senderAccountId,
        conversationId: i.conversationId,
      });
    }
    for (const [id, messageId] of Object.entries((await db.get<Record<string, string>>("crypto", "seen")) ?? {})) {
      engine.seen.set(id, messageId);
    }
    for (const id of (await db.get<string[]>("crypto", "taken")) ?? []) engine.taken.add(id);
    for (const [id, key] of Object.entries((await db.get<Record<string, Uint8Array>>("crypto", "verified")) ?? {})) {
      engine.verified.set(id, key);
    }
    for (const id of (await db.get<string[]>("crypto", "verifiedThenChanged")) ?? []) engine.verifiedThenChanged.add(id);
    return engine;
  }

  private async saveIdentity(): Promise<void> {
    const entries: Array<[string, unknown]> = [
      ["device", this.account.pickle(this.pickleKey)],
      ["certificateUploaded", this.certificateUploaded],
    ];
    if (this.accountKey) entries.push(["accountKey", this.accountKey.pickle(this.pickleKey)]);
    await db.putMany("crypto", entries);
  }

  private async saveTrust(): Promise<void> {
    await db.putMany("crypto", [
      ["verified", Object.fromEntries(this.verified)],
      ["verifiedThenChanged", [...this.verifiedThenChanged]],
    ]);
  }

  /** Whether `accountId` was verified with SAS, with the account key pinned for them now. */
  isVerified(accountId: string): boolean {
    const key = this.verified.get(accountId);
    const pinned = this.pinned.get(accountId);
    return key !== undefined && pinned !== undefined && bytesEqual(key, pinned);
  }

  /** The accounts verified now (see isVerified). */
  verifiedAccounts(): string[] {
    return [...this.verified.keys()].filter((id) => this.isVerified(id));
  }

  /** Whether `accountId`'s key changed after this device verified them (a stronger warning). */
  changedAfterVerification(accountId: string): boolean {
    return this.verifiedThenChanged.has(accountId);
  }

  /** Records `accountKey` as verified for `accountId` (only if it is the key pinned for them). */
  markVerified(accountId: string, accountKey: Uint8Array): Promise<boolean> {
    return this.run(async () => {
      const pinned = this.pinned.get(accountId);
      if (!pinned || !bytesEqual(pinned, accountKey)) return false;
      this.verified.set(accountId, accountKey.slice());
      this.verifiedThenChanged.delete(accountId);
      await this.saveTrust();
      return true;
    });
  }

  /** A changed key for `accountId` was seen: a verification of the old key no longer counts. */
  private noteKeyChange(accountId: string): void {
    if (!this.verified.delete(accountId)) return;
    this.verifiedThenChanged.add(accountId);
    void this.saveTrust();
  }

  private async saveDirectory(): Promise<void> {
    await db.putMany("crypto", [
      ["pinned", Object.fromEntries(this.pinned)],
      ["peers", [...this.peers.values()]],
      ["devices", Object.fromEntries(this.devicesByAccount)],
    ]);
  }

  private async saveOlm(deviceId: string): Promise<void> {
    const sessions = this.olm.get(deviceId) ?? [];
    await db.put("crypto", `olm:${deviceId}`, sessions.map((s) => s.pickle(this.pickleKey)));
  }

  private async saveOutbound(conversationId: string): Promise<void> {
    const o = this.outbound.get(conversationId);
    if (!o) return;
    const stored: StoredOutbound = {
      pickle: o.session.pickle(this.pickleKey),
      sharedWith: [...o.sharedWith],
      createdAtMs: o.createdAtMs,
    };
    await db.put("crypto", `out:${conversationId}`, stored);
  }

  private async saveInbound(key: string): Promise<void> {
    const i = this.inbound.get(key);
    if (!i) return;
    const stored: StoredInbound = {
      pickle: i.session.pickle(this.pickleKey),
      senderAccountId: i.senderAccountId,
      conversationId: i.conversationId,
    };
    await db.put("crypto", `in:${key}`, stored);
    const hook = this.onInboundStored;
    if (hook && this.inbound.get(key) === i) {
      try {
        hook(this.record(key, i));
      } catch (err) {
        console.warn("the key backup did not take a session", err);
      }
    }
  }

  private record(key: string, i: Inbound): InboundRecord {
    const bar = key.indexOf("|");
    return {
      sessionId: key.slice(bar + 1),
      senderAccountId: i.senderAccountId,
      senderDeviceId: key.slice(0, bar),
      conversationId: i.conversationId,
      session: i.session,
    };
  }

  /** Every inbound session this device holds (for a full backup upload; see InboundRecord). */
  inboundSessions(): InboundRecord[] {
    return [...this.inbound].map(([key, i]) => this.record(key, i));
  }

  /**
   * Imports sessions restored from the key backup, bound as they were backed up (sending
   * device, its account, the conversation), so decrypt() checks them as any shared key. A
   * session already held is kept (and the imported one freed). Returns how many were new.
   */
  importBackedUp(
    records: Array<{
      senderAccountId: string;
      senderDeviceId: string;
      conversationId: string | null;
      session: InboundGroupSession;
    }>,
  ): Promise<number> {
    return this.run(async () => {
      let batch: Array<[string, StoredInbound]> = [];
      let added = 0;
      for (const r of records) {
        const key = `${r.senderDeviceId}|${r.session.sessionId}`;
        if (this.inbound.has(key)) {
          r.session.free();
          continue;
        }
        this.inbound.set(key, { session: r.session, senderAccountId: r.senderAccountId, conversationId: r.conversationId });
        batch.push([
          `in:${key}`,
          { pickle: r.session.pickle(this.pickleKey), senderAccountId: r.senderAccountId, conversationId: r.conversationId },
        ]);
        added++;
        if (batch.length >= 500) {
          await db.putMany("crypto", batch);
          batch = [];
        }
      }
      if (batch.length > 0) await db.putMany("crypto", batch);
      return added;
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

  /** Uploads the certificate (first time), `count` one-time keys and, the first time, a fallback key. */
  private async uploadKeys(count: number): Promise<void> {
    if (!this.accountKey) return;
    const deviceCertificate = this.certificateUploaded
      ? new Uint8Array()
      : this.accountKey.certify(
          uuidBytes(this.accountId),
          uuidBytes(this.deviceId),
          this.account.ed25519Key,
          this.account.curve25519Key,
          BigInt(Math.floor(Date.now() / 1000)),
        );
    const otks = this.account.generateOneTimeKeys(count);
    const fallback = this.certificateUploaded ? undefined : this.account.generateFallbackKey();
    const wire = (k: WasmSignedKey) => ({ keyId: k.keyId, publicKey: k.publicKey, signature: k.signature });
    await keyClient.uploadKeys({
      deviceCertificate,
      oneTimeKeys: otks.map(wire),
      ...(fallback ? { fallbackKey: wire(fallback) } : {}),
    });
    this.account.markKeysAsPublished();
    this.certificateUploaded = true;
    await this.saveIdentity();
  }

  /** Uploads more one-time keys when the server holds few. */
  topUpKeys(): Promise<void> {
    return this.run(async () => {
      if (this.state !== "ready") return;
      const counts = await keyClient.getKeyCounts({});
      if (counts.oneTimeKeyCount < MIN_ONE_TIME_KEYS) await this.uploadKeys(UPLOAD_ONE_TIME_KEYS);
    });
  }

  /** Forgets what we know of an account's devices, so the next send queries them again. */
  deviceListChanged(accountId: string): void {
    this.devicesByAccount.delete(accountId);
  }

  /** Whether the account key `accountId` publishes now differs from the one pinned for them. */
  accountKeyChanged(accountId: string): Promise<boolean> {
    return this.run(async () => {
      const pinned = this.pinned.get(accountId);
      if (!pinned || accountId === this.accountId) return false;
      const res = await keyClient.queryKeys({ accountIds: [accountId] });
      const published = res.accounts.find((a) => a.accountId === accountId)?.accountKey;
      const changed = published !== undefined && published.length > 0 && !bytesEqual(published, pinned);
      if (changed) this.noteKeyChange(accountId);
      return changed;
    });
  }

  private async syncDevices(accountIds: string[]): Promise<void> {
    for (let i = 0; i < accountIds.length; i += BATCH) {
      const chunk = accountIds.slice(i, i + BATCH);
      const res = await keyClient.queryKeys({ accountIds: chunk });
      for (const keys of res.accounts) this.takeDeviceList(keys);
    }
    await this.saveDirectory();
  }

  private takeDeviceList(keys: AccountKeys): void {
    const accountId = keys.accountId;
    const listed: string[] = [];
    if (keys.accountKey.length > 0) {
      let pinned = this.pinned.get(accountId);
      if (accountId === this.accountId && this.accountKey) pinned = this.accountKey.publicKey;
      if (!pinned) {
        pinned = keys.accountKey;
        this.pinned.set(accountId, pinned);
      }
      if (!bytesEqual(pinned, keys.accountKey)) {
        this.noteKeyChange(accountId);
        throw new AccountKeyChanged(accountId);
      }
      const accountBytes = uuidBytes(accountId);
      for (const device of keys.devices) {
        const cert = verifyDeviceCertificate(device.certificate, pinned);
        try {
          if (!bytesEqual(cert.accountId, accountBytes) || !bytesEqual(cert.deviceId, uuidBytes(device.deviceId))) {
            throw new Error(`the certificate of device ${device.deviceId} names another account or device`);
          }
          if (!bytesEqual(cert.deviceEd25519, device.ed25519) || !bytesEqual(cert.deviceCurve25519, device.curve25519)) {
            throw new Error(`the keys listed for device ${device.deviceId} are not the certified ones`);
          }
          if (device.deviceId === this.deviceId) continue;
          const peer: Peer = {
            accountId,
            deviceId: device.deviceId,
            ed25519: cert.deviceEd25519,
            curve25519: cert.deviceCurve25519,
          };
          const known = this.peers.get(device.deviceId);
          if (known && (!bytesEqual(known.ed25519, peer.ed25519) || !bytesEqual(known.curve25519, peer.curve25519))) {
            throw new Error(`device ${device.deviceId} changed its identity keys`);
          }
          this.peers.set(device.deviceId, peer);
          listed.push(device.deviceId);
        } finally {
          cert.free();
        }
      }
    }
    const before = this.devicesByAccount.get(accountId) ?? [];
    for (const gone of before.filter((d) => !listed.includes(d))) {
      this.peers.delete(gone);
      this.olm.delete(gone);
      void db.del("crypto", `olm:${gone}`);
    }
    this.devicesByAccount.set(accountId, listed);
  }

  private async ensureOlm(deviceIds: string[]): Promise<void> {
    const missing = deviceIds.filter((d) => (this.olm.get(d)?.length ?? 0) === 0);
    for (let i = 0; i < missing.length; i += BATCH) {
      const chunk = missing.slice(i, i + BATCH);
      const res = await keyClient.claimKeys({ deviceIds: chunk });
      for (const deviceId of chunk) {
        const peer = this.peers.get(deviceId);
        const claim = res.keys.find((k) => k.deviceId === deviceId);
        if (!peer || !claim?.key) continue; // a device without keys gets nothing
        const key = new WasmSignedKey(claim.key.keyId, claim.key.publicKey, claim.key.signature, claim.fallback);
        try {
          const session = this.account.createOutboundSession(peer.ed25519, peer.curve25519, key);
          this.olm.set(deviceId, [...(this.olm.get(deviceId) ?? []), session]);
          await this.saveOlm(deviceId);
        } finally {
          key.free();
        }
      }
    }
  }

  private newOutbound(conversationId: string): Outbound {
    this.outbound.get(conversationId)?.session.free();
    const session = new OutboundGroupSession();
    // Keep the inbound half, so this device reads its own messages in the history.
    const inbound = InboundGroupSession.fromSessionKey(session.sessionKey());
    const key = `${this.deviceId}|${session.sessionId}`;
    this.inbound.set(key, { session: inbound, senderAccountId: this.accountId, conversationId });
    void this.saveInbound(key);
    const o: Outbound = { session, sharedWith: new Set(), createdAtMs: Date.now() };
    this.outbound.set(conversationId, o);
    return o;
  }

  /**
   * Encrypts `plaintext` (content.ts's encodeContent) for a conversation whose members are `memberIds` (our own account
   * included): refreshes their devices, rotates and shares the session key as needed.
   * `unreadableBy`: the other members none of whose devices got the key (no device with keys),
   * who cannot read this message.
   */
  encrypt(
    conversationId: string,
    memberIds: string[],
    plaintext: Uint8Array,
  ): Promise<{ messageId: string; ciphertext: Uint8Array; sessionId: Uint8Array; unreadableBy: string[] }> {
    return this.run(async () => {
      if (this.state !== "ready") throw new Error("this device is not set up for encryption");
      const members = [...new Set([...memberIds, this.accountId])];
      await this.syncDevices(members);
      const recipients = members.flatMap((a) => this.devicesByAccount.get(a) ?? []);
      let o = this.outbound.get(conversationId) ?? this.newOutbound(conversationId);
      const now = new Set(recipients);
      const used = o.session.messageIndex > 0 || o.sharedWith.size > 0;
      const changed = o.sharedWith.size !== now.size || [...now].some((d) => !o.sharedWith.has(d));
      if (
        (used && changed) ||
        o.session.messageIndex >= ROTATE_AFTER_MESSAGES ||
        Date.now() - o.createdAtMs > ROTATE_AFTER_MS
      ) {
        o = this.newOutbound(conversationId);
      }
      await this.share(conversationId, o, recipients);
      const sessionId = o.session.sessionId;
      const ciphertext = o.session.encrypt(plaintext);
      await this.saveOutbound(conversationId);
      const unreadableBy = members.filter(
        (a) => a !== this.accountId && !(this.devicesByAccount.get(a) ?? []).some((d) => o.sharedWith.has(d)),
      );
      return { messageId: uuidv7(), ciphertext, sessionId: te.encode(sessionId), unreadableBy };
    });
  }

  private async share(conversationId: string, o: Outbound, recipients: string[]): Promise<void> {
    const targets = recipients.filter((d) => !o.sharedWith.has(d));
    if (targets.length === 0) return;
    await this.ensureOlm(targets);
    const key = o.session.sessionKey();
    const plaintext = new Uint8Array(1 + 16 + key.length);
    plaintext[0] = OLM_CONVERSATION_KEY;
    plaintext.set(uuidBytes(conversationId), 1);
    plaintext.set(key, 17);
    const messages = [];
    for (const deviceId of targets) {
      const session = this.olm.get(deviceId)?.[0];
      if (!session) continue;
      const olm = session.encrypt(plaintext);
      const ciphertext = new Uint8Array(1 + olm.length);
      ciphertext[0] = ENVELOPE_OLM;
      ciphertext.set(olm, 1);
      messages.push({ messageId: uuidv7(), recipientDeviceId: deviceId, ciphertext });
      await this.saveOlm(deviceId);
    }
    for (let i = 0; i < messages.length; i += BATCH) {
      await toDeviceClient.sendToDevice({ messages: messages.slice(i, i + BATCH) });
    }
    for (const m of messages) o.sharedWith.add(m.recipientDeviceId);
    await this.saveOutbound(conversationId);
  }

  /**
   * Takes a to-device message (from the gateway): imports a room key shared over Olm (and says
   * which Megolm session), or hands back a verification message with its sending device. Null
   * for anything else. Ids already taken are skipped.
   */
  takeToDevice(message: ToDeviceMessage): Promise<Taken | null> {
    return this.run(async () => {
      if (this.taken.has(message.messageId)) return null;
      let peer = this.peers.get(message.senderDeviceId);
      if (!peer) {
        await this.syncDevices([message.senderAccountId]);
        peer = this.peers.get(message.senderDeviceId);
      }
      if (!peer || peer.accountId !== message.senderAccountId) {
        throw new Error(`unknown sending device ${message.senderDeviceId}`);
      }
      const [kind] = message.ciphertext;
      if (kind !== ENVELOPE_OLM) return this.markTaken(message.messageId, null);
      const plaintext = await this.decryptOlm(peer, message.ciphertext.subarray(1));
      if (plaintext[0] === OLM_VERIFICATION) {
        return this.markTaken(message.messageId, { kind: "verification", from: peer, bytes: plaintext.slice(1) });
      }
      let conversationId: string | null = null;
      let key: Uint8Array;
      if (plaintext[0] === OLM_CONVERSATION_KEY && plaintext.length > 17) {
        conversationId = bytesToUuid(plaintext.subarray(1, 17));
        key = plaintext.subarray(17);
      } else if (plaintext[0] === OLM_ROOM_KEY) {
        key = plaintext.subarray(1);
      } else {
        return this.markTaken(message.messageId, null);
      }
      const session = InboundGroupSession.fromSessionKey(key);
      const sessionId = session.sessionId;
      const mapKey = `${peer.deviceId}|${sessionId}`;
      if (!this.inbound.has(mapKey)) {
        this.inbound.set(mapKey, { session, senderAccountId: peer.accountId, conversationId });
        await this.saveInbound(mapKey);
      } else {
        session.free();
      }
      return this.markTaken(message.messageId, { kind: "roomKey", sessionId });
    });
  }

  private async markTaken<T>(id: string, result: T): Promise<T> {
    this.taken.add(id);
    const recent = [...this.taken].slice(-2000);
    await db.put("crypto", "taken", recent);
    return result;
  }

  private async decryptOlm(peer: Peer, message: Uint8Array): Promise<Uint8Array> {
    const sessions = this.olm.get(peer.deviceId) ?? [];
    if (isPreKeyMessage(message)) {
      const match = sessions.find((s) => s.matchesPreKeyMessage(message));
      if (match) {
        const plaintext = match.decrypt(message);
        await this.saveOlm(peer.deviceId);
        return plaintext;
      }
      const inbound = this.account.createInboundSession(peer.curve25519, message);
      const session = inbound.takeSession();
      const plaintext = inbound.plaintext;
      inbound.free();
      if (!session) throw new Error("no Olm session made");
      this.olm.set(peer.deviceId, [...sessions, session]);
      await this.saveOlm(peer.deviceId);
      await this.saveIdentity(); // the one-time key is used up
      return plaintext;
    }
    for (const session of sessions) {
      try {
        const plaintext = session.decrypt(message);
        await this.saveOlm(peer.deviceId);
        return plaintext;
      } catch {
        // try the next session
      }
    }
    throw new Error(`no Olm session with ${peer.deviceId} decrypts this message`);
  }

  /** This device's keys a verification vouches for: its Ed25519 key and the account key. */
  ownIdentity(): { deviceEd25519: Uint8Array; accountKey: Uint8Array } {
    if (!this.accountKey) throw new Error("this device does not hold the account key");
    return { deviceEd25519: this.account.ed25519Key, accountKey: this.accountKey.publicKey };
  }

  /**
   * The account key pinned for `accountId` and their devices, looked up again (throws
   * AccountKeyChanged when the key changed).
   */
  contact(accountId: string): Promise<{ accountKey: Uint8Array; devices: Peer[] }> {
    return this.run(async () => {
      await this.syncDevices([accountId]);
      const accountKey = this.pinned.get(accountId);
      if (!accountKey) throw new Error(`${accountId} has no account key`);
      const devices = (this.devicesByAccount.get(accountId) ?? []).flatMap((d) => this.peers.get(d) ?? []);
      return { accountKey, devices };
    });
  }

  /** Sends verification messages (`0x03 || message` over Olm), in order, in one batch. */
  sendVerification(messages: Array<{ deviceId: string; bytes: Uint8Array }>): Promise<void> {
    return this.run(async () => {
      await this.ensureOlm([...new Set(messages.map((m) => m.deviceId))]);
      const out = [];
      for (const { deviceId, bytes } of messages) {
        const session = this.olm.get(deviceId)?.[0];
        if (!session) throw new Error(`no Olm session with ${deviceId}`);
        const plaintext = new Uint8Array(1 + bytes.length);
        plaintext[0] = OLM_VERIFICATION;
        plaintext.set(bytes, 1);
        const olm = session.encrypt(plaintext);
        const ciphertext = new Uint8Array(1 + olm.length);
        ciphertext[0] = ENVELOPE_OLM;
        ciphertext.set(olm, 1);
        out.push({ messageId: uuidv7(), recipientDeviceId: deviceId, ciphertext });
        await this.saveOlm(deviceId);
      }
      for (let i = 0; i < out.length; i += BATCH) {
        await toDeviceClient.sendToDevice({ messages: out.slice(i, i + BATCH) });
      }
    });
  }

  /**
   * Encrypts a call signal's payload with Olm to one device (`deviceId`) of a member of the
   * conversation (`memberIds`), bound to `context` (conversation id, call id, action; see
   * callContext). Returns `0x01 || Olm message`.
   */
  encryptCallPayload(
    memberIds: string[],
    deviceId: string,
    context: Uint8Array,
    payload: Uint8Array,
  ): Promise<Uint8Array> {
    return this.run(async () => {
      if (this.state !== "ready") throw new Error("this device is not set up for encryption");
      const members = new Set(memberIds);
      let peer = this.peers.get(deviceId);
      if (!peer || !members.has(peer.accountId)) {
        await this.syncDevices([...members]);
        peer = this.peers.get(deviceId);
      }
      if (!peer || !members.has(peer.accountId)) throw new Error(`device ${deviceId} is not a member's`);
      await this.ensureOlm([deviceId]);
      const session = this.olm.get(deviceId)?.[0];
      if (!session) throw new Error(`no Olm session with ${deviceId}`);
      const plaintext = new Uint8Array(1 + context.length + payload.length);
      plaintext[0] = OLM_CALL_SIGNAL;
      plaintext.set(context, 1);
      plaintext.set(payload, 1 + context.length);
      const olm = session.encrypt(plaintext);
      await this.saveOlm(deviceId);
      const out = new Uint8Array(1 + olm.length);
      out[0] = ENVELOPE_OLM;
      out.set(olm, 1);
      return out;
    });
  }

  /**
   * Decrypts a call signal's payload from `senderDeviceId` of `senderAccountId`; throws when it
   * does not decrypt or was made for another conversation, call or action than `context`.
   */
  decryptCallPayload(
    senderAccountId: string,
    senderDeviceId: string,
    context: Uint8Array,
    ciphertext: Uint8Array,
  ): Promise<Uint8Array> {
    return this.run(async () => {
      let peer = this.peers.get(senderDeviceId);
      if (!peer) {
        await this.syncDevices([senderAccountId]);
        peer = this.peers.get(senderDeviceId);
      }
      if (!peer || peer.accountId !== senderAccountId) throw new Error(`unknown sending device ${senderDeviceId}`);
      if (ciphertext[0] !== ENVELOPE_OLM) throw new Error("not an Olm envelope");
      const plaintext = await this.decryptOlm(peer, ciphertext.subarray(1));
      const head = plaintext.subarray(1, 1 + context.length);
      if (plaintext[0] !== OLM_CALL_SIGNAL || !bytesEqual(head, context)) {
        throw new Error("the payload was made for another call or action");
      }
      return plaintext.slice(1 + context.length);
    });
  }

  /** Decrypts a conversation message with the session its sending device shared for it. */
  decrypt(message: Message): Promise<Content> {
    return this.run(async () => this.decryptNow(message));
  }

  private async decryptNow(message: Message): Promise<Content> {
    if (message.system) return { kind: "system", event: message.system };
    if (message.deletedAtMs !== 0n) return { kind: "deleted" };
    let sessionId: string;
    try {
      sessionId = td.decode(message.sessionId);
    } catch {
      return { kind: "undecryptable", reason: "bad session id", sessionId: "" };
    }
    const key = `${message.senderDeviceId}|${sessionId}`;
    const inbound = this.inbound.get(key);
    if (!inbound) return { kind: "undecryptable", reason: "waiting for the key", sessionId };
    if (inbound.senderAccountId !== message.senderAccountId || inbound.conversationId !== message.conversationId) {
      return { kind: "undecryptable", reason: "the key was shared for something else", sessionId };
    }
    let plaintext: Uint8Array;
    let index: number;
    try {
      const d = inbound.session.decryptHistory(message.ciphertext);
      plaintext = d.plaintext;
      index = d.messageIndex;
      d.free();
    } catch (err) {
      return { kind: "undecryptable", reason: String(err), sessionId };
    }
    const seenKey = `${key}|${index}`;
    const before = this.seen.get(seenKey);
    if (before && before !== message.id) return { kind: "undecryptable", reason: "replayed", sessionId };
    if (!before) {
      this.seen.set(seenKey, message.id);
      await db.put("crypto", "seen", Object.fromEntries(this.seen));
    }
    return contentOf(plaintext, message.id, sessionId);
  }

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
    this.account.free();
    this.accountKey?.free();
    for (const list of this.olm.values()) for (const s of list) s.free();
    for (const o of this.outbound.values()) o.session.free();
    for (const i of this.inbound.values()) i.session.free();
  }
}
