// Diagnostics.tsx — Settings → Diagnostics: this device's counts of messages it could not read
// (crypto/undecryptable.ts), live. What the e2e tests read to check no message was lost.
import { useEffect, useState } from "react";
import { STUCK_AFTER_MS, undecryptableStats } from "../crypto/undecryptable";
import { useI18n } from "../i18n/i18n";

export function Diagnostics() {
  const { t } = useI18n();
  const [counts, setCounts] = useState(() => undecryptableStats.counts());
  useEffect(() => undecryptableStats.subscribe((e) => setCounts(e.counts)), []);
  return (
    <section aria-labelledby="diagnostics-heading" className="form diagnostics">
      <h3 id="diagnostics-heading">{t("diagnostics")}</h3>
      <p className="muted">{t("diagnosticsNote")}</p>
      <p data-count="undecryptable">{t("diagUndecryptable", { n: counts.failed })}</p>
      <p data-count="waiting">{t("diagWaiting", { n: counts.waiting })}</p>
      <p data-count="stuck">{t("diagStuck", { n: counts.stuck, s: STUCK_AFTER_MS / 1000 })}</p>
    </section>
  );
}
