// stats.test.ts — readStats sums a getStats() report the way the statistics panel shows it.
import { describe, expect, it } from "vitest";
import { readStats } from "./stats";

function report(entries: Array<Record<string, unknown>>): RTCStatsReport {
  return new Map(entries.map((e) => [String(e.id), e])) as unknown as RTCStatsReport;
}

describe("readStats", () => {
  it("sums video and audio received, video sent, and names the selected candidate pair", () => {
    const stats = readStats(
      report([
        { id: "v1", type: "inbound-rtp", kind: "video", framesDecoded: 10, bytesReceived: 1000, frameWidth: 320, frameHeight: 240 },
        { id: "v2", type: "inbound-rtp", kind: "video", framesDecoded: 5, bytesReceived: 500, frameWidth: 640, frameHeight: 480 },
        { id: "a1", type: "inbound-rtp", kind: "audio", packetsReceived: 50 },
        { id: "o1", type: "outbound-rtp", kind: "video", bytesSent: 2000 },
        { id: "o2", type: "outbound-rtp", kind: "audio", bytesSent: 999 },
        { id: "t", type: "transport", selectedCandidatePairId: "p" },
        { id: "p", type: "candidate-pair", localCandidateId: "l", remoteCandidateId: "r", currentRoundTripTime: 0.0125 },
        { id: "l", type: "local-candidate", candidateType: "relay" },
        { id: "r", type: "remote-candidate", candidateType: "host" },
      ]),
      1234,
    );
    expect(stats).toEqual({
      timestampMs: 1234,
      framesDecoded: 15,
      videoBytesReceived: 1500,
      frameWidth: 640,
      frameHeight: 480,
      audioPacketsReceived: 50,
      videoBytesSent: 2000,
      localCandidate: "relay",
      remoteCandidate: "host",
      rttMs: 13,
    });
  });

  it("without a selected pair: no candidates and no round trip", () => {
    const stats = readStats(report([{ id: "a1", type: "inbound-rtp", kind: "audio", packetsReceived: "x" }]), 1);
    expect(stats).toMatchObject({ audioPacketsReceived: 0, localCandidate: "", remoteCandidate: "", rttMs: null });
  });
});
