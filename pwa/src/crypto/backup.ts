// backup.ts — the key backup (KeyBackupService; docs/e2ee.md "Backup and recovery"): glue only.
// Every format (recovery key, auth data, the encrypted account key and session entries) is the
// WASM BackupKey's (crypto/FORMAT.md "Key backup"); this file moves bytes between it, the
// server and IndexedDB:
// - set up (first device, or from Settings): a new backup key B, a new backup version holding
//   the auth data (with the passphrase wrap if any) and the account key encrypted under B, then
//   every inbound Megolm session this device holds, in batches of 100;
// - while this device holds B (kept pickled under the pickle key): the inbound sessions the
//   engine's machine has not backed up yet are taken as entries (CryptoMachine.sessionsToBackUp)
//   after each step that stored one, uploaded (uploader.ts: batched, retried) and marked backed
//   up in the machine (its durable record of what is in the backup);
// - rotate: a new B and version, the old backup's sessions re-encrypted and this device's
//   uploaded, then the old version deleted; turn off: the current version deleted;
// - restore (a signed-in device without the account key): B from the recovery key or the
//   passphrase, checked, then the account key, then every session, all decrypted before
//   anything changes here; then the device is set up with that account key (its certificate
//   signed and uploaded) and the sessions imported;
// - adopt: a device linked by pairing keeps the B it received, once checked, and backs up too.
import { BackupKey, hasPassphrase } from "kitsulan-crypto";
import { keyBackupClient } from "../api";
import { reasonOf } from "../errors";
import type { BackupVersion } from "../gen/kitsulan/v1/backup_pb";
import { uuidBytes } from "../lib/ids";
import * as db from "../storage/db";
import { E2ee } from "./engine";
import { loadCrypto } from "./load";
import { BATCH, Uploader, type PendingEntry } from "./uploader";

/** What this device keeps in the "crypto" store: the version it backs up to and B, pickled. */
interface StoredBackup {
  version: string;
  key: string;
}
const STORED = "backup";
/** Queued entries: `backupq:<session id>` -> QueuedEntry. */
const QUEUE = "backupq:";
interface QueuedEntry {
  version: string;
  data: Uint8Array;
}

/** ListBackupSessions page size (the server's maximum). */
const LIST_PAGE = 500;

interface Active {
  engine: E2ee;
  key: BackupKey;
  version: string;
  uploader: Uploader;
}
let active: Active | null = null;
const listeners = new Set<() => void>();

/** Says when this device starts or stops backing up (Settings listens). */
export function onBackupChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function changed(): void {
  for (const l of listeners) l();
}

/** The stable code of an error thrown by the WASM module ("wrong_passphrase", …), lower case. */
export function cryptoCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code.toLowerCase() : "";
}

/** The account's current backup version on the server (null when there is none). */
export async function currentBackup(): Promise<BackupVersion | null> {
  try {
    return (await keyBackupClient.getBackup({})).backup ?? null;
  } catch (err) {
    if (reasonOf(err) === "BACKUP_NOT_FOUND") return null;
    throw err;
  }
}

/** The version this device backs up to (null when it holds no backup key). */
export function backingUpTo(): string | null {
  return active?.version ?? null;
}

/**
 * The 32 bytes of the backup key this device backs up with (null when it holds none), for the
 * pairing channel to give a newly linked device. The caller wipes them after use.
 */
export function backupKeyBytes(): Uint8Array | null {
  return active ? active.key.toBytes() : null;
}

/** How many session entries wait to go up from this device. */
export function pendingUploads(): number {
  return active?.uploader.pending ?? 0;
}

function start(engine: E2ee, key: BackupKey, version: string, queued: PendingEntry[]): Active {
  const uploader = new Uploader(version, {
    put: async (v, sessions) => {
      await keyBackupClient.putBackupSessions({ version: v, sessions });
      await engine.markBackedUp(sessions.map((s) => s.sessionId)).catch(() => undefined);
    },
    save: (entries) =>
      db.putMany(
        "crypto",
        entries.map((e): [string, QueuedEntry] => [`${QUEUE}${e.sessionId}`, { version, data: e.data }]),
      ),
    remove: async (ids) => {
      for (const id of ids) await db.del("crypto", `${QUEUE}${id}`);
    },
    isGone: (err) => ["BACKUP_VERSION_STALE", "BACKUP_NOT_FOUND"].includes(reasonOf(err)),
    isRefused: (err) =>
      ["BACKUP_SESSION_INVALID", "SESSION_ID_INVALID", "BACKUP_BATCH_INVALID", "BACKUP_FULL"].includes(reasonOf(err)),
    onGone: () => {
      // Another device made a new recovery key, or turned backup off: B is no use here now.
      if (active?.uploader === uploader) void forgetHere();
    },
  });
  const a: Active = { engine, key, version, uploader };
  engine.onSessionsToBackUp = () => void takeNew(a);
  active = a;
  uploader.add(queued, false);
  void takeNew(a);
  changed();
  return a;
}

