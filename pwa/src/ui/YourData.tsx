// YourData.tsx — Settings → Your data: how long this server keeps messages, "Download my data"
// (AccountService.ExportAccount: everything the server can read about the account, as one JSON
// file; account/export.ts) and "Delete account" (AccountService.DeleteAccount), which asks for
// the password (and the authenticator code when two-factor sign-in is on), says what happens
// first — including what this server does with the messages sent (GetServerInfo) — and then
// wipes this device as signing out does (App.tsx).
import { useEffect, useState, type FormEvent } from "react";
import { accountClient, serverInfoClient } from "../api";
import { collectExport, exportFileName, saveFile } from "../account/export";
import { reasonOf } from "../errors";
import { DeletedAccountMessages } from "../gen/kitsulan/v1/server_info_pb";
import { useI18n } from "../i18n/i18n";
import { errorText } from "../i18n/messages";
import { useChat, type Chat } from "../state/chat";
import { CurrentPassword, TotpField } from "./AccountSecurity";
import { Dialog } from "./Dialog";

type Result = { ok: boolean; text: string } | null;

/** What the server said of itself that this section needs (unknown until it answers). */
interface Policy {
  retentionDays: number;
  deletedMessages: DeletedAccountMessages;
}

function DownloadData({ chat }: { chat: Chat }) {
  const { t } = useI18n();
  const username = useChat(chat, (s) => s.me.username);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<Result>(null);

  async function download() {
    setBusy(true);
    setResult({ ok: true, text: t("exportPreparing") });
    try {
      const json = await collectExport(accountClient.exportAccount({}));
      saveFile(json, exportFileName(username, new Date()));
      setResult({ ok: true, text: t("exportDone") });
    } catch (err) {
      const reason = reasonOf(err);
      setResult({ ok: false, text: reason === "RATE_LIMITED" ? t("exportRateLimited") : errorText(t, reason) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="form">
      <p id="export-what" className="muted">
        {t("exportWhat")}
      </p>
      <button type="button" aria-describedby="export-what" disabled={busy} onClick={() => void download()}>
        {t("exportDownload")}
      </button>
      <p role={result && !result.ok ? "alert" : "status"} className={result && !result.ok ? "error" : "muted"}>
        {result?.text}
      </p>
    </div>
  );
}

function DeleteAccountDialog({
  chat,
  policy,
  onDelete,
  onClose,
}: {
  chat: Chat;
  policy: Policy | null;
  onDelete: (request: () => Promise<unknown>) => Promise<void>;
  onClose: () => void;
}) {
  const { t } = useI18n();
  const username = useChat(chat, (s) => s.me.username);
  /** Whether two-factor sign-in is on (the code field then shows); null until known. */
  const [totp, setTotp] = useState<boolean | null>(null);
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [understood, setUnderstood] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    accountClient
      .getMyAccount({})
      .then((res) => live && setTotp(res.account?.totpEnabled ?? false))
      .catch(() => live && setTotp(false)); // the server asks for the code (TOTP_REQUIRED) if it must
    return () => {
      live = false;
    };
  }, []);

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!understood || !password || busy) return;
    setBusy(true);
    setError(null);
    try {
      await onDelete(() => accountClient.deleteAccount({ password, totpCode: code.replace(/\s/g, "") }));
      // This device is signed out and wiped: the sign-in screen replaces everything.
    } catch (err) {
      const reason = reasonOf(err);
      if (reason === "TOTP_REQUIRED") setTotp(true);
      setError(errorText(t, reason));
      setBusy(false);
    }
  }

  const messages =
    policy?.deletedMessages === DeletedAccountMessages.ANONYMIZE
      ? t("deleteAccountMessagesKept")
      : policy?.deletedMessages === DeletedAccountMessages.DELETE
        ? t("deleteAccountMessagesDeleted")
        : t("deleteAccountMessagesUnknown");
  return (
    <Dialog title={t("deleteAccountTitle")} onClose={onClose}>
      <form className="form delete-account" onSubmit={(e) => void submit(e)}>
        <div className="confirm-text">
          <p>{t("deleteAccountIntro", { username })}</p>
          <ul>
            <li>{t("deleteAccountLeaves")}</li>
            <li>{t("deleteAccountSignsOut")}</li>
            <li>{t("deleteAccountUsername", { username })}</li>
            <li>{messages}</li>
          </ul>
          <p>{t("deleteAccountExportFirst")}</p>
        </div>
        <CurrentPassword name="deletePassword" value={password} onChange={setPassword} />
        {totp && <TotpField value={code} onChange={setCode} />}
        <label className="check">
          <input type="checkbox" name="understood" checked={understood} onChange={(e) => setUnderstood(e.target.checked)} />
          {t("deleteAccountUnderstood")}
        </label>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        {busy && (
          <p role="status" className="muted">
            {t("deleteAccountWorking")}
          </p>
        )}
        <div className="row">
          <button type="button" onClick={onClose} disabled={busy}>
            {t("cancel")}
          </button>
          <button type="submit" className="danger" disabled={busy || !understood || !password || totp === null}>
            {t("deleteAccount")}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function YourData({ chat, onDeleteAccount }: { chat: Chat; onDeleteAccount: (request: () => Promise<unknown>) => Promise<void> }) {
  const { t, lang } = useI18n();
  const [policy, setPolicy] = useState<Policy | null>(null);
  const [deleting, setDeleting] = useState(false);

  useEffect(() => {
    let live = true;
    serverInfoClient
      .getServerInfo({})
      .then((info) => live && setPolicy({ retentionDays: info.retentionDays, deletedMessages: info.deletedAccountMessages }))
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, []);

  return (
    <section aria-labelledby="your-data-heading" className="form your-data">
      <h3 id="your-data-heading">{t("yourData")}</h3>
      {policy && policy.retentionDays > 0 && <p>{t("retentionNote", { period: new Intl.NumberFormat(lang, { style: "unit", unit: "day", unitDisplay: "long" }).format(policy.retentionDays) })}</p>}
      <DownloadData chat={chat} />
      <div className="form">
        <button type="button" className="danger" onClick={() => setDeleting(true)}>
          {t("deleteAccount")}
        </button>
      </div>
      {deleting && <DeleteAccountDialog chat={chat} policy={policy} onDelete={onDeleteAccount} onClose={() => setDeleting(false)} />}
    </section>
  );
}
