// db.ts — the device's IndexedDB: one database, five key-value stores.
// "session" holds the tokens; "crypto" holds the pickle key (and, before version 3, the old
// engine's pickles, converted once by crypto/engine.ts); "machine" holds the sealed records of the
// E2EE client machine (crypto/engine.ts, the crate's CryptoMachine); "outbox" holds what this device has yet to send (messages,
// edits, deletions, files: state/outbox.ts); "cache" holds the offline copy of conversations and
// decrypted history (state/cache.ts). Records in "outbox" and "cache" are sealed under the
// pickle key (storage/sealed.ts). Signing out deletes the whole database.
import { openDB, type IDBPDatabase } from "idb";

const NAME = "kitsulan";
const VERSION = 3;
export type Store = "session" | "crypto" | "machine" | "outbox" | "cache";

let opened: Promise<IDBPDatabase> | null = null;
/** Set by wipe(): late writes of a signed-out session must not re-create the database. */
let wiped = false;

function db(): Promise<IDBPDatabase> {
  if (wiped) return Promise.reject(new Error("signed out: local data was wiped"));
  opened ??= openDB(NAME, VERSION, {
    upgrade(database, oldVersion) {
      if (oldVersion < 1) {
        database.createObjectStore("session");
        database.createObjectStore("crypto");
      }
      if (oldVersion < 2) {
        database.createObjectStore("outbox");
        database.createObjectStore("cache");
      }
      if (oldVersion < 3) database.createObjectStore("machine");
    },
  });
  return opened;
}

export async function get<T>(store: Store, key: string): Promise<T | undefined> {
  return (await (await db()).get(store, key)) as T | undefined;
}

export async function put(store: Store, key: string, value: unknown): Promise<void> {
  await (await db()).put(store, value, key);
}

/** Writes several keys in one transaction (all or nothing). */
export async function putMany(store: Store, entries: Array<[string, unknown]>): Promise<void> {
  const tx = (await db()).transaction(store, "readwrite");
  for (const [key, value] of entries) void tx.store.put(value, key);
  await tx.done;
}

export async function del(store: Store, key: string): Promise<void> {
  await (await db()).delete(store, key);
}

/** Every key and value of `store` whose key starts with `prefix`. */
export async function entries<T>(store: Store, prefix: string): Promise<Array<[string, T]>> {
  const range = IDBKeyRange.bound(prefix, `${prefix}\uffff`);
  const tx = (await db()).transaction(store, "readonly");
  const keys = await tx.store.getAllKeys(range);
  const values = await tx.store.getAll(range);
  await tx.done;
  return keys.map((k, i) => [String(k), values[i] as T]);
}

/** Every key and value of `store`. */
export async function all<T>(store: Store): Promise<Array<[string, T]>> {
  const tx = (await db()).transaction(store, "readonly");
  const keys = await tx.store.getAllKeys();
  const values = await tx.store.getAll();
  await tx.done;
  return keys.map((k, i) => [String(k), values[i] as T]);
}

/** One write of a transaction over several stores: a value, or a deletion when undefined. */
export interface Write {
  store: Store;
  key: string;
  value?: unknown;
}

/** Writes and deletes across stores in one transaction (all or nothing). */
export async function writeAll(writes: Write[]): Promise<void> {
  if (writes.length === 0) return;
  const stores = [...new Set(writes.map((w) => w.store))];
  const tx = (await db()).transaction(stores, "readwrite");
  for (const w of writes) {
    const store = tx.objectStore(w.store);
    void (w.value === undefined ? store.delete(w.key) : store.put(w.value, w.key));
  }
  await tx.done;
}

/** Allows the database again after a wipe (a new sign-in in the same page). */
export function reopen(): void {
  wiped = false;
}

/** Deletes the whole database (sign-out); until reopen(), every access fails. */
export async function wipe(): Promise<void> {
  wiped = true;
  if (opened) {
    (await opened).close();
    opened = null;
  }
  await new Promise<void>((resolve, reject) => {
    const request = indexedDB.deleteDatabase(NAME);
    request.onsuccess = () => resolve();
    request.onerror = () => reject(request.error ?? new Error("deleteDatabase failed"));
    request.onblocked = () => resolve();
  });
}
