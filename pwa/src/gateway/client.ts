// client.ts — the real-time gateway (GET /v1/gateway, binary protobuf frames; docs/gateway.md).
// Connects with Hello{token, resume}, processes events strictly in order, acknowledges each
// (cumulatively) only after the handler finished, heartbeats, and reconnects with backoff,
// resuming where the last connection stopped. Duplicates after a reconnect are the handler's to
// drop (by message id); the gateway only guarantees order and at-least-once. A connection that
// is silently dead (the browser went offline, a Wi-Fi that dropped: the socket may stay "open"
// for minutes) is noticed by the browser's `offline` event and by heartbeats that go unanswered
// for two intervals; it is then closed, shown as offline and reconnected.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ClientFrameSchema,
  ServerFrameSchema,
  type CallSignal,
  type ClientFrame,
  type Event,
  type GatewayError,
  type Ready,
} from "../gen/kitsulan/v1/gateway_pb";

export type GatewayStatus = "connecting" | "online" | "offline";

export interface GatewayOptions {
  url: string;
  token: () => Promise<string | null>;
  onEvent: (event: Event) => Promise<void>;
  onStatus: (status: GatewayStatus) => void;
  /** A connection was accepted (its Ready: who among our contacts is online, …). */
  onReady?: (ready: Ready) => void;
  /** The device was signed out or revoked (close 4003): stop for good. */
  onSignedOut: () => void;
  /** A frame we sent was refused without closing the connection (e.g. a call signal). */
  onError?: (error: GatewayError) => void;
}

const MAX_BACKOFF_MS = 15_000;

export class Gateway {
  private ws: WebSocket | null = null;
  private stopped = false;
  private attempt = 0;
  private sessionId = "";
  private processed = 0n;
  private acked = 0n;
  private queue: Promise<void> = Promise.resolve();
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private nonce = 0n;
  /** When the current socket last received a frame (ms). */
  private lastFrameAt = 0;

  constructor(private readonly opts: GatewayOptions) {}

  start(): void {
    this.stopped = false;
    window.addEventListener("online", this.reconnectNow);
    window.addEventListener("offline", this.wentOffline);
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    window.removeEventListener("online", this.reconnectNow);
    window.removeEventListener("offline", this.wentOffline);
    clearTimeout(this.retry);
    clearInterval(this.heartbeat);
    this.ws?.close(1000);
    this.ws = null;
  }

  /** Tells the conversation's members we are typing (or stopped). Live only; dropped offline. */
  typing(conversationId: string, typing: boolean): void {
    this.send(create(ClientFrameSchema, { frame: { case: "typing", value: { conversationId, typing } } }));
  }

  /** Sends a call signal (live only). Returns false when offline: it was not sent. */
  call(signal: CallSignal): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.send(create(ClientFrameSchema, { frame: { case: "call", value: signal } }));
    return true;
  }

  private reconnectNow = (): void => {
    if (this.stopped || (this.ws && this.ws.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.retry);
    this.attempt = 0;
    void this.connect();
  };

  /** The browser says the network is gone: the socket is dead even if it still looks open. */
  private wentOffline = (): void => {
    if (this.stopped) return;
    this.dropConnection();
  };

  /** Closes the current socket as dead: offline now, a reconnect scheduled. */
  private dropConnection(): void {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    clearInterval(this.heartbeat);
    ws.onclose = null;
    ws.close(4000);
    this.opts.onStatus("offline");
    this.scheduleReconnect();
  }

  private send(frame: ClientFrame): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(toBinary(ClientFrameSchema, frame));
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.opts.onStatus("connecting");
    let token: string | null;
    try {
      token = await this.opts.token();
    } catch {
      this.scheduleReconnect();
      return;
    }
    if (!token || this.stopped) return;
    const ws = new WebSocket(this.opts.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      const resume = this.sessionId ? { sessionId: this.sessionId, seq: this.processed } : undefined;
      this.send(
        create(ClientFrameSchema, {
          frame: { case: "hello", value: { accessToken: token, ...(resume ? { resume } : {}) } },
        }),
      );
    };
    ws.onmessage = (msg) => {
      if (ws !== this.ws || !(msg.data instanceof ArrayBuffer)) return;
      this.lastFrameAt = Date.now();
      this.onFrame(ws, new Uint8Array(msg.data));
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      clearInterval(this.heartbeat);
      this.ws = null;
      if (ev.code === 4003) {
        this.stopped = true;
        this.opts.onStatus("offline");
        this.opts.onSignedOut();
        return;
      }
      this.opts.onStatus("offline");
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt += 1;
    this.retry = setTimeout(() => void this.connect(), delay);
  }

  private onFrame(ws: WebSocket, bytes: Uint8Array): void {
    let frame;
    try {
      frame = fromBinary(ServerFrameSchema, bytes);
    } catch {
      return;
    }
    switch (frame.frame.case) {
      case "ready": {
        const ready = frame.frame.value;
        this.sessionId = ready.sessionId;
        this.processed = 0n;
        this.acked = 0n;
        this.attempt = 0;
        this.queue = Promise.resolve();
        this.opts.onStatus("online");
        this.opts.onReady?.(ready);
        const every = Math.max(1000, Math.floor((ready.heartbeatIntervalMs || 15_000) / 2));
        clearInterval(this.heartbeat);
        this.lastFrameAt = Date.now();
        this.heartbeat = setInterval(() => {
          // Nothing heard (not even a heartbeat ack) for two intervals: the connection is dead.
          if (Date.now() - this.lastFrameAt > 2 * every + 1000) {
            this.dropConnection();
            return;
          }
          this.nonce += 1n;
          this.send(create(ClientFrameSchema, { frame: { case: "heartbeat", value: { nonce: this.nonce } } }));
        }, every);
        break;
      }
      case "event": {
        const event = frame.frame.value;
        this.queue = this.queue.then(async () => {
          if (ws !== this.ws) return;
          try {
            await this.opts.onEvent(event);
          } catch (err) {
            console.warn("gateway event handler failed", err);
          }
          if (ws !== this.ws) return;
          this.processed = event.seq;
          if (this.processed > this.acked) {
            this.acked = this.processed;
            this.send(create(ClientFrameSchema, { frame: { case: "ack", value: { seq: this.processed } } }));
          }
        });
        break;
      }
      case "error":
        if (frame.frame.value.fatal) console.warn("gateway:", frame.frame.value.reason);
        else this.opts.onError?.(frame.frame.value);
        break;
      default:
        break;
    }
  }
}
