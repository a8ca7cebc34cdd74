// calls.ts — voice and video calls: the WebRTC adapter around the call state machine
// (machine.ts), over the gateway's call signalling (docs/calls.md) and the WebRTC mesh (one
// RTCPeerConnection per other device, at most 6 devices). The machine decides (phases, which
// signals go out, when connections open and close); this class performs (local media, tones,
// peer connections, encrypted payloads, TURN credentials, timers) and reports back what happens.
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
import {
  INITIAL,
  isBusy,
  step,
  type CallState,
  type CallsState,
  type Effect,
  type EndReason,
  type Input,
  type LocalMediaPatch,
  type MediaPurpose,
  type RemotePeer,
} from "./machine";
import { loadCallPrefs, saveCallPrefs, type CallPrefs } from "./prefs";
import { readStats, type PeerStats } from "./stats";
import { TonePlayer } from "./tones";
import { iceServers, refreshAtMs } from "./turn";

export type { CallState, CallsState, EndReason, OngoingCall, Phase, RemotePeer } from "./machine";
export type { PeerStats } from "./stats";

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

export const MAX_DEVICES = 6;

const te = new TextEncoder();
const td = new TextDecoder("utf-8", { fatal: true });

type Listener = () => void;

export class Calls {
  private state: CallsState = INITIAL;
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

  /** Whether this device is in (or setting up) a call. */
  get busy(): boolean {
    return isBusy(this.call);
  }

  // ---- The machine ----

  /**
   * Runs `input` through the machine, publishes the new state, then performs the effects in
   * order; the promise settles when the last one did (async ones are awaited in turn).
   */
  private dispatch(input: Input): Promise<void> {
    const next = step(this.state, input, { me: this.host.me(), isDirect: (id) => this.host.isDirect(id) });
    if (next.state !== this.state) {
      this.state = next.state;
      for (const l of this.listeners) l();
    }
    return this.perform(next.effects);
  }

  private async perform(effects: Effect[]): Promise<void> {
    for (const effect of effects) {
      const pending = this.effect(effect);
      if (pending) await pending;
    }
  }

  private effect(e: Effect): Promise<void> | undefined {
    switch (e.kind) {
      case "send": {
        const ok = this.host.send(
          create(CallSignalSchema, {
            conversationId: e.conversationId,
            callId: e.callId,
            action: e.action,
            ...(e.video !== undefined ? { video: e.video } : {}),
          }),
        );
        return e.report ? this.dispatch({ type: "sent", action: e.action, callId: e.callId, ok }) : undefined;
      }
      case "tone":
        if (e.tone) this.tones.play(e.tone);
        else this.tones.stop();
        return undefined;
      case "teardown":
        this.teardown();
        return undefined;
      case "endedTimer": {
        clearTimeout(this.endedTimer);
        const callId = e.callId;
        if (callId !== null) {
          this.endedTimer = setTimeout(() => void this.dispatch({ type: "endedTimeout", callId }), e.ms);
        }
        return undefined;
      }
      case "acquireMedia":
        return this.acquireMedia(e.callId, e.video, e.purpose);
      case "prefetchIce":
        void iceServers();
        return undefined;
      case "applyMic":
        this.applyMic();
        return undefined;
      case "offer":
        return this.offerTo(e.deviceId, e.accountId);
      case "dropLink":
        this.dropLink(e.deviceId);
        return undefined;
      case "decrypt":
        return this.decrypt(e.event);
      case "takeOffer":
        return this.takeOffer(e.deviceId, e.accountId, e.payload);
      case "takeAnswer":
        return this.takeAnswer(e.deviceId, e.payload);
      case "takeCandidate":
        return this.takeCandidate(e.deviceId, e.payload);
      case "refused":
        console.info("call signal refused:", e.reason);
        return undefined;
    }
  }

