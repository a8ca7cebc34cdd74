// machine.test.ts — the call state machine (machine.ts), one transition at a time: what the
// state becomes and which effects (signals, tones, media, connections, timers) it asks for.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CallAction, CallEventSchema, type CallEvent } from "../gen/kitsulan/v1/gateway_pb";
import {
  ENDED_SHOWN_MS,
  INITIAL,
  isBusy,
  step,
  type CallsState,
  type Effect,
  type Input,
  type RemotePeer,
} from "./machine";

const ME = { accountId: "acc-me", deviceId: "dev-me" };
const MY_PHONE = "dev-me-phone";
const BOB = { accountId: "acc-bob", deviceId: "dev-bob" };
const CAROL = { accountId: "acc-carol", deviceId: "dev-carol" };
const CONV = "conv-1";
const CALL = "call-1";

type EventInit = MessageInitShape<typeof CallEventSchema>;

/** A machine driven input by input, as the adapter drives it. */
function machine(opts: { direct?: boolean; state?: CallsState } = {}) {
  let state = opts.state ?? INITIAL;
  const ctx = { me: ME, isDirect: (id: string) => id === CONV && (opts.direct ?? true) };
  return {
    get state() {
      return state;
    },
    get call() {
      return state.call;
    },
    feed(input: Input): Effect[] {
      const next = step(state, input, ctx);
      state = next.state;
      return next.effects;
    },
    event(action: CallAction, init: EventInit = {}): Effect[] {
      return this.feed({ type: "callEvent", event: callEvent(action, init) });
    },
  };
}

function callEvent(action: CallAction, init: EventInit = {}): CallEvent {
  return create(CallEventSchema, {
    conversationId: CONV,
    callId: CALL,
    action,
    fromAccountId: BOB.accountId,
    fromDeviceId: BOB.deviceId,
    ...init,
  });
}

/** The actions of the signals among `effects`, in order. */
function sent(effects: Effect[]): string[] {
  return effects.flatMap((e) => (e.kind === "send" ? [CallAction[e.action]] : []));
}

function kinds(effects: Effect[]): string[] {
  return effects.map((e) => e.kind);
}

const stream = {} as MediaStream;

function peer(p: { accountId: string; deviceId: string }): Partial<RemotePeer> {
  return { ...p, stream, state: "new", mic: true, camera: true, screen: false };
}

/** We called Bob (CALL) and his device rings. */
function calling(opts: { direct?: boolean; video?: boolean } = {}) {
  const m = machine(opts);
  m.feed({ type: "start", conversationId: CONV, video: opts.video ?? false, callId: CALL });
  m.feed({ type: "mediaReady", callId: CALL, purpose: "invite" });
  m.feed({ type: "sent", action: CallAction.INVITE, callId: CALL, ok: true });
  return m;
}

/** Bob calls us (CALL) and this device rings. */
function ringing(opts: { direct?: boolean; video?: boolean } = {}) {
  const m = machine(opts);
  m.event(CallAction.INVITE, { video: opts.video ?? false, participantDeviceIds: [BOB.deviceId] });
  return m;
}

/** In a call with Bob, connected to his device. */
function inCall(opts: { direct?: boolean } = {}) {
  const m = ringing(opts);
  m.feed({ type: "accept", video: false });
  m.feed({ type: "mediaReady", callId: CALL, purpose: "accept" });
  m.feed({ type: "sent", action: CallAction.ACCEPT, callId: CALL, ok: true });
  m.feed({ type: "peer", deviceId: BOB.deviceId, patch: peer(BOB) });
  return m;
}

