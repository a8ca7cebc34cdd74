import { describe, expect, it } from "vitest";
import { insecureWarning, isLimited, limitsOf, type PageFacts } from "./secureContext";

/** A page opened over plain HTTP by a LAN name, as Chromium sees it: no service worker, no media. */
const lan: PageFacts = { secure: false, protocol: "http:", port: "8080", serviceWorker: false, media: false };
/** The same server on https:// or http://localhost: everything there. */
const secure: PageFacts = { secure: true, protocol: "https:", port: "", serviceWorker: true, media: true };

describe("insecure context", () => {
  it("warns on a plain-http LAN page and lists offline start, notifications and calls", () => {
    expect(insecureWarning(lan)).toEqual({
      limits: ["offline", "notifications", "calls"],
      localUrl: "http://localhost:8080/",
    });
  });

  it("says nothing on a secure page, even where the browser lacks a feature", () => {
    expect(insecureWarning(secure)).toBeNull();
    expect(insecureWarning({ ...secure, protocol: "http:", port: "8080" })).toBeNull();
    // A secure page without service workers or media (an old or locked-down browser) is not
    // blamed on the connection: no banner, nothing limited for that reason.
    const bare = { ...secure, serviceWorker: false, media: false };
    expect(insecureWarning(bare)).toBeNull();
    expect(limitsOf(bare)).toEqual([]);
    for (const limit of ["offline", "notifications", "calls"] as const) expect(isLimited(limit, bare)).toBe(false);
  });

  it("lists only what is really missing (a browser told to treat the origin as secure for one feature)", () => {
    expect(limitsOf({ ...lan, serviceWorker: true })).toEqual(["notifications", "calls"]);
    expect(limitsOf({ ...lan, media: true })).toEqual(["offline", "notifications"]);
    // Notifications are refused permission on any insecure page, whatever the API's presence.
    expect(limitsOf({ ...lan, serviceWorker: true, media: true })).toEqual(["notifications"]);
  });

  it("calls and notifications are limited exactly on the insecure page", () => {
    expect(isLimited("calls", lan)).toBe(true);
    expect(isLimited("notifications", lan)).toBe(true);
    expect(isLimited("offline", lan)).toBe(true);
    expect(isLimited("calls", secure)).toBe(false);
    expect(isLimited("notifications", secure)).toBe(false);
  });

  it("offers the loopback address on the same port, only for a plain-http page", () => {
    expect(insecureWarning({ ...lan, port: "" })?.localUrl).toBe("http://localhost/");
    expect(insecureWarning({ ...lan, port: "3000" })?.localUrl).toBe("http://localhost:3000/");
    // An https page can still be insecure (framed by an http one): no plain-http hint then.
    expect(insecureWarning({ ...lan, protocol: "https:" })?.localUrl).toBeNull();
  });
});
