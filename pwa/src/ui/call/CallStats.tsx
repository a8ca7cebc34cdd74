// CallStats.tsx — the "call statistics" panel: per connection, how media flows (frames decoded,
// bitrates, resolution, audio packets, round trip) and whether it goes through the relay. Read
// from RTCPeerConnection.getStats() once a second while the panel is open.
import { useEffect, useRef, useState } from "react";
import type { Calls, PeerStats } from "../../calls/calls";
import { useI18n } from "../../i18n/i18n";
import type { Chat } from "../../state/chat";
import { personName } from "../names";
import { useCalls } from "./useCalls";

interface Sample {
  now: PeerStats;
  inKbps: number;
  outKbps: number;
}

function kbps(bytes: number, before: number, ms: number): number {
  return ms > 0 ? Math.max(0, Math.round(((bytes - before) * 8) / ms)) : 0;
}

export function CallStats({ chat, calls }: { chat: Chat; calls: Calls }) {
  const { t } = useI18n();
  const peers = useCalls(calls, (s) => s.call.peers);
  const [samples, setSamples] = useState<Record<string, Sample>>({});
  const last = useRef<Record<string, PeerStats>>({});

  useEffect(() => {
    let stopped = false;
    const poll = async () => {
      const next: Record<string, Sample> = {};
      for (const p of calls.get().call.peers) {
        const now = await calls.stats(p.deviceId).catch(() => null);
        if (!now) continue;
        const before = last.current[p.deviceId];
        const ms = before ? now.timestampMs - before.timestampMs : 0;
        next[p.deviceId] = {
          now,
          inKbps: before ? kbps(now.videoBytesReceived, before.videoBytesReceived, ms) : 0,
          outKbps: before ? kbps(now.videoBytesSent, before.videoBytesSent, ms) : 0,
        };
        last.current[p.deviceId] = now;
      }
      if (!stopped) setSamples(next);
    };
    void poll();
    const id = setInterval(() => void poll(), 1000);
    return () => {
      stopped = true;
      clearInterval(id);
    };
  }, [calls]);

  const path = (s: PeerStats) =>
    !s.localCandidate
      ? t("statsPathNone")
      : s.localCandidate === "relay" || s.remoteCandidate === "relay"
        ? t("statsPathRelay")
        : t("statsPathDirect");

  return (
    <div className="call-panel call-stats" role="region" aria-label={t("callStatistics")}>
      {peers.length === 0 && <p className="muted">{t("callWaiting")}</p>}
      {peers.map((p) => {
        const s = samples[p.deviceId];
        const name = personName(chat, t, p.accountId);
        const rows: Array<[string, string]> = s
          ? [
              [t("statsPath"), path(s.now)],
              [t("statsFramesDecoded"), String(s.now.framesDecoded)],
              [t("statsVideoIn"), `${s.inKbps} kbit/s`],
              [t("statsResolution"), s.now.frameWidth ? `${s.now.frameWidth}×${s.now.frameHeight}` : "—"],
              [t("statsAudioPackets"), String(s.now.audioPacketsReceived)],
              [t("statsVideoOut"), `${s.outKbps} kbit/s`],
              [t("statsRtt"), s.now.rttMs === null ? "—" : `${s.now.rttMs} ms`],
            ]
          : [];
        return (
          <table key={p.deviceId} aria-label={t("statsFor", { name })}>
            <caption>{name}</caption>
            <tbody>
              {rows.map(([k, v]) => (
                <tr key={k}>
                  <th scope="row">{k}</th>
                  <td>{v}</td>
                </tr>
              ))}
            </tbody>
          </table>
        );
      })}
    </div>
  );
}
