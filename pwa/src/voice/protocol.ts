// protocol.ts — the messages between a voice room (room.ts, main thread) and its SFrame worker
// (sframe.worker.ts). Keys cross as bytes the worker wipes once the crypto crate holds them.

/** Which frames a transform handles: ours, sealed on the way out, or one receiving slot's. */
export type TransformOptions = { side: "send" } | { side: "recv"; slot: number };

export type ToWorker =
  | { type: "own"; kid: number; key: Uint8Array }
  | { type: "peer"; kid: number; key: Uint8Array }
  | { type: "removePeer"; kid: number }
  /** A browser without RTCRtpScriptTransform: the streams of createEncodedStreams. */
  | { type: "streams"; options: TransformOptions; readable: ReadableStream; writable: WritableStream };

export type FromWorker =
  | {
      type: "stats";
      /** Frames of ours sealed, and dropped (no key yet). */
      sealed: number;
      sealFailed: number;
      /** Frames received that did not open (no key for their kid yet, or not genuine). */
      failed: number;
      /** Frames opened, by kid. */
      opened: Array<[number, number]>;
      /** The kid last opened on each receiving slot. */
      slots: Array<[number, number]>;
    }
  | { type: "error"; message: string };