describe("starting a call", () => {
  it("gets media first, then invites, then rings back", () => {
    const m = machine();
    let fx = m.feed({ type: "start", conversationId: CONV, video: true, callId: CALL });
    expect(m.call).toMatchObject({ phase: "outgoing", callId: CALL, conversationId: CONV, video: true, direction: "out" });
    expect(m.call.callerAccountId).toBe(ME.accountId);
    expect(fx).toEqual([
      { kind: "teardown" },
      { kind: "endedTimer", callId: null, ms: ENDED_SHOWN_MS },
      { kind: "acquireMedia", callId: CALL, video: true, purpose: "invite" },
    ]);
    expect(isBusy(m.call)).toBe(true);

    fx = m.feed({ type: "mediaReady", callId: CALL, purpose: "invite" });
    expect(fx).toEqual([{ kind: "send", conversationId: CONV, callId: CALL, action: CallAction.INVITE, video: true, report: true }]);
    expect(m.state.ongoing).toEqual({});

    fx = m.feed({ type: "sent", action: CallAction.INVITE, callId: CALL, ok: true });
    expect(fx).toEqual([{ kind: "tone", tone: "ringback" }, { kind: "prefetchIce" }]);
    expect(m.state.ongoing[CONV]).toEqual({ callId: CALL, video: true, participants: [ME.deviceId] });
    expect(m.call.ringing).toBe(false);
  });

  it("does nothing while this device is in a call", () => {
    const m = inCall();
    const before = m.state;
    expect(m.feed({ type: "start", conversationId: "conv-2", video: false, callId: "call-2" })).toEqual([]);
    expect(m.state).toBe(before);
  });

  it("ends with 'media' without a microphone, and 'offline' when the invitation cannot go out", () => {
    const noMic = machine();
    noMic.feed({ type: "start", conversationId: CONV, video: false, callId: CALL });
    const fx = noMic.feed({ type: "mediaFailed", callId: CALL, purpose: "invite" });
    expect(sent(fx)).toEqual([]);
    expect(noMic.call).toMatchObject({ phase: "ended", endReason: "media" });

    const offline = machine();
    offline.feed({ type: "start", conversationId: CONV, video: false, callId: CALL });
    offline.feed({ type: "mediaReady", callId: CALL, purpose: "invite" });
    const fx2 = offline.feed({ type: "sent", action: CallAction.INVITE, callId: CALL, ok: false });
    expect(offline.call).toMatchObject({ phase: "ended", endReason: "offline" });
    expect(kinds(fx2)).toEqual(["teardown", "endedTimer"]);
    expect(offline.state.ongoing).toEqual({});
  });

  it("does not invite when the call was cancelled while the media came", () => {
    const m = machine();
    m.feed({ type: "start", conversationId: CONV, video: false, callId: CALL });
    m.feed({ type: "cancel", reason: "cancelled" });
    expect(m.feed({ type: "mediaReady", callId: CALL, purpose: "invite" })).toEqual([]);
    expect(m.call).toMatchObject({ phase: "ended", endReason: "cancelled" });
  });

  it("shows that the other side rings (not our own other devices)", () => {
    const m = calling();
    m.event(CallAction.RINGING, { fromAccountId: ME.accountId, fromDeviceId: MY_PHONE });
    expect(m.call.ringing).toBe(false);
    m.event(CallAction.RINGING, { callId: "another-call" });
    expect(m.call.ringing).toBe(false);
    m.event(CallAction.RINGING);
    expect(m.call.ringing).toBe(true);
  });
});

