// QrScanner.tsx — reads a pairing QR code with the camera where the browser has the Shape
// Detection API (BarcodeDetector, e.g. Chrome on Android and macOS); elsewhere the PIN is typed.
import { useEffect, useRef } from "react";

interface DetectedBarcode {
  rawValue: string;
}
interface BarcodeDetectorLike {
  detect(source: HTMLVideoElement): Promise<DetectedBarcode[]>;
}
type BarcodeDetectorCtor = new (options: { formats: string[] }) => BarcodeDetectorLike;

function detectorClass(): BarcodeDetectorCtor | null {
  const ctor = (window as unknown as { BarcodeDetector?: BarcodeDetectorCtor }).BarcodeDetector;
  return ctor && typeof navigator.mediaDevices?.getUserMedia === "function" ? ctor : null;
}

/** Whether this browser can scan QR codes with a camera. */
export function canScanQr(): boolean {
  return detectorClass() !== null;
}

export function QrScanner({
  label,
  onText,
  onError,
}: {
  label: string;
  onText: (text: string) => void;
  onError: (err: unknown) => void;
}) {
  const video = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    const Detector = detectorClass();
    if (!Detector) return;
    let stream: MediaStream | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const detector = new Detector({ formats: ["qr_code"] });
    const tick = async () => {
      const el = video.current;
      if (stopped || !el) return;
      try {
        const found = el.readyState >= 2 ? await detector.detect(el) : [];
        const hit = found.find((b) => b.rawValue.startsWith("KITSULAN-PAIR:"));
        if (hit && !stopped) {
          stopped = true;
          onText(hit.rawValue);
          return;
        }
      } catch {
        // a frame that could not be read: try the next one
      }
      timer = setTimeout(() => void tick(), 250);
    };
    navigator.mediaDevices
      .getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then((s) => {
        stream = s;
        if (stopped || !video.current) return;
        video.current.srcObject = s;
        void video.current.play().catch(() => undefined);
        void tick();
      })
      .catch(onError);
    return () => {
      stopped = true;
      clearTimeout(timer);
      for (const track of stream?.getTracks() ?? []) track.stop();
    };
  }, [onText, onError]);
  return <video ref={video} className="scanner" aria-label={label} muted playsInline />;
}
