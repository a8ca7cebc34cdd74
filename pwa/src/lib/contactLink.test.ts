import { describe, expect, it } from "vitest";
import { contactLink, isContactFragment, parseContactLink } from "./contactLink";

const ORIGIN = "https://kitsulan.local";
const ID = "0193a0b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b";
const KEY = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 250) % 256);

describe("contact links", () => {
  it("round-trips the account id and key on the same origin", () => {
    const link = contactLink(ORIGIN, ID, KEY);
    expect(link.startsWith(`${ORIGIN}/#/add/${ID}/`)).toBe(true);
    const parsed = parseContactLink(link, ORIGIN);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.link.accountId).toBe(ID);
    expect(Array.from(parsed.link.accountKey)).toEqual(Array.from(KEY));
    // Surrounding whitespace (a pasted line) is fine; a port is part of the origin.
    expect(parseContactLink(`  ${link}\n`, ORIGIN).ok).toBe(true);
    const lan = "https://192.168.1.10:8443";
    expect(parseContactLink(contactLink(lan, ID, KEY), lan).ok).toBe(true);
  });

  it("uses base64url without padding, so the link needs no escaping", () => {
    const link = contactLink(ORIGIN, ID, new Uint8Array(32).fill(0xff));
    expect(link.endsWith("/__________________________________________8")).toBe(true);
    expect(encodeURI(link)).toBe(link);
  });

  it("refuses what is not a contact link", () => {
    for (const text of ["", "hello", "KITSULAN-PAIR:abc", "https://example.org/", `${ORIGIN}/`, `${ORIGIN}/#/chat/${ID}`, "javascript:alert(1)//#/add/x/y"]) {
      expect(parseContactLink(text, ORIGIN), text).toEqual({ ok: false, problem: "not-ours" });
    }
  });

  it("refuses another server's link, also one differing only by scheme or port", () => {
    for (const other of ["https://evil.example", "http://kitsulan.local", "https://kitsulan.local:8443", "https://kitsulan.local.evil.example"]) {
      expect(parseContactLink(contactLink(other, ID, KEY), ORIGIN), other).toEqual({ ok: false, problem: "other-server" });
    }
  });

  it("refuses a damaged link", () => {
    const key = contactLink(ORIGIN, ID, KEY).split("/").pop() ?? "";
    const bad = [
      `${ORIGIN}/#/add/${ID}`,
      `${ORIGIN}/#/add/${ID}/`,
      `${ORIGIN}/#/add/not-a-uuid/${key}`,
      `${ORIGIN}/#/add/${ID.toUpperCase()}/${key}`,
      `${ORIGIN}/#/add/${ID}/${key.slice(1)}`,
      `${ORIGIN}/#/add/${ID}/${key}AA`,
      `${ORIGIN}/#/add/${ID}/${key.replace(/.$/, "=")}`,
      `${ORIGIN}/#/add/${ID}/${key}/extra`,
      `${ORIGIN}/#/add/${ID}/${key.replace(/^./, "+")}`,
      `${ORIGIN}/party#/add/${ID}/${key}`,
      `${ORIGIN}/?x=1#/add/${ID}/${key}`,
      `https://user:pw@kitsulan.local/#/add/${ID}/${key}`,
    ];
    for (const text of bad) {
      const parsed = parseContactLink(text, ORIGIN);
      expect(parsed.ok, text).toBe(false);
    }
    // The last one has another origin only in its credentials: still refused, as damaged.
    expect(parseContactLink(bad[bad.length - 1] ?? "", ORIGIN)).toEqual({ ok: false, problem: "damaged" });
  });

  it("recognises the fragment the app is opened with", () => {
    expect(isContactFragment(`#/add/${ID}/x`)).toBe(true);
    expect(isContactFragment("")).toBe(false);
    expect(isContactFragment("#/party")).toBe(false);
  });
});