describe("an incoming call", () => {
  it("rings: answers RINGING and plays the ringtone", () => {
    const m = machine();
    const fx = m.event(CallAction.INVITE, { video: true, participantDeviceIds: [BOB.deviceId] });
    expect(m.call).toMatchObject({
      phase: "incoming",
      callId: CALL,
      conversationId: CONV,
      video: true,
      direction: "in",
      callerAccountId: BOB.accountId,
    });
    expect(fx).toEqual([
      { kind: "teardown" },
      { kind: "endedTimer", callId: null, ms: ENDED_SHOWN_MS },
      { kind: "send", conversationId: CONV, callId: CALL, action: CallAction.RINGING },
      { kind: "tone", tone: "ringtone" },
    ]);
    expect(m.state.ongoing[CONV]).toEqual({ callId: CALL, video: true, participants: [BOB.deviceId] });
  });

  it("does not ring for a call our own other device makes", () => {
    const m = machine();
    const fx = m.event(CallAction.INVITE, { fromAccountId: ME.accountId, fromDeviceId: MY_PHONE, participantDeviceIds: [MY_PHONE] });
    expect(fx).toEqual([]);
    expect(m.call.phase).toBe("idle");
    expect(m.state.ongoing[CONV]?.callId).toBe(CALL);
  });

  it("answers BUSY to another call while in one", () => {
    const m = inCall();
    const fx = m.event(CallAction.INVITE, { conversationId: "conv-2", callId: "call-2", fromAccountId: CAROL.accountId, fromDeviceId: CAROL.deviceId });
    expect(fx).toEqual([{ kind: "send", conversationId: "conv-2", callId: "call-2", action: CallAction.BUSY }]);
    expect(m.call).toMatchObject({ phase: "active", callId: CALL });
    expect(m.state.ongoing["conv-2"]?.callId).toBe("call-2");
  });

  it("accepts: stops the ringtone, gets media, then sends ACCEPT", () => {
    const m = ringing({ video: true });
    let fx = m.feed({ type: "accept", video: true });
    expect(m.call.phase).toBe("active");
    expect(fx).toEqual([
      { kind: "tone", tone: null },
      { kind: "acquireMedia", callId: CALL, video: true, purpose: "accept" },
    ]);
    fx = m.feed({ type: "mediaReady", callId: CALL, purpose: "accept" });
    expect(fx).toEqual([{ kind: "send", conversationId: CONV, callId: CALL, action: CallAction.ACCEPT, report: true }]);
    fx = m.feed({ type: "sent", action: CallAction.ACCEPT, callId: CALL, ok: true });
    expect(fx).toEqual([{ kind: "prefetchIce" }]);
    expect(m.call.phase).toBe("active");
  });

  it("accepting without a microphone declines; without the gateway it ends 'offline'", () => {
    const noMic = ringing();
    noMic.feed({ type: "accept", video: false });
    const fx = noMic.feed({ type: "mediaFailed", callId: CALL, purpose: "accept" });
    expect(sent(fx)).toEqual(["DECLINE"]);
    expect(noMic.call).toMatchObject({ phase: "ended", endReason: "media" });

    const offline = ringing();
    offline.feed({ type: "accept", video: false });
    offline.feed({ type: "mediaReady", callId: CALL, purpose: "accept" });
    const fx2 = offline.feed({ type: "sent", action: CallAction.ACCEPT, callId: CALL, ok: false });
    expect(offline.call).toMatchObject({ phase: "ended", endReason: "offline" });
    expect(kinds(fx2)).toEqual(["teardown", "endedTimer", "prefetchIce"]);
  });

  it("accept and decline do nothing unless a call rings here", () => {
    const m = machine();
    expect(m.feed({ type: "accept", video: false })).toEqual([]);
    expect(m.feed({ type: "decline" })).toEqual([]);
    expect(m.state).toBe(INITIAL);
  });

  it("declines: DECLINE, silence, idle", () => {
    const m = ringing();
    const fx = m.feed({ type: "decline" });
    expect(sent(fx)).toEqual(["DECLINE"]);
    expect(fx).toContainEqual({ kind: "tone", tone: null });
    expect(m.call.phase).toBe("idle");
    // The call goes on without us: it can still be joined.
    expect(m.state.ongoing[CONV]?.callId).toBe(CALL);
  });

  it("stops ringing when another of our devices answers or declines it", () => {
    const answered = ringing();
    const fx = answered.event(CallAction.ACCEPT, {
      fromAccountId: ME.accountId,
      fromDeviceId: MY_PHONE,
      participantDeviceIds: [BOB.deviceId, MY_PHONE],
    });
    expect(answered.call.phase).toBe("idle");
    expect(sent(fx)).toEqual([]);
    expect(kinds(fx)).toContain("teardown");
    expect(answered.state.ongoing[CONV]?.participants).toEqual([BOB.deviceId, MY_PHONE]);

    const declined = ringing();
    declined.event(CallAction.DECLINE, { fromAccountId: ME.accountId, fromDeviceId: MY_PHONE });
    expect(declined.call.phase).toBe("idle");
  });

  it("keeps ringing when someone else in a group answers", () => {
    const m = ringing({ direct: false });
    const fx = m.event(CallAction.ACCEPT, {
      fromAccountId: CAROL.accountId,
      fromDeviceId: CAROL.deviceId,
      participantDeviceIds: [BOB.deviceId, CAROL.deviceId],
    });
    expect(fx).toEqual([]);
    expect(m.call.phase).toBe("incoming");
  });

  it("is missed when the caller cancels or nobody answers in time", () => {
    for (const reason of ["cancelled", "unanswered"]) {
      const m = ringing();
      const fx = m.event(CallAction.ENDED, { fromAccountId: "", fromDeviceId: "", reason });
      expect(m.call).toMatchObject({ phase: "ended", endReason: "missed" });
      expect(fx).toEqual([{ kind: "teardown" }, { kind: "endedTimer", callId: CALL, ms: ENDED_SHOWN_MS }]);
      expect(m.state.ongoing[CONV]).toBeUndefined();
    }
  });
});

