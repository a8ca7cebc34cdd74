// AccountSecurity.tsx — the password and the email address, in Settings. Both changes ask for
// the current password (and the authenticator code when two-factor sign-in is on): someone who
// copied this device's session must not be able to take the account over with it. A new
// password signs every other device out unless the person keeps them.
import { useEffect, useState, type FormEvent } from "react";
import { accountClient, authClient } from "../api";
import type { Account } from "../gen/kitsulan/v1/account_pb";
import { reasonOf } from "../errors";
import { useI18n } from "../i18n/i18n";
import { errorText } from "../i18n/messages";

type Result = { ok: boolean; text: string } | null;

function ResultLine({ result }: { result: Result }) {
  return (
    <p role={result && !result.ok ? "alert" : "status"} className={result && !result.ok ? "error" : "muted"}>
      {result?.text}
    </p>
  );
}

export function TotpField({ value, onChange }: { value: string; onChange: (v: string) => void }) {
  const { t } = useI18n();
  return (
    <label>
      {t("totpCode")}
      <input
        name="totp"
        inputMode="numeric"
        autoComplete="one-time-code"
        pattern="[0-9 ]*"
        maxLength={8}
        required
        value={value}
        onChange={(e) => onChange(e.target.value)}
      />
    </label>
  );
}

/** The owner's password, asked again before a change a copied session must not make. */
export function CurrentPassword({ name, value, onChange }: { name: string; value: string; onChange: (v: string) => void }) {
  const { t } = useI18n();
  return (
    <label>
      {t("currentPassword")}
      <input
        type="password"
        name={name}
        autoComplete="current-password"
        required
        value={value}
        onChange={(e) => onChange(e.target.value)}
      />
    </label>
  );
}

function PasswordForm({ totp, titled }: { totp: boolean; titled: boolean }) {
  const { t } = useI18n();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [code, setCode] = useState("");
  const [keep, setKeep] = useState(false);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<Result>(null);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setResult(null);
    try {
      const res = await accountClient.changePassword({
        currentPassword: current,
        newPassword: next,
        totpCode: code.replace(/\s/g, ""),
        keepOtherDevices: keep,
      });
      setCurrent("");
      setNext("");
      setCode("");
      setResult({ ok: true, text: t("passwordChanged", { n: String(res.devicesSignedOut) }) });
    } catch (err) {
      setResult({ ok: false, text: errorText(t, reasonOf(err)) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="form" aria-label={t("changePassword")} onSubmit={submit}>
      {titled && <h4>{t("changePassword")}</h4>}
      <CurrentPassword name="currentPassword" value={current} onChange={setCurrent} />
      <label>
        {t("newPassword")}
        <input
          type="password"
          name="newPassword"
          autoComplete="new-password"
          required
          minLength={8}
          maxLength={256}
          value={next}
          onChange={(e) => setNext(e.target.value)}
        />
      </label>
      {totp && <TotpField value={code} onChange={setCode} />}
      <label className="check">
        <input type="checkbox" checked={keep} onChange={(e) => setKeep(e.target.checked)} />
        {t("keepOtherDevices")}
      </label>
      <button type="submit" disabled={busy || !current || next.length < 8}>
        {t("changePassword")}
      </button>
      <ResultLine result={result} />
    </form>
  );
}

function EmailForm({ account, onChanged }: { account: Account; onChanged: (a: Account) => void }) {
  const { t } = useI18n();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [verifyCode, setVerifyCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<Result>(null);
  const waiting = account.email !== "" && !account.emailVerified;

  async function run(action: () => Promise<Account | undefined>, done: string) {
    setBusy(true);
    setResult(null);
    try {
      const next = await action();
      if (next) onChanged(next);
      setResult({ ok: true, text: done });
    } catch (err) {
      setResult({ ok: false, text: errorText(t, reasonOf(err)) });
    } finally {
      setBusy(false);
    }
  }

  function setAddress(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const res = await accountClient.setEmail({
        email: email.trim(),
        currentPassword: password,
        totpCode: code.replace(/\s/g, ""),
      });
      setEmail("");
      setPassword("");
      setCode("");
      return res.account;
    }, t("emailCodeSent", { email: email.trim() }));
  }

  function verify(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const res = await accountClient.verifyEmail({ code: verifyCode.trim() });
      setVerifyCode("");
      return res.account;
    }, t("emailVerified"));
  }

  return (
    <div className="form">
      <h4 id="email-heading">{t("emailAddress")}</h4>
      <p className="muted">
        {account.email === ""
          ? t("noEmail")
          : t(account.emailVerified ? "emailIsVerified" : "emailNotVerified", { email: account.email })}
      </p>
      {waiting && (
        <form className="row" aria-label={t("verifyEmail")} onSubmit={verify}>
          <label className="grow">
            {t("emailCode")}
            <input
              name="emailCode"
              inputMode="numeric"
              autoComplete="one-time-code"
              required
              value={verifyCode}
              onChange={(e) => setVerifyCode(e.target.value)}
            />
          </label>
          <button type="submit" disabled={busy || !verifyCode.trim()}>
            {t("verifyEmail")}
          </button>
        </form>
      )}
      <form className="form" aria-labelledby="email-heading" onSubmit={setAddress}>
        <label>
          {t("newEmail")}
          <input
            type="email"
            name="email"
            autoComplete="email"
            required
            value={email}
            onChange={(e) => setEmail(e.target.value)}
          />
        </label>
        <CurrentPassword name="emailPassword" value={password} onChange={setPassword} />
        {account.totpEnabled && <TotpField value={code} onChange={setCode} />}
        <button type="submit" disabled={busy || !email.trim() || !password}>
          {t("setEmail")}
        </button>
      </form>
      <ResultLine result={result} />
    </div>
  );
}

export function AccountSecurity() {
  const { t } = useI18n();
  const [account, setAccount] = useState<Account | null>(null);
  const [emailAvailable, setEmailAvailable] = useState(false);
  const [failed, setFailed] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    Promise.all([accountClient.getMyAccount({}), authClient.getAuthMethods({})])
      .then(([mine, methods]) => {
        if (!live) return;
        if (mine.account) setAccount(mine.account);
        setEmailAvailable(methods.emailCode);
      })
      .catch((err: unknown) => {
        if (live) setFailed(reasonOf(err));
      });
    return () => {
      live = false;
    };
  }, []);

  return (
    <section aria-labelledby="security-heading" className="form account-security">
      <h3 id="security-heading">{t(emailAvailable ? "accountSecurity" : "passwordHeading")}</h3>
      {failed && (
        <p role="alert" className="error">
          {errorText(t, failed)}
        </p>
      )}
      {account && (
        <>
          <PasswordForm totp={account.totpEnabled} titled={emailAvailable} />
          {emailAvailable && <EmailForm account={account} onChanged={setAccount} />}
        </>
      )}
    </section>
  );
}
