// MediaView.tsx — a <video> element showing a MediaStream (remote ones with their sound, on the
// chosen speaker where the browser has setSinkId).
import { useEffect, useRef } from "react";

type SinkVideo = HTMLVideoElement & { setSinkId?: (id: string) => Promise<void> };

export function MediaView({
  stream,
  muted,
  sinkId = "",
  mirrored = false,
  label,
}: {
  stream: MediaStream;
  muted: boolean;
  sinkId?: string;
  mirrored?: boolean;
  label: string;
}) {
  const ref = useRef<SinkVideo>(null);
  useEffect(() => {
    const v = ref.current;
    if (!v || v.srcObject === stream) return;
    v.srcObject = stream;
    void v.play().catch(() => undefined);
  }, [stream]);
  useEffect(() => {
    const v = ref.current;
    if (v?.setSinkId && !muted) void v.setSinkId(sinkId).catch(() => undefined);
  }, [sinkId, muted, stream]);
  return (
    <video
      ref={ref}
      className={mirrored ? "mirrored" : undefined}
      autoPlay
      playsInline
      muted={muted}
      aria-label={label}
    />
  );
}
