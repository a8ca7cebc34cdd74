// QrScanner.tsx — reads QR codes from the camera (the rear one on phones). Frames are decoded by
// the browser's Shape Detection API (BarcodeDetector: Chrome on Android and macOS) where it reads
// QR codes, and elsewhere (desktop Linux and Windows browsers, Firefox, Safari) by jsQR, loaded
// only then. The camera needs a secure context; callers offer typing or pasting instead when
// `canScanQr()` is false or the camera is refused (`onError`).
import { useEffect, useRef } from "react";

interface DetectedBarcode {
  rawValue: string;
}
interface BarcodeDetectorLike {
  detect(source: HTMLVideoElement): Promise<DetectedBarcode[]>;
}
interface BarcodeDetectorCtor {
  new (options: { formats: string[] }): BarcodeDetectorLike;
  getSupportedFormats?: () => Promise<string[]>;
}

/** Reads the QR codes in the current frame of `video`. */
type Reader = (video: HTMLVideoElement) => Promise<string[]>;

/** Whether this browser can scan QR codes with a camera (a camera API: a secure context). */
export function canScanQr(): boolean {
  return typeof navigator.mediaDevices?.getUserMedia === "function";
}

async function nativeReader(): Promise<Reader | null> {
  const Ctor = (window as unknown as { BarcodeDetector?: BarcodeDetectorCtor }).BarcodeDetector;
  if (!Ctor) return null;
  try {
    const formats = (await Ctor.getSupportedFormats?.()) ?? ["qr_code"];
    if (!formats.includes("qr_code")) return null;
    const detector = new Ctor({ formats: ["qr_code"] });
    return async (video) => (await detector.detect(video)).map((b) => b.rawValue);
  } catch {
    return null;
  }
}

/** jsQR on a downscaled copy of the frame (a QR filling part of a 640 px frame reads well). */
async function jsqrReader(): Promise<Reader> {
  const { default: jsQR } = await import("jsqr");
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  return (video) => {
    const scale = Math.min(1, 640 / Math.max(video.videoWidth, video.videoHeight, 1));
    const w = Math.max(1, Math.round(video.videoWidth * scale));
    const h = Math.max(1, Math.round(video.videoHeight * scale));
    if (!ctx || video.videoWidth === 0) return Promise.resolve([]);
    canvas.width = w;
    canvas.height = h;
    ctx.drawImage(video, 0, 0, w, h);
    const found = jsQR(ctx.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: "attemptBoth" });
    return Promise.resolve(found ? [found.data] : []);
  };
}

export function QrScanner({
  label,
  accept,
  onText,
  onRejected,
  onError,
}: {
  label: string;
  /** Whether a code is the one wanted; scanning stops at the first accepted code. */
  accept: (text: string) => boolean;
  onText: (text: string) => void;
  /** A code was read that `accept` refused (once per distinct code); scanning goes on. */
  onRejected?: (text: string) => void;
  onError: (err: unknown) => void;
}) {
  const video = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    if (!canScanQr()) {
      onError(new DOMException("no camera API in this context", "NotSupportedError"));
      return;
    }
    let stream: MediaStream | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    let reader: Reader | null = null;
    let lastRejected = "";
    const tick = async () => {
      const el = video.current;
      if (stopped || !el || !reader) return;
      try {
        const found = el.readyState >= 2 ? await reader(el) : [];
        const hit = found.find(accept);
        if (hit !== undefined && !stopped) {
          stopped = true;
          onText(hit);
          return;
        }
        const other = found[0];
        if (other !== undefined && other !== lastRejected && !stopped) {
          lastRejected = other;
          onRejected?.(other);
        }
      } catch {
        // a frame that could not be read: try the next one
      }
      timer = setTimeout(() => void tick(), 200);
    };
    void (async () => {
      try {
        reader = (await nativeReader()) ?? (await jsqrReader());
        const s = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
        stream = s;
        if (stopped || !video.current) {
          for (const track of s.getTracks()) track.stop();
          return;
        }
        video.current.srcObject = s;
        void video.current.play().catch(() => undefined);
        void tick();
      } catch (err) {
        if (!stopped) onError(err);
      }
    })();
    return () => {
      stopped = true;
      clearTimeout(timer);
      for (const track of stream?.getTracks() ?? []) track.stop();
    };
  }, [accept, onText, onRejected, onError]);
  return <video ref={video} className="scanner" aria-label={label} muted playsInline />;
}
