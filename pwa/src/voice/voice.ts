// voice.ts — this device in a guild's voice channel: the WebRTC session with the server's SFU
// (VoiceService.JoinVoice, with the fixed sections of media.ts's offerLayout: our microphone, the
// loudest voices, our camera and screen, the pictures forwarded to us), the SFrame worker that
// seals our frames and opens theirs, the media keys shared over Olm by the rules of keys.ts,
// playback with each person's volume, the speaking indicator, mute, deafen and push-to-talk, the
// camera and screen sharing.
// One room at a time; it lives with the signed-in chat (chat.ts), so browsing other channels of
// the guild keeps it. Leaving the guild's view, signing out or closing the page leaves it; a
// reload joins again (the channel is remembered in sessionStorage, which a closed tab loses).
// A connection that fails joins again by itself, the camera and the shared screen carried over.
// Whose share of our key failed, and whose key has not come, is in the state (keyTrouble).
import { ConnectError, type Client } from "@connectrpc/connect";
import { loadCallPrefs } from "../calls/prefs";
import type { E2ee, Taken } from "../crypto/engine";
import { reasonOf } from "../errors";
import type { VoiceService } from "../gen/kitsulan/v1/voice_pb";
import {
  KeyHealth,
  PeerKeys,
  SPEAKING_LEVEL,
  levelsByPerson,
  planForChange,
  randomBaseKey,
  randomKid,
  sameTroubles,
  shareFailureReason,
  shareToEach,
  type KeyTrouble,
} from "./keys";
import {
  clampVolume,
  liveVideo,
  loadVolumes,
  offerLayout,
  saveVolumes,
  slotVolumes,
  videoTiles,
  vp8Only,
  type VideoKind,
  type VideoSlotSeen,
  type VideoTile,
} from "./media";
import type { FromWorker, ToWorker, TransformOptions } from "./protocol";

const REMEMBER = "kitsulan.voice";
/** How long a level stays "speaking" after it fell (no flicker between syllables). */
const SPEAKING_HOLD_MS = 400;
/** The window of the peak level shown in the details. */
const PEAK_WINDOW_MS = 2000;

export type VoicePhase = "idle" | "joining" | "connecting" | "connected" | "failed";

export interface VoiceState {
  channelId: string | null;
  guildId: string | null;
  phase: VoicePhase;
  /** Why the last join failed: a server reason (errors.ts), or "MIC_DENIED" / "NO_MIC" /
   * "UNSUPPORTED"; in the room, why the camera did not start: "CAMERA_DENIED" / "NO_CAMERA". */
  error: string | null;
  muted: boolean;
  deafened: boolean;
  /** Push-to-talk (the calls setting): the microphone is live only while `talking`. */
  pushToTalk: boolean;
  talking: boolean;
  /** Our camera and our screen, sent, with their previews here. */
  camera: MediaStream | null;
  screen: MediaStream | null;
  /** The pictures of the receiving video slots (by slot), and who each shows now. */
  videoStreams: MediaStream[];
  videos: VideoTile[];
  /** Each person's volume here, 0..100 (absent: 100), remembered for the signed-in account. */
  volumes: Record<string, number>;
  /** Accounts speaking now (us included). */
  speaking: string[];
  /** The peak level (0..100) per account over the last two seconds (us included). */
  levels: Record<string, number>;
  /** Audio frames of each account opened (decrypted) here, and video frames. */
  opened: Record<string, number>;
  videoOpened: Record<string, number>;
  /** The kid each account's frames last opened under. */
  lastKid: Record<string, number>;
  /** Our frames sealed (of them video), and frames received that did not open. */
  sealed: number;
  videoSealed: number;
  failed: number;
  /** The peers' keys held, and our own kid. */
  peerKeys: number;
  /** Each other person whose key exchange with us is stuck (our key not sent to them, or no key
   * of theirs here): they cannot hear us, or we them, until it goes through. */
  keyTrouble: Record<string, KeyTrouble>;
  ownKid: number | null;
  /** How the frames reach the worker. */
  transform: "script" | "streams" | null;
}

