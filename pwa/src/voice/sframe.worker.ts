// sframe.worker.ts — the encoded-frame transforms of a voice room: every audio and video frame this
// device sends is sealed with SFrame (RFC 9605) before it leaves, every frame received is opened
// before the decoder sees it. The SFrame itself is the crypto crate's (VoiceKeys, in its WASM); this
// worker only feeds it frames and keys. The main thread (room.ts) posts the keys; the worker
// reports how many frames it sealed and opened, per kid, and which kid arrives on which
// receiving slot (the SFU puts whoever is loudest into a slot, so a slot is nobody's for good);
// on a video slot, also whether it shows a camera or a screen (the frame's kind byte, media.ts).
//
// A video frame keeps its first bytes in the clear (clearBytes: the VP8 decoder reads its type
// and size there before anything is opened), authenticated with the rest. All our frames, audio
// and video, are sealed here under one VoiceKeys: its one frame counter never repeats under a key.
//
// Frames get here through RTCRtpScriptTransform (`rtctransform` events), or, in a browser with
// only the older API, as the streams of createEncodedStreams posted by the main thread.
// # Security
// A frame is never passed on unsealed: before the WASM and our key are ready, frames are dropped.
import init, { VoiceKeys } from "kitsulan-crypto";
import wasmUrl from "kitsulan-crypto/kitsulan_crypto_bg.wasm?url";
import { openVideoFrame, sealVideoFrame, type VideoKind, type VideoSlotSeen } from "./media";
import type { ToWorker, FromWorker, TransformOptions } from "./protocol";

interface EncodedFrame {
  data: ArrayBuffer;
  /** A video frame's: "key", "delta" or "empty" (audio frames have none). */
  type?: string;
}
interface Transformer {
  readable: ReadableStream<EncodedFrame>;
  writable: WritableStream<EncodedFrame>;
  options?: TransformOptions;
}
interface WorkerScope {
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  onrtctransform?: ((e: { transformer: Transformer }) => void) | null;
  postMessage(message: FromWorker): void;
}

const scope = self as unknown as WorkerScope;

let keys: VoiceKeys | null = null;
/** Keys posted before the WASM was ready, applied once it is. */
const pending: ToWorker[] = [];
let hasOwn = false;
let sealed = 0;
let videoSealed = 0;
let sealFailed = 0;
let failed = 0;
const opened = new Map<number, number>();
const slotKids = new Map<number, number>();
const videoOpened = new Map<number, number>();
const videoSlots = new Map<number, VideoSlotSeen>();

const ready = init({ module_or_path: wasmUrl }).then(() => {
  keys = new VoiceKeys();
  for (const m of pending.splice(0)) applyKey(m);
});
ready.catch((err: unknown) => scope.postMessage({ type: "error", message: String(err) }));

function applyKey(m: ToWorker): void {
  if (!keys) {
    pending.push(m);
    return;
  }
  switch (m.type) {
    case "own":
      keys.setOwn(m.kid, m.key);
      hasOwn = true;
      m.key.fill(0);
      return;
    case "peer":
      keys.setPeer(m.kid, m.key);
      m.key.fill(0);
      return;
    case "removePeer":
      keys.removePeer(m.kid);
      return;
    default:
      return;
  }
}

/** The frame's bytes as an ArrayBuffer of exactly their length. */
function bufferOf(bytes: Uint8Array): ArrayBuffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) return bytes.buffer;
  return bytes.slice().buffer;
}

/** Seals one of our frames: audio whole, video with its clear bytes and kind byte. */
function seal(k: VoiceKeys, frame: EncodedFrame, media: "audio" | VideoKind): Uint8Array {
  const bytes = new Uint8Array(frame.data);
  return media === "audio" ? k.seal(bytes) : sealVideoFrame(k, bytes, frame.type, media);
}

function sealing(media: "audio" | VideoKind): TransformStream<EncodedFrame, EncodedFrame> {
  return new TransformStream({
    transform(frame, controller) {
      if (!keys || !hasOwn) {
        sealFailed++;
        return;
      }
      try {
        frame.data = bufferOf(seal(keys, frame, media));
        sealed++;
        if (media !== "audio") videoSealed++;
        controller.enqueue(frame);
      } catch {
        sealFailed++;
      }
    },
  });
}

function count(map: Map<number, number>, kid: number): void {
  map.set(kid, (map.get(kid) ?? 0) + 1);
}

/** Opens one frame received on a voice slot. */
function openAudio(k: VoiceKeys, bytes: Uint8Array, slot: number): Uint8Array {
  const kid = VoiceKeys.kidOf(bytes);
  const out = k.open(bytes);
  count(opened, kid);
  slotKids.set(slot, kid);
  return out;
}

/** Opens one frame received on a video slot, and drops its kind byte for the decoder. */
function openVideo(k: VoiceKeys, bytes: Uint8Array, type: string | undefined, slot: number): Uint8Array {
  const { kid, kind, frame } = openVideoFrame(k, (b) => VoiceKeys.kidOf(b), bytes, type);
  count(videoOpened, kid);
  videoSlots.set(slot, { kid, kind, at: Date.now() });
  return frame;
}

function opening(media: "audio" | "video", slot: number): TransformStream<EncodedFrame, EncodedFrame> {
  return new TransformStream({
    transform(frame, controller) {
      if (!keys) {
        failed++;
        return;
      }
      const bytes = new Uint8Array(frame.data);
      try {
        const out = media === "audio" ? openAudio(keys, bytes, slot) : openVideo(keys, bytes, frame.type, slot);
        frame.data = bufferOf(out);
        controller.enqueue(frame);
      } catch {
        // An unknown kid (its key not here yet), a tampered frame, or one that is not SFrame.
        failed++;
      }
    },
  });
}

function attach(t: { readable: ReadableStream<EncodedFrame>; writable: WritableStream<EncodedFrame> }, options: TransformOptions): void {
  const stream = options.side === "send" ? sealing(options.media) : opening(options.media, options.slot);
  t.readable
    .pipeThrough(stream)
    .pipeTo(t.writable)
    .catch(() => undefined);
}

scope.onrtctransform = (e) => {
  const options = e.transformer.options;
  if (options) attach(e.transformer, options);
};

scope.onmessage = (e) => {
  const m = e.data;
  if (m.type === "streams") attach({ readable: m.readable as ReadableStream<EncodedFrame>, writable: m.writable as WritableStream<EncodedFrame> }, m.options);
  else applyKey(m);
};

setInterval(() => {
  scope.postMessage({
    type: "stats",
    sealed,
    videoSealed,
    sealFailed,
    failed,
    opened: [...opened],
    slots: [...slotKids],
    videoOpened: [...videoOpened],
    videoSlots: [...videoSlots],
  });
}, 250);
