import { describe, expect, it } from "vitest";
import type { PageFacts } from "../lib/secureContext";
import { fromBase64Url, supportOf, toBase64Url } from "./pushSupport";

const lan: PageFacts = { secure: false, protocol: "http:", port: "8080", serviceWorker: false, media: false };
const secure: PageFacts = { secure: true, protocol: "https:", port: "", serviceWorker: true, media: true };

describe("push support", () => {
  it("is off with a reason on an insecure page, even where the browser has the API", () => {
    expect(supportOf(lan, true)).toBe("insecure");
    expect(supportOf({ ...lan, serviceWorker: true }, true)).toBe("insecure");
  });

  it("needs a service worker and the push API on a secure page", () => {
    expect(supportOf(secure, true)).toBe("ok");
    expect(supportOf(secure, false)).toBe("unsupported");
    expect(supportOf({ ...secure, serviceWorker: false }, true)).toBe("unsupported");
  });
});

describe("base64url keys", () => {
  it("round-trips every byte value without padding, as the server takes them", () => {
    const bytes = new Uint8Array(256).map((_, i) => i);
    const text = toBase64Url(bytes);
    expect(text).not.toMatch(/[+/=]/);
    expect(fromBase64Url(text)).toEqual(bytes);
    expect(toBase64Url(bytes.buffer)).toBe(text);
  });

  it("reads the RFC 8291 example key (65 bytes, uncompressed point)", () => {
    const key = fromBase64Url("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4");
    expect(key.length).toBe(65);
    expect(key[0]).toBe(4);
    expect(fromBase64Url("BTBZMqHH6r4Tts7J_aSIgg=").length).toBe(16);
  });
});