describe("the caller's side of an answer", () => {
  it("goes active and offers a connection to the device that answered", () => {
    const m = calling();
    const fx = m.event(CallAction.ACCEPT, { participantDeviceIds: [ME.deviceId, BOB.deviceId] });
    expect(m.call.phase).toBe("active");
    expect(fx).toEqual([
      { kind: "tone", tone: null },
      { kind: "offer", deviceId: BOB.deviceId, accountId: BOB.accountId },
    ]);
    expect(m.state.ongoing[CONV]).toEqual({ callId: CALL, video: false, participants: [ME.deviceId, BOB.deviceId] });
  });

  it("offers only when it is among the participants, and never to itself", () => {
    const notListed = calling();
    expect(kinds(notListed.event(CallAction.ACCEPT, { participantDeviceIds: [BOB.deviceId] }))).toEqual(["tone"]);
    const echo = inCall();
    expect(echo.event(CallAction.ACCEPT, { fromAccountId: ME.accountId, fromDeviceId: ME.deviceId, participantDeviceIds: [BOB.deviceId, ME.deviceId] })).toEqual([]);
  });

  it("offers to each device that joins later (a group mesh)", () => {
    const m = inCall({ direct: false });
    const fx = m.event(CallAction.ACCEPT, {
      fromAccountId: CAROL.accountId,
      fromDeviceId: CAROL.deviceId,
      participantDeviceIds: [BOB.deviceId, ME.deviceId, CAROL.deviceId],
    });
    expect(fx).toEqual([{ kind: "offer", deviceId: CAROL.deviceId, accountId: CAROL.accountId }]);
  });

  it("ends a direct call that is declined or busy, cancelling it", () => {
    for (const [action, reason] of [
      [CallAction.DECLINE, "declined"],
      [CallAction.BUSY, "busy"],
    ] as const) {
      const m = calling();
      const fx = m.event(action);
      expect(sent(fx)).toEqual(["CANCEL", "HANG_UP"]);
      expect(m.call).toMatchObject({ phase: "ended", endReason: reason });
    }
  });

  it("keeps a group call ringing when one member declines or is busy", () => {
    for (const action of [CallAction.DECLINE, CallAction.BUSY]) {
      const m = calling({ direct: false });
      expect(m.event(action)).toEqual([]);
      expect(m.call.phase).toBe("outgoing");
    }
  });

  it("ignores a decline from our own other device", () => {
    const m = calling();
    expect(m.event(CallAction.DECLINE, { fromAccountId: ME.accountId, fromDeviceId: MY_PHONE })).toEqual([]);
    expect(m.call.phase).toBe("outgoing");
  });

  it("ends 'unanswered' when the server gives up ringing", () => {
    const m = calling();
    m.event(CallAction.ENDED, { fromAccountId: "", fromDeviceId: "", reason: "unanswered" });
    expect(m.call).toMatchObject({ phase: "ended", endReason: "unanswered" });
    expect(m.state.ongoing).toEqual({});
  });
});

describe("both calling at once (glare)", () => {
  // Both devices invite in the same direct conversation; the server lets one call through and
  // refuses the other INVITE with CALL_IN_PROGRESS.
  it("the refused caller ends 'in_progress' and answers the other call BUSY", () => {
    const m = machine();
    m.feed({ type: "start", conversationId: CONV, video: false, callId: "mine" });
    m.feed({ type: "mediaReady", callId: "mine", purpose: "invite" });
    m.feed({ type: "sent", action: CallAction.INVITE, callId: "mine", ok: true });
    // Bob's invitation arrives while ours is outgoing.
    const fx = m.event(CallAction.INVITE, { callId: CALL, participantDeviceIds: [BOB.deviceId] });
    expect(fx).toEqual([{ kind: "send", conversationId: CONV, callId: CALL, action: CallAction.BUSY }]);
    expect(m.call).toMatchObject({ phase: "outgoing", callId: "mine" });
    // Then the refusal of ours.
    m.feed({ type: "gatewayError", reason: "CALL_IN_PROGRESS", links: 0 });
    expect(m.call).toMatchObject({ phase: "ended", endReason: "in_progress" });
    expect(m.state.ongoing[CONV]).toBeUndefined();
  });

  it("the caller whose call went through sees BUSY and ends 'busy'", () => {
    const m = calling();
    m.event(CallAction.BUSY);
    expect(m.call).toMatchObject({ phase: "ended", endReason: "busy" });
  });

  it("a CALL_IN_PROGRESS once the call rings elsewhere is not about it", () => {
    const m = calling();
    m.event(CallAction.RINGING);
    const fx = m.feed({ type: "gatewayError", reason: "CALL_IN_PROGRESS", links: 0 });
    expect(fx).toEqual([{ kind: "refused", reason: "CALL_IN_PROGRESS" }]);
    expect(m.call.phase).toBe("outgoing");
  });
});

