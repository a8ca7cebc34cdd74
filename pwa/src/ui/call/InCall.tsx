// InCall.tsx — the call itself: a grid of tiles (one per other device, and ours), the timer, and
// the controls: microphone (or push-to-talk: hold Space or the Talk button), camera, screen
// sharing, device pickers, the statistics panel and hang up.
import { useCallback, useEffect, useState } from "react";
import type { Calls, RemotePeer } from "../../calls/calls";
import { useI18n } from "../../i18n/i18n";
import type { Chat } from "../../state/chat";
import { personName } from "../names";
import { Avatar } from "../Avatar";
import { CallStats } from "./CallStats";
import { DevicePickers } from "./DevicePickers";
import { HangUpIcon, MicIcon, ScreenIcon, SlidersIcon, StatsIcon, VideoIcon } from "./icons";
import { MediaView } from "./MediaView";
import { useCalls } from "./useCalls";

function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh > 0 ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

function Timer({ since }: { since: number }) {
  const { t } = useI18n();
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(id);
  }, []);
  if (since === 0) return <span className="call-timer">{t("callConnecting")}</span>;
  return (
    <span className="call-timer" role="timer" aria-label={t("callDuration")}>
      {formatDuration(now - since)}
    </span>
  );
}

/** Whether the focus is somewhere Space types or presses (then it is not push-to-talk). */
function typingTarget(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  return ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) || (target.tagName === "BUTTON" && !target.dataset.ptt);
}

function RemoteTile({ chat, peer, sinkId }: { chat: Chat; peer: RemotePeer; sinkId: string }) {
  const { t } = useI18n();
  const name = personName(chat, t, peer.accountId);
  const video = peer.stream.getVideoTracks().length > 0 && (peer.camera || peer.screen);
  const state =
    peer.state === "connected" ? "" : peer.state === "disconnected" ? t("callReconnecting") : t("callConnecting");
  return (
    <li className={video ? "call-tile" : "call-tile no-video"} aria-label={name}>
      <MediaView stream={peer.stream} muted={false} sinkId={sinkId} label={t("videoOf", { name })} />
      {!video && <Avatar name={name} />}
      <span className="call-tile-name">
        {name}
        {!peer.mic && <span className="call-muted"> · {t("micOffShort")}</span>}
        {!video && <span> · {t("cameraOffShort")}</span>}
        {state && <span> · {state}</span>}
      </span>
    </li>
  );
}

/** Push-to-talk while `on`: Space held anywhere but in a field or on another button talks;
 * letting go, leaving the window or turning it off stops. For mesh calls and voice rooms alike. */
export function usePushToTalk(on: boolean, setTalking: (talking: boolean) => void): void {
  useEffect(() => {
    if (!on) return;
    const down = (e: KeyboardEvent) => {
      if (e.code !== "Space" || typingTarget(e.target)) return;
      e.preventDefault();
      if (!e.repeat) setTalking(true);
    };
    const up = (e: KeyboardEvent) => {
      if (e.code !== "Space") return;
      if (!typingTarget(e.target)) e.preventDefault();
      setTalking(false);
    };
    const blur = () => setTalking(false);
    window.addEventListener("keydown", down);
    window.addEventListener("keyup", up);
    window.addEventListener("blur", blur);
    return () => {
      window.removeEventListener("keydown", down);
      window.removeEventListener("keyup", up);
      window.removeEventListener("blur", blur);
      setTalking(false);
    };
  }, [on, setTalking]);
}

