// sealed.ts — records this device keeps for itself (the outbox, the offline copy of conversations
// and history), sealed under the E2EE engine's pickle key before they reach IndexedDB, so a copy
// of the browser profile without the key reads nothing (crypto/FORMAT.md, "local record"). Each
// record is bound to its store and key: one moved to another key does not open. Values are
// JSON with bigints and byte arrays kept as such (protobuf-es messages round-trip).
import * as db from "./db";
import { fromBase64, toBase64 } from "../lib/base64";

/** Seals and opens bytes under the device's key (the E2EE engine implements it). */
export interface Sealer {
  sealLocal(name: string, body: Uint8Array): string;
  openLocal(name: string, sealed: string): Uint8Array;
}

type SealedStore = Extract<db.Store, "outbox" | "cache">;

const te = new TextEncoder();
const td = new TextDecoder();



/** JSON that keeps bigints and Uint8Arrays (as `{"$n": "…"}` and `{"$b": "base64"}`). */
export function encodeValue(value: unknown): Uint8Array {
  const json = JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
    const raw = this[key];
    if (typeof raw === "bigint") return { $n: raw.toString() };
    if (raw instanceof Uint8Array) return { $b: toBase64(raw) };
    return v;
  });
  return te.encode(json);
}

export function decodeValue<T>(bytes: Uint8Array): T {
  return JSON.parse(td.decode(bytes), (_key, v: unknown) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length === 1 && typeof o.$n === "string") return BigInt(o.$n);
      if (keys.length === 1 && typeof o.$b === "string") return fromBase64(o.$b);
    }
    return v;
  }) as T;
}

const nameOf = (store: SealedStore, key: string) => `${store}/${key}`;

export async function putSealed(sealer: Sealer, store: SealedStore, key: string, value: unknown): Promise<void> {
  await db.put(store, key, sealer.sealLocal(nameOf(store, key), encodeValue(value)));
}

/** Several records in one transaction (all or nothing). */
export async function putManySealed(sealer: Sealer, store: SealedStore, entries: Array<[string, unknown]>): Promise<void> {
  await db.putMany(
    store,
    entries.map(([key, value]) => [key, sealer.sealLocal(nameOf(store, key), encodeValue(value))]),
  );
}

function open<T>(sealer: Sealer, store: SealedStore, key: string, sealed: unknown): T | undefined {
  if (typeof sealed !== "string") return undefined;
  try {
    return decodeValue<T>(sealer.openLocal(nameOf(store, key), sealed));
  } catch (err) {
    // Sealed under another key (a previous sign-in) or damaged: as if absent.
    console.warn(`local record ${store}/${key} does not open`, err);
    return undefined;
  }
}

export async function getSealed<T>(sealer: Sealer, store: SealedStore, key: string): Promise<T | undefined> {
  return open<T>(sealer, store, key, await db.get<unknown>(store, key));
}

/** Every record of `store` whose key starts with `prefix`, in key order (those that do not
 * open are left out). */
export async function entriesSealed<T>(sealer: Sealer, store: SealedStore, prefix: string): Promise<Array<[string, T]>> {
  const out: Array<[string, T]> = [];
  for (const [key, sealed] of await db.entries<unknown>(store, prefix)) {
    const value = open<T>(sealer, store, key, sealed);
    if (value !== undefined) out.push([key, value]);
  }
  return out;
}
