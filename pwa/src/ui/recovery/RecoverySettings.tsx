// RecoverySettings.tsx — Settings → "Recovery key": whether the keys are backed up (and from this
// device), set up a recovery key (accounts made before backups, or after turning it off), make a
// new one (rotation: shown once, the old one stops working), or turn backup off (confirmed).
import { useCallback, useEffect, useRef, useState } from "react";
import { backingUpTo, currentBackup, onBackupChange, turnOffBackup } from "../../crypto/backup";
import type { BackupVersion } from "../../gen/kitsulan/v1/backup_pb";
import { useI18n } from "../../i18n/i18n";
import { useChat, type Chat } from "../../state/chat";
import { Confirm } from "../Confirm";
import type { E2ee } from "../../crypto/engine";
import { backupErrorText } from "./errors";
import { RecoveryKeySetup } from "./RecoveryKeySetup";
import { takeRecoveryFocus } from "./openRecovery";
import { RestoreFromBackup } from "./RestoreFromBackup";

/** How the app swaps the device's engine after a restore from Settings (App.tsx): stop the
 * running chat (before the restore changes anything stored), then open the restored engine. */
export interface EngineSwap {
  stop: () => Promise<void>;
  enter: (engine: E2ee) => Promise<void>;
}

type Mode = "view" | "setup" | "rotate" | "confirm-off";

export function RecoverySettings({ chat, swap }: { chat: Chat; swap?: EngineSwap | undefined }) {
  const { t } = useI18n();
  const me = useChat(chat, (s) => s.me);
  /** undefined: loading; null: no backup. */
  const [server, setServer] = useState<BackupVersion | null | undefined>(undefined);
  const [here, setHere] = useState(backingUpTo);
  const [mode, setMode] = useState<Mode>("view");
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  /** The restore stopped this chat: a failure after that starts the app again. */
  const stoppedChat = useRef(false);

  const refresh = useCallback(async () => {
    try {
      setServer(await currentBackup());
    } catch (err) {
      setResult({ ok: false, text: backupErrorText(t, err) });
    }
  }, [t]);

  const section = useRef<HTMLElement>(null);
  useEffect(() => {
    const here = section.current;
    if (!takeRecoveryFocus() || !here) return;
    here.scrollIntoView({ block: "start" });
    // Sections above this one finish loading after it mounts (push support, backup facts) and
    // push it down: follow it while the settings settle, then leave the scrolling to the person.
    const content = here.parentElement;
    if (!content || typeof ResizeObserver === "undefined") return;
    const follow = new ResizeObserver(() => here.scrollIntoView({ block: "start" }));
    follow.observe(content);
    const stop = window.setTimeout(() => follow.disconnect(), 1500);
    return () => {
      window.clearTimeout(stop);
      follow.disconnect();
    };
  }, []);

  useEffect(() => {
    void refresh();
    return onBackupChange(() => setHere(backingUpTo()));
  }, [refresh]);

  const ready = chat.engine.state === "ready";
  const holdsKey = server != null && here === server.version;

  async function turnOff() {
    setBusy(true);
    setResult(null);
    try {
      await turnOffBackup();
      setResult({ ok: true, text: t("backupTurnedOff") });
      setMode("view");
      await refresh();
    } catch (err) {
      setResult({ ok: false, text: backupErrorText(t, err) });
    } finally {
      setBusy(false);
    }
  }

  function done() {
    setMode("view");
    setResult({ ok: true, text: t("backupDone") });
    void refresh();
  }

  let body;
  if (!ready) {
    body =
      server && swap ? (
        <RestoreFromBackup
          accountId={me.accountId}
          deviceId={chat.engine.deviceId}
          beforeChange={async () => {
            stoppedChat.current = true;
            await swap.stop();
          }}
          onRestored={swap.enter}
          onError={() => {
            if (stoppedChat.current) location.reload();
          }}
        />
      ) : (
        <p className="muted">{server ? t("backupRestoreHere") : t("backupOff")}</p>
      );
  } else if (mode === "setup" || mode === "rotate") {
    const note =
      mode === "rotate"
        ? [t("backupRotateNote"), holdsKey ? "" : t("backupRotateElsewhere")].filter(Boolean).join(" ")
        : undefined;
    body = (
      <RecoveryKeySetup
        engine={chat.engine}
        accountName={me.username}
        heading={false}
        note={note}
        onDone={done}
        onCancel={() => setMode("view")}
      />
    );
  } else if (server === undefined) {
    body = <p className="muted">{t("working")}</p>;
  } else if (server === null) {
    body = (
      <>
        <p className="warning">{t("backupOff")}</p>
        <div className="row row-start">
          <button type="button" className="primary" onClick={() => setMode("setup")}>
            {t("backupSetUp")}
          </button>
        </div>
      </>
    );
  } else {
    body = (
      <>
        <p>{holdsKey ? t("backupOn", { n: String(server.sessionCount) }) : t("backupElsewhere")}</p>
        <div className="row row-start">
          <button type="button" onClick={() => setMode("rotate")}>
            {t("backupRotate")}
          </button>
          <button type="button" className="danger" onClick={() => setMode("confirm-off")}>
            {t("backupTurnOff")}
          </button>
        </div>
      </>
    );
  }

  return (
    <section ref={section} aria-labelledby="backup-heading" className="form backup-settings">
      <h3 id="backup-heading">{t("backupHeading")}</h3>
      {body}
      {result && (
        <p role={result.ok ? "status" : "alert"} className={result.ok ? "muted" : "error"}>
          {result.text}
        </p>
      )}
      {mode === "confirm-off" && (
        <Confirm
          title={t("backupTurnOffTitle")}
          action={t("backupTurnOff")}
          busy={busy}
          onCancel={() => setMode("view")}
          onConfirm={() => void turnOff()}
        >
          <p>{t("backupTurnOffText")}</p>
        </Confirm>
      )}
    </section>
  );
}
