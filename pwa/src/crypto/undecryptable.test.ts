// undecryptable.test.ts — the reasons a message does not decrypt, as a person reads them, and
// this device's counts of them (the telemetry the e2e tests read in Settings → Diagnostics).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Content } from "./content";
import { EDIT_FOR_ANOTHER_MESSAGE, MALFORMED_CONTENT } from "./content";
import { en, ru } from "../i18n/messages";
import {
  MAX_REMEMBERED,
  STUCK_AFTER_MS,
  UndecryptableStats,
  WAITING_FOR_KEY,
  categoryOf,
  explainWaiting,
  refusalLine,
  type UndecryptableEvent,
  type WaitingContext,
} from "./undecryptable";

const utd = (reason: string): Content => ({ kind: "undecryptable", reason, sessionId: "s" });
const text: Content = { kind: "text", text: "hi" };

describe("categoryOf", () => {
  it("sorts the machine's reason codes and content.ts's reasons", () => {
    // A key that may still come: the engine's waiting reason and the machine's codes for it.
    for (const r of [WAITING_FOR_KEY, "missing_key", "unknown_index", "megolm_unknown_index"]) {
      expect(categoryOf(r), r).toBe("waiting");
    }
    // Used twice, moved, or under a key bound to another sender or conversation.
    for (const r of ["replayed", "megolm_replay", "megolm_index_conflict", "shared_for_something_else", EDIT_FOR_ANOTHER_MESSAGE]) {
      expect(categoryOf(r), r).toBe("refused");
    }
    expect(categoryOf("megolm_decryption")).toBe("tampered");
    for (const r of ["bad_session_id", "malformed_megolm_message", MALFORMED_CONTENT, "not UTF-8", "invalid_id", "", "anything new"]) {
      expect(categoryOf(r), r).toBe("malformed");
    }
  });

  it("has a line for every refusal, in both languages", () => {
    for (const c of ["refused", "tampered", "malformed"] as const) {
      const key = refusalLine(c);
      expect(en[key]).toBeTruthy();
      expect(ru[key]).toBeTruthy();
    }
    expect(en[refusalLine("refused")]).toBe("This message was refused: it was moved or replayed.");
  });
});

describe("explainWaiting", () => {
  const base: WaitingContext = {
    deviceReady: true,
    fromOwnAccount: false,
    senderDeviceName: null,
    beforeThisDevice: false,
    otherDevices: 1,
    asked: false,
    backup: false,
  };

  it("a device without the account key: restore when there is a backup, else link", () => {
    expect(explainWaiting({ ...base, deviceReady: false, backup: true })).toEqual({
      lines: ["utdNoAccountKey", "utdRestoreHint"],
      restore: true,
    });
    expect(explainWaiting({ ...base, deviceReady: false, backup: false })).toEqual({
      lines: ["utdNoAccountKey", "utdLinkHint"],
      restore: false,
    });
    // Not known yet: no button that may lead nowhere.
    expect(explainWaiting({ ...base, deviceReady: false, backup: null }).restore).toBe(false);
  });

  it("the sender's device has not shared it yet; our other devices are being asked, or were", () => {
    expect(explainWaiting(base)).toEqual({ lines: ["utdNotShared", "utdAskingOwn"], restore: false });
    expect(explainWaiting({ ...base, asked: true }).lines).toEqual(["utdNotShared", "utdAskedOwn"]);
    expect(explainWaiting({ ...base, otherDevices: 0 }).lines).toEqual(["utdNotShared", "utdNoOtherDevice"]);
    // The device list not known yet: nothing said about asking.
    expect(explainWaiting({ ...base, otherDevices: null }).lines).toEqual(["utdNotShared"]);
  });

  it("one of our own devices, by name when known", () => {
    expect(explainWaiting({ ...base, fromOwnAccount: true, senderDeviceName: "Laptop" }).lines[0]).toBe("utdOwnDeviceNotShared");
    expect(explainWaiting({ ...base, fromOwnAccount: true }).lines[0]).toBe("utdOwnNotShared");
  });

  it("sent before this device joined: our other devices are the only way", () => {
    expect(explainWaiting({ ...base, beforeThisDevice: true, asked: true }).lines).toEqual(["utdBeforeDevice", "utdAskedOwn"]);
    expect(explainWaiting({ ...base, beforeThisDevice: true, otherDevices: 0 }).lines).toEqual([
      "utdBeforeDevice",
      "utdNoOtherDeviceBefore",
    ]);
  });

  it("every line exists in English and Russian and names the sender where it says who", () => {
    const keys = new Set<keyof typeof en>();
    for (const deviceReady of [true, false])
      for (const fromOwnAccount of [true, false])
        for (const beforeThisDevice of [true, false, null])
          for (const otherDevices of [0, 2, null])
            for (const asked of [true, false])
              for (const backup of [true, false, null])
                for (const senderDeviceName of ["Laptop", null]) {
                  const e = explainWaiting({ deviceReady, fromOwnAccount, beforeThisDevice, otherDevices, asked, backup, senderDeviceName });
                  for (const k of e.lines) keys.add(k);
                }
    for (const k of keys) {
      expect(en[k], k).toBeTruthy();
      expect(ru[k], k).toBeTruthy();
      expect(ru[k], k).not.toBe(en[k]);
    }
    for (const k of ["utdNotShared", "utdBeforeDevice"] as const) {
      expect(en[k]).toContain("{sender}");
      expect(ru[k]).toContain("{sender}");
    }
    expect(en.utdOwnDeviceNotShared).toContain("{device}");
    expect(ru.utdOwnDeviceNotShared).toContain("{device}");
  });
});