export function InCall({ chat, calls, title }: { chat: Chat; calls: Calls; title: string }) {
  const { t } = useI18n();
  const call = useCalls(calls, (s) => s.call);
  const [panel, setPanel] = useState<"none" | "devices" | "stats">("none");

  const setTalking = useCallback((talking: boolean) => calls.setTalking(talking), [calls]);
  usePushToTalk(call.pushToTalk, setTalking);

  const localVideo = call.local !== null && call.local.getVideoTracks().length > 0;
  const micLive = call.pushToTalk ? call.talking : call.micOn;
  const tiles = call.peers.length + 1;

  return (
    <>
      <header className="call-bar">
        <h2>{title}</h2>
        <Timer since={call.connectedAtMs} />
      </header>
      <ul
        className={call.peers.length === 1 ? "call-grid one-to-one" : `call-grid tiles-${Math.min(tiles, 6)}`}
        aria-label={t("callParticipants")}
      >
        {call.peers.map((p) => (
          <RemoteTile key={p.deviceId} chat={chat} peer={p} sinkId={call.speaker} />
        ))}
        <li className={localVideo ? "call-tile mine" : "call-tile mine no-video"} aria-label={t("you")}>
          {call.local && localVideo && (
            <MediaView stream={call.local} muted mirrored={!call.sharing} label={t("yourCamera")} />
          )}
          {!localVideo && <Avatar name={chat.nameOf(chat.get().me.accountId) || t("you")} />}
          <span className="call-tile-name">
            {t("you")}
            {!micLive && <span className="call-muted"> · {t("micOffShort")}</span>}
          </span>
        </li>
      </ul>
      {call.peers.length === 0 && call.connectedAtMs === 0 && (
        <p className="call-note" role="status">
          {t("callWaiting")}
        </p>
      )}
      {panel === "devices" && <DevicePickers calls={calls} />}
      {panel === "stats" && <CallStats chat={chat} calls={calls} />}
      <div className="call-controls" role="toolbar" aria-label={t("callControls")}>
        {call.pushToTalk ? (
          <button
            type="button"
            data-ptt="1"
            className={call.talking ? "call-toggle on" : "call-toggle"}
            aria-pressed={call.talking}
            aria-label={t("holdToTalk")}
            onPointerDown={() => calls.setTalking(true)}
            onPointerUp={() => calls.setTalking(false)}
            onPointerLeave={() => calls.setTalking(false)}
            onPointerCancel={() => calls.setTalking(false)}
            onContextMenu={(e) => e.preventDefault()}
          >
            <MicIcon off={!call.talking} /> <span>{t("talk")}</span>
          </button>
        ) : (
          <button
            type="button"
            className={call.micOn ? "call-toggle" : "call-toggle off"}
            aria-pressed={!call.micOn}
            aria-label={t("muteMic")}
            onClick={() => calls.toggleMic()}
          >
            <MicIcon off={!call.micOn} /> <span>{t("mute")}</span>
          </button>
        )}
        <button
          type="button"
          className={call.cameraOn ? "call-toggle" : "call-toggle off"}
          aria-pressed={call.cameraOn}
          aria-label={t("camera")}
          onClick={() => void calls.toggleCamera()}
        >
          <VideoIcon off={!call.cameraOn} /> <span>{t("camera")}</span>
        </button>
        {"getDisplayMedia" in navigator.mediaDevices && (
          <button
            type="button"
            className={call.sharing ? "call-toggle on" : "call-toggle"}
            aria-pressed={call.sharing}
            aria-label={t("shareScreen")}
            onClick={() => void calls.toggleScreenShare()}
          >
            <ScreenIcon /> <span>{t("screen")}</span>
          </button>
        )}
        <button
          type="button"
          className="call-toggle"
          aria-expanded={panel === "devices"}
          aria-label={t("callDevices")}
          onClick={() => setPanel(panel === "devices" ? "none" : "devices")}
        >
          <SlidersIcon /> <span>{t("devicesShort")}</span>
        </button>
        <button
          type="button"
          className="call-toggle"
          aria-expanded={panel === "stats"}
          aria-label={t("callStatistics")}
          onClick={() => setPanel(panel === "stats" ? "none" : "stats")}
        >
          <StatsIcon /> <span>{t("statsShort")}</span>
        </button>
        <button type="button" className="call-hangup" onClick={() => calls.hangUp()}>
          <HangUpIcon /> <span>{t("hangUp")}</span>
        </button>
      </div>
    </>
  );
}