describe("hanging up", () => {
  it("from this side while active: HANG_UP and the ended screen", () => {
    const m = inCall();
    const fx = m.feed({ type: "hangUp" });
    expect(sent(fx)).toEqual(["HANG_UP"]);
    expect(m.call).toMatchObject({ phase: "ended", endReason: "hung_up", peers: [], local: null, talking: false, sharing: false });
    expect(fx).toContainEqual({ kind: "endedTimer", callId: CALL, ms: ENDED_SHOWN_MS });
  });

  it("before anyone answered, cancels", () => {
    const m = calling();
    const fx = m.feed({ type: "hangUp" });
    expect(sent(fx)).toEqual(["CANCEL", "HANG_UP"]);
    expect(m.call).toMatchObject({ phase: "ended", endReason: "cancelled" });
  });

  it("does nothing without a call", () => {
    const m = machine();
    expect(m.feed({ type: "hangUp" })).toEqual([]);
    expect(m.feed({ type: "cancel", reason: "cancelled" })).toEqual([]);
  });

  it("from the other side: its connection and tile go, the call goes on until the server ends it", () => {
    const m = inCall({ direct: false });
    m.feed({ type: "peer", deviceId: CAROL.deviceId, patch: peer(CAROL) });
    const fx = m.event(CallAction.HANG_UP, { participantDeviceIds: [ME.deviceId, CAROL.deviceId] });
    expect(fx).toEqual([{ kind: "dropLink", deviceId: BOB.deviceId }]);
    expect(m.call.phase).toBe("active");
    expect(m.call.peers.map((p) => p.deviceId)).toEqual([CAROL.deviceId]);
    expect(m.state.ongoing[CONV]?.participants).toEqual([ME.deviceId, CAROL.deviceId]);

    m.event(CallAction.ENDED, { fromAccountId: "", fromDeviceId: "", reason: "hung_up" });
    expect(m.call).toMatchObject({ phase: "ended", endReason: "hung_up", peers: [] });
    expect(m.state.ongoing[CONV]).toBeUndefined();
  });

  it("an ENDED with a reason it does not know reads as hung up", () => {
    const m = inCall();
    m.event(CallAction.ENDED, { fromAccountId: "", fromDeviceId: "", reason: "something_new" });
    expect(m.call.endReason).toBe("hung_up");
  });

  it("ENDED of another call only clears that conversation's ongoing call", () => {
    const m = inCall();
    m.event(CallAction.INVITE, { conversationId: "conv-2", callId: "call-2", fromAccountId: CAROL.accountId, fromDeviceId: CAROL.deviceId });
    expect(m.event(CallAction.ENDED, { conversationId: "conv-2", callId: "call-2", reason: "cancelled" })).toEqual([]);
    expect(m.state.ongoing["conv-2"]).toBeUndefined();
    expect(m.call.phase).toBe("active");
  });
});

describe("the ended screen", () => {
  it("goes away when its time is up, or when dismissed", () => {
    const timed = inCall();
    timed.feed({ type: "hangUp" });
    expect(timed.feed({ type: "endedTimeout", callId: "older-call" })).toEqual([]);
    expect(timed.call.phase).toBe("ended");
    timed.feed({ type: "endedTimeout", callId: CALL });
    expect(timed.call).toEqual(INITIAL.call);

    const dismissed = inCall();
    dismissed.feed({ type: "hangUp" });
    const fx = dismissed.feed({ type: "dismiss" });
    expect(fx).toEqual([{ kind: "teardown" }, { kind: "endedTimer", callId: null, ms: ENDED_SHOWN_MS }]);
    expect(dismissed.call.phase).toBe("idle");
    expect(dismissed.feed({ type: "dismiss" })).toEqual([]);
  });

  it("does not count as busy: a new call can start or ring", () => {
    const m = inCall();
    m.feed({ type: "hangUp" });
    expect(isBusy(m.call)).toBe(false);
    m.event(CallAction.INVITE, { callId: "call-2" });
    expect(m.call).toMatchObject({ phase: "incoming", callId: "call-2", endReason: null });
  });
});