const IDLE: VoiceState = {
  channelId: null,
  guildId: null,
  phase: "idle",
  error: null,
  muted: false,
  deafened: false,
  pushToTalk: false,
  talking: false,
  camera: null,
  screen: null,
  videoStreams: [],
  videos: [],
  volumes: {},
  speaking: [],
  levels: {},
  opened: {},
  videoOpened: {},
  lastKid: {},
  sealed: 0,
  videoSealed: 0,
  failed: 0,
  peerKeys: 0,
  keyTrouble: {},
  ownKid: null,
  transform: null,
};

export interface VoiceDeps {
  client: Pick<Client<typeof VoiceService>, "joinVoice" | "leaveVoice">;
  /** Resolves with the accounts none of whose devices an Olm session could be made with. */
  engine: Pick<E2ee, "shareVoiceKey">;
  me: () => string;
  /** Who is in the voice channel now (GuildChannel.voice_account_ids), null if unknown. */
  participants: (channelId: string) => string[] | null;
  /** Calls `l` on every change of the chat state. */
  subscribe: (l: () => void) => () => void;
}

interface Slot {
  audio: HTMLAudioElement;
  analyser: AnalyserNode | null;
}

/** The state of one join: its connection, worker and media. */
interface Session {
  channelId: string;
  /** Where the <audio> elements are (hidden): the received voices play there. */
  sink: HTMLElement;
  pc: RTCPeerConnection;
  worker: Worker;
  mic: MediaStreamTrack;
  slots: Slot[];
  /** Our camera's and screen's senders (their sections made at join, with no track). */
  senders: Record<VideoKind, RTCRtpSender | null>;
  camera: MediaStreamTrack | null;
  screen: MediaStreamTrack | null;
  ctx: AudioContext | null;
  micAnalyser: AnalyserNode | null;
  timer: ReturnType<typeof setInterval>;
  unsubscribe: () => void;
  closed: boolean;
}

type ScriptTransformCtor = new (worker: Worker, options: TransformOptions) => unknown;
type WithTransform = { transform: unknown };
type WithStreams = { createEncodedStreams(): { readable: ReadableStream; writable: WritableStream } };

/** Samples per level reading: about 85 ms at 48 kHz, read every TICK_MS, so a short sound
 * between two readings is not missed. */
const LEVEL_SAMPLES = 4096;
const TICK_MS = 80;

function rms(analyser: AnalyserNode, buf: Float32Array<ArrayBuffer>): number {
  analyser.getFloatTimeDomainData(buf);
  let sum = 0;
  for (const v of buf) sum += v * v;
  return Math.sqrt(sum / buf.length);
}

export class Voice {
  private state: VoiceState = IDLE;
  private readonly listeners = new Set<() => void>();
  private session: Session | null = null;
  private readonly peers = new PeerKeys();
  /** Whose share of our key failed, and since when each person is in the room with us. */
  private readonly health = new KeyHealth();
  private own: { kid: number; key: Uint8Array } | null = null;
  /** The participants the keys were last planned for. */
  private known: string[] = [];
  /** Key operations, one at a time (a rotation waits for the share before it). */
  private keyChain: Promise<unknown> = Promise.resolve();
  private speakingSince = new Map<string, number>();
  private peaks = new Map<string, Array<[number, number]>>();
  private opened = new Map<number, number>();
  private slotKids = new Map<number, number>();
  private videoSlots = new Map<number, VideoSlotSeen>();
  /** Counts joins and leaves: a join that awaited while another started (or we left) stops. */
  private attempt = 0;

  constructor(private readonly deps: VoiceDeps) {}

  get = (): VoiceState => this.state;

