import { VoiceKeys } from "kitsulan-crypto";
import { describe, expect, it } from "vitest";
import {
  SLOTS,
  VIDEO_SLOTS,
  VIDEO_STALE_MS,
  clampVolume,
  clearBytes,
  liveVideo,
  loadVolumes,
  offerLayout,
  openVideoFrame,
  saveVolumes,
  sealVideoFrame,
  slotVolumes,
  videoTiles,
  vp8Only,
  withKind,
  withoutKind,
  type VideoSlotSeen,
} from "./media";

describe("offerLayout", () => {
  it("is the SFU's contract: mic, voices, camera, screen, pictures", () => {
    const layout = offerLayout();
    expect(layout).toHaveLength(1 + SLOTS + 2 + VIDEO_SLOTS);
    expect(layout[0]).toEqual({ kind: "audio", direction: "sendonly", options: { side: "send", media: "audio" } });
    for (let slot = 0; slot < SLOTS; slot++) {
      expect(layout[1 + slot]).toEqual({ kind: "audio", direction: "recvonly", options: { side: "recv", media: "audio", slot } });
    }
    expect(layout[1 + SLOTS]).toEqual({ kind: "video", direction: "sendonly", options: { side: "send", media: "camera" } });
    expect(layout[2 + SLOTS]).toEqual({ kind: "video", direction: "sendonly", options: { side: "send", media: "screen" } });
    for (let slot = 0; slot < VIDEO_SLOTS; slot++) {
      expect(layout[3 + SLOTS + slot]).toEqual({ kind: "video", direction: "recvonly", options: { side: "recv", media: "video", slot } });
    }
  });

  it("offers 6 voices and 4 pictures", () => {
    expect([SLOTS, VIDEO_SLOTS]).toEqual([6, 4]);
  });
});

describe("vp8Only", () => {
  it("keeps VP8 whatever its case, drops the rest (RTX, RED, FEC, other codecs)", () => {
    const codecs = [
      { mimeType: "video/VP8", clockRate: 90000 },
      { mimeType: "video/rtx", clockRate: 90000, sdpFmtpLine: "apt=96" },
      { mimeType: "video/VP9", clockRate: 90000 },
      { mimeType: "video/H264", clockRate: 90000 },
      { mimeType: "video/red", clockRate: 90000 },
      { mimeType: "video/ulpfec", clockRate: 90000 },
      { mimeType: "video/vp8", clockRate: 90000 },
    ];
    expect(vp8Only(codecs)).toEqual([codecs[0], codecs[6]]);
    expect(vp8Only([])).toEqual([]);
  });
});

describe("clearBytes", () => {
  it("keeps 10 bytes of a key frame and 3 of any other in the clear", () => {
    expect(clearBytes("key", 5000)).toBe(10);
    expect(clearBytes("delta", 5000)).toBe(3);
    expect(clearBytes("empty", 5000)).toBe(3);
    expect(clearBytes(undefined, 5000)).toBe(3);
  });

  it("never more than the frame has", () => {
    expect(clearBytes("key", 7)).toBe(7);
    expect(clearBytes("delta", 2)).toBe(2);
    expect(clearBytes("key", 0)).toBe(0);
  });
});

describe("withKind / withoutKind", () => {
  const frame = Uint8Array.from({ length: 20 }, (_, i) => i + 100);

  it("puts the kind byte right after the clear bytes", () => {
    expect([...withKind(frame, 3, "camera").subarray(0, 5)]).toEqual([100, 101, 102, 0, 103]);
    expect([...withKind(frame, 10, "screen").subarray(9, 12)]).toEqual([109, 1, 110]);
    expect(withKind(frame, 3, "camera")).toHaveLength(21);
  });

  it.each([0, 3, 10, 20])("round-trips with %i clear bytes", (clear) => {
    for (const kind of ["camera", "screen"] as const) {
      const back = withoutKind(withKind(frame, clear, kind), clear);
      expect(back?.kind).toBe(kind);
      expect([...(back?.frame ?? [])]).toEqual([...frame]);
    }
  });

  it("a frame shorter than its clear bytes keeps its kind at the end", () => {
    const short = Uint8Array.of(1, 2);
    const framed = withKind(short, clearBytes("key", short.length), "screen");
    expect([...framed]).toEqual([1, 2, 1]);
    expect(withoutKind(framed, 2)).toEqual({ kind: "screen", frame: short });
  });

  it("refuses a frame with no kind byte or an unknown one", () => {
    expect(withoutKind(Uint8Array.of(1, 2, 3), 3)).toBeNull();
    expect(withoutKind(Uint8Array.of(1, 2, 3, 7, 5), 3)).toBeNull();
  });
});

