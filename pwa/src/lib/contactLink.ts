// contactLink.ts — the link a person's "My QR code" shows, and reading one back.
//
//   https://kitsulan.local/#/add/<account id>/<account key>
//
// The origin is the server the page was opened at (a link names one server: a code from another
// KitsuLAN is refused, as our server does not know its accounts). The account id says who; the
// account key (the person's Ed25519 identity key, 32 bytes, base64url without padding) is what
// the scanning device compares with the key the server gives for that account, so a server that
// answers with another key is caught at once. It is the key the safety-code check (SAS emoji,
// docs/e2ee.md) then confirms. The part after `#` never reaches a server: opening the link sends
// only a request for the app.

import { isUuid } from "./ids";

const PREFIX = "#/add/";

/** What a valid link says. */
export interface ContactLink {
  accountId: string;
  /** The person's account key (Ed25519 public key, 32 bytes). */
  accountKey: Uint8Array;
}

/** Why a text is not a contact link of this server. */
export type ContactLinkProblem =
  /** Not a KitsuLAN contact link at all (another app's QR code, a web page, text). */
  | "not-ours"
  /** A contact link of another server (another origin). */
  | "other-server"
  /** Looks like ours but is damaged (a bad id or key). */
  | "damaged";

export type ParsedContactLink = { ok: true; link: ContactLink } | { ok: false; problem: ContactLinkProblem };

function toBase64Url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  try {
    const s = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4));
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/** The link for the person `accountId` with `accountKey`, on the server at `origin`. */
export function contactLink(origin: string, accountId: string, accountKey: Uint8Array): string {
  return `${origin}/${PREFIX}${accountId}/${toBase64Url(accountKey)}`;
}

/** Whether a URL's fragment is a contact link's (the app opened from one). */
export function isContactFragment(hash: string): boolean {
  return hash.startsWith(PREFIX);
}

/**
 * Reads `text` (a scanned or pasted code) as a contact link of the server at `origin`
 * (`location.origin`). Only what `contactLink` makes is accepted: the same origin, the path `/`,
 * no query, the fragment `#/add/<UUID>/<32-byte key>`.
 */
export function parseContactLink(text: string, origin: string): ParsedContactLink {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return { ok: false, problem: "not-ours" };
  }
  if ((url.protocol !== "https:" && url.protocol !== "http:") || !isContactFragment(url.hash)) {
    return { ok: false, problem: "not-ours" };
  }
  if (url.origin !== origin) return { ok: false, problem: "other-server" };
  if (url.pathname !== "/" || url.search !== "" || url.username !== "" || url.password !== "") {
    return { ok: false, problem: "damaged" };
  }
  const parts = url.hash.slice(PREFIX.length).split("/");
  if (parts.length !== 2) return { ok: false, problem: "damaged" };
  const [id = "", key = ""] = parts;
  const accountKey = fromBase64Url(key);
  if (!isUuid(id) || id !== id.toLowerCase() || !accountKey || accountKey.length !== 32 || toBase64Url(accountKey) !== key) {
    return { ok: false, problem: "damaged" };
  }
  return { ok: true, link: { accountId: id, accountKey } };
}
