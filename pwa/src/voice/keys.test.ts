import { describe, expect, it } from "vitest";
import {
  diffParticipants,
  KeyHealth,
  levelsByPerson,
  NO_KEY_GRACE_MS,
  NO_OLM_SESSION,
  PeerKeys,
  planForChange,
  randomBaseKey,
  randomKid,
  sameTroubles,
  shareFailureReason,
  shareToEach,
} from "./keys";

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

describe("PeerKeys.hasAccount", () => {
  it("says whether any key of a person is held", () => {
    const keys = new PeerKeys();
    keys.add({ kid: 1, accountId: "a", deviceId: "a1" });
    expect(keys.hasAccount("a")).toBe(true);
    expect(keys.hasAccount("b")).toBe(false);
    keys.removeAccounts(["a"]);
    expect(keys.hasAccount("a")).toBe(false);
  });
});

describe("shareFailureReason", () => {
  const noServer = () => null;

  it("names a changed account key, before anything else", () => {
    const err = Object.assign(new Error("the account key of b changed"), { name: "AccountKeyChanged" });
    expect(shareFailureReason(err, () => "UNAVAILABLE")).toBe("ACCOUNT_KEY_CHANGED");
  });

  it("keeps the server's reason (errors.ts's reasonOf)", () => {
    expect(shareFailureReason(new Error("refused"), () => "NOT_IN_VOICE")).toBe("NOT_IN_VOICE");
  });

  it("falls back to the crypto crate's code, then to UNKNOWN", () => {
    expect(shareFailureReason({ code: "no_olm_session" }, noServer)).toBe("no_olm_session");
    expect(shareFailureReason(new Error("boom"), noServer)).toBe("UNKNOWN");
    expect(shareFailureReason(null, noServer)).toBe("UNKNOWN");
  });
});

describe("KeyHealth", () => {
  const holds = (accounts: string[]) => (a: string) => accounts.includes(a);

  it("says a failed share with its reason at once, and forgets it once the key went", () => {
    const h = new KeyHealth();
    h.participants([ME, "bob", "carol"], ME, 0);
    h.shareFailed("bob", "ACCOUNT_KEY_CHANGED");
    expect(h.troubles(holds(["bob", "carol"]), 10)).toEqual({ bob: { notSent: "ACCOUNT_KEY_CHANGED" } });
    expect(h.toRetry()).toEqual(["bob"]);
    h.shared("bob");
    expect(h.troubles(holds(["bob", "carol"]), 20)).toEqual({});
    expect(h.toRetry()).toEqual([]);
  });

  it("says 'no key from them yet' only after the grace period in the room with us", () => {
    const h = new KeyHealth();
    h.participants([ME, "bob"], ME, 1000);
    expect(h.troubles(holds([]), 1000 + NO_KEY_GRACE_MS - 1)).toEqual({});
    expect(h.troubles(holds([]), 1000 + NO_KEY_GRACE_MS)).toEqual({ bob: { noKey: true } });
    // Their key came.
    expect(h.troubles(holds(["bob"]), 1000 + NO_KEY_GRACE_MS)).toEqual({});
  });

  it("counts the grace period from when each person appeared", () => {
    const h = new KeyHealth();
    h.participants([ME, "bob"], ME, 0);
    h.participants([ME, "bob", "carol"], ME, 5000);
    expect(Object.keys(h.troubles(holds([]), NO_KEY_GRACE_MS))).toEqual(["bob"]);
    expect(Object.keys(h.troubles(holds([]), 5000 + NO_KEY_GRACE_MS)).sort()).toEqual(["bob", "carol"]);
  });

  it("shows both problems of one person together", () => {
    const h = new KeyHealth();
    h.participants(["bob"], ME, 0);
    h.shareFailed("bob", "UNAVAILABLE");
    expect(h.troubles(holds([]), NO_KEY_GRACE_MS)).toEqual({ bob: { notSent: "UNAVAILABLE", noKey: true } });
  });

  it("forgets who left: no warning, nothing to retry; back later, the clock starts again", () => {
    const h = new KeyHealth();
    h.participants([ME, "bob"], ME, 0);
    h.shareFailed("bob", "UNAVAILABLE");
    h.participants([ME], ME, 100);
    expect(h.toRetry()).toEqual([]);
    expect(h.troubles(holds([]), NO_KEY_GRACE_MS * 2)).toEqual({});
    h.participants([ME, "bob"], ME, 50_000);
    expect(h.troubles(holds([]), 50_000 + 1)).toEqual({});
  });

  it("never lists us", () => {
    const h = new KeyHealth();
    h.participants([ME], ME, 0);
    expect(h.troubles(holds([]), NO_KEY_GRACE_MS * 2)).toEqual({});
  });

  it("retries everyone in the room whose share failed, in order", () => {
    const h = new KeyHealth();
    h.participants([ME, "carol", "bob", "dave"], ME, 0);
    h.shareFailed("carol", "UNAVAILABLE");
    h.shareFailed("bob", "ACCOUNT_KEY_CHANGED");
    expect(h.toRetry()).toEqual(["bob", "carol"]);
  });

  it("starts from nothing after clear()", () => {
    const h = new KeyHealth();
    h.participants(["bob"], ME, 0);
    h.shareFailed("bob", "UNAVAILABLE");
    h.clear();
    expect(h.toRetry()).toEqual([]);
    expect(h.troubles(holds([]), NO_KEY_GRACE_MS * 2)).toEqual({});
  });
});

