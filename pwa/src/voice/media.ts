// media.ts — the pure rules of a voice room's media, beside voice.ts (which wires them) and
// sframe.worker.ts (which seals with them): the fixed layout of the join offer, VP8 only on
// video, how much of a video frame stays in the clear for the decoder and which kind of picture
// it is, which person each receiving slot shows now, and each person's volume.

import type { TransformOptions } from "./protocol";

/** Receiving audio sections offered: the SFU forwards up to this many voices at once. */
export const SLOTS = 6;
/** Receiving video sections offered: the SFU forwards up to this many cameras and screens. */
export const VIDEO_SLOTS = 4;

/** One m-section of the join offer, and what the worker does with its frames. */
export interface Section {
  kind: "audio" | "video";
  direction: "sendonly" | "recvonly";
  options: TransformOptions;
}

/**
 * The join offer's sections, in order (a contract with the SFU, never renegotiated): our
 * microphone; SLOTS voices; our camera and our screen (their transceivers made at join with no
 * track, a track attached later with replaceTrack); VIDEO_SLOTS pictures.
 */
export function offerLayout(): Section[] {
  const sections: Section[] = [{ kind: "audio", direction: "sendonly", options: { side: "send", media: "audio" } }];
  for (let slot = 0; slot < SLOTS; slot++) sections.push({ kind: "audio", direction: "recvonly", options: { side: "recv", media: "audio", slot } });
  sections.push({ kind: "video", direction: "sendonly", options: { side: "send", media: "camera" } });
  sections.push({ kind: "video", direction: "sendonly", options: { side: "send", media: "screen" } });
  for (let slot = 0; slot < VIDEO_SLOTS; slot++) sections.push({ kind: "video", direction: "recvonly", options: { side: "recv", media: "video", slot } });
  return sections;
}

/** The VP8 codecs among a browser's capabilities, and nothing else (no RTX, RED or FEC): the SFU
 * answers VP8 only, and reads nothing else. */
export function vp8Only<C extends { mimeType: string }>(codecs: readonly C[]): C[] {
  return codecs.filter((c) => c.mimeType.toLowerCase() === "video/vp8");
}

/**
 * How many bytes at the start of a VP8 frame stay in the clear (authenticated as SFrame
 * metadata): the receiver's depacketizer reads the frame's type and, on a key frame, its size
 * there (RFC 6386 9.1: a 3-byte tag, and 7 more bytes on a key frame). A frame shorter than that
 * keeps all of its bytes in the clear, and is still sealed (VP8 never makes one).
 */
export function clearBytes(type: string | undefined, length: number): number {
  return Math.min(type === "key" ? 10 : 3, length);
}

/** What a video frame shows, in its first plaintext byte: receivers label a slot by it. */
export type VideoKind = "camera" | "screen";
const KIND_BYTE: Record<VideoKind, number> = { camera: 0, screen: 1 };

/** The plaintext sealed for a video frame: its clear bytes, the kind byte, then the rest. */
export function withKind(frame: Uint8Array, clear: number, kind: VideoKind): Uint8Array {
  const out = new Uint8Array(frame.length + 1);
  out.set(frame.subarray(0, clear));
  out[clear] = KIND_BYTE[kind];
  out.set(frame.subarray(clear), clear + 1);
  return out;
}

/** The inverse of withKind on an opened frame: its kind and the frame for the decoder; null
 * when it has no kind byte or an unknown one. */
export function withoutKind(opened: Uint8Array, clear: number): { kind: VideoKind; frame: Uint8Array } | null {
  if (opened.length <= clear) return null;
  const byte = opened[clear];
  const kind = byte === KIND_BYTE.camera ? "camera" : byte === KIND_BYTE.screen ? "screen" : null;
  if (!kind) return null;
  const frame = new Uint8Array(opened.length - 1);
  frame.set(opened.subarray(0, clear));
  frame.set(opened.subarray(clear + 1), clear);
  return { kind, frame };
}

/** The SFrame operations a video frame needs (the crypto crate's VoiceKeys). */
export interface VideoSealer {
  sealWith(frame: Uint8Array, clear: number): Uint8Array;
}
export interface VideoOpener {
  openWith(frame: Uint8Array, clear: number): Uint8Array;
}

/** Seals one of our video frames of type `type` ("key", "delta"…): its clear bytes stay first
 * (authenticated), then the SFrame of the kind byte and the rest. */
export function sealVideoFrame(keys: VideoSealer, frame: Uint8Array, type: string | undefined, kind: VideoKind): Uint8Array {
  const clear = clearBytes(type, frame.length);
  return keys.sealWith(withKind(frame, clear, kind), clear);
}

/** The most an SFrame adds to its plaintext: a 17-byte header and a 10-byte tag. */
const SFRAME_MAX_OVERHEAD = 27;

/**
 * Opens a video frame received as `type` (the receiver's depacketizer reads it from the clear
 * bytes, as the sender's encoder set it): the sender's kid, the kind of picture, and the frame
 * for the decoder. Throws when it does not open (no key for the kid, not genuine, no kind).
 */
