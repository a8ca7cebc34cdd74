// AuthScreen.tsx — sign up or sign in with a password, or with a one-time code by email when the
// server offers it (AuthService.GetAuthMethods), with the TOTP step when the server asks; or
// link this device to an existing one (PIN / QR code). On success the tokens are stored and
// this device's keys are made and published. After sign-up (first device) comes "Save your
// recovery key"; a sign-in on a device without the account key, when the account has a key
// backup, offers to restore from it (or to link this device instead).
// Everything past the form needs the crypto module: it comes from ./signInFlows, a chunk of its
// own, and the WASM (crypto/load.ts); both are fetched once the form is painted and the page is
// idle, so a new visitor's form does not wait for them and a sign-in seldom does.
import { lazy, Suspense, useEffect, useState, type FormEvent, type ReactNode } from "react";
import { authClient } from "../api";
import { beginSession, fromProto, signOut } from "../auth/session";
import type { E2ee } from "../crypto/engine";
import { loadCrypto, whenIdle } from "../crypto/load";
import { reasonOf } from "../errors";
import type { GetAuthMethodsResponse, Session } from "../gen/kitsulan/v1/auth_pb";
import { useI18n } from "../i18n/i18n";
import { errorText } from "../i18n/messages";
import { defaultDeviceName, fromUserAgent } from "../lib/deviceName";
import type { Theme } from "../theme";
import { Preferences } from "./Preferences";

const loadFlows = () => import("./signInFlows");
// Rendered only after loadForSignIn succeeded (a sign-in, or startLinking), so these never wait
// on the network nor fail to load.
const LinkNewDevice = lazy(() => loadFlows().then((m) => ({ default: m.LinkNewDevice })));
const RecoveryKeySetup = lazy(() => loadFlows().then((m) => ({ default: m.RecoveryKeySetup })));
const RestoreFromBackup = lazy(() => loadFlows().then((m) => ({ default: m.RestoreFromBackup })));

/** The flows and the WASM, both loaded (a failure rejects; the next call tries again). */
async function loadForSignIn() {
  const [flows] = await Promise.all([loadFlows(), loadCrypto()]);
  return flows;
}

/** What follows a successful sign-up or sign-in before the messenger opens. */
type After =
  | { kind: "recovery"; engine: E2ee; username: string }
  | { kind: "restore"; engine: E2ee; accountId: string; deviceId: string };