describe("sameTroubles", () => {
  it("compares what the tiles would say", () => {
    expect(sameTroubles({}, {})).toBe(true);
    expect(sameTroubles({ a: { noKey: true } }, { a: { noKey: true } })).toBe(true);
    expect(sameTroubles({ a: { noKey: true } }, { a: { notSent: "X" } })).toBe(false);
    expect(sameTroubles({ a: { notSent: "X" } }, { a: { notSent: "Y" } })).toBe(false);
    expect(sameTroubles({ a: { noKey: true } }, {})).toBe(false);
  });
});

describe("shareToEach", () => {
  it("sends to all at once when it goes", async () => {
    const calls: string[][] = [];
    const out = await shareToEach(["bob", "carol"], async (to) => {
      calls.push(to);
      return { withoutOlm: [] };
    });
    expect(calls).toEqual([["bob", "carol"]]);
    expect(out).toEqual({ sent: ["bob", "carol"], failed: [] });
  });

  it("names those none of whose devices had an Olm session", async () => {
    const out = await shareToEach(["bob", "carol"], async () => ({ withoutOlm: ["carol"] }));
    expect(out.sent).toEqual(["bob"]);
    expect(out.failed).toEqual([["carol", { code: NO_OLM_SESSION }]]);
    expect(shareFailureReason(out.failed[0]?.[1], () => null)).toBe(NO_OLM_SESSION);
  });

  it("when the batch fails, tries each person alone: one's failure keeps the key from nobody else", async () => {
    const changed = Object.assign(new Error("key changed"), { name: "AccountKeyChanged" });
    const calls: string[][] = [];
    const out = await shareToEach(["bob", "carol", "dave"], async (to) => {
      calls.push(to);
      if (to.includes("carol")) throw changed;
      return { withoutOlm: to.includes("dave") ? ["dave"] : [] };
    });
    expect(calls).toEqual([["bob", "carol", "dave"], ["bob"], ["carol"], ["dave"]]);
    expect(out.sent).toEqual(["bob"]);
    expect(out.failed.map(([a, err]) => [a, shareFailureReason(err, () => null)])).toEqual([
      ["carol", "ACCOUNT_KEY_CHANGED"],
      ["dave", NO_OLM_SESSION],
    ]);
  });

  it("does not try one person twice, and stops when the room is left", async () => {
    let calls = 0;
    const fail = async () => {
      calls++;
      throw new Error("refused");
    };
    expect((await shareToEach(["bob"], fail)).failed.map(([a]) => a)).toEqual(["bob"]);
    expect(calls).toBe(1);
    calls = 0;
    const out = await shareToEach(["bob", "carol"], fail, () => calls >= 2);
    expect(calls).toBe(2);
    expect(out).toEqual({ sent: [], failed: [["bob", expect.any(Error)]] });
  });

  it("does nothing for nobody", async () => {
    expect(await shareToEach([], () => Promise.reject(new Error("not called")))).toEqual({ sent: [], failed: [] });
  });
});