describe("peer connections", () => {
  it("a new peer needs its account; later changes patch it", () => {
    const m = inCall();
    m.feed({ type: "peer", deviceId: "dev-unknown", patch: { mic: false } });
    expect(m.call.peers.map((p) => p.deviceId)).toEqual([BOB.deviceId]);
    m.feed({ type: "peer", deviceId: BOB.deviceId, patch: { mic: false, camera: false } });
    expect(m.call.peers[0]).toMatchObject({ deviceId: BOB.deviceId, mic: false, camera: false, screen: false });
  });

  it("the call timer starts when the first connection comes up", () => {
    const m = inCall();
    m.feed({ type: "peerConnection", deviceId: BOB.deviceId, state: "connecting", atMs: 1000 });
    expect(m.call.connectedAtMs).toBe(0);
    expect(m.call.peers[0]?.state).toBe("connecting");
    m.feed({ type: "peerConnection", deviceId: BOB.deviceId, state: "connected", atMs: 2000 });
    expect(m.call.connectedAtMs).toBe(2000);
    m.feed({ type: "peerConnection", deviceId: BOB.deviceId, state: "disconnected", atMs: 3000 });
    m.feed({ type: "peerConnection", deviceId: BOB.deviceId, state: "connected", atMs: 4000 });
    expect(m.call.connectedAtMs).toBe(2000);
    expect(m.call.peers[0]?.state).toBe("connected");
  });

  it("a failed or closed connection is dropped; the call goes on", () => {
    for (const state of ["failed", "closed"] as const) {
      const m = inCall();
      const fx = m.feed({ type: "peerConnection", deviceId: BOB.deviceId, state, atMs: 1 });
      expect(fx).toEqual([{ kind: "dropLink", deviceId: BOB.deviceId }]);
      expect(m.call.peers).toEqual([]);
      expect(m.call.phase).toBe("active");
    }
  });

  it("after a failure, a new OFFER from that device connects it again", () => {
    const m = inCall();
    m.feed({ type: "peerConnection", deviceId: BOB.deviceId, state: "failed", atMs: 1 });
    const offer = callEvent(CallAction.OFFER);
    expect(m.feed({ type: "callEvent", event: offer })).toEqual([{ kind: "decrypt", event: offer }]);
    const sdp = { type: "offer", sdp: "v=0" };
    expect(m.feed({ type: "payload", event: offer, payload: sdp })).toEqual([
      { kind: "takeOffer", deviceId: BOB.deviceId, accountId: BOB.accountId, payload: sdp },
    ]);
    m.feed({ type: "peer", deviceId: BOB.deviceId, patch: peer(BOB) });
    expect(m.call.peers.map((p) => p.deviceId)).toEqual([BOB.deviceId]);
  });

  it("the gateway's CALL_FULL ends a call we could not join, not one we are connected in", () => {
    const full = ringing();
    full.feed({ type: "accept", video: false });
    full.feed({ type: "gatewayError", reason: "CALL_FULL", links: 0 });
    expect(full.call).toMatchObject({ phase: "ended", endReason: "full" });

    const connected = inCall();
    expect(connected.feed({ type: "gatewayError", reason: "CALL_FULL", links: 1 })).toEqual([{ kind: "refused", reason: "CALL_FULL" }]);
    expect(connected.call.phase).toBe("active");
    expect(connected.feed({ type: "gatewayError", reason: "NOT_IN_CALL", links: 1 })).toEqual([{ kind: "refused", reason: "NOT_IN_CALL" }]);
    expect(connected.feed({ type: "gatewayError", reason: "RATE_LIMITED", links: 1 })).toEqual([]);
  });
});

