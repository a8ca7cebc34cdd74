// InsecureBanner.tsx — the warning at the top of every screen when the page is not a secure
// context (opened over plain HTTP by a LAN address or name): that the connection is not
// encrypted, what does not work here, and what to do. Not a modal: the app works beneath it.
// "Hide" hides it until the page is loaded again (App.tsx keeps it mounted across screens, so
// it stays hidden from sign-in to the messenger, and comes back on a reload). On a narrow
// screen only the risk shows; what does not work and what to do fold under "Details", so the
// warning does not take half of a phone's screen.
import { useMemo, useState } from "react";
import { useI18n } from "../i18n/i18n";
import type { MessageKey } from "../i18n/messages";
import { insecureWarning, pageFacts, type Limit } from "../lib/secureContext";

const LIMIT_TEXT: Record<Limit, MessageKey> = {
  offline: "insecureOffline",
  notifications: "insecureNotifications",
  calls: "insecureCalls",
};

export function InsecureBanner() {
  const { t } = useI18n();
  const warning = useMemo(() => insecureWarning(pageFacts()), []);
  const [hidden, setHidden] = useState(false);
  const [wide] = useState(() => window.matchMedia?.("(min-width: 40rem)").matches ?? true);
  if (!warning || hidden) return null;
  return (
    <section className="insecure-banner" aria-label={t("insecureLabel")}>
      <div className="insecure-text">
        <p className="insecure-risk">{t("insecureRisk")}</p>
        <details className="insecure-details" open={wide}>
          <summary>{t("insecureDetails")}</summary>
          {warning.limits.length > 0 && (
            <>
              <p id="insecure-limits">{t("insecureLimitsIntro")}</p>
              <ul aria-labelledby="insecure-limits">
                {warning.limits.map((limit) => (
                  <li key={limit}>{t(LIMIT_TEXT[limit])}</li>
                ))}
              </ul>
            </>
          )}
          <p>
            {t("insecureFix")}
            {warning.localUrl && <> {t("insecureLocal", { url: warning.localUrl })}</>}
          </p>
        </details>
      </div>
      <button
        type="button"
        className="insecure-dismiss"
        aria-label={t("insecureDismiss")}
        title={t("insecureDismiss")}
        onClick={() => setHidden(true)}
      >
        <span aria-hidden="true">✕</span>
      </button>
    </section>
  );
}
