// RecoveryKeySetup.tsx — "Save your recovery key": a new backup key's recovery key shown once
// (in groups of four, with Copy, Print and a QR code), an optional passphrase (typed twice, at
// least 10 characters), and "I have saved it", which sets up the backup (or rotates to this key)
// and uploads every session key. After sign-up on the first device, and from Settings.
import { BackupKey } from "kitsulan-crypto";
import { useRef, useState, type FormEvent } from "react";
import { setUpBackup, type SetUpProgress } from "../../crypto/backup";
import type { E2ee } from "../../crypto/engine";
import { useI18n } from "../../i18n/i18n";
import { CopyButton } from "../CopyButton";
import { QrCode } from "../link/QrCode";
import { backupErrorText } from "./errors";

export const MIN_PASSPHRASE = 10;

export function RecoveryKeySetup({
  engine,
  accountName,
  heading = true,
  note,
  onDone,
  onLater,
  onCancel,
}: {
  engine: E2ee;
  /** Printed on the sheet (the username). */
  accountName: string;
  /** Show the title (off inside a section that has one). */
  heading?: boolean;
  /** A line about what happens (rotation: the old key stops working). */
  note?: string | undefined;
  onDone: () => void;
  /** "Not now" (left out when absent). */
  onLater?: () => void;
  /** "Cancel" (left out when absent). */
  onCancel?: () => void;
}) {
  const { t } = useI18n();
  // Only the display form is kept (it is on the screen anyway); "I have saved it" reads the key
  // back from it, so the key saved is exactly the one shown.
  const [recoveryKey] = useState(() => {
    const key = BackupKey.generate();
    try {
      return key.recoveryKey();
    } finally {
      key.free();
    }
  });
  const [passphrase, setPassphrase] = useState("");
  const [again, setAgain] = useState("");
  const shownKey = useRef<HTMLOutputElement>(null);
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState<SetUpProgress | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function save(e: FormEvent) {
    e.preventDefault();
    setError(null);
    if (passphrase !== "" && passphrase.length < MIN_PASSPHRASE) {
      setError(t("recoveryPassphraseShort"));
      return;
    }
    if (passphrase !== again) {
      setError(t("recoveryPassphraseMismatch"));
      return;
    }
    setBusy(true);
    try {
      const key = BackupKey.fromRecoveryKey(recoveryKey);
      await setUpBackup(engine, key, passphrase === "" ? undefined : passphrase, setProgress);
      onDone();
    } catch (err) {
      setError(backupErrorText(t, err));
    } finally {
      setBusy(false);
      setProgress(null);
    }
  }

  const groups = recoveryKey.split(" ");
  return (
    <form className="form recovery" onSubmit={save} aria-label={t("recoveryTitle")}>
      {heading && <h2>{t("recoveryTitle")}</h2>}
      <p>{t("recoveryIntro")}</p>
      {note && <p className="muted">{note}</p>}
      <output ref={shownKey} className="recovery-key" aria-label={t("recoveryKeyLabel")} data-recovery-key={recoveryKey}>
        {groups.map((g, i) => (
          <span key={i}>{g}</span>
        ))}
      </output>
      <div className="row recovery-actions">
        <CopyButton text={recoveryKey} select={shownKey} />
        <button type="button" onClick={() => window.print()}>
          {t("recoveryPrint")}
        </button>
      </div>
      <details className="recovery-qr">
        <summary>{t("recoveryShowQr")}</summary>
        <QrCode text={recoveryKey} label={t("recoveryQr")} size={200} />
      </details>
      <label>
        {t("recoveryPassphrase")}
        <input
          name="passphrase"
          type="password"
          autoComplete="new-password"
          value={passphrase}
          aria-describedby="recovery-passphrase-hint"
          onChange={(e) => setPassphrase(e.target.value)}
        />
      </label>
      {passphrase !== "" && (
        <label>
          {t("recoveryPassphraseAgain")}
          <input
            name="passphraseAgain"
            type="password"
            autoComplete="new-password"
            value={again}
            onChange={(e) => setAgain(e.target.value)}
          />
        </label>
      )}
      <p id="recovery-passphrase-hint" className="muted">
        {t("recoveryPassphraseHint")}
      </p>
      <p className="recovery-admin">{t("recoveryAdminCannotRead")}</p>
      {progress && (
        <p role="status">
          {progress.step === "protecting"
            ? t("recoveryProtecting")
            : t("recoveryUploading", { done: String(progress.done), total: String(progress.total) })}
        </p>
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <div className="row">
        {onLater && (
          <button type="button" disabled={busy} onClick={onLater}>
            {t("recoveryLater")}
          </button>
        )}
        {onCancel && (
          <button type="button" disabled={busy} onClick={onCancel}>
            {t("cancel")}
          </button>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? t("working") : t("recoverySaved")}
        </button>
      </div>
      {onLater && <p className="muted">{t("recoveryLaterNote")}</p>}
      {/* What window.print() prints (styles.css hides everything else while this exists). */}
      <div className="recovery-print" aria-hidden="true">
        <h1>{t("recoveryPrintTitle")}</h1>
        <p>{t("recoveryPrintFor", { name: accountName })}</p>
        <p className="recovery-print-key">{recoveryKey}</p>
        <QrCode text={recoveryKey} label={t("recoveryQr")} size={180} />
        <p>{t("recoveryPrintNote")}</p>
      </div>
    </form>
  );
}
