// machine.ts — the call state machine, pure: `step(state, input, context)` gives the next state
// and the effects to perform, in order. It never touches the browser; the WebRTC adapter
// (calls.ts) feeds it what happens (the person's actions, the gateway's call events and
// refusals, local media and peer connection changes, timers) and performs what it asks for
// (signals, tones, media, connections, timers). See docs/calls.md for the signalling.
//
// Phases: idle → outgoing (we invited; `ringing` once another device rings) or incoming (a
// device of ours rings) → active (we answered, joined, or someone answered our call; each other
// device in the call is a peer with its own connection state) → ended (the ended screen, for
// ENDED_SHOWN_MS or until dismissed) → idle. There is no reconnecting phase: a peer whose
// connection fails or closes is dropped (its tile goes away) and the call goes on; it comes
// back only when that device offers again. A call nobody answers is ended by the server
// (ENDED "unanswered"): the machine has no ring timer of its own.
import { CallAction, type CallEvent } from "../gen/kitsulan/v1/gateway_pb";
import type { Tone } from "./tones";

export type EndReason =
  | "missed"
  | "cancelled"
  | "unanswered"
  | "hung_up"
  | "declined"
  | "busy"
  | "in_progress"
  | "full"
  | "media"
  | "offline";

export type Phase = "idle" | "outgoing" | "incoming" | "active" | "ended";

/** Another device in the call, as the UI shows it. */
export interface RemotePeer {
  deviceId: string;
  accountId: string;
  stream: MediaStream;
  state: RTCPeerConnectionState;
  /** What that device said over the data channel (true until it says otherwise). */
  mic: boolean;
  camera: boolean;
  screen: boolean;
}

export interface CallState {
  phase: Phase;
  callId: string;
  conversationId: string;
  /** The invitation asked for video. */
  video: boolean;
  direction: "out" | "in";
  /** Who called. */
  callerAccountId: string;
  /** Outgoing: at least one device of someone else rings. */
  ringing: boolean;
  /** When the first connection came up (0 before). */
  connectedAtMs: number;
  /** Camera (or screen) and microphone of this device. */
  local: MediaStream | null;
  micOn: boolean;
  cameraOn: boolean;
  sharing: boolean;
  /** Push-to-talk is held. */
  talking: boolean;
  pushToTalk: boolean;
  speaker: string;
  peers: RemotePeer[];
  endReason: EndReason | null;
}

/** A call going on in a conversation (seen from INVITE / ACCEPT / HANG_UP / ENDED). */
export interface OngoingCall {
  callId: string;
  video: boolean;
  participants: string[];
}

export interface CallsState {
  call: CallState;
  ongoing: Record<string, OngoingCall>;
}

/** Removes the ended screen after this long. */
export const ENDED_SHOWN_MS = 5000;

export const IDLE: CallState = {
  phase: "idle",
  callId: "",
  conversationId: "",
  video: false,
  direction: "out",
  callerAccountId: "",
  ringing: false,
  connectedAtMs: 0,
  local: null,
  micOn: true,
  cameraOn: false,
  sharing: false,
  talking: false,
  pushToTalk: false,
  speaker: "",
  peers: [],
  endReason: null,
};

export const INITIAL: CallsState = { call: IDLE, ongoing: {} };

/** Why the server ended a call (CallEvent.reason of ENDED) as the ended screen says it. */
const END_REASONS: Record<string, EndReason> = {
  cancelled: "cancelled",
  unanswered: "unanswered",
  hung_up: "hung_up",
};

/** Whether this device is in (or setting up) a call. */
export function isBusy(call: CallState): boolean {
  return call.phase === "outgoing" || call.phase === "incoming" || call.phase === "active";
}

/** Why local media is wanted: to invite (starting a call) or to accept (answering, joining). */
export type MediaPurpose = "invite" | "accept";

/** The state of this device's media the adapter reports (the tracks themselves stay there). */
export type LocalMediaPatch = Partial<Pick<CallState, "local" | "micOn" | "cameraOn" | "sharing" | "pushToTalk" | "speaker">>;

