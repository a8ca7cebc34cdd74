import { describe, expect, it } from "vitest";
import { fingerprintGroups } from "./fingerprint";

describe("fingerprintGroups", () => {
  it("splits a SHA-256 into 16 groups of 4, upper case", () => {
    const hex = "0123456789abcdef".repeat(4);
    const groups = fingerprintGroups(hex);
    expect(groups).toHaveLength(16);
    expect(groups.slice(0, 4)).toEqual(["0123", "4567", "89AB", "CDEF"]);
    expect(fingerprintGroups("AB:CD:ef:01")).toEqual(["ABCD", "EF01"]);
  });

  it("shows nothing for an unset fingerprint", () => {
    expect(fingerprintGroups("")).toEqual([]);
  });
});
