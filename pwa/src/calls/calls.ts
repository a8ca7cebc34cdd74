// calls.ts — voice and video calls: the call state machine over the gateway's call signalling
// (docs/calls.md) and the WebRTC mesh (one RTCPeerConnection per other device, at most 6 devices).
//
// - Starting: local media first, then INVITE (a new UUIDv7 call id). Other devices answer
//   RINGING; a device that is already in a call answers BUSY; ENDED comes from the server
//   (cancelled, unanswered, hung_up).
// - Joining (ACCEPT): the devices already in the call send the newcomer an OFFER, each one —
//   a device offers to the sender of an ACCEPT whose participant list includes itself, so every
//   pair connects exactly once and nobody offers at the same time as the other side.
// - Every connection has an audio and a video transceiver from the start (and a negotiated data
//   channel for mute/camera state), so muting, the camera and screen sharing only replace tracks:
//   no renegotiation.
// - OFFER, ANSWER and ICE_CANDIDATE payloads are encrypted with Olm to the one device they are
//   for, by the E2EE engine (crypto/engine.ts: encryptCallPayload/decryptCallPayload), bound to
//   the conversation, call and action. Payloads that do not decrypt are ignored.
import { create } from "@bufbuild/protobuf";
import { callContext, type E2ee } from "../crypto/engine";
import { CallAction, CallSignalSchema, type CallEvent, type GatewayError } from "../gen/kitsulan/v1/gateway_pb";
import type { CallSignal } from "../gen/kitsulan/v1/gateway_pb";
import { uuidv7 } from "../lib/ids";
import { loadCallPrefs, saveCallPrefs, type CallPrefs } from "./prefs";
import { TonePlayer } from "./tones";
import { iceServers, refreshAtMs } from "./turn";

/** What the calls need from the rest of the app (the chat controller provides it). */
export interface CallHost {
  readonly engine: E2ee;
  me(): { accountId: string; deviceId: string };
  /** The account ids of a conversation's members, or null when we do not know it. */
  members(conversationId: string): string[] | null;
  /** Whether the conversation is a direct one (a decline or busy ends the call there). */
  isDirect(conversationId: string): boolean;
  /** Sends a signal over the gateway; false when offline (nothing was sent). */
  send(signal: CallSignal): boolean;
}

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

/** One moment of a connection's statistics (RTCPeerConnection.getStats). */
export interface PeerStats {
  timestampMs: number;
  framesDecoded: number;
  videoBytesReceived: number;
  frameWidth: number;
  frameHeight: number;
  audioPacketsReceived: number;
  videoBytesSent: number;
  /** Candidate types of the selected pair, e.g. "relay" / "host". */
  localCandidate: string;
  remoteCandidate: string;
  rttMs: number | null;
}

interface Link {
  deviceId: string;
  accountId: string;
  pc: RTCPeerConnection;
  dc: RTCDataChannel;
  audioTx: RTCRtpTransceiver | null;
  videoTx: RTCRtpTransceiver | null;
  /** Remote candidates that came before the remote description. */
  pendingIce: RTCIceCandidateInit[];
  remoteSet: boolean;
  /** Our candidates wait until the offer or answer went out. */
  outIce: RTCIceCandidateInit[];
  localSent: boolean;
}

/** Removes the ended screen after this long. */
const ENDED_SHOWN_MS = 5000;
export const MAX_DEVICES = 6;

