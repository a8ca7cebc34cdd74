// stats.ts — one moment of a connection's statistics, read from RTCPeerConnection.getStats()
// for the call view's statistics panel.

/** One moment of a connection's statistics (RTCPeerConnection.getStats). */
export interface PeerStats {
  timestampMs: number;
  framesDecoded: number;
  videoBytesReceived: number;
  frameWidth: number;
  frameHeight: number;
  audioPacketsReceived: number;
  videoBytesSent: number;
  /** Candidate types of the selected pair, e.g. "relay" / "host". */
  localCandidate: string;
  remoteCandidate: string;
  rttMs: number | null;
}

/** Sums up a stats report: video and audio received, video sent, the selected candidate pair. */
export function readStats(report: RTCStatsReport, nowMs: number): PeerStats {
  const out: PeerStats = {
    timestampMs: nowMs,
    framesDecoded: 0,
    videoBytesReceived: 0,
    frameWidth: 0,
    frameHeight: 0,
    audioPacketsReceived: 0,
    videoBytesSent: 0,
    localCandidate: "",
    remoteCandidate: "",
    rttMs: null,
  };
  let pairId = "";
  const byId = new Map<string, Record<string, unknown>>();
  report.forEach((s: Record<string, unknown>) => {
    byId.set(String(s.id), s);
    const num = (k: string) => (typeof s[k] === "number" ? (s[k] as number) : 0);
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.framesDecoded += num("framesDecoded");
      out.videoBytesReceived += num("bytesReceived");
      out.frameWidth = Math.max(out.frameWidth, num("frameWidth"));
      out.frameHeight = Math.max(out.frameHeight, num("frameHeight"));
    } else if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.audioPacketsReceived += num("packetsReceived");
    } else if (s.type === "outbound-rtp" && s.kind === "video") {
      out.videoBytesSent += num("bytesSent");
    } else if (s.type === "transport" && typeof s.selectedCandidatePairId === "string") {
      pairId = s.selectedCandidatePairId;
    }
  });
  const pair = byId.get(pairId);
  if (pair) {
    out.localCandidate = String(byId.get(String(pair.localCandidateId))?.candidateType ?? "");
    out.remoteCandidate = String(byId.get(String(pair.remoteCandidateId))?.candidateType ?? "");
    if (typeof pair.currentRoundTripTime === "number") out.rttMs = Math.round(pair.currentRoundTripTime * 1000);
  }
  return out;
}
