// prefs.ts — the person's call settings, kept in localStorage (removed on sign-out): push-to-talk,
// "always relay calls" (iceTransportPolicy "relay": the other side never learns this device's
// IP addresses, at the cost of going through the server's TURN relay), and the chosen devices.

export interface CallPrefs {
  /** The microphone is live only while Space or the "hold to talk" button is held. */
  pushToTalk: boolean;
  /** Only relayed (TURN) candidates: hides this device's addresses from the other side. */
  alwaysRelay: boolean;
  /** Chosen devices (MediaDeviceInfo.deviceId); "" is the browser's default. */
  microphone: string;
  camera: string;
  speaker: string;
}

const STORAGE = "kitsulan.calls";
const DEFAULTS: CallPrefs = { pushToTalk: false, alwaysRelay: false, microphone: "", camera: "", speaker: "" };

export function loadCallPrefs(): CallPrefs {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE) ?? "null") as Partial<CallPrefs> | null;
    return {
      pushToTalk: saved?.pushToTalk === true,
      alwaysRelay: saved?.alwaysRelay === true,
      microphone: typeof saved?.microphone === "string" ? saved.microphone : "",
      camera: typeof saved?.camera === "string" ? saved.camera : "",
      speaker: typeof saved?.speaker === "string" ? saved.speaker : "",
    };
  } catch {
    return DEFAULTS;
  }
}

export function saveCallPrefs(prefs: CallPrefs): void {
  localStorage.setItem(STORAGE, JSON.stringify(prefs));
}

export function resetCallPrefs(): void {
  localStorage.removeItem(STORAGE);
}