describe("videoTiles", () => {
  const people: Record<number, string> = { 11: "alice", 12: "alice", 21: "bob", 31: "carol", 99: "me" };
  const accountOf = (kid: number) => people[kid];
  const now = 100_000;
  const seen = (kid: number, kind: VideoSlotSeen["kind"], ago = 0): VideoSlotSeen => ({ kid, kind, at: now - ago });

  it("shows each slot with a recent frame of a known person, cameras first", () => {
    const slots = new Map([
      [0, seen(21, "screen")],
      [1, seen(11, "camera")],
      [2, seen(21, "camera")],
    ]);
    expect(videoTiles(slots, accountOf, now)).toEqual([
      { slot: 1, accountId: "alice", kind: "camera" },
      { slot: 2, accountId: "bob", kind: "camera" },
      { slot: 0, accountId: "bob", kind: "screen" },
    ]);
  });

  it("drops stale slots, unknown kids and our own", () => {
    const slots = new Map([
      [0, seen(21, "camera", VIDEO_STALE_MS + 1)],
      [1, seen(77, "camera")],
      [2, seen(99, "camera")],
      [3, seen(31, "screen", VIDEO_STALE_MS)],
    ]);
    expect(videoTiles(slots, accountOf, now, "me")).toEqual([{ slot: 3, accountId: "carol", kind: "screen" }]);
  });

  it("one person's camera on two slots (moved, or a rotated kid) shows once, the newest", () => {
    const slots = new Map([
      [0, seen(11, "camera", 1000)],
      [3, seen(12, "camera", 10)],
    ]);
    expect(videoTiles(slots, accountOf, now)).toEqual([{ slot: 3, accountId: "alice", kind: "camera" }]);
  });
});

describe("volumes", () => {
  const accountOf = (kid: number) => ({ 1: "alice", 2: "bob", 3: "carol" })[kid];

  it("each slot plays at the volume of the person it carries now", () => {
    const slotKids = new Map([
      [0, 3],
      [1, 1],
      [3, 9],
    ]);
    expect(slotVolumes(4, slotKids, accountOf, { carol: 0, alice: 50 })).toEqual([0, 0.5, 1, 1]);
    // The SFU puts Bob on slot 0 now: it plays at his volume.
    slotKids.set(0, 2);
    expect(slotVolumes(4, slotKids, accountOf, { carol: 0, bob: 80 })).toEqual([0.8, 1, 1, 1]);
  });

  it("clamps to 0..100", () => {
    expect([clampVolume(-5), clampVolume(150), clampVolume(33.4), clampVolume(Number.NaN), clampVolume("x")]).toEqual([0, 100, 33, 100, 100]);
  });

  it("are remembered per signed-in account, the default left out", () => {
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) };
    saveVolumes("me", { carol: 0, bob: 100, alice: 40 }, storage);
    expect(loadVolumes("me", storage)).toEqual({ carol: 0, alice: 40 });
    expect(loadVolumes("someone-else", storage)).toEqual({});
    store.set("kitsulan.voice.volume.me", '{"carol":"loud","bob":250}');
    expect(loadVolumes("me", storage)).toEqual({ bob: 100 });
    store.set("kitsulan.voice.volume.me", "not json");
    expect(loadVolumes("me", storage)).toEqual({});
  });
});