/** What happens, as the machine sees it. */
export type Input =
  // The person.
  | { type: "start"; conversationId: string; video: boolean; callId: string }
  | { type: "accept"; video: boolean }
  | { type: "joinOngoing"; conversationId: string; video: boolean }
  | { type: "decline" }
  | { type: "cancel"; reason: EndReason }
  | { type: "hangUp" }
  | { type: "dismiss" }
  | { type: "toggleMic" }
  | { type: "setTalking"; talking: boolean }
  | { type: "prefsChanged"; pushToTalk: boolean }
  | { type: "setSpeaker"; deviceId: string }
  /** Sign-out: leave any call. */
  | { type: "dispose" }
  // Local media (the adapter's getUserMedia / getDisplayMedia).
  | { type: "localMedia"; patch: LocalMediaPatch }
  | { type: "mediaReady"; callId: string; purpose: MediaPurpose }
  | { type: "mediaFailed"; callId: string; purpose: MediaPurpose }
  /** A signal asked for with `report` went out (ok) or not (offline). */
  | { type: "sent"; action: CallAction; callId: string; ok: boolean }
  /** The ended screen's time is up. */
  | { type: "endedTimeout"; callId: string }
  // The gateway.
  | { type: "callEvent"; event: CallEvent }
  /** A refusal, read with the current phase; `links` is the number of open connections. */
  | { type: "gatewayError"; reason: string; links: number }
  /** An OFFER, ANSWER or ICE_CANDIDATE whose payload decrypted. */
  | { type: "payload"; event: CallEvent; payload: unknown }
  // Peer connections.
  /** A connection's peer appeared (with accountId) or changed (tracks, data channel state). */
  | { type: "peer"; deviceId: string; patch: Partial<RemotePeer> }
  | { type: "peerConnection"; deviceId: string; state: RTCPeerConnectionState; atMs: number };

/** What the machine asks the adapter to do. */
export type Effect =
  /** Sends a call signal; with `report`, the adapter answers with a `sent` input at once. */
  | { kind: "send"; conversationId: string; callId: string; action: CallAction; video?: boolean; report?: boolean }
  /** Plays a tone, or stops it (null). */
  | { kind: "tone"; tone: Tone | null }
  /** Stops the tones and the TURN refresh, closes every connection and stops local media. */
  | { kind: "teardown" }
  /** Cancels the ended-screen timer and, with a call id, starts it again for that call. */
  | { kind: "endedTimer"; callId: string | null; ms: number }
  /** Gets the microphone (and camera), then reports `mediaReady` or `mediaFailed`. */
  | { kind: "acquireMedia"; callId: string; video: boolean; purpose: MediaPurpose }
  /** Fetches TURN credentials ahead of the first connection. */
  | { kind: "prefetchIce" }
  /** The microphone follows micOn / push-to-talk again, and the peers hear of it. */
  | { kind: "applyMic" }
  /** Offers a connection to a device that joined. */
  | { kind: "offer"; deviceId: string; accountId: string }
  /** Closes the connection with a device. */
  | { kind: "dropLink"; deviceId: string }
  /** Decrypts the payload of an OFFER, ANSWER or ICE_CANDIDATE, then reports `payload`. */
  | { kind: "decrypt"; event: CallEvent }
  | { kind: "takeOffer"; deviceId: string; accountId: string; payload: unknown }
  | { kind: "takeAnswer"; deviceId: string; payload: unknown }
  | { kind: "takeCandidate"; deviceId: string; payload: unknown }
  /** A call signal the gateway refused that changes nothing here (logged). */
  | { kind: "refused"; reason: string };

/** What the machine reads from the rest of the app. */
export interface Context {
  me: { accountId: string; deviceId: string };
  /** Whether the conversation is a direct one (a decline or busy ends the call there). */
  isDirect(conversationId: string): boolean;
}

export interface Step {
  state: CallsState;
  effects: Effect[];
}

