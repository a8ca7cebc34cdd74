// session.ts — the device's tokens: kept in IndexedDB so a reload stays signed in, refreshed
// before they expire by one tab at a time (a Web Lock; the winner re-reads what another tab
// may already have rotated, since a refresh token used twice signs the device out).
import { authClient, setTokenSource } from "../api";
import { reasonOf } from "../errors";
import type { Session } from "../gen/kitsulan/v1/auth_pb";
import * as db from "../storage/db";

/** What we keep of a session (plain data, structured-clone friendly). */
export interface StoredSession {
  accountId: string;
  deviceId: string;
  accessToken: string;
  accessExpiresAtMs: number;
  refreshToken: string;
  refreshExpiresAtMs: number;
}

const KEY = "tokens";
/** Refresh when less than this is left. */
const MARGIN_MS = 60_000;

export function fromProto(s: Session): StoredSession {
  return {
    accountId: s.accountId,
    deviceId: s.deviceId,
    accessToken: s.accessToken,
    accessExpiresAtMs: Number(s.accessExpiresAtMs),
    refreshToken: s.refreshToken,
    refreshExpiresAtMs: Number(s.refreshExpiresAtMs),
  };
}

let current: StoredSession | null = null;
let onSignedOut: () => void = () => undefined;

export function session(): StoredSession | null {
  return current;
}

/** Loads the stored session (null when signed out). */
export async function loadSession(signedOut: () => void): Promise<StoredSession | null> {
  onSignedOut = signedOut;
  current = (await db.get<StoredSession>("session", KEY)) ?? null;
  return current;
}

/** Stores the session of a new sign-in (or link), also after a sign-out in this page. */
export async function beginSession(s: StoredSession): Promise<void> {
  db.reopen();
  await saveSession(s);
}

export async function saveSession(s: StoredSession): Promise<void> {
  current = s;
  await db.put("session", KEY, s);
}

async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if ("locks" in navigator) return navigator.locks.request(name, fn);
  return fn();
}

let refreshing: Promise<StoredSession | null> | null = null;

async function refresh(): Promise<StoredSession | null> {
  return withLock("kitsulan-refresh", async () => {
    const stored = (await db.get<StoredSession>("session", KEY)) ?? null;
    if (!stored) return null;
    if (stored.accessExpiresAtMs - Date.now() > MARGIN_MS) {
      current = stored; // another tab refreshed already
      return stored;
    }
    try {
      const res = await authClient.refresh({ refreshToken: stored.refreshToken });
      if (!res.session) throw new Error("Refresh answered without a session");
      const next = fromProto(res.session);
      await saveSession(next);
      return next;
    } catch (err) {
      const reason = reasonOf(err);
      if (["REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED", "ACCOUNT_DISABLED"].includes(reason)) {
        current = null;
        onSignedOut();
        return null;
      }
      throw err;
    }
  });
}

/** A valid access token, refreshed first when needed. */
export async function accessToken(): Promise<string | null> {
  if (!current) return null;
  if (current.accessExpiresAtMs - Date.now() > MARGIN_MS) return current.accessToken;
  refreshing ??= refresh().finally(() => {
    refreshing = null;
  });
  return (await refreshing)?.accessToken ?? null;
}

setTokenSource(accessToken);

/** Signs this device out on the server (best effort) and wipes everything stored locally. */
export async function signOut(): Promise<void> {
  try {
    if (current) await authClient.signOut({});
  } catch {
    // Offline or already signed out: the local wipe below still happens.
  }
  current = null;
  await db.wipe();
}
