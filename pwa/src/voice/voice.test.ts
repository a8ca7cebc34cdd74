// voice.test.ts — the Voice session's wiring with the browser's media and WebRTC faked (Node has
// neither): a failed key share shows on the person's tile state and Retry clears it, and an
// automatic rejoin after a failed connection brings the camera and the shared screen back on.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Voice, type VoiceDeps } from "./voice";

class FakeTrack {
  enabled = true;
  readyState = "live";
  contentHint = "";
  constructor(readonly kind: string) {}
  stop = vi.fn(() => {
    this.readyState = "ended";
  });
  addEventListener() {}
}

class FakeSender {
  track: FakeTrack | null = null;
  replaceTrack = vi.fn(async (t: FakeTrack | null) => {
    this.track = t;
  });
}

/** Every peer connection made, latest last. */
let pcs: FakePc[] = [];

class FakePc {
  connectionState = "connected";
  iceGatheringState = "complete";
  localDescription: { sdp: string } | null = null;
  onconnectionstatechange: (() => void) | null = null;
  senders: FakeSender[] = [];
  constructor() {
    pcs.push(this);
  }
  addTransceiver(what: FakeTrack | string) {
    const sender = new FakeSender();
    if (typeof what !== "string") sender.track = what;
    this.senders.push(sender);
    return { sender, receiver: { track: new FakeTrack(typeof what === "string" ? what : what.kind) } };
  }
  async createOffer() {
    return { type: "offer", sdp: "v=0" };
  }
  async setLocalDescription(d: { sdp: string }) {
    this.localDescription = d;
  }
  async setRemoteDescription() {}
  close() {}
  /** The connection fails (the SFU is gone): the session joins again by itself. */
  fail() {
    this.connectionState = "failed";
    this.onconnectionstatechange?.();
  }
}

function storage(): Storage {
  const m = new Map<string, string>();
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
    clear: () => m.clear(),
    key: () => null,
    get length() {
      return m.size;
    },
  };
}

const element = () => ({ hidden: false, className: "", append: () => undefined, remove: () => undefined });

let camera: FakeTrack;
let screen: FakeTrack;
const getUserMedia = vi.fn(async (c: { audio?: unknown; video?: unknown }) => {
  const track = c.video ? camera : new FakeTrack("audio");
  return { getAudioTracks: () => (c.audio ? [track] : []), getVideoTracks: () => (c.video ? [track] : []) };
});
const getDisplayMedia = vi.fn(async () => ({ getVideoTracks: () => [screen] }));

beforeEach(() => {
  pcs = [];
  camera = new FakeTrack("video");
  screen = new FakeTrack("video");
  getUserMedia.mockClear();
  getDisplayMedia.mockClear();
  vi.stubGlobal("sessionStorage", storage());
  vi.stubGlobal("localStorage", storage());
  vi.stubGlobal("navigator", { mediaDevices: { getUserMedia, getDisplayMedia } });
  vi.stubGlobal("RTCPeerConnection", FakePc);
  vi.stubGlobal("RTCRtpScriptTransform", class {});
  // No VP8 among the capabilities: the codec preferences are left as they are.
  const codecs = class {
    static getCapabilities = () => ({ codecs: [] });
  };
  vi.stubGlobal("RTCRtpSender", codecs);
  vi.stubGlobal("RTCRtpReceiver", codecs);
  vi.stubGlobal("MediaStream", class {
    constructor(readonly tracks: unknown[]) {}
  });
  vi.stubGlobal("Worker", class {
    onmessage: unknown = null;
    postMessage() {}
    terminate() {}
  });
  vi.stubGlobal("Audio", class {
    muted = false;
    volume = 1;
    srcObject: unknown = null;
    play = async () => undefined;
    pause() {}
  });
  vi.stubGlobal("document", { createElement: element, body: element() });
});

let voice: Voice | null = null;

afterEach(async () => {
  await voice?.leave();
  voice = null;
  vi.unstubAllGlobals();
});

/** Who is in the room (the chat's state), and the chat's listener: a change of the chat's state. */
let inRoom: string[] = [];
let chatChanged: () => void = () => undefined;

function setUp(share: VoiceDeps["engine"]["shareVoiceKey"]) {
  inRoom = ["me", "bob", "carol"];
  const deps: VoiceDeps = {
    client: { joinVoice: vi.fn(async () => ({ answerSdp: "v=0" })), leaveVoice: vi.fn(async () => ({})) } as unknown as VoiceDeps["client"],
    engine: { shareVoiceKey: vi.fn(share) },
    me: () => "me",
    participants: () => inRoom,
    subscribe: (l) => {
      chatChanged = l;
      return () => undefined;
    },
  };
  voice = new Voice(deps);
  return { voice, deps };
}