describe("encrypted payloads (OFFER, ANSWER, ICE_CANDIDATE)", () => {
  it("are decrypted only for the current call while active, and not from this device", () => {
    for (const action of [CallAction.OFFER, CallAction.ANSWER, CallAction.ICE_CANDIDATE]) {
      expect(calling().event(action)).toEqual([]);
      expect(ringing().event(action)).toEqual([]);
      const m = inCall();
      expect(m.event(action, { callId: "another-call" })).toEqual([]);
      expect(m.event(action, { fromDeviceId: ME.deviceId, fromAccountId: ME.accountId })).toEqual([]);
      expect(kinds(m.event(action))).toEqual(["decrypt"]);
    }
  });

  it("are taken by kind once decrypted, unless the call ended meanwhile", () => {
    const m = inCall();
    const answer = callEvent(CallAction.ANSWER);
    const ice = callEvent(CallAction.ICE_CANDIDATE);
    expect(m.feed({ type: "payload", event: answer, payload: 1 })).toEqual([{ kind: "takeAnswer", deviceId: BOB.deviceId, payload: 1 }]);
    expect(m.feed({ type: "payload", event: ice, payload: 2 })).toEqual([{ kind: "takeCandidate", deviceId: BOB.deviceId, payload: 2 }]);
    m.feed({ type: "hangUp" });
    expect(m.feed({ type: "payload", event: ice, payload: 3 })).toEqual([]);
  });
});

describe("joining a call going on", () => {
  it("joins straight away (active, media, then ACCEPT)", () => {
    const m = ringing({ direct: false });
    m.feed({ type: "decline" });
    const fx = m.feed({ type: "joinOngoing", conversationId: CONV, video: true });
    expect(m.call).toMatchObject({ phase: "active", callId: CALL, conversationId: CONV, direction: "in", callerAccountId: "" });
    expect(fx.at(-1)).toEqual({ kind: "acquireMedia", callId: CALL, video: true, purpose: "accept" });
  });

  it("does nothing without an ongoing call or while busy", () => {
    expect(machine().feed({ type: "joinOngoing", conversationId: CONV, video: false })).toEqual([]);
    const busy = inCall();
    busy.event(CallAction.INVITE, { conversationId: "conv-2", callId: "call-2", fromAccountId: CAROL.accountId, fromDeviceId: CAROL.deviceId });
    expect(busy.feed({ type: "joinOngoing", conversationId: "conv-2", video: false })).toEqual([]);
  });

  it("keeps the video of the invitation when later events update the ongoing call", () => {
    const m = machine();
    m.event(CallAction.INVITE, { fromAccountId: ME.accountId, fromDeviceId: MY_PHONE, video: true });
    m.event(CallAction.ACCEPT, { video: false, participantDeviceIds: [MY_PHONE, BOB.deviceId] });
    expect(m.state.ongoing[CONV]).toEqual({ callId: CALL, video: true, participants: [MY_PHONE, BOB.deviceId] });
    m.event(CallAction.HANG_UP, { callId: "other", participantDeviceIds: [] });
    expect(m.state.ongoing[CONV]?.participants).toEqual([MY_PHONE, BOB.deviceId]);
  });
});

describe("the microphone and settings", () => {
  it("mute, push-to-talk and the speaker change the state and re-apply the microphone", () => {
    const m = inCall();
    expect(m.feed({ type: "toggleMic" })).toEqual([{ kind: "applyMic" }]);
    expect(m.call.micOn).toBe(false);
    expect(m.feed({ type: "prefsChanged", pushToTalk: true })).toEqual([{ kind: "applyMic" }]);
    expect(m.call).toMatchObject({ pushToTalk: true, talking: false });
    expect(m.feed({ type: "setTalking", talking: true })).toEqual([{ kind: "applyMic" }]);
    expect(m.feed({ type: "setTalking", talking: true })).toEqual([]);
    expect(m.call.talking).toBe(true);
    expect(m.feed({ type: "setSpeaker", deviceId: "spk" })).toEqual([]);
    expect(m.call.speaker).toBe("spk");
    m.feed({ type: "localMedia", patch: { cameraOn: true, sharing: true } });
    expect(m.call).toMatchObject({ cameraOn: true, sharing: true });
  });
});

describe("signing out", () => {
  it("leaves an active call, cancels an outgoing one, and stops everything", () => {
    const active = inCall();
    expect(sent(active.feed({ type: "dispose" }))).toEqual(["HANG_UP"]);
    expect(active.call.phase).toBe("idle");
    const outgoing = calling();
    expect(sent(outgoing.feed({ type: "dispose" }))).toEqual(["CANCEL"]);
    expect(outgoing.call.phase).toBe("idle");
    const idle = machine();
    expect(idle.feed({ type: "dispose" })).toEqual([{ kind: "teardown" }, { kind: "endedTimer", callId: null, ms: ENDED_SHOWN_MS }]);
  });
});