  subscribe = (l: () => void): (() => void) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };

  private set(patch: Partial<VoiceState>): void {
    this.state = { ...this.state, ...patch };
    for (const l of this.listeners) l();
  }

  /** Joins the voice channel remembered by this tab before a reload, if any; returns it. */
  resume(exists: (channelId: string) => string | null): { channelId: string; guildId: string } | null {
    let saved: { channelId?: unknown } | null = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(REMEMBER) ?? "null") as { channelId?: unknown } | null;
    } catch {
      saved = null;
    }
    const channelId = typeof saved?.channelId === "string" ? saved.channelId : null;
    const guildId = channelId ? exists(channelId) : null;
    if (channelId && guildId) {
      void this.join(channelId, guildId);
      return { channelId, guildId };
    }
    sessionStorage.removeItem(REMEMBER);
    return null;
  }

  /** Enters the voice channel `channelId` of `guildId` (leaving the room we are in). */
  async join(channelId: string, guildId: string): Promise<void> {
    if (this.session) await this.leave();
    const attempt = ++this.attempt;
    const Script = (globalThis as { RTCRtpScriptTransform?: ScriptTransformCtor }).RTCRtpScriptTransform;
    const streamsApi = typeof RTCRtpSender !== "undefined" && "createEncodedStreams" in RTCRtpSender.prototype;
    if (!Script && !streamsApi) {
      this.set({ ...IDLE, channelId, guildId, phase: "failed", error: "UNSUPPORTED" });
      return;
    }
    sessionStorage.setItem(REMEMBER, JSON.stringify({ channelId }));
    this.peers.clear();
    this.health.clear();
    this.opened.clear();
    this.slotKids.clear();
    this.videoSlots.clear();
    this.peaks.clear();
    this.speakingSince.clear();
    this.known = [];
    this.own = { kid: randomKid(), key: randomBaseKey() };
    this.set({ ...IDLE, channelId, guildId, phase: "joining", transform: Script ? "script" : "streams", ownKid: this.own.kid });

    let mic: MediaStreamTrack;
    try {
      const prefs = loadCallPrefs();
      const stream = await navigator.mediaDevices.getUserMedia({ audio: prefs.microphone ? { deviceId: { ideal: prefs.microphone } } : true, video: false });
      const track = stream.getAudioTracks()[0];
      if (!track) throw new DOMException("no microphone", "NotFoundError");
      mic = track;
    } catch (err) {
      if (attempt !== this.attempt) return;
      const name = (err as { name?: unknown } | null)?.name;
      this.set({ phase: "failed", error: name === "NotFoundError" ? "NO_MIC" : "MIC_DENIED" });
      sessionStorage.removeItem(REMEMBER);
      return;
    }
    if (attempt !== this.attempt) {
      mic.stop();
      return;
    }

    const worker = new Worker(new URL("./sframe.worker.ts", import.meta.url), { type: "module" });
    const post = (m: ToWorker, transfer: Transferable[] = []) => worker.postMessage(m, transfer);
    post({ type: "own", kid: this.own.kid, key: this.own.key.slice() });
    const pc = new RTCPeerConnection(Script ? {} : ({ encodedInsertableStreams: true } as RTCConfiguration));
    const transform = (target: RTCRtpSender | RTCRtpReceiver, options: TransformOptions) => {
      if (Script) (target as unknown as WithTransform).transform = new Script(worker, options);
      else {
        const { readable, writable } = (target as unknown as WithStreams).createEncodedStreams();
        post({ type: "streams", options, readable, writable }, [readable as unknown as Transferable, writable as unknown as Transferable]);
      }
    };
    let ctx: AudioContext | null = null;
    try {
      ctx = new AudioContext();
    } catch {
      ctx = null; // no levels, no speaking ring; the voices still play
    }
    const analyserOf = (track: MediaStreamTrack): AnalyserNode | null => {
      if (!ctx) return null;
      const a = ctx.createAnalyser();
      a.fftSize = LEVEL_SAMPLES;
      ctx.createMediaStreamSource(new MediaStream([track])).connect(a);
      return a;
    };
    const sink = document.createElement("div");
    sink.hidden = true;
    sink.className = "voice-audio";
    document.body.append(sink);
    const slots: Slot[] = [];
    const senders: Record<VideoKind, RTCRtpSender | null> = { camera: null, screen: null };
    const videoStreams: MediaStream[] = [];
    // The sections in the order the SFU expects; each one's frames go through the worker.
    for (const section of offerLayout()) {
      const o = section.options;
      const tx =
        o.side === "send" && o.media === "audio" ? pc.addTransceiver(mic, { direction: "sendonly" }) : pc.addTransceiver(section.kind, { direction: section.direction });
      if (section.kind === "video") preferVp8(tx, section.direction);
      transform(o.side === "send" ? tx.sender : tx.receiver, o);
      if (o.side === "send") {
        if (o.media !== "audio") senders[o.media] = tx.sender;
      } else if (o.media === "video") videoStreams[o.slot] = new MediaStream([tx.receiver.track]);
      else slots[o.slot] = this.audioSlot(sink, tx.receiver.track, analyserOf);
    }

    const session: Session = {
      channelId,
      sink,
      pc,
      worker,
      mic,
      slots,
      senders,
      camera: null,
      screen: null,
      ctx,
      micAnalyser: analyserOf(mic),
      timer: setInterval(() => this.tick(), TICK_MS),
      unsubscribe: () => undefined,
      closed: false,
    };
    this.session = session;
    this.set({ videoStreams, pushToTalk: loadCallPrefs().pushToTalk, volumes: loadVolumes(this.deps.me()) });
    this.applyMic();
    worker.onmessage = (e: MessageEvent<FromWorker>) => this.fromWorker(e.data);
    pc.onconnectionstatechange = () => {
      if (session.closed) return;
      if (pc.connectionState === "connected") this.set({ phase: "connected" });
      // The SFU is gone or dropped us (no media for 10 s): join again.
      if (pc.connectionState === "failed") void this.rejoin(session);
    };

    let joined = false;
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      await gathered(pc, 1500);
      const res = await this.deps.client.joinVoice({ conversationId: channelId, offerSdp: pc.localDescription?.sdp ?? offer.sdp ?? "" });
      joined = true;
      if (session.closed) return;
      await pc.setRemoteDescription({ type: "answer", sdp: res.answerSdp });
    } catch (err) {
      if (session.closed) return;
      console.warn("voice: join failed", err);
      this.teardown(session);
      // In the room on the server, but with no media: out again at once (not after the SFU's 10 s).
      if (joined) void this.deps.client.leaveVoice({ conversationId: channelId }).catch(() => undefined);
      sessionStorage.removeItem(REMEMBER);
      // The server's reason, or (the browser refused the SFU's answer) that it could not connect.
      this.set({ phase: "failed", error: err instanceof ConnectError ? reasonOf(err) : "OFFER_INVALID" });
      return;
    }
    void ctx?.resume().catch(() => undefined);
    for (const s of slots) void s.audio.play().catch(() => undefined);
    this.set({ phase: pc.connectionState === "connected" ? "connected" : "connecting" });
    // Our key to whoever is in the room; then every change of who is in it.
    this.onParticipants();
    session.unsubscribe = this.deps.subscribe(() => this.onParticipants());
  }

  /** One receiving voice: its hidden <audio> on the chosen speaker, and its level's analyser. */
  private audioSlot(sink: HTMLElement, track: MediaStreamTrack, analyserOf: (track: MediaStreamTrack) => AnalyserNode | null): Slot {
    const audio = new Audio();
    audio.autoplay = true;
    audio.srcObject = new MediaStream([track]);
    audio.muted = this.state.deafened;
    sink.append(audio);
    const speaker = loadCallPrefs().speaker;
    const out = audio as HTMLAudioElement & { setSinkId?: (id: string) => Promise<void> };
    if (speaker && out.setSinkId) void out.setSinkId(speaker).catch(() => undefined);
    return { audio, analyser: analyserOf(track) };
  }

  private async rejoin(session: Session): Promise<void> {
    if (this.session !== session || session.closed) return;
    const { channelId, guildId } = this.state;
    if (!channelId || !guildId) return;
    const { muted, deafened } = this.state;
    // The camera and the shared screen go on into the new session as they are: a screen cannot
    // be asked for again without a click, and the camera would blink off and on.
    const video = liveVideo(session);
    await this.join(channelId, guildId);
    if (muted) this.setMuted(true);
    if (deafened) this.setDeafened(true);
    const next = this.session;
    for (const kind of ["camera", "screen"] as const) {
      const track = video[kind];
      if (!track) continue;
      // The join failed, or another began meanwhile: startVideo stops the track then.
      if (next && !next.closed) await this.startVideo(next, kind, track);
      else track.stop();
    }
  }

  /** Leaves the room (LeaveVoice, best effort) and stops the media. */
  async leave(): Promise<void> {
    const session = this.session;
    const channelId = this.state.channelId;
    this.attempt++;
    sessionStorage.removeItem(REMEMBER);
    if (session) this.teardown(session);
    this.set(IDLE);
    if (session && channelId) await this.deps.client.leaveVoice({ conversationId: channelId }).catch(() => undefined);
  }

  /** The page goes away: leave at once (the request may or may not make it out), but keep the
   * channel remembered so that a reload joins again. */
  pageHidden(): void {
    const session = this.session;
    const channelId = this.state.channelId;
    if (!session || !channelId) return;
    this.teardown(session);
    void this.deps.client.leaveVoice({ conversationId: channelId }).catch(() => undefined);
  }

  private teardown(session: Session): void {
    session.closed = true;
    if (this.session === session) this.session = null;
    clearInterval(session.timer);
    session.unsubscribe();
    session.pc.close();
    session.mic.stop();
    session.camera?.stop();
    session.screen?.stop();
    session.worker.terminate();
    for (const s of session.slots) {
      s.audio.pause();
      s.audio.srcObject = null;
    }
    session.sink.remove();
    void session.ctx?.close().catch(() => undefined);
    this.own?.key.fill(0);
    this.own = null;
    this.peers.clear();
    this.health.clear();
  }

  setMuted(muted: boolean): void {
    // Deafened, the microphone stays off: unmuting undeafens, as in Discord.
    const deafened = muted ? this.state.deafened : false;
    this.apply(muted, deafened);
  }

  /** Whether the microphone was muted before deafening (undeafening goes back to it). */
  private mutedBeforeDeafen = false;

  setDeafened(deafened: boolean): void {
    if (deafened === this.state.deafened) return;
    if (deafened) this.mutedBeforeDeafen = this.state.muted;
    this.apply(deafened ? true : this.mutedBeforeDeafen, deafened);
  }

  private apply(muted: boolean, deafened: boolean): void {
    const s = this.session;
    if (s) for (const slot of s.slots) slot.audio.muted = deafened;
    this.set({ muted, deafened });
    this.applyMic();
  }

  /** Whether our microphone is live: not muted, and with push-to-talk, the key held. */
  get micLive(): boolean {
    const { muted, pushToTalk, talking } = this.state;
    return !muted && (!pushToTalk || talking);
  }

  private applyMic(): void {
    // A muted track still sends (silent) frames: the SFU keeps us in the room.
    if (this.session) this.session.mic.enabled = this.micLive;
  }

  /** Push-to-talk: the key or button is held (true) or let go. */
  setTalking(talking: boolean): void {
    if (talking === this.state.talking) return;
    this.set({ talking });
    this.applyMic();
  }

  /** The push-to-talk setting changed in Settings: it applies in the room at once. */
  prefsChanged(): void {
    if (!this.session) return;
    this.set({ pushToTalk: loadCallPrefs().pushToTalk, talking: false });
    this.applyMic();
  }

  // ---- Camera and screen ----

  /** Turns our camera on (the camera chosen in the call settings) or off. */
  async setCamera(on: boolean): Promise<void> {
    const s = this.session;
    if (!s || on === (s.camera !== null)) return;
    if (!on) return this.stopVideo(s, "camera");
    const prefs = loadCallPrefs();
    let track: MediaStreamTrack | undefined;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 }, ...(prefs.camera ? { deviceId: { ideal: prefs.camera } } : {}) },
      });
      track = stream.getVideoTracks()[0];
      if (!track) throw new DOMException("no camera", "NotFoundError");
    } catch (err) {
      const name = (err as { name?: unknown } | null)?.name;
      if (this.session === s) this.set({ error: name === "NotFoundError" ? "NO_CAMERA" : "CAMERA_DENIED" });
      return;
    }
    await this.startVideo(s, "camera", track);
  }

  /** Shares a screen (or window, or tab: the browser asks which) or stops sharing. */
  async setSharing(on: boolean): Promise<void> {
    const s = this.session;
    if (!s || on === (s.screen !== null)) return;
    if (!on) return this.stopVideo(s, "screen");
    let track: MediaStreamTrack | undefined;
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      track = stream.getVideoTracks()[0];
    } catch (err) {
      // The person chose nothing: no error to show.
      console.info("voice: no screen shared", err);
      return;
    }
    if (!track) return;
    // Text stays sharp rather than smooth.
    track.contentHint = "detail";
    const shared = track;
    // The browser's own "Stop sharing" button (in whichever session the share is then: it
    // goes on into a new one after a rejoin).
    shared.addEventListener("ended", () => {
      const now = this.session;
      if (now?.screen === shared) void this.stopVideo(now, "screen");
    });
    await this.startVideo(s, "screen", shared);
  }

  private async startVideo(s: Session, kind: VideoKind, track: MediaStreamTrack): Promise<void> {
    const sender = s.senders[kind];
    // Left (or switched on twice) while the browser asked: this one is not needed.
    if (this.session !== s || s.closed || s[kind] || !sender) {
      track.stop();
      return;
    }
    s[kind] = track;
    this.set({ [kind]: new MediaStream([track]), ...(kind === "camera" ? { error: null } : {}) });
    // The section was negotiated at join: a track is attached, never renegotiated.
    await sender.replaceTrack(track).catch((err: unknown) => console.warn(`voice: ${kind} not sent`, err));
  }

  private async stopVideo(s: Session, kind: VideoKind): Promise<void> {
    const track = s[kind];
    if (!track) return;
    s[kind] = null;
    track.stop();
    if (this.session === s) this.set({ [kind]: null });
    if (!s.closed) await s.senders[kind]?.replaceTrack(null).catch(() => undefined);
  }

  // ---- Volume ----

  /** Sets a person's volume here (0..100), remembered for the signed-in account. */
  setVolume(accountId: string, percent: number): void {
    const volumes = { ...this.state.volumes, [accountId]: clampVolume(percent) };
    saveVolumes(this.deps.me(), volumes);
    this.set({ volumes });
    this.applyVolumes();
  }

  /** Each voice slot plays at the volume of whoever it carries now. */
  private applyVolumes(): void {
    const s = this.session;
    if (!s) return;
    const levels = slotVolumes(s.slots.length, this.slotKids, (kid) => this.peers.accountOf(kid), this.state.volumes);
    s.slots.forEach((slot, i) => {
      const v = levels[i] ?? 1;
      if (slot.audio.volume !== v) slot.audio.volume = v;
    });
  }

  // ---- Keys ----

  private keys<T>(fn: () => Promise<T>): Promise<T | undefined> {
    const next = this.keyChain.then(fn, fn).catch((err: unknown) => {
      console.warn("voice key not shared", err);
      return undefined;
    });
    this.keyChain = next;
    return next;
  }

  private post(m: ToWorker): void {
    this.session?.worker.postMessage(m);
  }

  /** The room's participants changed (or we just joined): share or rotate our key. */
  private onParticipants(): void {
    const session = this.session;
    if (!session || session.closed) return;
    const now = this.deps.participants(session.channelId);
    if (!now) return;
    const me = this.deps.me();
    const plan = planForChange(this.known, now, me);
    const left = this.known.filter((a) => !now.includes(a) && a !== me);
    this.known = [...now];
    this.health.participants(now, me, Date.now());
    if (left.length > 0) {
      for (const kid of this.peers.removeAccounts(left)) this.post({ type: "removePeer", kid });
      this.set({ peerKeys: this.peers.kids.length });
    }
    this.updateTroubles();
    // This runs on every change of the chat's state: only a change of who is in the room does
    // anything, and then those whose share failed before get our key again with the newcomers
    // (a rotation sends the new key to everyone anyway).
    if (plan.kind === "none") return;
    const retry = this.health.toRetry();
    void this.keys(async () => {
      if (session.closed || !this.own) return;
      if (plan.kind !== "rotate") {
        // The participants the plan was made for: `plan.to` (and `retry`) are among them.
        const to = [...new Set([...plan.to, ...retry])];
        await this.shareTo(session, now, to, this.own);
        return;
      }
      // Rotation: those who remain get the new key first, then it seals; the one who left
      // never gets it.
      const next = { kid: randomKid(new Set([this.own.kid, ...this.peers.kids])), key: randomBaseKey() };
      try {
        if (plan.to.length > 0) await this.shareTo(session, now, plan.to, next);
      } finally {
        if (!session.closed) {
          this.own?.key.fill(0);
          this.own = next;
          this.post({ type: "own", kid: next.kid, key: next.key.slice() });
          this.set({ ownKid: next.kid });
        }
      }
    });
  }

  /** A participant's device sent its key (chat.ts, from a to-device message). */
  onKey(taken: Extract<Taken, { kind: "voiceKey" }>): void {
    const session = this.session;
    if (!session || session.closed || taken.conversationId !== session.channelId || taken.key.length !== 16) {
      taken.key.fill(0);
      return;
    }
    const { accountId, deviceId } = taken.from;
    const added = this.peers.add({ kid: taken.kid, accountId, deviceId });
    if (added === "taken") {
      console.warn(`voice: key id ${taken.kid} is another device's; ignored`);
      taken.key.fill(0);
      return;
    }
    const fresh = added === "new";
    this.post({ type: "peer", kid: taken.kid, key: taken.key });
    this.set({ peerKeys: this.peers.kids.length });
    // A device with a key new to us may have reloaded and lost ours: it gets ours back, if it
    // is in the room (one that is not gets it when it appears there).
    const participants = this.deps.participants(session.channelId) ?? [];
    if (fresh && participants.includes(accountId) && accountId !== this.deps.me()) {
      void this.keys(async () => {
        if (session.closed || !this.own) return;
        await this.shareTo(session, participants, [accountId], this.own, [deviceId]);
      });
    }
    this.updateTroubles();
  }

  /**
   * Sends `key` to the devices of `to` (all, or `onlyDevices`) and notes, per person, whether it
   * went: one person's failure (their account key changed, the server refused) must not keep
   * the others from hearing us, and their tile says why they cannot. Never throws.
   */
  private async shareTo(session: Session, participants: string[], to: string[], key: { kid: number; key: Uint8Array }, onlyDevices?: readonly string[]): Promise<void> {
    if (to.length === 0) return;
    const share = (accounts: string[]) => this.deps.engine.shareVoiceKey(session.channelId, participants, accounts, key.kid, key.key, onlyDevices);
    const { sent, failed } = await shareToEach(to, share, () => session.closed);
    // Left meanwhile: the health is the next room's now.
    if (session.closed) return;
    for (const a of sent) this.health.shared(a);
    for (const [a, err] of failed) this.noteShareFailure(a, err);
    this.updateTroubles();
  }

  private noteShareFailure(accountId: string, err: unknown): void {
    console.warn(`voice key not shared with ${accountId}`, err);
    this.health.shareFailed(accountId, shareFailureReason(err, (e) => (e instanceof ConnectError ? reasonOf(e) : null)));
  }

  /** Sends our current key again to everyone in the room it did not reach (the Retry button). */
  retryKeys(): void {
    const session = this.session;
    if (!session || session.closed) return;
    const participants = this.deps.participants(session.channelId) ?? this.known;
    void this.keys(async () => {
      const to = this.health.toRetry();
      if (session.closed || !this.own || to.length === 0) return;
      await this.shareTo(session, participants, to, this.own);
    });
  }

  /** The tiles' warnings, from the failed shares and the keys held (and the clock). */
  private updateTroubles(): void {
    if (!this.session) return;
    const keyTrouble = this.health.troubles((a) => this.peers.hasAccount(a), Date.now());
    if (!sameTroubles(keyTrouble, this.state.keyTrouble)) this.set({ keyTrouble });
  }

  // ---- Levels and counts ----

  private fromWorker(m: FromWorker): void {
    if (m.type === "error") {
      console.warn("voice worker:", m.message);
      return;
    }
    const before = this.opened;
    this.opened = new Map(m.opened);
    this.slotKids = new Map(m.slots);
    this.videoSlots = new Map(m.videoSlots);
    const accountOf = (kid: number) => this.peers.accountOf(kid);
    const opened: Record<string, number> = {};
    const lastKid = { ...this.state.lastKid };
    for (const [kid, n] of this.opened) {
      const account = accountOf(kid);
      if (!account) continue;
      opened[account] = (opened[account] ?? 0) + n;
      if (n > (before.get(kid) ?? 0)) lastKid[account] = kid;
    }
    const videoOpened: Record<string, number> = {};
    for (const [kid, n] of m.videoOpened) {
      const account = accountOf(kid);
      if (account) videoOpened[account] = (videoOpened[account] ?? 0) + n;
    }
    const tiles = videoTiles(this.videoSlots, accountOf, Date.now(), this.deps.me());
    const videos = sameTiles(tiles, this.state.videos) ? this.state.videos : tiles;
    this.set({ opened, videoOpened, lastKid, videos, sealed: m.sealed, videoSealed: m.videoSealed, failed: m.failed });
    this.applyVolumes();
  }

  private readonly buf = new Float32Array(LEVEL_SAMPLES);

  private tick(): void {
    const s = this.session;
    if (!s) return;
    const now = Date.now();
    const me = this.deps.me();
    const levels = levelsByPerson(
      s.slots.map((slot) => (slot.analyser ? rms(slot.analyser, this.buf) : 0)),
      this.slotKids,
      (kid) => this.peers.accountOf(kid),
    );
    levels.set(me, s.micAnalyser && s.mic.enabled ? rms(s.micAnalyser, this.buf) : 0);
    const speaking: string[] = [];
    const peaks: Record<string, number> = {};
    for (const [account, level] of levels) {
      if (level > SPEAKING_LEVEL) this.speakingSince.set(account, now);
      if (now - (this.speakingSince.get(account) ?? -Infinity) < SPEAKING_HOLD_MS) speaking.push(account);
      const recent = (this.peaks.get(account) ?? []).filter(([at]) => now - at < PEAK_WINDOW_MS);
      recent.push([now, level]);
      this.peaks.set(account, recent);
      peaks[account] = Math.round(Math.max(...recent.map(([, l]) => l)) * 100);
    }
    speaking.sort();
    const same = speaking.length === this.state.speaking.length && speaking.every((a, i) => a === this.state.speaking[i]);
    const sameLevels = Object.keys(peaks).length === Object.keys(this.state.levels).length && Object.entries(peaks).every(([a, l]) => this.state.levels[a] === l);
    if (!same || !sameLevels) this.set({ speaking: same ? this.state.speaking : speaking, levels: peaks });
    // "No key from them yet" comes after a grace period: the clock decides, not an event.
    this.updateTroubles();
  }

  /** Stops everything (sign-out). */
  dispose(): void {
    if (this.session) void this.leave();
  }
}

/** Offers (and, the SFU answering in kind, uses) VP8 only on a video section. */
function preferVp8(tx: RTCRtpTransceiver, direction: "sendonly" | "recvonly"): void {
  const caps = direction === "sendonly" ? RTCRtpSender.getCapabilities("video") : RTCRtpReceiver.getCapabilities("video");
  const codecs = vp8Only(caps?.codecs ?? []);
  if (codecs.length === 0 || !("setCodecPreferences" in tx)) return;
  try {
    tx.setCodecPreferences(codecs);
  } catch (err) {
    // Left as the browser offers them: the SFU refuses the join, and the error says so.
    console.warn("voice: cannot restrict video to VP8", err);
  }
}

function sameTiles(a: readonly VideoTile[], b: readonly VideoTile[]): boolean {
  return a.length === b.length && a.every((t, i) => t.slot === b[i]?.slot && t.accountId === b[i]?.accountId && t.kind === b[i]?.kind);
}

/** Waits until ICE gathering completed, or `ms` (the SFU needs no candidate from us: it is
 * ICE-lite and answers the checks we send to its one address). */
function gathered(pc: RTCPeerConnection, ms: number): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, ms);
    pc.addEventListener("icegatheringstatechange", check);
  });
}