/** Waits until `check` holds (the session's steps are chained promises). */
async function until(check: () => boolean) {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
}

describe("Voice: a key that does not get through", () => {
  it("says on the person's state why, and Retry sends it again", async () => {
    let refuse = true;
    const { voice, deps } = setUp(async (_c, _p, to) => {
      if (refuse && to.includes("bob")) throw Object.assign(new Error("key changed"), { name: "AccountKeyChanged" });
      return { withoutOlm: [] };
    });
    await voice.join("room", "guild");
    await until(() => voice.get().keyTrouble.bob !== undefined);
    expect(voice.get().keyTrouble).toEqual({ bob: { notSent: "ACCOUNT_KEY_CHANGED" } });
    // Carol got it (alone, after the batch failed).
    expect(vi.mocked(deps.engine.shareVoiceKey).mock.calls.map((c) => c[2])).toEqual([["bob", "carol"], ["bob"], ["carol"]]);

    refuse = false;
    voice.retryKeys();
    await until(() => voice.get().keyTrouble.bob === undefined);
    expect(vi.mocked(deps.engine.shareVoiceKey).mock.calls.at(-1)?.[2]).toEqual(["bob"]);
  });

  it("tries again when someone joins the room, not on every change of the chat", async () => {
    let refuse = true;
    const { voice, deps } = setUp(async (_c, _p, to) => {
      if (refuse && to.includes("bob")) throw new Error("refused");
      return { withoutOlm: [] };
    });
    const sentTo = () => vi.mocked(deps.engine.shareVoiceKey).mock.calls.map((c) => c[2]);
    await voice.join("room", "guild");
    await until(() => voice.get().keyTrouble.bob?.notSent === "UNKNOWN");
    const before = sentTo().length;
    chatChanged();
    chatChanged();
    await new Promise((r) => setTimeout(r, 20));
    expect(sentTo()).toHaveLength(before);

    refuse = false;
    inRoom = ["me", "bob", "carol", "dave"];
    chatChanged();
    await until(() => voice.get().keyTrouble.bob === undefined);
    expect(sentTo().at(-1)).toEqual(["dave", "bob"]);
  });
});

describe("Voice: an automatic rejoin", () => {
  it("brings the camera and the shared screen back on, the same tracks, asked for no again", async () => {
    const { voice, deps } = setUp(async () => ({ withoutOlm: [] }));
    await voice.join("room", "guild");
    await voice.setCamera(true);
    await voice.setSharing(true);
    expect(voice.get().camera).not.toBeNull();
    expect(voice.get().screen).not.toBeNull();
    voice.setMuted(true);

    const first = pcs[0];
    first?.fail();
    await until(() => pcs.length === 2 && voice.get().camera !== null && voice.get().screen !== null && voice.get().phase === "connected");
    const second = pcs[1];
    // The new connection sends the same camera and screen tracks, never stopped in between.
    expect(second?.senders.map((s) => s.track)).toContain(camera);
    expect(second?.senders.map((s) => s.track)).toContain(screen);
    expect(camera.stop).not.toHaveBeenCalled();
    expect(screen.stop).not.toHaveBeenCalled();
    expect(getUserMedia.mock.calls.filter(([c]) => c.video)).toHaveLength(1);
    expect(getDisplayMedia).toHaveBeenCalledTimes(1);
    expect(voice.get().muted).toBe(true);
    expect(vi.mocked(deps.client.joinVoice)).toHaveBeenCalledTimes(2);
  });

  it("does not bring back a share stopped before the rejoin", async () => {
    const { voice } = setUp(async () => ({ withoutOlm: [] }));
    await voice.join("room", "guild");
    await voice.setSharing(true);
    await voice.setSharing(false);
    pcs[0]?.fail();
    await until(() => pcs.length === 2 && voice.get().phase === "connected");
    expect(voice.get().screen).toBeNull();
    expect(getDisplayMedia).toHaveBeenCalledTimes(1);
  });

  it("stops the camera when the join again fails", async () => {
    const { voice, deps } = setUp(async () => ({ withoutOlm: [] }));
    await voice.join("room", "guild");
    await voice.setCamera(true);
    vi.mocked(deps.client.joinVoice).mockRejectedValueOnce(new Error("gone"));
    pcs[0]?.fail();
    await until(() => voice.get().phase === "failed");
    await until(() => camera.stop.mock.calls.length === 1);
    expect(voice.get().camera).toBeNull();
  });
});