/** The next state and the effects to perform, in order. The state is the same object when
 * nothing changed. */
export function step(state: CallsState, input: Input, ctx: Context): Step {
  const t = new Transition(state, ctx);
  t.apply(input);
  return { state: t.state, effects: t.effects };
}

class Transition {
  readonly effects: Effect[] = [];

  constructor(
    public state: CallsState,
    private readonly ctx: Context,
  ) {}

  private get call(): CallState {
    return this.state.call;
  }

  private set(patch: Partial<CallState>): void {
    this.state = { ...this.state, call: { ...this.state.call, ...patch } };
  }

  private setOngoing(conversationId: string, ongoing: OngoingCall | null): void {
    const next = { ...this.state.ongoing };
    if (ongoing) next[conversationId] = ongoing;
    else delete next[conversationId];
    this.state = { ...this.state, ongoing: next };
  }

  private do(effect: Effect): void {
    this.effects.push(effect);
  }

  private signal(action: CallAction, extra: { video?: boolean; report?: boolean } = {}): void {
    this.do({ kind: "send", conversationId: this.call.conversationId, callId: this.call.callId, action, ...extra });
  }

  /** Back to idle, everything stopped. */
  private reset(): void {
    this.do({ kind: "teardown" });
    this.do({ kind: "endedTimer", callId: null, ms: ENDED_SHOWN_MS });
    this.set(IDLE);
  }

  /** The ended screen, which goes away by itself after a while. */
  private end(reason: EndReason): void {
    const callId = this.call.callId;
    this.do({ kind: "teardown" });
    this.set({ phase: "ended", endReason: reason, peers: [], local: null, talking: false, sharing: false });
    this.do({ kind: "endedTimer", callId, ms: ENDED_SHOWN_MS });
  }

  /** The caller gives up before anyone answered. */
  private cancel(reason: EndReason): void {
    if (this.call.phase !== "outgoing") return;
    this.signal(CallAction.CANCEL);
    // Should someone have accepted just now (CANCEL refused), this leaves the call anyway.
    this.signal(CallAction.HANG_UP);
    this.end(reason);
  }

  private join(video: boolean): void {
    this.set({ phase: "active" });
    this.do({ kind: "acquireMedia", callId: this.call.callId, video, purpose: "accept" });
  }

  private updatePeer(deviceId: string, patch: Partial<RemotePeer>): void {
    const peers = this.call.peers;
    const found = peers.find((p) => p.deviceId === deviceId);
    if (!found && !patch.accountId) return;
    const next = found
      ? peers.map((p) => (p.deviceId === deviceId ? { ...p, ...patch } : p))
      : [...peers, patch as RemotePeer];
    this.set({ peers: next });
  }

  /** A device left (hung up, dropped, or its connection failed): its tile goes away. */
  private dropPeer(deviceId: string): void {
    this.do({ kind: "dropLink", deviceId });
    if (this.call.peers.some((p) => p.deviceId === deviceId)) {
      this.set({ peers: this.call.peers.filter((p) => p.deviceId !== deviceId) });
    }
  }