  /** The state of this device's media changed. */
  private setMedia(patch: LocalMediaPatch): void {
    void this.dispatch({ type: "localMedia", patch });
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
    this.setMedia({ cameraOn: this.camera !== null, pushToTalk: prefs.pushToTalk, speaker: prefs.speaker, micOn: true });
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
    this.setMedia({ local: tracks.length > 0 ? new MediaStream(tracks) : null });
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

  private async acquireMedia(callId: string, video: boolean, purpose: MediaPurpose): Promise<void> {
    try {
      await this.getMedia(video);
    } catch (err) {
      console.warn("call: no microphone", err);
      return this.dispatch({ type: "mediaFailed", callId, purpose });
    }
    return this.dispatch({ type: "mediaReady", callId, purpose });
  }

  // ---- What the person does ----

  /** Calls the members of a conversation. */
  start(conversationId: string, video: boolean): Promise<void> {
    return this.dispatch({ type: "start", conversationId, video, callId: uuidv7() });
  }

  /** Answers the incoming call, with or without the camera. */
  accept(video: boolean): Promise<void> {
    return this.dispatch({ type: "accept", video });
  }

  /** Joins a call going on in a conversation (one we did not answer at first). */
  joinOngoing(conversationId: string, video: boolean): Promise<void> {
    return this.dispatch({ type: "joinOngoing", conversationId, video });
  }

  decline(): void {
    void this.dispatch({ type: "decline" });
  }

  /** The caller gives up before anyone answered. */
  cancel(reason: EndReason = "cancelled"): void {
    void this.dispatch({ type: "cancel", reason });
  }

  hangUp(): void {
    void this.dispatch({ type: "hangUp" });
  }

  /** Closes the ended screen. */
  dismiss(): void {
    void this.dispatch({ type: "dismiss" });
  }

  toggleMic(): void {
    void this.dispatch({ type: "toggleMic" });
  }

  /** Push-to-talk: the key or button is held (true) or let go. */
  setTalking(talking: boolean): void {
    void this.dispatch({ type: "setTalking", talking });
  }

  async toggleCamera(): Promise<void> {
    if (this.camera) {
      this.camera.stop();
      this.camera = null;
      this.setMedia({ cameraOn: false });
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
      this.setMedia({ cameraOn: this.camera !== null });
    }
    await this.replaceVideo();
  }

  async toggleScreenShare(): Promise<void> {
    if (this.screen) {
      this.screen.stop();
      this.screen = null;
      this.setMedia({ sharing: false });
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
    this.setMedia({ sharing: true });
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
    void this.dispatch({ type: "setSpeaker", deviceId });
  }

  /** The push-to-talk setting changed in Settings. */
  prefsChanged(): void {
    void this.dispatch({ type: "prefsChanged", pushToTalk: loadCallPrefs().pushToTalk });
  }

  // ---- Ending ----

  /** Leaves any call and stops everything (sign-out). */
  dispose(): void {
    void this.dispatch({ type: "dispose" });
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
      .then(() => this.dispatch({ type: "callEvent", event }))
      .catch((err: unknown) => console.warn("call event", CallAction[event.action], err));
  }

  /** A refusal from the gateway (not tied to a frame: read with the current phase). */
  onGatewayError(error: GatewayError): void {
    void this.dispatch({ type: "gatewayError", reason: error.reason, links: this.links.size });
  }

  /** Decrypts an OFFER, ANSWER or ICE_CANDIDATE payload (ignored when it does not). */
  private async decrypt(e: CallEvent): Promise<void> {
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
    return this.dispatch({ type: "payload", event: e, payload });
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
    this.peer(deviceId, { deviceId, accountId, stream: new MediaStream(), state: "new", mic: true, camera: true, screen: false });
    pc.ontrack = (ev) => {
      if (this.links.get(deviceId) !== link) return;
      const peer = this.call.peers.find((p) => p.deviceId === deviceId);
      const tracks = (peer?.stream.getTracks() ?? []).filter((t) => t.kind !== ev.track.kind);
      this.peer(deviceId, { stream: new MediaStream([...tracks, ev.track]) });
    };
    pc.onicecandidate = (ev) => {
      if (!ev.candidate || !ev.candidate.candidate) return;
      const candidate = ev.candidate.toJSON();
      if (link.localSent) this.sendPayload(link, CallAction.ICE_CANDIDATE, candidate);
      else link.outIce.push(candidate);
    };
    pc.onconnectionstatechange = () => {
      if (this.links.get(deviceId) !== link) return;
      // The machine drops a failed or closed connection (dropLink) and its tile.
      void this.dispatch({ type: "peerConnection", deviceId, state: pc.connectionState, atMs: Date.now() });
    };
    dc.onopen = () => this.sendState(link);
    dc.onmessage = (ev) => {
      try {
        const s = JSON.parse(String(ev.data)) as { mic?: unknown; camera?: unknown; screen?: unknown };
        this.peer(deviceId, { mic: s.mic !== false, camera: s.camera !== false, screen: s.screen === true });
      } catch {
        // not ours
      }
    };
    this.scheduleTurnRefresh();
    return link;
  }

  /** A peer appeared (the patch has its accountId) or changed. */
  private peer(deviceId: string, patch: Partial<RemotePeer>): void {
    void this.dispatch({ type: "peer", deviceId, patch });
  }

  private closeLink(link: Link): void {
    link.pc.ontrack = null;
    link.pc.onicecandidate = null;
    link.pc.onconnectionstatechange = null;
    link.dc.onopen = null;
    link.dc.onmessage = null;
    link.pc.close();
  }

  /** Closes the connection with a device that left (the machine removes its tile). */
  private dropLink(deviceId: string): void {
    const link = this.links.get(deviceId);
    if (link) {
      this.closeLink(link);
      this.links.delete(deviceId);
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
    return readStats(report, Date.now());
  }
}

function sessionDescription(payload: unknown, type: "offer" | "answer"): RTCSessionDescriptionInit | null {
  if (typeof payload !== "object" || payload === null) return null;
  const p = payload as Record<string, unknown>;
  return p.type === type && typeof p.sdp === "string" ? { type, sdp: p.sdp } : null;
}