/** Queues the sessions the machine has not backed up yet (the machine's flags are the durable
 * record: entries are not kept in the queue store). */
async function takeNew(a: Active, limit = BATCH * 10): Promise<number> {
  try {
    const entries = await a.engine.sessionsToBackUp(a.key, limit);
    if (active === a && entries.length > 0) a.uploader.add(entries, false);
    return entries.length;
  } catch (err) {
    console.warn("the key backup did not take the new sessions", err);
    return 0;
  }
}

/** Stops backing up from this device (the key stays stored unless forgetHere). */
export function detachBackup(): void {
  const a = active;
  if (!a) return;
  active = null;
  a.uploader.stop();
  a.engine.onSessionsToBackUp = null;
  a.key.free();
  changed();
}

/** Starts backing up from `engine`'s device if it holds a backup key (after sign-in or load). */
export async function attachBackup(engine: E2ee): Promise<void> {
  detachBackup();
  if (engine.state !== "ready") return;
  const stored = await db.get<StoredBackup>("crypto", STORED);
  if (!stored) return;
  let key: BackupKey;
  try {
    key = engine.unpickleBackupKey(stored.key);
  } catch (err) {
    console.warn("the stored backup key does not open; backup is off on this device", err);
    await forgetHere();
    return;
  }
  const queued: PendingEntry[] = [];
  for (const [k, e] of await db.entries<QueuedEntry>("crypto", QUEUE)) {
    if (e.version === stored.version) queued.push({ sessionId: k.slice(QUEUE.length), data: e.data });
    else await db.del("crypto", k);
  }
  start(engine, key, stored.version, queued);
}

/** Forgets the backup key and queue on this device (the server's backup is untouched). */
async function forgetHere(): Promise<void> {
  detachBackup();
  await db.del("crypto", STORED);
  for (const [k] of await db.entries<QueuedEntry>("crypto", QUEUE)) await db.del("crypto", k);
}

async function keep(engine: E2ee, key: BackupKey, version: string): Promise<void> {
  const before = await db.get<StoredBackup>("crypto", STORED);
  // Backed up to another version before: everything goes to this one.
  if (before && before.version !== version) await engine.resetBackedUp();
  const stored: StoredBackup = { version, key: engine.pickleBackupKey(key) };
  await db.put("crypto", STORED, stored);
}

/**
 * Keeps a backup key this device received from another one (the pairing channel gives a linked
 * device B: BackupKey.fromBytes), so it backs up its own new sessions too. Checked against the
 * account's current backup first; false (and nothing kept) when there is none or B is not its
 * key. Takes ownership of `key`. Backing up starts with attachBackup (App.tsx, on entering).
 */
export async function adoptBackupKey(engine: E2ee, key: BackupKey): Promise<boolean> {
  try {
    const backup = await currentBackup();
    if (!backup) return false;
    try {
      key.check(backup.authData);
    } catch {
      return false;
    }
    await keep(engine, key, backup.version);
    return true;
  } finally {
    key.free();
  }
}

/** Every session entry of `version`, page by page. */
async function* listAll(version: string): AsyncGenerator<Array<{ sessionId: string; data: Uint8Array }>> {
  let after = "";
  for (;;) {
    const page = await keyBackupClient.listBackupSessions({ version, afterSessionId: after, limit: LIST_PAGE });
    if (page.sessions.length > 0) yield page.sessions;
    const last = page.sessions.at(-1);
    if (!page.more || !last) return;
    after = last.sessionId;
  }
}

export type SetUpProgress = { step: "protecting" } | { step: "uploading"; done: number; total: number };

/**
 * Sets up a backup under `key` (a new BackupKey whose recovery key the person saved), with an
 * optional passphrase, or rotates to it when a backup exists: the new version becomes the
 * current one, everything is uploaded to it (the old backup's sessions re-encrypted when this
 * device holds the old key, and this device's), and only then is the old version deleted.
 * Takes ownership of `key`.
 */
