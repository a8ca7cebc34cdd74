// App.tsx — the top level: restores the session and the E2EE engine from IndexedDB, then shows
// either the sign-in screen or the messenger. Only one tab drives the device at a time
// (lib/tablock.ts: a Web Lock, or a heartbeat and a BroadcastChannel on plain http), since two
// tabs advancing the same ratchets would corrupt them; "Use here" asks the other tab to hand
// over. Signing out — here, or from another device (gateway close 4003, or a refresh token
// refused) — stops everything and wipes the local data; so does deleting the account (Settings →
// Your data), whose sign-in screen then says so.
// The engine, the chat and the backup use the crypto WebAssembly: they come from ./signedIn, a
// chunk loaded (with the WASM, crypto/load.ts) as soon as a session is found or made, never
// before the sign-in form of a visitor without one.
// At `/party` (the server serves the app for any path), the party screen (ui/party) shows
// instead of the messenger, signed in or not.
// Opened in an insecure context (plain HTTP by a LAN address), a banner above every screen says
// so and what does not work there (ui/InsecureBanner.tsx).
import { lazy, Suspense, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { loadSession, session, signOut } from "./auth/session";
import { resetCallPrefs } from "./calls/prefs";
import { forgetIceServers } from "./calls/turn";
import type { E2ee } from "./crypto/engine";
import { loadCrypto } from "./crypto/load";
import { I18nProvider, useI18n } from "./i18n/i18n";
import type { MessageKey } from "./i18n/messages";
import { acquireTabLock, type AcquireOptions, type Acquired } from "./lib/tablock";
import { resetNotifications } from "./notify/notifications";
import { forgetPush, pushTexts, syncPush } from "./notify/push";
import type { Chat } from "./state/chat";
import { useTheme } from "./theme";
import { AuthScreen } from "./ui/AuthScreen";
import { InsecureBanner } from "./ui/InsecureBanner";
import { pendingInvite, takeInviteFromAddress } from "./lib/invite";

// The signed-in screens (and Markdown) are a chunk of their own: the sign-in form does not wait for them.
const Messenger = lazy(() => import("./ui/Messenger").then((m) => ({ default: m.Messenger })));
const PartyScreen = lazy(() => import("./ui/party/PartyScreen").then((m) => ({ default: m.PartyScreen })));

/** Whether this page is the party screen (a projector's or a TV's, `/party`). */
const PARTY = window.location.pathname.replace(/\/+$/, "") === "/party";

// An invite page (`/invite/CODE`): the code is kept for this tab and shown as the join page once
// signed in (Messenger.tsx); signed out, the sign-in screen says why it comes first.
takeInviteFromAddress();

type SignedIn = typeof import("./signedIn");
/** ./signedIn once loaded (a backup can only be attached after it was). */
let signedInModule: SignedIn | null = null;

/** ./signedIn and the WASM, fetched in parallel. */
async function loadSignedIn(): Promise<SignedIn> {
  const [m] = await Promise.all([import("./signedIn"), loadCrypto()]);
  signedInModule = m;
  return m;
}

/** Stops backing up (nothing to stop before ./signedIn was loaded). */
function detachBackup(): void {
  signedInModule?.detachBackup();
}

type Phase =
  | { kind: "loading" }
  /** Another tab drives this device: it held it ("other-tab"), took it over ("taken"), or did
   * not answer when asked to hand over ("no-answer"). */
  | { kind: "other-tab"; why: "other-tab" | "taken" | "no-answer" }
  | { kind: "signed-out" }
  | { kind: "signed-in"; chat: Chat }
  | { kind: "error"; message: string };

/** The page's first try for the tab lock, shared (React's StrictMode runs the effect twice). */
let firstTry: Promise<Acquired> | null = null;

function holdTabLock(takeover: boolean, onLost: AcquireOptions["onLost"]): Promise<Acquired> {
  if (takeover) return acquireTabLock({ takeover, onLost });
  firstTry ??= acquireTabLock({ onLost });
  return firstTry;
}

function Root() {
  const { t } = useI18n();
  const [phase, setPhase] = useState<Phase>({ kind: "loading" });
  const [theme, setTheme] = useTheme();

  const [notice, setNotice] = useState<MessageKey | null>(null);
  /** On the party screen, signed out: the person asked for the sign-in form. */
  const [partySignIn, setPartySignIn] = useState(false);
  const current = useRef<Chat | null>(null);
  // The current language for what a session start says (the push texts; Notifier keeps them in
  // a language chosen later). A ref, not a dependency of `enter`: switching the language must not
  // start the session over (`boot` runs again whenever `enter` changes, which closed the open
  // conversation).
  const tNow = useRef(t);
  useEffect(() => {
    tNow.current = t;
  }, [t]);

  /** Stops the chat, signs out on the server (best effort) and wipes this device's data. */
  const endSession = useCallback(async (why: MessageKey | null) => {
    const chat = current.current;
    current.current = null;
    chat?.stop();
    detachBackup();
    await signOut();
    await resetNotifications().catch(() => undefined);
    await forgetPush().catch(() => undefined);
    resetCallPrefs();
    forgetIceServers();
    chat?.engine.dispose();
    setNotice(why);
    setPhase({ kind: "signed-out" });
  }, []);

  /** While this device deletes its account: the server signing it out then is that deletion. */
  const deleting = useRef(false);

  const signedOut = useCallback(() => {
    void endSession(deleting.current ? "accountDeleted" : "signedOutElsewhere");
  }, [endSession]);

  /** Settings → Delete account: `request` deletes it on the server; then this device is wiped
   * as a sign-out wipes it, and the sign-in screen says the account was deleted. A refused
   * request (wrong password) throws, and nothing else happens. */
  const deleteAccount = useCallback(
    async (request: () => Promise<unknown>) => {
      deleting.current = true;
      try {
        await request();
      } catch (err) {
        deleting.current = false;
        throw err;
      }
      // The gateway may have heard of the sign-out first and ended the session already.
      if (current.current) await endSession("accountDeleted");
      deleting.current = false;
    },
    [endSession],
  );

  const enter = useCallback(
    async (engine: E2ee) => {
      const s = session();
      if (!s) return;
      const { Chat, attachBackup } = await loadSignedIn();
      const chat = new Chat(engine, { accountId: s.accountId, deviceId: s.deviceId }, signedOut);
      current.current = chat;
      // Back up new session keys from here on, if this device holds the backup key.
      await attachBackup(engine).catch((err: unknown) => console.warn("key backup not started", err));
      setNotice(null);
      setPhase({ kind: "signed-in", chat });
      await chat.start();
      // A subscription the browser replaced while the app was closed goes to the server now.
      void syncPush(pushTexts(tNow.current)).catch((err: unknown) => console.warn("push not synced", err));
    },
    [signedOut],
  );

  /** Another tab takes over: stop the chat and let the engine finish before it loads the state
   * (asked to hand over, write the offline copy first; overtaken while frozen, write nothing). */
  const lost = useCallback(async (how: "handed-over" | "overtaken") => {
    const chat = current.current;
    current.current = null;
    detachBackup();
    if (chat) {
      await chat.close(how === "handed-over").catch((err: unknown) => console.warn("stopping for another tab", err));
      chat.engine.dispose();
    }
    setPhase({ kind: "other-tab", why: "taken" });
  }, []);

  const boot = useCallback(
    async (takeover: boolean, cancelled: () => boolean) => {
      try {
        const held = await holdTabLock(takeover, lost);
        if (!held.lock) {
          setPhase({ kind: "other-tab", why: held.why });
          return;
        }
        const s = await loadSession(signedOut);
        if (cancelled()) return;
        if (!s) {
          setPhase({ kind: "signed-out" });
          return;
        }
        const { E2ee } = await loadSignedIn();
        if (cancelled()) return;
        const engine = (await E2ee.load(s.accountId, s.deviceId)) ?? (await E2ee.setUp(s.accountId, s.deviceId));
        if (!cancelled()) await enter(engine);
      } catch (err) {
        if (!cancelled()) setPhase({ kind: "error", message: String(err) });
      }
    },
    [enter, signedOut, lost],
  );

  useEffect(() => {
    let cancelled = false;
    void boot(false, () => cancelled);
    // Back from the back-forward cache: the lock was given up on pagehide, start again.
    const restored = (e: PageTransitionEvent) => {
      if (e.persisted) location.reload();
    };
    window.addEventListener("pageshow", restored);
    return () => {
      cancelled = true;
      window.removeEventListener("pageshow", restored);
    };
  }, [boot]);

  const takeOver = useCallback(() => {
    setPhase({ kind: "loading" });
    void boot(true, () => false);
  }, [boot]);

  useEffect(() => {
    if (phase.kind !== "signed-in") return;
    return () => phase.chat.stop();
  }, [phase]);

  const doSignOut = useCallback(() => endSession(null), [endSession]);

  /** Settings → Recovery key on a device without the account key: the restore stops this chat
   * before it changes the device, then the restored engine opens a new one (the history is
   * fetched and decrypted again, with the keys from the backup). */
  const swap = useMemo(
    () => ({
      stop: async () => {
        const chat = current.current;
        current.current = null;
        detachBackup();
        if (chat) {
          await chat.close(false).catch((err: unknown) => console.warn("stopping for the restore", err));
          chat.engine.dispose();
        }
      },
      enter,
    }),
    [enter],
  );

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
          <div className="other-tab">
            <p role="alert">{t(phase.why === "taken" ? "otherTabTaken" : "otherTab")}</p>
            {phase.why === "no-answer" && <p role="status">{t("otherTabNoAnswer")}</p>}
            <button type="button" className="primary" onClick={takeOver}>
              {t("useHere")}
            </button>
            <p className="muted">{t("useHereNote")}</p>
          </div>
        </main>
      );
    case "error":
      return (
        <main className="center">
          <p role="alert">{t("errorGeneric", { reason: phase.message })}</p>
        </main>
      );
    case "signed-out":
      if (PARTY && !partySignIn) {
        return (
          <Suspense fallback={<main className="center" />}>
            <PartyScreen chat={null} onSignIn={() => setPartySignIn(true)} />
          </Suspense>
        );
      }
      return (
        <AuthScreen
          onSignedIn={enter}
          notice={notice ? t(notice) : pendingInvite() ? t("inviteSignInFirst") : null}
          theme={theme}
          setTheme={setTheme}
        />
      );
    case "signed-in":
      if (PARTY) {
        return (
          <Suspense fallback={<main className="center" />}>
            <PartyScreen chat={phase.chat} />
          </Suspense>
        );
      }
      return (
        <Suspense fallback={<main className="center" />}>
          <Messenger
            chat={phase.chat}
            onSignOut={doSignOut}
            onDeleteAccount={deleteAccount}
            swap={swap}
            theme={theme}
            setTheme={setTheme}
          />
        </Suspense>
      );
  }
}

export function App() {
  return (
    <I18nProvider>
      <div className="app">
        {/* Above every screen; hidden by the person, it stays hidden until the page is loaded again. */}
        <InsecureBanner />
        <Root />
      </div>
    </I18nProvider>
  );
}