describe("video frames through the crypto crate's SFrame", () => {
  const base = Uint8Array.from({ length: 16 }, (_, i) => i);
  const sender = new VoiceKeys();
  sender.setOwn(4242, base);
  const receiver = new VoiceKeys();
  receiver.setPeer(4242, base);
  const kidOf = (b: Uint8Array) => VoiceKeys.kidOf(b);
  const vp8 = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);

  it.each([
    ["key", 10],
    ["delta", 3],
  ] as const)("a %s frame keeps its first %i bytes readable, the rest sealed, and opens with its kind", (type, clear) => {
    const frame = vp8(500);
    for (const kind of ["camera", "screen"] as const) {
      const sealed = sealVideoFrame(sender, frame, type, kind);
      expect([...sealed.subarray(0, clear)]).toEqual([...frame.subarray(0, clear)]);
      // What follows the clear bytes is SFrame: no run of the frame's bytes shows through.
      expect(contains(sealed.subarray(clear), frame.subarray(clear, clear + 16))).toBe(false);
      const opened = openVideoFrame(receiver, kidOf, sealed, type);
      expect(opened.kid).toBe(4242);
      expect(opened.kind).toBe(kind);
      expect([...opened.frame]).toEqual([...frame]);
    }
  });

  it("a changed clear byte (the frame's size on a key frame) does not open", () => {
    const sealed = sealVideoFrame(sender, vp8(300), "key", "camera");
    sealed[7] = (sealed[7] ?? 0) ^ 1;
    expect(() => openVideoFrame(receiver, kidOf, sealed, "key")).toThrow();
  });

  it("a frame shorter than its clear bytes is still sealed, and opens", () => {
    const short = Uint8Array.of(9, 8, 7, 6);
    const sealed = sealVideoFrame(sender, short, "key", "screen");
    expect(sealed.length).toBeGreaterThan(short.length + 1);
    expect(openVideoFrame(receiver, kidOf, sealed, "key")).toEqual({ kid: 4242, kind: "screen", frame: short });
  });

  it("audio and video frames share one counter: it never repeats", () => {
    const keys = new VoiceKeys();
    keys.setOwn(7, base);
    const counters: number[] = [];
    for (let i = 0; i < 20; i++) {
      counters.push(counterOf(keys.seal(vp8(40))));
      const type = i % 2 ? "delta" : "key";
      counters.push(counterOf(sealVideoFrame(keys, vp8(400), type, "camera").subarray(clearBytes(type, 400))));
    }
    expect(counters).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });
});

/** Whether `needle` occurs in `hay`. */
function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** The counter in an SFrame header (RFC 9605 4.3: a config byte X|K|Y|C, the kid, the counter). */
function counterOf(sframe: Uint8Array): number {
  const config = sframe[0] ?? 0;
  const kidLength = config & 0x80 ? ((config >> 4) & 0x07) + 1 : 0;
  if (!(config & 0x08)) return config & 0x07;
  const ctrLength = (config & 0x07) + 1;
  let ctr = 0;
  for (let i = 0; i < ctrLength; i++) ctr = ctr * 256 + (sframe[1 + kidLength + i] ?? 0);
  return ctr;
}

describe("liveVideo (an automatic rejoin)", () => {
  it("takes the live camera and screen out of the old session, so its teardown leaves them on", () => {
    const camera = { readyState: "live", id: "cam" };
    const screen = { readyState: "live", id: "scr" };
    const session = { camera, screen };
    expect(liveVideo(session)).toEqual({ camera, screen });
    expect(session).toEqual({ camera: null, screen: null });
  });

  it("leaves an ended share behind (stopped meanwhile), and nothing when nothing was on", () => {
    const camera = { readyState: "live" };
    const screen = { readyState: "ended" };
    const session = { camera, screen };
    expect(liveVideo(session)).toEqual({ camera });
    expect(session.screen).toBe(screen);
    expect(liveVideo({ camera: null, screen: null })).toEqual({});
  });
});