export async function setUpBackup(
  engine: E2ee,
  key: BackupKey,
  passphrase: string | undefined,
  progress: (p: SetUpProgress) => void = () => undefined,
): Promise<void> {
  const account = uuidBytes(engine.accountId);
  let old: BackupVersion | null;
  let created: BackupVersion | undefined;
  try {
    if (engine.state !== "ready") throw new Error("this device does not hold the account key");
    progress({ step: "protecting" });
    await new Promise((r) => setTimeout(r, 30)); // let the line show before Argon2id blocks
    const authData = key.authData(passphrase);
    const secret = engine.accountKeySecret();
    let identity: Uint8Array;
    try {
      identity = key.encryptIdentity(account, secret);
    } finally {
      secret.fill(0);
    }
    old = await currentBackup();
    created = (await keyBackupClient.createBackupVersion({ authData, identity })).backup;
    if (!created) throw new Error("CreateBackupVersion answered without a version");
  } catch (err) {
    key.free();
    throw err;
  }

  // From here on, new sessions go to the new version (the old key is kept for re-encrypting).
  const prior = active;
  const oldKey = prior && old && prior.version === old.version ? prior.key : null;
  if (prior) {
    active = null;
    prior.uploader.stop();
    engine.onSessionsToBackUp = null;
    if (prior.key !== oldKey) prior.key.free();
  }
  await forgetHere();
  // Every session this device holds goes to the new version.
  await engine.resetBackedUp();
  await keep(engine, key, created.version);
  const a = start(engine, key, created.version, []);

  try {
    const entries = new Map<string, PendingEntry>();
    if (old && oldKey) {
      for await (const page of listAll(old.version)) {
        for (const s of page) {
          try {
            const restored = oldKey.decryptSession(account, s.sessionId, s.data);
            const session = restored.takeSession();
            try {
              const data = key.encryptSession(
                account,
                session,
                restored.senderAccountId,
                restored.senderDeviceId,
                restored.conversationId ?? new Uint8Array(),
              );
              entries.set(s.sessionId, { sessionId: s.sessionId, data });
            } finally {
              session.free();
              restored.free();
            }
          } catch (err) {
            console.warn(`backup entry ${s.sessionId} does not open; left out`, err);
          }
        }
      }
    }
    const all = [...entries.values()];
    const total = all.length + engine.sessionsNotBackedUp();
    progress({ step: "uploading", done: 0, total });
    for (let i = 0; i < all.length; i += BATCH * 10) {
      a.uploader.add(all.slice(i, i + BATCH * 10));
      await a.uploader.whenIdle();
      progress({ step: "uploading", done: Math.min(all.length, i + BATCH * 10), total });
    }
    // This device's sessions (the machine marks each once the server took it).
    let done = all.length;
    for (let left = engine.sessionsNotBackedUp(); left > 0; ) {
      done += await takeNew(a);
      await a.uploader.whenIdle();
      const now = engine.sessionsNotBackedUp();
      progress({ step: "uploading", done: Math.min(done, total), total });
      if (now >= left) break; // refused for good (backup full): the rest stays for later
      left = now;
    }
    await a.uploader.whenIdle();
  } finally {
    oldKey?.free();
  }
  if (old) await keyBackupClient.deleteBackupVersion({ version: old.version, deleteCurrent: false });
  changed();
}

/** Turns backup off: deletes the current version on the server and B on this device. */
export async function turnOffBackup(): Promise<void> {
  const current = await currentBackup();
  if (current) await keyBackupClient.deleteBackupVersion({ version: current.version, deleteCurrent: true });
  await forgetHere();
  changed();
}

/** Why a restore did not happen (nothing changed on this device or the server). */
export type RestoreFailure =
  /** The account has no backup. */
  | "no-backup"
  /** Neither a recovery key (wrong length or checksum) nor, for this backup, a passphrase. */
  | "not-a-key"
  /** A well-formed recovery key, not this backup's. */
  | "wrong-key"
  /** The passphrase does not open this backup. */
  | "wrong-passphrase"
  /** The backup's account key does not open or is not the account's key. */
  | "damaged";

export class RestoreError extends Error {
  constructor(readonly failure: RestoreFailure) {
    super(`restore failed: ${failure}`);
    this.name = "RestoreError";
  }
}