export function openVideoFrame(
  keys: VideoOpener,
  kidOf: (sframe: Uint8Array) => number,
  sealed: Uint8Array,
  type: string | undefined,
): { kid: number; kind: VideoKind; frame: Uint8Array } {
  const clear = clearBytes(type, sealed.length);
  try {
    return openKeeping(keys, kidOf, sealed, clear);
  } catch (err) {
    // A frame shorter than its clear bytes was sealed with fewer in the clear (clearBytes), which
    // only a small sealed frame can be: then each shorter clear length is tried.
    if (sealed.length > clear + 1 + SFRAME_MAX_OVERHEAD) throw err;
    for (let shorter = clear - 1; shorter >= 0; shorter--) {
      try {
        return openKeeping(keys, kidOf, sealed, shorter);
      } catch {
        // not this one
      }
    }
    throw err;
  }
}

function openKeeping(keys: VideoOpener, kidOf: (sframe: Uint8Array) => number, sealed: Uint8Array, clear: number) {
  const kid = kidOf(sealed.subarray(clear));
  const framed = withoutKind(keys.openWith(sealed, clear), clear);
  if (!framed) throw new Error("a video frame without its kind byte");
  return { kid, ...framed };
}

/** What the worker last opened on a receiving video slot. */
export interface VideoSlotSeen {
  kid: number;
  kind: VideoKind;
  /** When (Date.now()) its last frame opened. */
  at: number;
}

/** A video slot showing someone now. */
export interface VideoTile {
  slot: number;
  accountId: string;
  kind: VideoKind;
}

/** A slot whose frames stopped this long ago shows nobody (the camera went off, the share
 * stopped, the SFU moved the stream to another slot). A still screen is still sent now and
 * then: the encoder repeats its last frame. */
export const VIDEO_STALE_MS = 3000;

/**
 * The video slots showing someone at `now`: a recent frame of a kid whose person we know (and
 * not `me`). When one person's camera (or screen) is on two slots (the SFU moved it), the slot
 * with the latest frame shows it. Ordered by person, cameras first.
 */
export function videoTiles(
  slots: ReadonlyMap<number, VideoSlotSeen>,
  accountOf: (kid: number) => string | undefined,
  now: number,
  me?: string,
): VideoTile[] {
  const best = new Map<string, VideoTile & { at: number }>();
  for (const [slot, seen] of slots) {
    if (now - seen.at > VIDEO_STALE_MS) continue;
    const accountId = accountOf(seen.kid);
    if (!accountId || accountId === me) continue;
    const key = `${accountId}\u0000${seen.kind}`;
    const before = best.get(key);
    if (!before || seen.at > before.at) best.set(key, { slot, accountId, kind: seen.kind, at: seen.at });
  }
  return [...best.values()]
    .map(({ slot, accountId, kind }) => ({ slot, accountId, kind }))
    .sort((a, b) => (a.accountId === b.accountId ? (a.kind === "camera" ? -1 : 1) : a.accountId < b.accountId ? -1 : 1));
}

/**
 * Takes the camera and screen tracks still live out of a session that is being replaced (an
 * automatic rejoin), so that its teardown does not stop them and the new session sends them
 * again; an ended one (the person stopped it meanwhile) is left behind.
 */
export function liveVideo<T extends { readyState: string }>(session: Record<VideoKind, T | null>): Partial<Record<VideoKind, T>> {
  const out: Partial<Record<VideoKind, T>> = {};
  for (const kind of ["camera", "screen"] as const) {
    const track = session[kind];
    if (track?.readyState !== "live") continue;
    out[kind] = track;
    session[kind] = null;
  }
  return out;
}

// ---- Volume ----

/** A person's volume, in percent of the sound as it comes: 0 (silent) to 100. */
export const VOLUME_DEFAULT = 100;

export function clampVolume(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? Math.round(Math.min(100, Math.max(0, v))) : VOLUME_DEFAULT;
}

/**
 * The volume (0..1, for HTMLMediaElement.volume) of each of `count` audio slots: that of the
 * person whose kid the slot carries now. A slot of nobody yet plays at the default.
 */
export function slotVolumes(
  count: number,
  slotKids: ReadonlyMap<number, number>,
  accountOf: (kid: number) => string | undefined,
  volumes: Readonly<Record<string, number>>,
): number[] {
  return Array.from({ length: count }, (_, slot) => {
    const kid = slotKids.get(slot);
    const account = kid === undefined ? undefined : accountOf(kid);
    const percent = account === undefined ? VOLUME_DEFAULT : (volumes[account] ?? VOLUME_DEFAULT);
    return clampVolume(percent) / 100;
  });
}

const VOLUMES = "kitsulan.voice.volume.";

/** The volumes set by the signed-in account `me`, by person (only those not at the default). */
export function loadVolumes(me: string, storage: Pick<Storage, "getItem"> = localStorage): Record<string, number> {
  try {
    const saved: unknown = JSON.parse(storage.getItem(VOLUMES + me) ?? "{}");
    if (!saved || typeof saved !== "object" || Array.isArray(saved)) return {};
    const out: Record<string, number> = {};
    for (const [account, v] of Object.entries(saved)) if (typeof v === "number") out[account] = clampVolume(v);
    return out;
  } catch {
    return {};
  }
}

/** Remembers `volumes` for `me`; a person back at the default is not kept. */
export function saveVolumes(me: string, volumes: Readonly<Record<string, number>>, storage: Pick<Storage, "setItem"> = localStorage): void {
  const kept = Object.fromEntries(Object.entries(volumes).filter(([, v]) => clampVolume(v) !== VOLUME_DEFAULT));
  storage.setItem(VOLUMES + me, JSON.stringify(kept));
}
