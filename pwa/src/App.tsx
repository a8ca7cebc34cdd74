// App.tsx — the top level: restores the session and the E2EE engine from IndexedDB, then shows
// either the sign-in screen or the messenger. Only one tab drives the device at a time (a Web
// Lock), since two tabs advancing the same ratchets would corrupt them. Signing out — here, or
// from another device (gateway close 4003, or a refresh token refused) — stops everything and
// wipes the local data.
import { lazy, Suspense, useCallback, useEffect, useRef, useState } from "react";
import { loadSession, session, signOut } from "./auth/session";
import { resetCallPrefs } from "./calls/prefs";
import { forgetIceServers } from "./calls/turn";
import { E2ee, loadCrypto } from "./crypto/engine";
import { I18nProvider, useI18n } from "./i18n/i18n";
import type { MessageKey } from "./i18n/messages";
import { resetNotifications } from "./notify/notifications";
import { Chat } from "./state/chat";
import { useTheme } from "./theme";
import { AuthScreen } from "./ui/AuthScreen";

// The signed-in screens (and Markdown) are a chunk of their own: the sign-in form does not wait for them.
const Messenger = lazy(() => import("./ui/Messenger").then((m) => ({ default: m.Messenger })));

type Phase =
  | { kind: "loading" }
  | { kind: "other-tab" }
  | { kind: "signed-out" }
  | { kind: "signed-in"; chat: Chat }
  | { kind: "error"; message: string };

function holdTabLock(): Promise<boolean> {
  if (!("locks" in navigator)) return Promise.resolve(true);
  return new Promise((resolve) => {
    void navigator.locks.request("kitsulan-device", { ifAvailable: true }, (lock) => {
      resolve(lock !== null);
      // Held for the life of this page.
      return lock ? new Promise<void>(() => undefined) : undefined;
    });
  });
}

function Root() {
  const { t } = useI18n();
  const [phase, setPhase] = useState<Phase>({ kind: "loading" });
  const [theme, setTheme] = useTheme();

  const [notice, setNotice] = useState<MessageKey | null>(null);
  const current = useRef<Chat | null>(null);

  /** Stops the chat, signs out on the server (best effort) and wipes this device's data. */
  const endSession = useCallback(async (why: MessageKey | null) => {
    const chat = current.current;
    current.current = null;
    chat?.stop();
    await signOut();
    await resetNotifications().catch(() => undefined);
    resetCallPrefs();
    forgetIceServers();
    chat?.engine.dispose();
    setNotice(why);
    setPhase({ kind: "signed-out" });
  }, []);

  const signedOut = useCallback(() => {
    void endSession("signedOutElsewhere");
  }, [endSession]);

  const enter = useCallback(
    async (engine: E2ee) => {
      const s = session();
      if (!s) return;
      const chat = new Chat(engine, { accountId: s.accountId, deviceId: s.deviceId }, signedOut);
      current.current = chat;
      setNotice(null);
      setPhase({ kind: "signed-in", chat });
      await chat.start();
    },
    [signedOut],
  );

  useEffect(() => {
    let cancelled = false;
    void (async () => {
      try {
        if (!(await holdTabLock())) {
          setPhase({ kind: "other-tab" });
          return;
        }
        await loadCrypto();
        const s = await loadSession(signedOut);
        if (cancelled) return;
        if (!s) {
          setPhase({ kind: "signed-out" });
          return;
        }
        const engine = (await E2ee.load(s.accountId, s.deviceId)) ?? (await E2ee.setUp(s.accountId, s.deviceId));
        if (!cancelled) await enter(engine);
      } catch (err) {
        if (!cancelled) setPhase({ kind: "error", message: String(err) });
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [enter, signedOut]);

  useEffect(() => {
    if (phase.kind !== "signed-in") return;
    return () => phase.chat.stop();
  }, [phase]);

  const doSignOut = useCallback(() => endSession(null), [endSession]);

  switch (phase.kind) {
    case "loading":
      return (
        <main className="center">
          <p role="status">{t("working")}</p>
        </main>
      );
    case "other-tab":
      return (
        <main className="center">
          <p role="alert">KitsuLAN is open in another tab of this browser. Close it and reload this one.</p>
        </main>
      );
    case "error":
      return (
        <main className="center">
          <p role="alert">{t("errorGeneric", { reason: phase.message })}</p>
        </main>
      );
    case "signed-out":
      return <AuthScreen onSignedIn={enter} notice={notice && t(notice)} theme={theme} setTheme={setTheme} />;
    case "signed-in":
      return (
        <Suspense fallback={<main className="center" />}>
          <Messenger chat={phase.chat} onSignOut={doSignOut} theme={theme} setTheme={setTheme} />
        </Suspense>
      );
  }
}

export function App() {
  return (
    <I18nProvider>
      <Root />
    </I18nProvider>
  );
}
