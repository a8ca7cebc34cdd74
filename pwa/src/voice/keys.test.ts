import { describe, expect, it } from "vitest";
import { diffParticipants, levelsByPerson, PeerKeys, planForChange, randomBaseKey, randomKid } from "./keys";

const ME = "me";

describe("diffParticipants", () => {
  it.each([
    { prev: [], next: [ME], joined: [], left: [] },
    { prev: [ME], next: [ME, "a"], joined: ["a"], left: [] },
    { prev: [ME, "a", "b"], next: [ME, "b"], joined: [], left: ["a"] },
    { prev: [ME, "a"], next: [ME, "b"], joined: ["b"], left: ["a"] },
    { prev: ["a", "a"], next: ["a"], joined: [], left: [] },
    // Our own coming and going is not a participant change for our keys.
    { prev: [ME, "a"], next: ["a"], joined: [], left: [] },
  ])("$prev -> $next", ({ prev, next, joined, left }) => {
    expect(diffParticipants(prev, next, ME)).toEqual({ joined, left });
  });
});

describe("planForChange", () => {
  it("shares the current key with those who joined only", () => {
    expect(planForChange([ME, "a"], [ME, "a", "b", "c"], ME)).toEqual({ kind: "share", to: ["b", "c"] });
  });

  it("shares with everyone there when we just joined", () => {
    expect(planForChange([], ["a", ME, "b"], ME)).toEqual({ kind: "share", to: ["a", "b"] });
  });

  it("rotates when someone left, to all who remain (newcomers too), never to who left", () => {
    const plan = planForChange([ME, "a", "b"], [ME, "b", "c"], ME);
    expect(plan).toEqual({ kind: "rotate", to: ["b", "c"] });
    expect(plan.kind === "rotate" && plan.to.includes("a")).toBe(false);
  });

  it("rotates even when nobody remains (the next to join gets the new key)", () => {
    expect(planForChange([ME, "a"], [ME], ME)).toEqual({ kind: "rotate", to: [] });
  });

  it("does nothing when nobody else changed", () => {
    expect(planForChange([ME, "a"], ["a", ME], ME)).toEqual({ kind: "none" });
    expect(planForChange(["a"], [ME, "a"], ME)).toEqual({ kind: "none" });
  });
});

describe("randomKid and randomBaseKey", () => {
  it("skips kids already taken", () => {
    const values = [7, 7, 9];
    const kid = randomKid(new Set([7]), () => values.shift() ?? 0);
    expect(kid).toBe(9);
  });

  it("keeps kids within 32 bits", () => {
    expect(randomKid(new Set(), () => -1)).toBe(0xffffffff);
    for (let i = 0; i < 100; i++) {
      const kid = randomKid();
      expect(Number.isInteger(kid) && kid >= 0 && kid <= 0xffffffff).toBe(true);
    }
  });

  it("makes 16-byte keys that differ", () => {
    const a = randomBaseKey();
    const b = randomBaseKey();
    expect(a.length).toBe(16);
    expect(a).not.toEqual(b);
  });
});

describe("PeerKeys", () => {
  it("says whether a key is new: a reloaded device's new kid is, a repeat is not", () => {
    const keys = new PeerKeys();
    expect(keys.add({ kid: 1, accountId: "a", deviceId: "a1" })).toBe("new");
    expect(keys.add({ kid: 1, accountId: "a", deviceId: "a1" })).toBe("same");
    expect(keys.add({ kid: 2, accountId: "a", deviceId: "a1" })).toBe("new");
    expect(keys.accountOf(2)).toBe("a");
  });

  it("refuses a kid another device holds: nobody takes over another's voice", () => {
    const keys = new PeerKeys();
    expect(keys.add({ kid: 7, accountId: "bob", deviceId: "b1" })).toBe("new");
    expect(keys.add({ kid: 7, accountId: "mallory", deviceId: "m1" })).toBe("taken");
    expect(keys.accountOf(7)).toBe("bob");
  });

  it("forgets every kid of the accounts that left, and only those", () => {
    const keys = new PeerKeys();
    keys.add({ kid: 1, accountId: "a", deviceId: "a1" });
    keys.add({ kid: 2, accountId: "a", deviceId: "a2" });
    keys.add({ kid: 3, accountId: "b", deviceId: "b1" });
    expect(keys.removeAccounts(["a"]).sort()).toEqual([1, 2]);
    expect(keys.kids).toEqual([3]);
    expect(keys.accountOf(1)).toBeUndefined();
  });
});

describe("levelsByPerson", () => {
  it("gives each person the loudest of the slots carrying their kids", () => {
    const kids = new Map([
      [0, 10],
      [1, 20],
      [2, 11],
    ]);
    const owner = (kid: number) => ({ 10: "a", 11: "a", 20: "b" })[kid];
    const levels = levelsByPerson([0.2, 0.05, 0.3, 0.9], kids, owner);
    expect(Object.fromEntries(levels)).toEqual({ a: 0.3, b: 0.05 });
  });

  it("leaves out slots with no kid yet or a kid of nobody known", () => {
    const levels = levelsByPerson([0.5, 0.5], new Map([[1, 99]]), () => undefined);
    expect(levels.size).toBe(0);
  });
});
