// sframe.worker.ts — the encoded-frame transforms of a voice room: every audio frame this device
// sends is sealed with SFrame (RFC 9605) before it leaves, every frame received is opened before
// the decoder sees it. The SFrame itself is the crypto crate's (VoiceKeys, in its WASM); this
// worker only feeds it frames and keys. The main thread (room.ts) posts the keys; the worker
// reports how many frames it sealed and opened, per kid, and which kid arrives on which
// receiving slot (the SFU puts whoever is loudest into a slot, so a slot is nobody's for good).
//
// Frames get here through RTCRtpScriptTransform (`rtctransform` events), or, in a browser with
// only the older API, as the streams of createEncodedStreams posted by the main thread.
// # Security
// A frame is never passed on unsealed: before the WASM and our key are ready, frames are dropped.
import init, { VoiceKeys } from "kitsulan-crypto";
import wasmUrl from "kitsulan-crypto/kitsulan_crypto_bg.wasm?url";
import type { ToWorker, FromWorker, TransformOptions } from "./protocol";

interface EncodedFrame {
  data: ArrayBuffer;
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
let sealFailed = 0;
let failed = 0;
const opened = new Map<number, number>();
const slotKids = new Map<number, number>();

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

function sealing(): TransformStream<EncodedFrame, EncodedFrame> {
  return new TransformStream({
    transform(frame, controller) {
      if (!keys || !hasOwn) {
        sealFailed++;
        return;
      }
      try {
        frame.data = bufferOf(keys.seal(new Uint8Array(frame.data)));
        sealed++;
        controller.enqueue(frame);
      } catch {
        sealFailed++;
      }
    },
  });
}

function opening(slot: number): TransformStream<EncodedFrame, EncodedFrame> {
  return new TransformStream({
    transform(frame, controller) {
      if (!keys) {
        failed++;
        return;
      }
      const bytes = new Uint8Array(frame.data);
      try {
        const kid = VoiceKeys.kidOf(bytes);
        frame.data = bufferOf(keys.open(bytes));
        opened.set(kid, (opened.get(kid) ?? 0) + 1);
        slotKids.set(slot, kid);
        controller.enqueue(frame);
      } catch {
        // An unknown kid (its key not here yet), a tampered frame, or one that is not SFrame.
        failed++;
      }
    },
  });
}

function attach(t: { readable: ReadableStream<EncodedFrame>; writable: WritableStream<EncodedFrame> }, options: TransformOptions): void {
  const stream = options.side === "send" ? sealing() : opening(options.slot);
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
  scope.postMessage({ type: "stats", sealed, sealFailed, failed, opened: [...opened], slots: [...slotKids] });
}, 250);