export type RestoreProgress =
  | { step: "checking" }
  | { step: "deriving" }
  | { step: "downloading"; done: number }
  | { step: "importing"; total: number };

/** Whether the auth data has a passphrase wrap (auth data that does not parse: damaged). */
function passphraseIn(authData: Uint8Array): boolean {
  try {
    return hasPassphrase(authData);
  } catch {
    throw new RestoreError("damaged");
  }
}

/** B from what the person typed: a recovery key, else (if the backup has one) a passphrase
 * (exported for the unit test). */
export async function keyFrom(typed: string, authData: Uint8Array, progress: (p: RestoreProgress) => void): Promise<BackupKey> {
  let parsed: BackupKey | null = null;
  try {
    parsed = BackupKey.fromRecoveryKey(typed);
  } catch (err) {
    if (cryptoCode(err) !== "recovery_key_malformed") throw err;
  }
  if (parsed) {
    try {
      parsed.check(authData);
      return parsed;
    } catch (err) {
      parsed.free();
      const code = cryptoCode(err);
      if (code === "malformed_backup") throw new RestoreError("damaged");
      if (code !== "wrong_recovery_key") throw err;
      if (!passphraseIn(authData)) throw new RestoreError("wrong-key");
      // A passphrase that happens to read as a recovery key: try it as a passphrase too.
    }
  }
  if (!passphraseIn(authData)) throw new RestoreError(parsed ? "wrong-key" : "not-a-key");
  progress({ step: "deriving" });
  await new Promise((r) => setTimeout(r, 30)); // let the line show before Argon2id blocks
  let key: BackupKey;
  try {
    key = BackupKey.fromPassphrase(typed, authData);
  } catch (err) {
    const code = cryptoCode(err);
    // What read as a recovery key and does not open as a passphrase either was a wrong key.
    if (code === "wrong_passphrase") throw new RestoreError(parsed ? "wrong-key" : "wrong-passphrase");
    if (code === "malformed_backup") throw new RestoreError("damaged");
    throw err;
  }
  try {
    key.check(authData);
  } catch {
    key.free();
    throw new RestoreError(parsed ? "wrong-key" : "wrong-passphrase");
  }
  return key;
}

/**
 * Restores this signed-in device (`accountId`, `deviceId`) from the backup with what the person
 * typed (`typed`: the recovery key or the passphrase). Everything is checked and decrypted
 * before anything changes; then the device is set up with the account key (certificate signed
 * and uploaded), the sessions imported and B kept, so this device backs up too. Returns the
 * new engine (the caller disposes of the one it had). `beforeChange` runs once everything
 * opened, before the first change (the messenger stops its chat there). Throws RestoreError for
 * a wrong key or passphrase, no backup, or a damaged one.
 */
export async function restoreFromBackup(
  accountId: string,
  deviceId: string,
  typed: string,
  progress: (p: RestoreProgress) => void = () => undefined,
  beforeChange: () => Promise<void> = () => Promise.resolve(),
): Promise<E2ee> {
  await loadCrypto();
  progress({ step: "checking" });
  const backup = await currentBackup();
  if (!backup) throw new RestoreError("no-backup");
  const account = uuidBytes(accountId);
  const key = await keyFrom(typed.trim(), backup.authData, progress);
  let secret: Uint8Array | null = null;
  const entries: Array<{ sessionId: string; data: Uint8Array }> = [];
  try {
    try {
      secret = key.decryptIdentity(account, backup.identity);
    } catch {
      throw new RestoreError("damaged");
    }
    progress({ step: "downloading", done: 0 });
    for await (const page of listAll(backup.version)) {
      entries.push(...page);
      progress({ step: "downloading", done: entries.length });
    }
    // The key opened the backup: from here on this device changes (a running chat stops first).
    await beforeChange();
    let engine: E2ee;
    try {
      engine = await E2ee.setUpLinked(accountId, deviceId, secret);
    } catch (err) {
      // The server refuses an account key that is not the one published: not this account's.
      if (reasonOf(err) === "ACCOUNT_KEY_EXISTS") throw new RestoreError("damaged");
      throw err;
    }
    progress({ step: "importing", total: entries.length });
    // Each entry is opened and bound by the machine; one damaged or foreign entry is left out
    // and does not cost the rest of the history.
    await engine.importBackedUp(key, entries);
    await keep(engine, key, backup.version);
    return engine;
  } finally {
    secret?.fill(0);
    key.free();
  }
}
