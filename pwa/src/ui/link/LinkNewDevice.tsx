// LinkNewDevice.tsx — the new device's side of linking (sign-in screen): opens the pairing,
// shows the PIN and the QR code, then the 7 emoji of the SAS to compare with the other screen;
// once the person confirmed them here and the existing device approved, it stores the session
// it got and sets up its own keys, certified by the account key that came through the channel,
// and keeps the backup key that came with it (if any, once checked) so it backs up too.
import { useCallback, useEffect, useRef, useState } from "react";
import { beginSession, fromProto } from "../../auth/session";
import { BackupKey } from "kitsulan-crypto";
import { adoptBackupKey } from "../../crypto/backup";
import { E2ee } from "../../crypto/engine";
import { NewDeviceLink, pairingOver } from "../../crypto/pairing";
import { useI18n } from "../../i18n/i18n";
import { POLL_MS, linkErrorText, sleep } from "./errors";
import { QrCode } from "./QrCode";
import { SasEmoji } from "./SasEmoji";

type Step =
  | { kind: "opening" }
  | { kind: "waiting" }
  | { kind: "verifying" }
  | { kind: "compare"; emoji: number[] }
  | { kind: "approving"; emoji: number[] }
  | { kind: "finishing" }
  | { kind: "ended" }
  | { kind: "error"; message: string };

/**
 * Keeps the backup key the existing device sent, if it opens the account's current backup, so
 * this device backs up its own new keys. A key that does not (or no backup, or the server not
 * answering) leaves backup off here; the link itself stands either way.
 */
async function adoptReceived(engine: E2ee, bytes: Uint8Array): Promise<void> {
  try {
    if (!(await adoptBackupKey(engine, BackupKey.fromBytes(bytes)))) {
      console.warn("the backup key from the other device does not open this account's backup; not kept");
    }
  } catch (err) {
    console.warn("the backup key from the other device was not kept", err);
  }
}

/** "12345678" as "1234 5678", easier to read out and type. */
function spaced(pin: string): string {
  return pin.length === 8 ? `${pin.slice(0, 4)} ${pin.slice(4)}` : pin;
}

export function LinkNewDevice({
  onLinked,
  onBack,
}: {
  onLinked: (engine: E2ee) => Promise<void>;
  onBack: () => void;
}) {
  const { t } = useI18n();
  const [attempt, setAttempt] = useState(0);
  const [step, setStep] = useState<Step>({ kind: "opening" });
  const [shown, setShown] = useState<{ pin: string; qrText: string } | null>(null);
  const linkRef = useRef<NewDeviceLink | null>(null);
  const confirmedRef = useRef(false);
  // Read by the pairing loop, which must not restart when the language changes.
  const latest = useRef({ t, onLinked });
  useEffect(() => {
    latest.current = { t, onLinked };
  }, [t, onLinked]);

  useEffect(() => {
    let stopped = false;
    let handedOver = false;
    let link: NewDeviceLink | null = null;
    confirmedRef.current = false;
    setShown(null);
    setStep({ kind: "opening" });
    void (async () => {
      try {
        link = await NewDeviceLink.open(window.location.origin);
        if (stopped) return;
        linkRef.current = link;
        setShown({ pin: link.pin, qrText: link.qrText });
        setStep({ kind: "waiting" });
        while (!stopped) {
          const { state, session } = await link.poll();
          if (stopped) return;
          if (session) {
            setStep({ kind: "finishing" });
            const secret = link.takeAccountKey();
            if (!secret) throw new Error("no account key came through the channel");
            handedOver = true;
            const backupKey = link.takeBackupKey();
            try {
              const s = fromProto(session);
              await beginSession(s);
              const engine = await E2ee.setUpLinked(s.accountId, s.deviceId, secret);
              if (backupKey) await adoptReceived(engine, backupKey);
              await latest.current.onLinked(engine);
            } finally {
              secret.fill(0);
              backupKey?.fill(0);
            }
            return;
          }
          if (pairingOver(state)) {
            setStep({ kind: "ended" });
            return;
          }
          const emoji = link.emoji;
          if (emoji) setStep(confirmedRef.current ? { kind: "approving", emoji } : { kind: "compare", emoji });
          else if (link.channelOpen) setStep({ kind: "verifying" });
          await sleep(POLL_MS);
        }
      } catch (err) {
        if (!stopped) setStep({ kind: "error", message: linkErrorText(latest.current.t, err) });
      }
    })();
    return () => {
      stopped = true;
      linkRef.current = null;
      if (link && !handedOver) void link.cancel();
      link?.dispose();
    };
  }, [attempt]);

  const confirm = useCallback(async () => {
    const link = linkRef.current;
    const emoji = link?.emoji;
    if (!link || !emoji) return;
    confirmedRef.current = true;
    setStep({ kind: "approving", emoji });
    try {
      await link.confirm();
    } catch (err) {
      setStep({ kind: "error", message: linkErrorText(t, err) });
    }
  }, [t]);

  const reject = useCallback(() => {
    void linkRef.current?.cancel();
    setStep({ kind: "ended" });
  }, []);

  return (
    <section className="card form link" aria-labelledby="link-title">
      <h2 id="link-title">{t("linkThisDevice")}</h2>
      {(step.kind === "opening" || step.kind === "finishing") && <p role="status">{t("working")}</p>}
      {step.kind === "verifying" && <p role="status">{t("verifying")}</p>}
      {step.kind === "waiting" && shown && (
        <>
          <p>{t("linkIntro")}</p>
          <div className="pairing-show">
            <QrCode text={shown.qrText} label={t("pairingQr")} />
            <p className="pin-block">
              <span>{t("pairingPin")}</span>
              <output className="pin" aria-label={t("pairingPin")} data-pin={shown.pin}>
                {spaced(shown.pin)}
              </output>
            </p>
          </div>
          <p role="status" className="muted">
            {t("waitingForDevice")}
          </p>
        </>
      )}
      {(step.kind === "compare" || step.kind === "approving") && (
        <>
          <SasEmoji indices={step.emoji} />
          {step.kind === "compare" ? (
            <>
              <p>{t("compareEmoji")}</p>
              <div className="row">
                <button type="button" onClick={reject}>
                  {t("emojiDiffer")}
                </button>
                <button type="button" className="primary" onClick={() => void confirm()}>
                  {t("emojiMatch")}
                </button>
              </div>
            </>
          ) : (
            <p role="status">{t("waitingForApproval")}</p>
          )}
        </>
      )}
      {(step.kind === "ended" || step.kind === "error") && (
        <>
          <p role="alert" className="error">
            {step.kind === "error" ? step.message : t("pairingEnded")}
          </p>
          <button type="button" className="primary" onClick={() => setAttempt((a) => a + 1)}>
            {t("tryAgain")}
          </button>
        </>
      )}
      {step.kind !== "finishing" && (
        <button type="button" onClick={onBack}>
          {t("back")}
        </button>
      )}
    </section>
  );
}