describe("UndecryptableStats", () => {
  let now = 0;
  let events: UndecryptableEvent[] = [];
  let stats: UndecryptableStats;
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    now = 1_000_000;
    events = [];
    stats = new UndecryptableStats(
      () => now,
      (e) => events.push(e),
    );
  });
  afterEach(() => {
    stats.clearWaiting();
    vi.useRealTimers();
  });

  it("counts each message that does not decrypt once, whatever the reason", () => {
    stats.record("m1", utd("replayed"));
    stats.record("m1", utd("replayed")); // the same message decrypted again (a page reloaded)
    stats.record("m1", utd("megolm_decryption"));
    stats.record("m2", utd(MALFORMED_CONTENT));
    stats.record("m3", text);
    expect(stats.counts()).toEqual({ failed: 2, waiting: 0, stuck: 0 });
    expect(events.map((e) => [e.change, e.messageId, e.category])).toEqual([
      ["failed", "m1", "refused"],
      ["failed", "m2", "malformed"],
    ]);
    expect(events[1]?.counts).toEqual({ failed: 2, waiting: 0, stuck: 0 });
  });

  it("a waiting message is a gauge: up while it waits, down when it decrypts, never a failure", () => {
    stats.record("w1", utd(WAITING_FOR_KEY));
    stats.record("w1", utd("missing_key")); // retried, still waiting: counted once
    stats.record("w2", utd(WAITING_FOR_KEY));
    expect(stats.counts()).toEqual({ failed: 0, waiting: 2, stuck: 0 });
    stats.record("w1", text); // the key came
    expect(stats.counts()).toEqual({ failed: 0, waiting: 1, stuck: 0 });
    stats.record("w2", { kind: "deleted" }); // deleted while it waited
    expect(stats.counts()).toEqual({ failed: 0, waiting: 0, stuck: 0 });
    expect(events.map((e) => e.change)).toEqual(["waiting", "waiting", "resolved", "resolved"]);
    // A message never seen waiting resolves nothing.
    stats.record("w3", text);
    expect(events).toHaveLength(4);
  });

  it("a message waiting longer than STUCK_AFTER_MS is stuck until it decrypts", async () => {
    stats.record("w1", utd(WAITING_FOR_KEY));
    now += STUCK_AFTER_MS / 2;
    await vi.advanceTimersByTimeAsync(STUCK_AFTER_MS / 2);
    stats.record("w2", utd(WAITING_FOR_KEY));
    expect(stats.counts().stuck).toBe(0);
    now += STUCK_AFTER_MS / 2;
    await vi.advanceTimersByTimeAsync(STUCK_AFTER_MS / 2);
    expect(stats.counts()).toEqual({ failed: 0, waiting: 2, stuck: 1 });
    now += STUCK_AFTER_MS / 2;
    await vi.advanceTimersByTimeAsync(STUCK_AFTER_MS / 2);
    expect(stats.counts()).toEqual({ failed: 0, waiting: 2, stuck: 2 });
    stats.record("w1", text);
    expect(stats.counts()).toEqual({ failed: 0, waiting: 1, stuck: 1 });
    expect(events.filter((e) => e.change === "stuck").map((e) => e.messageId)).toEqual(["w1", "w2"]);
  });

  it("a waiting message whose key came but does not fit moves to the failures", () => {
    stats.record("w1", utd(WAITING_FOR_KEY));
    stats.record("w1", utd("shared_for_something_else"));
    expect(stats.counts()).toEqual({ failed: 1, waiting: 0, stuck: 0 });
    // And a failed message is not counted as waiting again.
    stats.record("w1", utd(WAITING_FOR_KEY));
    expect(stats.counts()).toEqual({ failed: 1, waiting: 0, stuck: 0 });
  });

  it("clearWaiting forgets the waiting (a new engine reads them again) but keeps the failures", () => {
    stats.record("w1", utd(WAITING_FOR_KEY));
    stats.record("f1", utd("replayed"));
    stats.clearWaiting();
    expect(stats.counts()).toEqual({ failed: 1, waiting: 0, stuck: 0 });
  });

  it("remembers at most MAX_REMEMBERED ids, and still counts past them (a flood of bad messages)", () => {
    for (let i = 0; i < MAX_REMEMBERED + 10; i++) stats.record(`f${i}`, utd("replayed"));
    expect(stats.counts().failed).toBe(MAX_REMEMBERED + 10);
    // The newest are remembered: not counted twice.
    stats.record(`f${MAX_REMEMBERED + 9}`, utd("replayed"));
    expect(stats.counts().failed).toBe(MAX_REMEMBERED + 10);
  });

  it("tells subscribers, who can leave", () => {
    const seen: string[] = [];
    const off = stats.subscribe((e) => seen.push(e.change));
    stats.record("f1", utd("replayed"));
    off();
    stats.record("f2", utd("replayed"));
    expect(seen).toEqual(["failed"]);
  });
});
