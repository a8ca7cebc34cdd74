// pushSupport.ts — the pure parts of Web Push in the app (push.ts): whether a page can use it
// and the base64url form the server and PushManager use for keys. Tested without a browser.
import { isLimited, type PageFacts } from "../lib/secureContext";

/** Why push cannot be turned on here, or "ok". */
export type PushSupport = "ok" | "insecure" | "unsupported";

/** Whether a page with these facts (and a PushManager and Notification API or not) can use push. */
export function supportOf(facts: PageFacts, hasPushApi: boolean): PushSupport {
  if (isLimited("notifications", facts)) return "insecure";
  if (!facts.serviceWorker || !hasPushApi) return "unsupported";
  return "ok";
}

/** base64url without padding, as the server takes keys. */
export function toBase64Url(bytes: ArrayBuffer | Uint8Array): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = "";
  for (const b of view) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The bytes of base64url text (padding optional): the server's VAPID key for PushManager. */
export function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4));
  const out = new Uint8Array(new ArrayBuffer(s.length));
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