const IDLE: CallState = {
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

const te = new TextEncoder();
const td = new TextDecoder("utf-8", { fatal: true });

const END_REASONS: Record<string, EndReason> = {
  cancelled: "cancelled",
  unanswered: "unanswered",
  hung_up: "hung_up",
};

type Listener = () => void;

export class Calls {
  private state: CallsState = { call: IDLE, ongoing: {} };
  private listeners = new Set<Listener>();
  private links = new Map<string, Link>();
  private queue: Promise<void> = Promise.resolve();
  private sendQueue: Promise<void> = Promise.resolve();
  private tones = new TonePlayer();
  private camera: MediaStreamTrack | null = null;
  private mic: MediaStreamTrack | null = null;
  private screen: MediaStreamTrack | null = null;
  private endedTimer: ReturnType<typeof setTimeout> | undefined;
  private turnTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly host: CallHost) {}

  subscribe = (l: Listener): (() => void) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };

  get = (): CallsState => this.state;

  private get call(): CallState {
    return this.state.call;
  }

  private setCall(patch: Partial<CallState>): void {
    this.state = { ...this.state, call: { ...this.state.call, ...patch } };
    for (const l of this.listeners) l();
  }

  private setOngoing(conversationId: string, ongoing: OngoingCall | null): void {
    const next = { ...this.state.ongoing };
    if (ongoing) next[conversationId] = ongoing;
    else delete next[conversationId];
    this.state = { ...this.state, ongoing: next };
    for (const l of this.listeners) l();
  }

  /** Whether this device is in (or setting up) a call. */
  get busy(): boolean {
    const p = this.call.phase;
    return p === "outgoing" || p === "incoming" || p === "active";
  }

  private signal(action: CallAction, extra: { video?: boolean } = {}): boolean {
    return this.host.send(
      create(CallSignalSchema, {
        conversationId: this.call.conversationId,
        callId: this.call.callId,
        action,
        ...extra,
      }),
    );
  }

  // ---- Local media ----

  private async getMedia(video: boolean): Promise<void> {
    const prefs = loadCallPrefs();
    const audio: MediaTrackConstraints = prefs.microphone ? { deviceId: { ideal: prefs.microphone } } : {};
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio, video: video ? this.cameraConstraints(prefs) : false });
    } catch (err) {
      if (!video) throw err;
      // No camera (or not allowed): carry on with the microphone only.
      stream = await navigator.mediaDevices.getUserMedia({ audio, video: false });
    }
    this.mic = stream.getAudioTracks()[0] ?? null;
    this.camera = stream.getVideoTracks()[0] ?? null;
    this.setCall({ cameraOn: this.camera !== null, pushToTalk: prefs.pushToTalk, speaker: prefs.speaker, micOn: true });
    this.applyMic();
    this.publishLocal();
  }

  private cameraConstraints(prefs: CallPrefs): MediaTrackConstraints {
    return {
      width: { ideal: 640 },
      height: { ideal: 480 },
      ...(prefs.camera ? { deviceId: { ideal: prefs.camera } } : {}),
    };
  }

  /** The outgoing video: the shared screen, else the camera. */
  private get outgoingVideo(): MediaStreamTrack | null {
    return this.screen ?? this.camera;
  }

  private publishLocal(): void {
    const tracks = [this.mic, this.outgoingVideo].filter((t): t is MediaStreamTrack => t !== null);
    this.setCall({ local: tracks.length > 0 ? new MediaStream(tracks) : null });
  }

  private applyMic(): void {
    if (this.mic) this.mic.enabled = this.call.pushToTalk ? this.call.talking : this.call.micOn;
    this.broadcastState();
  }

  private stopMedia(): void {
    for (const t of [this.mic, this.camera, this.screen]) t?.stop();
    this.mic = null;
    this.camera = null;
    this.screen = null;
  }

  // ---- What the person does ----

  /** Calls the members of a conversation. */
  async start(conversationId: string, video: boolean): Promise<void> {
    if (this.busy) return;
    const callId = uuidv7();
    this.reset();
    this.setCall({
      ...IDLE,
      phase: "outgoing",
      callId,
      conversationId,
      video,
      direction: "out",
      callerAccountId: this.host.me().accountId,
    });
    try {
      await this.getMedia(video);
    } catch (err) {
      console.warn("call: no microphone", err);
      if (this.call.callId === callId) this.end("media");
      return;
    }
    if (this.call.callId !== callId || this.call.phase !== "outgoing") return;
    if (!this.signal(CallAction.INVITE, { video })) {
      this.end("offline");
      return;
    }
    this.setOngoing(conversationId, { callId, video, participants: [this.host.me().deviceId] });
    this.tones.play("ringback");
    void iceServers();
  }

  /** Answers the incoming call, with or without the camera. */
  async accept(video: boolean): Promise<void> {
    if (this.call.phase !== "incoming") return;
    this.tones.stop();
    await this.join(video);
  }

  /** Joins a call going on in a conversation (one we did not answer at first). */
  async joinOngoing(conversationId: string, video: boolean): Promise<void> {
    const ongoing = this.state.ongoing[conversationId];
    if (!ongoing || this.busy) return;
    this.reset();
    this.setCall({
      ...IDLE,
      phase: "incoming",
      callId: ongoing.callId,
      conversationId,
      video: ongoing.video,
      direction: "in",
    });
    await this.join(video);
  }

  private async join(video: boolean): Promise<void> {
    const callId = this.call.callId;
    this.setCall({ phase: "active" });
    try {
      await this.getMedia(video);
    } catch (err) {
      console.warn("call: no microphone", err);
      if (this.call.callId === callId) {
        this.signal(CallAction.DECLINE);
        this.end("media");
      }
      return;
    }
    if (this.call.callId !== callId || this.call.phase !== "active") return;
    if (!this.signal(CallAction.ACCEPT)) this.end("offline");
    void iceServers();
  }

  decline(): void {
    if (this.call.phase !== "incoming") return;
    this.signal(CallAction.DECLINE);
    this.tones.stop();
    this.reset();
  }

  /** The caller gives up before anyone answered. */
  cancel(reason: EndReason = "cancelled"): void {
    if (this.call.phase !== "outgoing") return;
    this.signal(CallAction.CANCEL);
    // Should someone have accepted just now (CANCEL refused), this leaves the call anyway.
    this.signal(CallAction.HANG_UP);
    this.end(reason);
  }

  hangUp(): void {
    if (this.call.phase === "outgoing") {
      this.cancel();
      return;
    }
    if (this.call.phase !== "active") return;
    this.signal(CallAction.HANG_UP);
    this.end("hung_up");
  }

  /** Closes the ended screen. */
  dismiss(): void {
    if (this.call.phase === "ended") this.reset();
  }

  toggleMic(): void {
    this.setCall({ micOn: !this.call.micOn });
    this.applyMic();
  }

  /** Push-to-talk: the key or button is held (true) or let go. */
  setTalking(talking: boolean): void {
    if (this.call.talking === talking) return;
    this.setCall({ talking });
    this.applyMic();
  }

  async toggleCamera(): Promise<void> {
    if (this.camera) {
      this.camera.stop();
      this.camera = null;
      this.setCall({ cameraOn: false });
    } else {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ video: this.cameraConstraints(loadCallPrefs()) });
        this.camera = stream.getVideoTracks()[0] ?? null;
      } catch (err) {
        console.warn("call: no camera", err);
        return;
      }
      if (!this.busy) {
        this.camera?.stop();
        this.camera = null;
        return;
      }
      this.setCall({ cameraOn: this.camera !== null });
    }
    await this.replaceVideo();
  }

  async toggleScreenShare(): Promise<void> {
    if (this.screen) {
      this.screen.stop();
      this.screen = null;
      this.setCall({ sharing: false });
      await this.replaceVideo();
      return;
    }
    let track: MediaStreamTrack | null;
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      track = stream.getVideoTracks()[0] ?? null;
    } catch (err) {
      console.warn("call: no screen share", err);
      return;
    }
    if (!track) return;
    if (!this.busy) {
      track.stop();
      return;
    }
    this.screen = track;
    // The browser's own "stop sharing" button.
    track.addEventListener("ended", () => {
      if (this.screen === track) void this.toggleScreenShare();
    });
    this.setCall({ sharing: true });
    await this.replaceVideo();
  }

  private async replaceVideo(): Promise<void> {
    const track = this.outgoingVideo;
    this.publishLocal();
    this.broadcastState();
    await Promise.all([...this.links.values()].map((l) => l.videoTx?.sender.replaceTrack(track).catch(() => undefined)));
  }

  async setMicrophone(deviceId: string): Promise<void> {
    saveCallPrefs({ ...loadCallPrefs(), microphone: deviceId });
    if (!this.mic) return;
    let track: MediaStreamTrack | null;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: deviceId ? { deviceId: { exact: deviceId } } : true,
      });
      track = stream.getAudioTracks()[0] ?? null;
    } catch (err) {
      console.warn("call: cannot switch the microphone", err);
      return;
    }
    if (!track) return;
    this.mic.stop();
    this.mic = track;
    this.applyMic();
    this.publishLocal();
    await Promise.all([...this.links.values()].map((l) => l.audioTx?.sender.replaceTrack(track).catch(() => undefined)));
  }

  async setCamera(deviceId: string): Promise<void> {
    saveCallPrefs({ ...loadCallPrefs(), camera: deviceId });
    if (!this.camera) return;
    let track: MediaStreamTrack | null;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 }, ...(deviceId ? { deviceId: { exact: deviceId } } : {}) },
      });
      track = stream.getVideoTracks()[0] ?? null;
    } catch (err) {
      console.warn("call: cannot switch the camera", err);
      return;
    }
    if (!track) return;
    this.camera.stop();
    this.camera = track;
    await this.replaceVideo();
  }

  setSpeaker(deviceId: string): void {
    saveCallPrefs({ ...loadCallPrefs(), speaker: deviceId });
    this.setCall({ speaker: deviceId });
  }

  /** The push-to-talk setting changed in Settings. */
  prefsChanged(): void {
    this.setCall({ pushToTalk: loadCallPrefs().pushToTalk, talking: false });
    this.applyMic();
  }

  // ---- Ending ----

  /** Leaves any call and stops everything (sign-out). */
  dispose(): void {
    if (this.call.phase === "active") this.signal(CallAction.HANG_UP);
    else if (this.call.phase === "outgoing") this.signal(CallAction.CANCEL);
    this.reset();
  }

  private end(reason: EndReason): void {
    const callId = this.call.callId;
    this.teardown();
    this.setCall({ phase: "ended", endReason: reason, peers: [], local: null, talking: false, sharing: false });
    clearTimeout(this.endedTimer);
    this.endedTimer = setTimeout(() => {
      if (this.call.phase === "ended" && this.call.callId === callId) this.reset();
    }, ENDED_SHOWN_MS);
  }

  private reset(): void {
    this.teardown();
    clearTimeout(this.endedTimer);
    this.setCall(IDLE);
  }

  private teardown(): void {
    this.tones.stop();
    clearTimeout(this.turnTimer);
    this.turnTimer = undefined;
    for (const link of this.links.values()) this.closeLink(link);
    this.links.clear();
    this.stopMedia();
  }

  // ---- Gateway ----

  /** A call event from the gateway. Handled in order, one at a time. */
  onEvent(event: CallEvent): void {
    this.queue = this.queue
      .then(() => this.handle(event))
      .catch((err: unknown) => console.warn("call event", CallAction[event.action], err));
  }

  /** A refusal from the gateway (not tied to a frame: read with the current phase). */
  onGatewayError(error: GatewayError): void {
    const c = this.call;
    if (error.reason === "CALL_IN_PROGRESS" && c.phase === "outgoing" && !c.ringing) {
      this.setOngoing(c.conversationId, null);
      this.end("in_progress");
    } else if (error.reason === "CALL_FULL" && c.phase === "active" && this.links.size === 0) {
      this.end("full");
    } else if (error.reason.startsWith("CALL_") || error.reason === "NOT_IN_CALL") {
      console.info("call signal refused:", error.reason);
    }
  }

  private async handle(e: CallEvent): Promise<void> {
    const me = this.host.me();
    const c = this.call;
    const current = e.callId === c.callId && e.conversationId === c.conversationId && c.phase !== "idle";
    const fromMine = e.fromAccountId === me.accountId;
    switch (e.action) {
      case CallAction.INVITE: {
        this.setOngoing(e.conversationId, { callId: e.callId, video: e.video, participants: e.participantDeviceIds });
        if (fromMine || e.fromDeviceId === me.deviceId) return; // our own other device calls out
        if (this.busy) {
          if (!current) {
            this.host.send(
              create(CallSignalSchema, { conversationId: e.conversationId, callId: e.callId, action: CallAction.BUSY }),
            );
          }
          return;
        }
        this.reset();
        this.setCall({
          ...IDLE,
          phase: "incoming",
          callId: e.callId,
          conversationId: e.conversationId,
          video: e.video,
          direction: "in",
          callerAccountId: e.fromAccountId,
        });
        this.signal(CallAction.RINGING);
        this.tones.play("ringtone");
        return;
      }
      case CallAction.RINGING:
        if (current && c.phase === "outgoing" && !fromMine) this.setCall({ ringing: true });
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
          this.tones.stop();
          this.setCall({ phase: "active" });
        }
        if (this.call.phase === "active" && e.fromDeviceId !== me.deviceId && e.participantDeviceIds.includes(me.deviceId)) {
          await this.offerTo(e.fromDeviceId, e.fromAccountId);
        }
        return;
      }
      case CallAction.DECLINE:
        if (!current) return;
        if (c.phase === "incoming" && fromMine) this.reset(); // declined on another of our devices
        else if (c.phase === "outgoing" && !fromMine && this.host.isDirect(c.conversationId)) this.cancel("declined");
        return;
      case CallAction.BUSY:
        if (current && c.phase === "outgoing" && !fromMine && this.host.isDirect(c.conversationId)) this.cancel("busy");
        return;
      case CallAction.HANG_UP: {
        const ongoing = this.state.ongoing[e.conversationId];
        if (ongoing?.callId === e.callId) {
          this.setOngoing(e.conversationId, { ...ongoing, participants: e.participantDeviceIds });
        }
        if (current && c.phase === "active") this.dropLink(e.fromDeviceId);
        return;
      }
      case CallAction.ENDED:
        if (this.state.ongoing[e.conversationId]?.callId === e.callId) this.setOngoing(e.conversationId, null);
        if (current && this.busy) {
          // A call that rang here and stopped before anyone answered it here is a missed one.
          const missed = c.phase === "incoming" && (e.reason === "cancelled" || e.reason === "unanswered");
          this.end(missed ? "missed" : (END_REASONS[e.reason] ?? "hung_up"));
        }
        return;
      case CallAction.OFFER:
      case CallAction.ANSWER:
      case CallAction.ICE_CANDIDATE: {
        if (!current || c.phase !== "active" || e.fromDeviceId === me.deviceId) return;
        let payload: unknown;
        try {
          const plain = await this.host.engine.decryptCallPayload(
            e.fromAccountId,
            e.fromDeviceId,
            callContext(e.conversationId, e.callId, e.action),
            e.payload,
          );
          payload = JSON.parse(td.decode(plain));
        } catch (err) {
          console.warn("call: ignoring a payload that does not decrypt", err);
          return;
        }
        if (this.call.callId !== e.callId || this.call.phase !== "active") return;
        if (e.action === CallAction.OFFER) await this.takeOffer(e.fromDeviceId, e.fromAccountId, payload);
        else if (e.action === CallAction.ANSWER) await this.takeAnswer(e.fromDeviceId, payload);
        else await this.takeCandidate(e.fromDeviceId, payload);
        return;
      }
      default:
        return;
    }
  }

  // ---- WebRTC ----

  /** Sends an encrypted payload to one device, in order with everything sent before. */
  private sendPayload(link: Link, action: CallAction, value: unknown): void {
    const { conversationId, callId } = this.call;
    const members = this.host.members(conversationId) ?? [];
    this.sendQueue = this.sendQueue
      .then(async () => {
        const payload = await this.host.engine.encryptCallPayload(
          members,
          link.deviceId,
          callContext(conversationId, callId, action),
          te.encode(JSON.stringify(value)),
        );
        if (this.call.callId !== callId || this.links.get(link.deviceId) !== link) return;
        this.host.send(
          create(CallSignalSchema, { conversationId, callId, action, toDeviceId: link.deviceId, payload }),
        );
      })
      .catch((err: unknown) => console.warn("call: cannot send", CallAction[action], err));
  }

  private async newLink(deviceId: string, accountId: string): Promise<Link> {
    const old = this.links.get(deviceId);
    if (old) this.closeLink(old);
    const servers = await iceServers();
    const pc = new RTCPeerConnection({
      iceServers: servers,
      iceTransportPolicy: loadCallPrefs().alwaysRelay ? "relay" : "all",
    });
    const dc = pc.createDataChannel("state", { negotiated: true, id: 0 });
    const link: Link = {
      deviceId,
      accountId,
      pc,
      dc,
      audioTx: null,
      videoTx: null,
      pendingIce: [],
      remoteSet: false,
      outIce: [],
      localSent: false,
    };
    this.links.set(deviceId, link);
    this.updatePeer(deviceId, { deviceId, accountId, stream: new MediaStream(), state: "new", mic: true, camera: true, screen: false });
    pc.ontrack = (ev) => {
      if (this.links.get(deviceId) !== link) return;
      const peer = this.call.peers.find((p) => p.deviceId === deviceId);
      const tracks = (peer?.stream.getTracks() ?? []).filter((t) => t.kind !== ev.track.kind);
      this.updatePeer(deviceId, { stream: new MediaStream([...tracks, ev.track]) });
    };
    pc.onicecandidate = (ev) => {
      if (!ev.candidate || !ev.candidate.candidate) return;
      const candidate = ev.candidate.toJSON();
      if (link.localSent) this.sendPayload(link, CallAction.ICE_CANDIDATE, candidate);
      else link.outIce.push(candidate);
    };
    pc.onconnectionstatechange = () => {
      if (this.links.get(deviceId) !== link) return;
      const state = pc.connectionState;
      if (state === "failed" || state === "closed") {
        this.dropLink(deviceId);
        return;
      }
      this.updatePeer(deviceId, { state });
      if (state === "connected" && this.call.connectedAtMs === 0) this.setCall({ connectedAtMs: Date.now() });
    };
    dc.onopen = () => this.sendState(link);
    dc.onmessage = (ev) => {
      try {
        const s = JSON.parse(String(ev.data)) as { mic?: unknown; camera?: unknown; screen?: unknown };
        this.updatePeer(deviceId, { mic: s.mic !== false, camera: s.camera !== false, screen: s.screen === true });
      } catch {
        // not ours
      }
    };
    this.scheduleTurnRefresh();
    return link;
  }

  private updatePeer(deviceId: string, patch: Partial<RemotePeer>): void {
    const peers = this.call.peers;
    const found = peers.find((p) => p.deviceId === deviceId);
    if (!found && !patch.accountId) return;
    const next = found
      ? peers.map((p) => (p.deviceId === deviceId ? { ...p, ...patch } : p))
      : [...peers, patch as RemotePeer];
    this.setCall({ peers: next });
  }

  private closeLink(link: Link): void {
    link.pc.ontrack = null;
    link.pc.onicecandidate = null;
    link.pc.onconnectionstatechange = null;
    link.dc.onopen = null;
    link.dc.onmessage = null;
    link.pc.close();
  }

  /** A device left (hung up, dropped, or its connection failed): its tile goes away. */
  private dropLink(deviceId: string): void {
    const link = this.links.get(deviceId);
    if (link) {
      this.closeLink(link);
      this.links.delete(deviceId);
    }
    if (this.call.peers.some((p) => p.deviceId === deviceId)) {
      this.setCall({ peers: this.call.peers.filter((p) => p.deviceId !== deviceId) });
    }
  }

  private localState(): { mic: boolean; camera: boolean; screen: boolean } {
    return {
      mic: this.mic?.enabled === true,
      camera: this.camera !== null,
      screen: this.screen !== null,
    };
  }

  private sendState(link: Link): void {
    if (link.dc.readyState === "open") link.dc.send(JSON.stringify(this.localState()));
  }

  private broadcastState(): void {
    for (const link of this.links.values()) this.sendState(link);
  }

  private flushOut(link: Link): void {
    link.localSent = true;
    for (const c of link.outIce.splice(0)) this.sendPayload(link, CallAction.ICE_CANDIDATE, c);
  }

  private async flushIn(link: Link): Promise<void> {
    link.remoteSet = true;
    for (const c of link.pendingIce.splice(0)) await link.pc.addIceCandidate(c).catch(() => undefined);
  }

  /** We are in the call and `deviceId` joined: offer it a connection. */
  private async offerTo(deviceId: string, accountId: string): Promise<void> {
    if (this.links.size >= MAX_DEVICES - 1) return;
    const link = await this.newLink(deviceId, accountId);
    const stream = this.call.local ?? new MediaStream();
    link.audioTx = link.pc.addTransceiver(this.mic ?? "audio", { direction: "sendrecv", streams: [stream] });
    link.videoTx = link.pc.addTransceiver(this.outgoingVideo ?? "video", { direction: "sendrecv", streams: [stream] });
    await link.pc.setLocalDescription();
    const desc = link.pc.localDescription;
    if (!desc || this.links.get(deviceId) !== link) return;
    this.sendPayload(link, CallAction.OFFER, { type: desc.type, sdp: desc.sdp });
    this.flushOut(link);
  }

  private async takeOffer(deviceId: string, accountId: string, payload: unknown): Promise<void> {
    const desc = sessionDescription(payload, "offer");
    if (!desc) return;
    if (!this.links.has(deviceId) && this.links.size >= MAX_DEVICES - 1) return;
    const link = await this.newLink(deviceId, accountId);
    await link.pc.setRemoteDescription(desc);
    await this.flushIn(link);
    for (const t of link.pc.getTransceivers()) {
      const kind = t.receiver.track.kind;
      if (kind === "audio" && !link.audioTx) {
        link.audioTx = t;
        t.direction = "sendrecv";
        await t.sender.replaceTrack(this.mic);
      } else if (kind === "video" && !link.videoTx) {
        link.videoTx = t;
        t.direction = "sendrecv";
        await t.sender.replaceTrack(this.outgoingVideo);
      }
    }
    await link.pc.setLocalDescription();
    const answer = link.pc.localDescription;
    if (!answer || this.links.get(deviceId) !== link) return;
    this.sendPayload(link, CallAction.ANSWER, { type: answer.type, sdp: answer.sdp });
    this.flushOut(link);
  }

  private async takeAnswer(deviceId: string, payload: unknown): Promise<void> {
    const desc = sessionDescription(payload, "answer");
    const link = this.links.get(deviceId);
    if (!desc || !link || link.pc.signalingState !== "have-local-offer") return;
    await link.pc.setRemoteDescription(desc);
    await this.flushIn(link);
  }

  private async takeCandidate(deviceId: string, payload: unknown): Promise<void> {
    const link = this.links.get(deviceId);
    if (!link || typeof payload !== "object" || payload === null) return;
    const p = payload as Record<string, unknown>;
    if (typeof p.candidate !== "string") return;
    const candidate: RTCIceCandidateInit = {
      candidate: p.candidate,
      sdpMid: typeof p.sdpMid === "string" ? p.sdpMid : null,
      sdpMLineIndex: typeof p.sdpMLineIndex === "number" ? p.sdpMLineIndex : null,
      ...(typeof p.usernameFragment === "string" ? { usernameFragment: p.usernameFragment } : {}),
    };
    if (link.remoteSet) await link.pc.addIceCandidate(candidate).catch((err: unknown) => console.warn("ICE", err));
    else link.pendingIce.push(candidate);
  }

  /** Fetches fresh TURN credentials before the current ones expire, for every connection. */
  private scheduleTurnRefresh(): void {
    if (this.turnTimer !== undefined) return;
    const at = refreshAtMs();
    if (at === null) return;
    this.turnTimer = setTimeout(() => {
      this.turnTimer = undefined;
      void iceServers().then((servers) => {
        if (this.links.size === 0) return;
        for (const link of this.links.values()) {
          try {
            link.pc.setConfiguration({ ...link.pc.getConfiguration(), iceServers: servers });
          } catch (err) {
            console.warn("call: cannot update ICE servers", err);
          }
        }
        this.scheduleTurnRefresh();
      });
    }, Math.max(10_000, at - Date.now()));
  }

  /** Statistics of the connection with `deviceId` (the call view's statistics panel). */
  async stats(deviceId: string): Promise<PeerStats | null> {
    const link = this.links.get(deviceId);
    if (!link) return null;
    const report = await link.pc.getStats();
    const out: PeerStats = {
      timestampMs: Date.now(),
      framesDecoded: 0,
      videoBytesReceived: 0,
      frameWidth: 0,
      frameHeight: 0,
      audioPacketsReceived: 0,
      videoBytesSent: 0,
      localCandidate: "",
      remoteCandidate: "",
      rttMs: null,
    };
    let pairId = "";
    const byId = new Map<string, Record<string, unknown>>();
    report.forEach((s: Record<string, unknown>) => {
      byId.set(String(s.id), s);
      const num = (k: string) => (typeof s[k] === "number" ? (s[k] as number) : 0);
      if (s.type === "inbound-rtp" && s.kind === "video") {
        out.framesDecoded += num("framesDecoded");
        out.videoBytesReceived += num("bytesReceived");
        out.frameWidth = Math.max(out.frameWidth, num("frameWidth"));
        out.frameHeight = Math.max(out.frameHeight, num("frameHeight"));
      } else if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.audioPacketsReceived += num("packetsReceived");
      } else if (s.type === "outbound-rtp" && s.kind === "video") {
        out.videoBytesSent += num("bytesSent");
      } else if (s.type === "transport" && typeof s.selectedCandidatePairId === "string") {
        pairId = s.selectedCandidatePairId;
      }
    });
    const pair = byId.get(pairId);
    if (pair) {
      out.localCandidate = String(byId.get(String(pair.localCandidateId))?.candidateType ?? "");
      out.remoteCandidate = String(byId.get(String(pair.remoteCandidateId))?.candidateType ?? "");
      if (typeof pair.currentRoundTripTime === "number") out.rttMs = Math.round(pair.currentRoundTripTime * 1000);
    }
    return out;
  }
}

function sessionDescription(payload: unknown, type: "offer" | "answer"): RTCSessionDescriptionInit | null {
  if (typeof payload !== "object" || payload === null) return null;
  const p = payload as Record<string, unknown>;
  return p.type === type && typeof p.sdp === "string" ? { type, sdp: p.sdp } : null;
}
