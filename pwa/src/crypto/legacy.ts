// legacy.ts — the records of the engine before the client machine (store "crypto": "device",
// "accountKey", "olm:…", "out:…", "in:…", "pinned", "seen", …), read once into the crate's
// LegacyState so engine.ts can convert them (CryptoMachine.fromLegacy; the rules of how they
// become the machine's state are the crate's, client/legacy.rs), and deleted in the same
// transaction that writes the machine's records.
import { LegacyState } from "kitsulan-crypto";
import * as db from "../storage/db";
import type { Peer } from "./engine";

/** The old engine's single records (besides "pickleKey", which stays). */
const LEGACY_KEYS = [
  "device",
  "accountKey",
  "certificateUploaded",
  "pinned",
  "peers",
  "devices",
  "seen",
  "taken",
  "verified",
  "verifiedThenChanged",
];
/** The old engine's records by prefix. */
const LEGACY_PREFIXES = ["olm:", "out:", "in:"];

interface LegacyOutbound {
  pickle: string;
  sharedWith: string[];
  createdAtMs: number;
}

interface LegacyInbound {
  pickle: string;
  senderAccountId: string;
  conversationId: string | null;
}

/** The deletions of every old record, for the transaction that replaces them. */
export async function legacyDeletions(): Promise<db.Write[]> {
  const writes: db.Write[] = LEGACY_KEYS.map((key) => ({ store: "crypto", key }));
  for (const prefix of LEGACY_PREFIXES) {
    for (const [key] of await db.entries("crypto", prefix)) writes.push({ store: "crypto", key });
  }
  return writes;
}

/**
 * Reads the old engine's records into the crate's LegacyState (the rules of how they become the
 * machine's state are the crate's: client/legacy.rs). Null when this browser has none.
 */
export async function readLegacy(accountId: string, deviceId: string): Promise<LegacyState | null> {
  const device = await db.get<string>("crypto", "device");
  if (!device) return null;
  const accountKey = await db.get<string>("crypto", "accountKey");
  const certificateUploaded = (await db.get<boolean>("crypto", "certificateUploaded")) ?? false;
  const legacy = new LegacyState(accountId, deviceId, device, accountKey, certificateUploaded);
  try {
    for (const [id, key] of Object.entries((await db.get<Record<string, Uint8Array>>("crypto", "pinned")) ?? {})) {
      legacy.pinned(id, key);
    }
    for (const [id, key] of Object.entries((await db.get<Record<string, Uint8Array>>("crypto", "verified")) ?? {})) {
      legacy.verified(id, key);
    }
    for (const id of (await db.get<string[]>("crypto", "verifiedThenChanged")) ?? []) legacy.verifiedThenChanged(id);
    for (const p of (await db.get<Peer[]>("crypto", "peers")) ?? []) legacy.peer(p.accountId, p.deviceId, p.ed25519, p.curve25519);
    for (const [id, list] of Object.entries((await db.get<Record<string, string[]>>("crypto", "devices")) ?? {})) {
      legacy.devices(id, list);
    }
    for (const [key, pickles] of await db.entries<string[]>("crypto", "olm:")) legacy.olm(key.slice(4), pickles);
    for (const [key, o] of await db.entries<LegacyOutbound>("crypto", "out:")) {
      legacy.outbound(key.slice(4), o.pickle, o.sharedWith, o.createdAtMs);
    }
    for (const [key, i] of await db.entries<LegacyInbound>("crypto", "in:")) {
      legacy.inbound(key.slice(3), i.pickle, i.senderAccountId, i.conversationId ?? undefined);
    }
    for (const [key, messageId] of Object.entries((await db.get<Record<string, string>>("crypto", "seen")) ?? {})) {
      legacy.seen(key, messageId);
    }
    legacy.taken((await db.get<string[]>("crypto", "taken")) ?? []);
  } catch (err) {
    legacy.free();
    throw err;
  }
  return legacy;
}
