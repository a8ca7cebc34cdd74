// DevicePickers.tsx — microphone, camera and speaker choices during a call (the speaker only where
// the browser can route audio: HTMLMediaElement.setSinkId). Kept for the next calls too.
import { useEffect, useState } from "react";
import type { Calls } from "../../calls/calls";
import { loadCallPrefs } from "../../calls/prefs";
import { useI18n } from "../../i18n/i18n";

const canPickSpeaker = typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;

export function DevicePickers({ calls }: { calls: Calls }) {
  const { t } = useI18n();
  const [devices, setDevices] = useState<MediaDeviceInfo[]>([]);
  const [prefs, setPrefs] = useState(loadCallPrefs);

  useEffect(() => {
    const load = () =>
      void navigator.mediaDevices
        .enumerateDevices()
        .then(setDevices)
        .catch(() => undefined);
    load();
    navigator.mediaDevices.addEventListener("devicechange", load);
    return () => navigator.mediaDevices.removeEventListener("devicechange", load);
  }, []);

  const picker = (kind: MediaDeviceKind, label: string, value: string, onChange: (id: string) => void) => {
    const list = devices.filter((d) => d.kind === kind && d.deviceId !== "");
    return (
      <label>
        {label}
        <select value={value} onChange={(e) => onChange(e.target.value)}>
          <option value="">{t("deviceDefault")}</option>
          {list.map((d, i) => (
            <option key={d.deviceId} value={d.deviceId}>
              {d.label || `${label} ${i + 1}`}
            </option>
          ))}
        </select>
      </label>
    );
  };

  return (
    <div className="call-panel call-devices" role="group" aria-label={t("callDevices")}>
      {picker("audioinput", t("microphone"), prefs.microphone, (id) => {
        setPrefs({ ...prefs, microphone: id });
        void calls.setMicrophone(id);
      })}
      {picker("videoinput", t("camera"), prefs.camera, (id) => {
        setPrefs({ ...prefs, camera: id });
        void calls.setCamera(id);
      })}
      {canPickSpeaker &&
        picker("audiooutput", t("speaker"), prefs.speaker, (id) => {
          setPrefs({ ...prefs, speaker: id });
          calls.setSpeaker(id);
        })}
    </div>
  );
}