  apply(input: Input): void {
    const c = this.call;
    switch (input.type) {
      case "start":
        if (isBusy(c)) return;
        this.reset();
        this.set({
          ...IDLE,
          phase: "outgoing",
          callId: input.callId,
          conversationId: input.conversationId,
          video: input.video,
          direction: "out",
          callerAccountId: this.ctx.me.accountId,
        });
        this.do({ kind: "acquireMedia", callId: input.callId, video: input.video, purpose: "invite" });
        return;
      case "accept":
        if (c.phase !== "incoming") return;
        this.do({ kind: "tone", tone: null });
        this.join(input.video);
        return;
      case "joinOngoing": {
        const ongoing = this.state.ongoing[input.conversationId];
        if (!ongoing || isBusy(c)) return;
        this.reset();
        this.set({
          ...IDLE,
          phase: "incoming",
          callId: ongoing.callId,
          conversationId: input.conversationId,
          video: ongoing.video,
          direction: "in",
        });
        this.join(input.video);
        return;
      }
      case "decline":
        if (c.phase !== "incoming") return;
        this.signal(CallAction.DECLINE);
        this.do({ kind: "tone", tone: null });
        this.reset();
        return;
      case "cancel":
        this.cancel(input.reason);
        return;
      case "hangUp":
        if (c.phase === "outgoing") {
          this.cancel("cancelled");
          return;
        }
        if (c.phase !== "active") return;
        this.signal(CallAction.HANG_UP);
        this.end("hung_up");
        return;
      case "dismiss":
        if (c.phase === "ended") this.reset();
        return;
      case "toggleMic":
        this.set({ micOn: !c.micOn });
        this.do({ kind: "applyMic" });
        return;
      case "setTalking":
        if (c.talking === input.talking) return;
        this.set({ talking: input.talking });
        this.do({ kind: "applyMic" });
        return;
      case "prefsChanged":
        this.set({ pushToTalk: input.pushToTalk, talking: false });
        this.do({ kind: "applyMic" });
        return;
      case "setSpeaker":
        this.set({ speaker: input.deviceId });
        return;
      case "dispose":
        if (c.phase === "active") this.signal(CallAction.HANG_UP);
        else if (c.phase === "outgoing") this.signal(CallAction.CANCEL);
        this.reset();
        return;
      case "localMedia":
        this.set(input.patch);
        return;
      case "mediaReady":
        if (input.purpose === "invite") {
          if (c.callId !== input.callId || c.phase !== "outgoing") return;
          this.signal(CallAction.INVITE, { video: c.video, report: true });
        } else {
          if (c.callId !== input.callId || c.phase !== "active") return;
          this.signal(CallAction.ACCEPT, { report: true });
        }
        return;
      case "mediaFailed":
        if (c.callId !== input.callId) return;
        if (input.purpose === "accept") this.signal(CallAction.DECLINE);
        this.end("media");
        return;
      case "sent":
        if (input.action === CallAction.INVITE && c.callId === input.callId) {
          if (!input.ok) {
            this.end("offline");
            return;
          }
          this.setOngoing(c.conversationId, { callId: c.callId, video: c.video, participants: [this.ctx.me.deviceId] });
          this.do({ kind: "tone", tone: "ringback" });
          this.do({ kind: "prefetchIce" });
        } else if (input.action === CallAction.ACCEPT && c.callId === input.callId) {
          if (!input.ok) this.end("offline");
          this.do({ kind: "prefetchIce" });
        }
        return;
      case "endedTimeout":
        if (c.phase === "ended" && c.callId === input.callId) this.reset();
        return;
      case "gatewayError":
        if (input.reason === "CALL_IN_PROGRESS" && c.phase === "outgoing" && !c.ringing) {
          this.setOngoing(c.conversationId, null);
          this.end("in_progress");
        } else if (input.reason === "CALL_FULL" && c.phase === "active" && input.links === 0) {
          this.end("full");
        } else if (input.reason.startsWith("CALL_") || input.reason === "NOT_IN_CALL") {
          this.do({ kind: "refused", reason: input.reason });
        }
        return;
      case "callEvent":
        this.callEvent(input.event);
        return;
      case "payload": {
        const e = input.event;
        if (c.callId !== e.callId || c.phase !== "active") return;
        if (e.action === CallAction.OFFER) {
          this.do({ kind: "takeOffer", deviceId: e.fromDeviceId, accountId: e.fromAccountId, payload: input.payload });
        } else if (e.action === CallAction.ANSWER) {
          this.do({ kind: "takeAnswer", deviceId: e.fromDeviceId, payload: input.payload });
        } else if (e.action === CallAction.ICE_CANDIDATE) {
          this.do({ kind: "takeCandidate", deviceId: e.fromDeviceId, payload: input.payload });
        }
        return;
      }
      case "peer":
        this.updatePeer(input.deviceId, input.patch);
        return;
      case "peerConnection":
        if (input.state === "failed" || input.state === "closed") {
          this.dropPeer(input.deviceId);
          return;
        }
        this.updatePeer(input.deviceId, { state: input.state });
        if (input.state === "connected" && this.call.connectedAtMs === 0) this.set({ connectedAtMs: input.atMs });
        return;
    }
  }

