// LinkExistingDevice.tsx — the existing device's side of linking (Settings → Devices): finds
// the new device by the PIN it shows (or its QR code, with the camera where the browser can),
// opens the channel, runs the SAS inside it and shows its 7 emoji, and — once the person
// confirmed them here and the new device's confirmation (its SAS MAC) verified — sends the
// account key (and the backup key, when this device backs up) through the channel and approves
// the new device.
import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";
import { backupKeyBytes } from "../../crypto/backup";
import { ExistingDeviceLink, findByPin, fromQr, pairingOver, type FoundPairing } from "../../crypto/pairing";
import type { E2ee } from "../../crypto/engine";
import { useI18n } from "../../i18n/i18n";
import { POLL_MS, linkErrorText, sleep } from "./errors";
import { QrScanner, canScanQr } from "./QrScanner";
import { SasEmoji } from "./SasEmoji";

/** A new device's pairing QR code (crypto/pairing.ts reads the rest). */
const isPairingQr = (text: string) => text.startsWith("KITSULAN-PAIR:");

type Step =
  | { kind: "find" }
  | { kind: "scan" }
  | { kind: "connecting" }
  | { kind: "verifying" }
  | { kind: "compare"; emoji: number[] }
  | { kind: "waiting"; emoji: number[] }
  | { kind: "done" }
  | { kind: "ended" };

export function LinkExistingDevice({
  engine,
  onDone,
  onLinked,
}: {
  engine: E2ee;
  onDone: () => void;
  onLinked: () => void;
}) {
  const { t } = useI18n();
  const [step, setStep] = useState<Step>({ kind: "find" });
  const [pin, setPin] = useState("");
  const [name, setName] = useState(() => t("defaultLinkedName"));
  const [error, setError] = useState<string | null>(null);
  const link = useRef<ExistingDeviceLink | null>(null);
  const approvedHere = useRef<string | null>(null);
  const stopped = useRef(false);

  useEffect(() => {
    stopped.current = false;
    return () => {
      stopped.current = true;
      const l = link.current;
      link.current = null;
      if (l) {
        void l.cancel();
        l.dispose();
      }
    };
  }, []);

  /**
   * Polls (the SAS steps happen in `poll`) until the emoji can be shown, then until the person
   * confirmed them here and the new device's MAC verified; then sends the account key and
   * approves.
   */
  const run = useCallback(
    async (l: ExistingDeviceLink) => {
      while (!stopped.current && link.current === l) {
        const { state, emoji, verified } = await l.poll();
        if (pairingOver(state)) {
          setStep({ kind: "ended" });
          return;
        }
        if (emoji) setStep((s) => (s.kind === "verifying" ? { kind: "compare", emoji } : s));
        const deviceName = approvedHere.current;
        if (verified && deviceName !== null) {
          const secret = engine.accountKeySecret();
          // When this device backs up, the new one gets the backup key too (so it backs up its own
          // new keys); it checks the key against the account's backup before keeping it.
          const backupKey = backupKeyBytes() ?? undefined;
          try {
            await l.approve(secret, deviceName, backupKey);
          } finally {
            secret.fill(0);
            backupKey?.fill(0);
          }
          link.current = null;
          l.dispose();
          setStep({ kind: "done" });
          onLinked();
          return;
        }
        await sleep(POLL_MS);
      }
    },
    [engine, onLinked],
  );

  const start = useCallback(
    async (find: () => Promise<FoundPairing>) => {
      setError(null);
      setStep({ kind: "connecting" });
      try {
        const found = await find();
        const l = await ExistingDeviceLink.connect(found);
        if (stopped.current) {
          void l.cancel();
          l.dispose();
          return;
        }
        link.current = l;
        setStep({ kind: "verifying" });
        await run(l);
      } catch (err) {
        if (stopped.current) return;
        setError(linkErrorText(t, err));
        setStep((s) => (s.kind === "connecting" ? { kind: "find" } : { kind: "ended" }));
      }
    },
    [run, t],
  );

  const onScanned = useCallback(
    (text: string) => void start(() => fromQr(text, window.location.origin)),
    [start],
  );
  const onCameraError = useCallback(
    (err: unknown) => {
      setError(linkErrorText(t, err));
      setStep({ kind: "find" });
    },
    [t],
  );

  function submitPin(e: FormEvent) {
    e.preventDefault();
    void start(() => findByPin(pin));
  }

  function approve(e: FormEvent) {
    e.preventDefault();
    if (step.kind !== "compare") return;
    const l = link.current;
    if (!l) return;
    approvedHere.current = name.trim() || t("defaultLinkedName");
    setStep({ kind: "waiting", emoji: step.emoji });
    l.confirm().catch((err: unknown) => {
      if (stopped.current) return;
      setError(linkErrorText(t, err));
      setStep({ kind: "ended" });
    });
  }

  function reject() {
    const l = link.current;
    link.current = null;
    if (l) {
      void l.cancel();
      l.dispose();
    }
    setStep({ kind: "ended" });
  }

  return (
    <section className="form link" aria-labelledby="link-existing-title">
      <h3 id="link-existing-title">{t("linkNewDevice")}</h3>
      {(step.kind === "find" || step.kind === "connecting") && (
        <form className="form" onSubmit={submitPin}>
          <p className="muted">{t("linkHowTo")}</p>
          <label>
            {t("pairingPin")}
            <input
              name="pin"
              inputMode="numeric"
              autoComplete="off"
              autoFocus
              required
              value={pin}
              onChange={(e) => setPin(e.target.value)}
            />
          </label>
          <div className="row">
            {canScanQr() && (
              <button type="button" onClick={() => setStep({ kind: "scan" })}>
                {t("scanQr")}
              </button>
            )}
            <button type="submit" className="primary" disabled={step.kind === "connecting"}>
              {step.kind === "connecting" ? t("working") : t("continue")}
            </button>
          </div>
        </form>
      )}
      {step.kind === "scan" && (
        <>
          <QrScanner label={t("camera")} accept={isPairingQr} onText={onScanned} onError={onCameraError} />
          <button type="button" onClick={() => setStep({ kind: "find" })}>
            {t("stopScan")}
          </button>
        </>
      )}
      {(step.kind === "compare" || step.kind === "waiting") && (
        <form className="form" onSubmit={approve}>
          <SasEmoji indices={step.emoji} />
          {step.kind === "compare" ? (
            <>
              <p>{t("compareEmoji")}</p>
              <label>
                {t("newDeviceName")}
                <input name="deviceName" maxLength={64} value={name} onChange={(e) => setName(e.target.value)} />
              </label>
              <div className="row">
                <button type="button" onClick={reject}>
                  {t("emojiDiffer")}
                </button>
                <button type="submit" className="primary">
                  {t("linkConfirm")}
                </button>
              </div>
            </>
          ) : (
            <p role="status">{t("waitingForConfirm")}</p>
          )}
        </form>
      )}
      {step.kind === "verifying" && <p role="status">{t("verifying")}</p>}
      {step.kind === "done" && <p role="status">{t("linked")}</p>}
      {step.kind === "ended" && !error && (
        <p role="alert" className="error">
          {t("pairingEnded")}
        </p>
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <div className="row">
        <button type="button" onClick={onDone}>
          {step.kind === "done" ? t("close") : t("back")}
        </button>
      </div>
    </section>
  );
}