export function AuthScreen({
  onSignedIn,
  notice,
  theme,
  setTheme,
}: {
  onSignedIn: (engine: E2ee) => Promise<void>;
  /** Why the person is here, e.g. signed out from another device. */
  notice: string | null;
  theme: Theme;
  setTheme: (t: Theme) => void;
}) {
  const { t } = useI18n();
  const [mode, setMode] = useState<"signIn" | "signUp">("signIn");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [totp, setTotp] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [linking, setLinking] = useState(false);
  const [after, setAfter] = useState<After | null>(null);
  const [methods, setMethods] = useState<GetAuthMethodsResponse | null>(null);
  /** Signing in with an email code: asking for the code, then typing it. */
  const [codeStep, setCodeStep] = useState<"email" | "code" | null>(null);
  const [email, setEmail] = useState("");
  const [code, setCode] = useState("");
  /** The device's name: typed (optional), else the browser and OS (lib/deviceName.ts). */
  const [typedDeviceName, setTypedDeviceName] = useState("");
  const [autoDeviceName, setAutoDeviceName] = useState(() => fromUserAgent(navigator.userAgent));
  const deviceName = () => typedDeviceName.trim() || autoDeviceName;

  // The form is on screen: fetch what signing in needs while the person types.
  useEffect(() => {
    whenIdle(() => {
      loadForSignIn().catch((err: unknown) => console.warn("prefetching the sign-in code", err));
    });
  }, []);

  useEffect(() => {
    let live = true;
    void defaultDeviceName().then((name) => live && setAutoDeviceName(name));
    return () => {
      live = false;
    };
  }, []);

  useEffect(() => {
    let cancelled = false;
    authClient.getAuthMethods({}).then(
      (m) => {
        if (!cancelled) setMethods(m);
      },
      () => undefined, // offline: password only
    );
    return () => {
      cancelled = true;
    };
  }, []);

  const signUpOpen = methods?.signUpOpen ?? true;

  async function signInWith(call: () => Promise<{ session?: Session | undefined }>, signingUp = false) {
    setBusy(true);
    setError(null);
    try {
      // Loaded before the request: an account or session is never made that this page cannot
      // then set up (usually long done by the prefetch).
      const { E2ee, currentBackup } = await loadForSignIn();
      const res = await call();
      if (!res.session) throw new Error("no session");
      const s = fromProto(res.session);
      await beginSession(s);
      const engine = await E2ee.setUp(s.accountId, s.deviceId);
      if (signingUp && engine.state === "ready") {
        setAfter({ kind: "recovery", engine, username });
        return;
      }
      if (engine.state === "needs-link") {
        const backup = await currentBackup().catch(() => null);
        if (backup) {
          setAfter({ kind: "restore", engine, accountId: s.accountId, deviceId: s.deviceId });
          return;
        }
      }
      await onSignedIn(engine);
    } catch (err) {
      const reason = reasonOf(err);
      if (reason === "TOTP_REQUIRED") {
        setTotp("");
      } else {
        setError(errorText(t, reason));
      }
    } finally {
      setBusy(false);
    }
  }

  function submit(e: FormEvent) {
    e.preventDefault();
    void signInWith(
      () =>
        mode === "signUp"
          ? authClient.signUp({ username, password, displayName, deviceName: deviceName() })
          : authClient.signIn({ username, password, deviceName: deviceName(), totpCode: totp ?? "" }),
      mode === "signUp",
    );
  }

  /** Opens linking once its code and the WASM are here (an error stays on the form, which still works). */
  async function startLinking() {
    setBusy(true);
    setError(null);
    try {
      await loadForSignIn();
      setLinking(true);
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  async function requestCode(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await authClient.requestSignInCode({ email: email.trim() });
      setCode("");
      setCodeStep("code");
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  function submitCode(e: FormEvent) {
    e.preventDefault();
    void signInWith(() =>
      authClient.signInWithCode({ login: email.trim(), code: code.trim(), deviceName: deviceName(), totpCode: totp ?? "" }),
    );
  }

  function showCodeFlow(step: "email" | null) {
    setCodeStep(step);
    setTotp(null);
    setError(null);
  }

  const title = mode === "signIn" ? t("signIn") : t("signUp");
  const loading: ReactNode = <p role="status">{t("working")}</p>;
  const brand = (
    <header className="brand">
      <img src="/favicon.svg" alt="" width="40" height="40" />
      <h1>{t("appName")}</h1>
    </header>
  );
  if (after?.kind === "recovery") {
    const engine = after.engine;
    return (
      <main className="auth">
        {brand}
        <section className="card">
          <Suspense fallback={loading}>
            <RecoveryKeySetup
              engine={engine}
              accountName={after.username}
              onDone={() => void onSignedIn(engine)}
              onLater={() => void onSignedIn(engine)}
            />
          </Suspense>
        </section>
        <Preferences theme={theme} setTheme={setTheme} />
      </main>
    );
  }
  if (after?.kind === "restore") {
    const engine = after.engine;
    return (
      <main className="auth">
        {brand}
        <Suspense fallback={loading}>
          <RestoreFromBackup
            accountId={after.accountId}
            deviceId={after.deviceId}
            onRestored={async (restored) => {
              engine.dispose();
              await onSignedIn(restored);
            }}
            onLink={() => {
              // Linking signs in anew through the other device: this session goes.
              void signOut().then(() => {
                engine.dispose();
                setAfter(null);
                setLinking(true);
              });
            }}
            onSkip={() => void onSignedIn(engine)}
          />
        </Suspense>
        <Preferences theme={theme} setTheme={setTheme} />
      </main>
    );
  }
  if (linking) {
    return (
      <main className="auth">
        {brand}
        <Suspense fallback={loading}>
          <LinkNewDevice onLinked={onSignedIn} onBack={() => setLinking(false)} />
        </Suspense>
        <Preferences theme={theme} setTheme={setTheme} />
      </main>
    );
  }
  const errorLine = error && (
    <p role="alert" className="error">
      {error}
    </p>
  );
  const totpField = (
    <>
      <p>{t("totpPrompt")}</p>
      <label>
        {t("totpCode")}
        <input
          name="totp"
          inputMode="numeric"
          autoComplete="one-time-code"
          pattern="[0-9]{6}"
          required
          autoFocus
          value={totp ?? ""}
          onChange={(e) => setTotp(e.target.value)}
        />
      </label>
    </>
  );
  if (codeStep !== null) {
    return (
      <main className="auth">
        {brand}
        {codeStep === "email" ? (
          <form className="card form" onSubmit={requestCode} aria-label={t("signInWithCode")}>
            <h2>{t("signInWithCode")}</h2>
            <label>
              {t("email")}
              <input
                name="email"
                type="email"
                autoComplete="email"
                required
                autoFocus
                value={email}
                onChange={(e) => setEmail(e.target.value)}
              />
            </label>
            {errorLine}
            <button type="submit" className="primary" disabled={busy}>
              {busy ? t("working") : t("sendCode")}
            </button>
          </form>
        ) : (
          <form className="card form" onSubmit={submitCode} aria-label={t("signInWithCode")}>
            <h2>{t("signInWithCode")}</h2>
            {totp === null ? (
              <>
                <p role="status">{t("codeSent", { email: email.trim() })}</p>
                <label>
                  {t("emailCode")}
                  <input
                    name="code"
                    autoComplete="one-time-code"
                    autoCapitalize="none"
                    required
                    autoFocus
                    value={code}
                    onChange={(e) => setCode(e.target.value)}
                  />
                </label>
              </>
            ) : (
              totpField
            )}
            {errorLine}
            <button type="submit" className="primary" disabled={busy}>
              {busy ? t("working") : totp !== null ? t("continue") : t("signIn")}
            </button>
            <button type="button" className="link-button" onClick={() => showCodeFlow("email")}>
              {t("otherEmail")}
            </button>
          </form>
        )}
        <button type="button" onClick={() => showCodeFlow(null)}>
          {t("signInWithPassword")}
        </button>
        <Preferences theme={theme} setTheme={setTheme} />
      </main>
    );
  }
  return (
    <main className="auth">
      {brand}
      {notice && (
        <p role="alert" className="warning">
          {notice}
        </p>
      )}
      <div className="tabs" role="tablist" aria-label={t("appName")}>
        {(signUpOpen ? (["signIn", "signUp"] as const) : (["signIn"] as const)).map((m) => (
          <button
            key={m}
            type="button"
            role="tab"
            aria-selected={mode === m}
            className={mode === m ? "tab active" : "tab"}
            onClick={() => {
              setMode(m);
              setTotp(null);
              setError(null);
            }}
          >
            {m === "signIn" ? t("signIn") : t("signUp")}
          </button>
        ))}
      </div>
      <form className="card form" onSubmit={submit} aria-label={title}>
        {totp === null ? (
          <>
            <label>
              {t("username")}
              <input
                name="username"
                autoComplete="username"
                autoCapitalize="none"
                required
                value={username}
                onChange={(e) => setUsername(e.target.value)}
              />
            </label>
            <label>
              {t("password")}
              <input
                name="password"
                type="password"
                autoComplete={mode === "signUp" ? "new-password" : "current-password"}
                required
                minLength={8}
                value={password}
                onChange={(e) => setPassword(e.target.value)}
              />
            </label>
            {mode === "signUp" && (
              <label>
                {t("displayName")}
                <input name="displayName" value={displayName} onChange={(e) => setDisplayName(e.target.value)} />
              </label>
            )}
            <details className="device-name">
              <summary>{t("deviceNameSummary", { name: typedDeviceName.trim() || autoDeviceName })}</summary>
              <label>
                {t("deviceNameOptional")}
                <input
                  name="deviceName"
                  maxLength={64}
                  autoComplete="off"
                  placeholder={autoDeviceName}
                  value={typedDeviceName}
                  onChange={(e) => setTypedDeviceName(e.target.value)}
                />
              </label>
            </details>
          </>
        ) : (
          totpField
        )}
        {errorLine}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? t("working") : totp !== null ? t("continue") : title}
        </button>
      </form>
      {mode === "signIn" && methods?.emailCode && (
        <button type="button" onClick={() => showCodeFlow("email")}>
          {t("signInWithCode")}
        </button>
      )}
      <button type="button" disabled={busy} onClick={() => void startLinking()}>
        {t("linkThisDevice")}
      </button>
      <Preferences theme={theme} setTheme={setTheme} />
    </main>
  );
}