  /** A call event from the gateway. */
  private callEvent(e: CallEvent): void {
    const me = this.ctx.me;
    const c = this.call;
    const current = e.callId === c.callId && e.conversationId === c.conversationId && c.phase !== "idle";
    const fromMine = e.fromAccountId === me.accountId;
    switch (e.action) {
      case CallAction.INVITE:
        this.setOngoing(e.conversationId, { callId: e.callId, video: e.video, participants: e.participantDeviceIds });
        if (fromMine || e.fromDeviceId === me.deviceId) return; // our own other device calls out
        if (isBusy(c)) {
          if (!current) {
            this.do({ kind: "send", conversationId: e.conversationId, callId: e.callId, action: CallAction.BUSY });
          }
          return;
        }
        this.reset();
        this.set({
          ...IDLE,
          phase: "incoming",
          callId: e.callId,
          conversationId: e.conversationId,
          video: e.video,
          direction: "in",
          callerAccountId: e.fromAccountId,
        });
        this.signal(CallAction.RINGING);
        this.do({ kind: "tone", tone: "ringtone" });
        return;
      case CallAction.RINGING:
        if (current && c.phase === "outgoing" && !fromMine) this.set({ ringing: true });
        return;
      case CallAction.ACCEPT: {
        const ongoing = this.state.ongoing[e.conversationId];
        this.setOngoing(e.conversationId, {
          callId: e.callId,
          video: ongoing?.video ?? e.video,
          participants: e.participantDeviceIds,
        });
        if (!current) return;
        if (c.phase === "incoming") {
          if (fromMine) this.reset(); // answered on another of our devices
          return;
        }
        if (c.phase === "outgoing") {
          this.do({ kind: "tone", tone: null });
          this.set({ phase: "active" });
        }
        if (this.call.phase === "active" && e.fromDeviceId !== me.deviceId && e.participantDeviceIds.includes(me.deviceId)) {
          this.do({ kind: "offer", deviceId: e.fromDeviceId, accountId: e.fromAccountId });
        }
        return;
      }
      case CallAction.DECLINE:
        if (!current) return;
        if (c.phase === "incoming" && fromMine) this.reset(); // declined on another of our devices
        else if (c.phase === "outgoing" && !fromMine && this.ctx.isDirect(c.conversationId)) this.cancel("declined");
        return;
      case CallAction.BUSY:
        if (current && c.phase === "outgoing" && !fromMine && this.ctx.isDirect(c.conversationId)) this.cancel("busy");
        return;
      case CallAction.HANG_UP: {
        const ongoing = this.state.ongoing[e.conversationId];
        if (ongoing?.callId === e.callId) {
          this.setOngoing(e.conversationId, { ...ongoing, participants: e.participantDeviceIds });
        }
        if (current && c.phase === "active") this.dropPeer(e.fromDeviceId);
        return;
      }
      case CallAction.ENDED:
        if (this.state.ongoing[e.conversationId]?.callId === e.callId) this.setOngoing(e.conversationId, null);
        if (current && isBusy(c)) {
          // A call that rang here and stopped before anyone answered it here is a missed one.
          const missed = c.phase === "incoming" && (e.reason === "cancelled" || e.reason === "unanswered");
          this.end(missed ? "missed" : (END_REASONS[e.reason] ?? "hung_up"));
        }
        return;
      case CallAction.OFFER:
      case CallAction.ANSWER:
      case CallAction.ICE_CANDIDATE:
        if (!current || c.phase !== "active" || e.fromDeviceId === me.deviceId) return;
        this.do({ kind: "decrypt", event: e });
        return;
      default:
        return;
    }
  }
}
