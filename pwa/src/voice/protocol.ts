// protocol.ts — the messages between a voice room (voice.ts, main thread) and its SFrame worker
// (sframe.worker.ts). Keys cross as bytes the worker wipes once the crypto crate holds them.
import type { VideoKind, VideoSlotSeen } from "./media";

/** Which frames a transform handles: ours, sealed on the way out (our microphone, camera or
 * screen), or one receiving slot's (a voice, or a picture). */
export type TransformOptions =
  | { side: "send"; media: "audio" | VideoKind }
  | { side: "recv"; media: "audio" | "video"; slot: number };

export type ToWorker =
  | { type: "own"; kid: number; key: Uint8Array }
  | { type: "peer"; kid: number; key: Uint8Array }
  | { type: "removePeer"; kid: number }
  /** A browser without RTCRtpScriptTransform: the streams of createEncodedStreams. */
  | { type: "streams"; options: TransformOptions; readable: ReadableStream; writable: WritableStream };

export type FromWorker =
  | {
      type: "stats";
      /** Frames of ours sealed (audio and video), of them video, and dropped (no key yet). */
      sealed: number;
      videoSealed: number;
      sealFailed: number;
      /** Frames received that did not open (no key for their kid yet, or not genuine). */
      failed: number;
      /** Audio frames opened, by kid. */
      opened: Array<[number, number]>;
      /** The kid last opened on each receiving audio slot. */
      slots: Array<[number, number]>;
      /** Video frames opened, by kid. */
      videoOpened: Array<[number, number]>;
      /** What each receiving video slot last showed: whose kid, camera or screen, and when. */
      videoSlots: Array<[number, VideoSlotSeen]>;
    }
  | { type: "error"; message: string };
