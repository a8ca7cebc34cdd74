// LinkExistingDevice.tsx — the existing device's side of linking (Settings → Devices): finds
// the new device by the PIN it shows (or its QR code, with the camera where the browser can),
// opens the channel, shows the check code, and — once the person confirmed here and on the new
// device — sends the account key through the channel and approves the new device.
import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";
import { ExistingDeviceLink, findByPin, fromQr, pairingOver, type FoundPairing } from "../../crypto/pairing";
import type { E2ee } from "../../crypto/engine";
import { useI18n } from "../../i18n/i18n";
import { POLL_MS, linkErrorText, sleep } from "./errors";
import { QrScanner, canScanQr } from "./QrScanner";

type Step =
  | { kind: "find" }
  | { kind: "scan" }
  | { kind: "connecting" }
  | { kind: "compare"; code: string }
  | { kind: "waiting"; code: string }
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

  /** Polls until the new device confirmed and the person approved here; then approves. */
  const run = useCallback(
    async (l: ExistingDeviceLink) => {
      while (!stopped.current && link.current === l) {
        const { state, confirmed } = await l.poll();
        if (pairingOver(state)) {
          setStep({ kind: "ended" });
          return;
        }
        const deviceName = approvedHere.current;
        if (confirmed && deviceName !== null) {
          const secret = engine.accountKeySecret();
          try {
            await l.approve(secret, deviceName);
          } finally {
            secret.fill(0);
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
        setStep({ kind: "compare", code: l.checkCode });
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
    approvedHere.current = name.trim() || t("defaultLinkedName");
    setStep({ kind: "waiting", code: step.code });
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
          <QrScanner label={t("camera")} onText={onScanned} onError={onCameraError} />
          <button type="button" onClick={() => setStep({ kind: "find" })}>
            {t("stopScan")}
          </button>
        </>
      )}
      {(step.kind === "compare" || step.kind === "waiting") && (
        <form className="form" onSubmit={approve}>
          <p className="pin-block">
            <span>{t("checkCode")}</span>
            <output className="pin" aria-label={t("checkCode")}>
              {step.code}
            </output>
          </p>
          {step.kind === "compare" ? (
            <>
              <p>{t("compareCode")}</p>
              <label>
                {t("newDeviceName")}
                <input name="deviceName" maxLength={64} value={name} onChange={(e) => setName(e.target.value)} />
              </label>
              <div className="row">
                <button type="button" onClick={reject}>
                  {t("codesDiffer")}
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
