// turn.ts — ICE servers for calls: the TURN/STUN URLs and short-lived credentials from
// CallService.GetTurnCredentials, cached and fetched again when they come near expiry.
import { callClient } from "../api";
import { reasonOf } from "../errors";

interface Cached {
  servers: RTCIceServer[];
  expiresAtMs: number;
  ttlMs: number;
}

let cached: Cached | null = null;

/** How long before expiry credentials count as stale: a tenth of their life, at least a minute. */
function margin(c: Cached): number {
  return Math.max(60_000, c.ttlMs / 10);
}

/** When the cached credentials should be replaced (ms since the epoch), or null without any. */
export function refreshAtMs(): number | null {
  return cached && cached.ttlMs > 0 ? cached.expiresAtMs - margin(cached) : null;
}

/**
 * The ICE servers to use now. Without a relay on the server (TURN_UNAVAILABLE) or when it cannot
 * be reached, none (or the last ones, while still valid): calls then connect directly or not at all.
 */
export async function iceServers(): Promise<RTCIceServer[]> {
  if (cached && Date.now() < cached.expiresAtMs - margin(cached)) return cached.servers;
  try {
    const res = await callClient.getTurnCredentials({});
    const servers = res.urls.length > 0 ? [{ urls: res.urls, username: res.username, credential: res.password }] : [];
    cached = { servers, expiresAtMs: Number(res.expiresAtMs), ttlMs: res.ttlSeconds * 1000 };
    return servers;
  } catch (err) {
    if (reasonOf(err) === "TURN_UNAVAILABLE") {
      cached = null;
      return [];
    }
    if (cached && Date.now() < cached.expiresAtMs) return cached.servers;
    console.warn("TURN credentials", err);
    return [];
  }
}

/** Forgets the credentials (sign-out). */
export function forgetIceServers(): void {
  cached = null;
}
