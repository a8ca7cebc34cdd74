// CallSettings.tsx — the calls section of Settings: push-to-talk and "always relay calls".
import { useState } from "react";
import type { Calls } from "../../calls/calls";
import type { Voice } from "../../voice/voice";
import { loadCallPrefs, saveCallPrefs, type CallPrefs } from "../../calls/prefs";
import { useI18n } from "../../i18n/i18n";

export function CallSettings({ calls, voice }: { calls: Calls | null; voice?: Voice }) {
  const { t } = useI18n();
  const [prefs, setPrefs] = useState<CallPrefs>(loadCallPrefs);
  const update = (next: CallPrefs) => {
    saveCallPrefs(next);
    setPrefs(next);
    // Not loaded yet: no call to change; the next one reads the prefs.
    calls?.prefsChanged();
    // Push-to-talk applies in a voice channel too, at once.
    voice?.prefsChanged();
  };
  return (
    <fieldset className="form notify">
      <legend>{t("callsSettings")}</legend>
      <label className="check">
        <input
          type="checkbox"
          checked={prefs.pushToTalk}
          aria-describedby="ptt-hint"
          onChange={(e) => update({ ...prefs, pushToTalk: e.target.checked })}
        />
        {t("pushToTalk")}
      </label>
      <p id="ptt-hint" className="muted hint">
        {t("pushToTalkHint")}
      </p>
      <label className="check">
        <input
          type="checkbox"
          checked={prefs.alwaysRelay}
          aria-describedby="relay-hint"
          onChange={(e) => update({ ...prefs, alwaysRelay: e.target.checked })}
        />
        {t("alwaysRelay")}
      </label>
      <p id="relay-hint" className="muted hint">
        {t("alwaysRelayHint")}
      </p>
    </fieldset>
  );
}
