// RestoreFromBackup.tsx — signed in with the password on a device without the account key, when
// the account has a backup: one field that takes the recovery key or the passphrase (tried as a
// recovery key first), a progress line while the passphrase's key derivation runs and the
// session keys import, and a clear error when it does not open the backup (nothing changed).
// On the sign-in screen: or link this device to another one instead, or go on without the key
// for now; in Settings (a device that went on without it): the form alone.
import { useState, type FormEvent } from "react";
import { restoreFromBackup, type RestoreProgress } from "../../crypto/backup";
import type { E2ee } from "../../crypto/engine";
import { useI18n } from "../../i18n/i18n";
import { backupErrorText } from "./errors";

export function RestoreFromBackup({
  accountId,
  deviceId,
  onRestored,
  beforeChange,
  onError,
  onLink,
  onSkip,
}: {
  accountId: string;
  deviceId: string;
  onRestored: (engine: E2ee) => Promise<void>;
  /** Runs once the key opened everything, before this device changes (see restoreFromBackup). */
  beforeChange?: () => Promise<void>;
  /** Told of a failure (after the error is shown). */
  onError?: () => void;
  /** The sign-in screen's other ways; absent in Settings, which shows only the form. */
  onLink?: () => void;
  onSkip?: () => void;
}) {
  const { t } = useI18n();
  const [typed, setTyped] = useState("");
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState<RestoreProgress | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function restore(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const engine = await restoreFromBackup(accountId, deviceId, typed, setProgress, beforeChange);
      setTyped("");
      await onRestored(engine);
    } catch (err) {
      setError(backupErrorText(t, err));
      setProgress(null);
      setBusy(false);
      onError?.();
    }
  }

  const line =
    progress === null
      ? null
      : progress.step === "checking"
        ? t("restoreChecking")
        : progress.step === "deriving"
          ? t("restoreDeriving")
          : progress.step === "downloading"
            ? t("restoreDownloading", { n: progress.done })
            : t("restoreImporting", { n: progress.total });
  const form = (
    <form className="form" onSubmit={restore} aria-label={t("restoreWith")}>
      <h3>{t("restoreWith")}</h3>
      <label>
        {t("restoreInput")}
        <input
          name="recovery"
          type="password"
          autoComplete="off"
          autoCapitalize="none"
          spellCheck={false}
          required
          autoFocus
          value={typed}
          onChange={(e) => setTyped(e.target.value)}
        />
      </label>
      {line && <p role="status">{line}</p>}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <button type="submit" className="primary" disabled={busy}>
        {busy ? t("working") : t("restoreButton")}
      </button>
    </form>
  );
  if (!onLink || !onSkip) return form;
  return (
    <section className="card form restore" aria-labelledby="restore-title">
      <h2 id="restore-title">{t("restoreTitle")}</h2>
      <p>{t("restoreIntro")}</p>
      {form}
      <button type="button" disabled={busy} onClick={onLink}>
        {t("restoreLink")}
      </button>
      <button type="button" disabled={busy} onClick={onSkip}>
        {t("restoreSkip")}
      </button>
    </section>
  );
}
