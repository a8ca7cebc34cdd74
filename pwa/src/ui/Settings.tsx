// Settings.tsx — profile (picture, display name, username, account id), notifications, devices,
// language, theme, your data (download, delete the account), sign out.
import { useEffect, useState, type FormEvent } from "react";
import { deviceClient } from "../api";
import { currentBackup } from "../crypto/backup";
import { reasonOf } from "../errors";
import { useI18n } from "../i18n/i18n";
import { errorText } from "../i18n/messages";
import { isLimited } from "../lib/secureContext";
import { loadPrefs, permission, requestPermission, savePrefs, type NotifyPrefs, type Permission } from "../notify/notifications";
import { disablePush, enablePush, pushIsOn, pushSupport, pushTexts, type PushResult } from "../notify/push";
import { useChat, type Chat } from "../state/chat";
import type { Theme } from "../theme";
import { AccountSecurity } from "./AccountSecurity";
import { Avatar } from "./Avatar";
import { AvatarPicker } from "./AvatarPicker";
import { CallSettings } from "./call/CallSettings";
import { Confirm } from "./Confirm";
import { CopyId } from "./CopyId";
import { Dialog } from "./Dialog";
import { personName } from "./names";
import { Preferences } from "./Preferences";
import { Diagnostics } from "./Diagnostics";
import { RecoverySettings, type EngineSwap } from "./recovery/RecoverySettings";
import { YourData } from "./YourData";

function Profile({ chat }: { chat: Chat }) {
  const { t } = useI18n();
  const me = useChat(chat, (s) => s.me);
  // null until edited: shows the current name, also when it arrives after the dialog opened.
  const [edited, setName] = useState<string | null>(null);
  const name = edited ?? me.displayName;
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);

  async function save(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setResult(null);
    try {
      await chat.profiles.updateProfile(name);
      setName(null);
      setResult({ ok: true, text: t("saved") });
    } catch (err) {
      setResult({ ok: false, text: errorText(t, reasonOf(err)) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="profile-heading" className="form">
      <h3 id="profile-heading">{t("profile")}</h3>
      <AvatarPicker
        preview={
          <Avatar
            name={me.displayName || me.username}
            owner={{ case: "accountId", value: me.accountId }}
            avatarId={me.avatarId}
            className="avatar avatar-lg"
          />
        }
        hasPicture={me.avatarId !== ""}
        onSet={(file) => chat.profiles.setMyAvatar(file)}
        onRemove={() => chat.profiles.removeMyAvatar()}
      />
      <p>
        <strong>{me.displayName}</strong> <span className="muted">@{me.username}</span>
      </p>
      <form className="row profile-form" onSubmit={save}>
        <label className="grow">
          {t("displayNameLabel")}
          <input
            name="displayName"
            required
            maxLength={64}
            value={name}
            onChange={(e) => {
              setName(e.target.value);
              setResult(null);
            }}
          />
        </label>
        <button type="submit" disabled={busy || !name.trim() || name.trim() === me.displayName}>
          {t("save")}
        </button>
      </form>
      <p role={result && !result.ok ? "alert" : "status"} className={result && !result.ok ? "error" : "muted"}>
        {result?.text}
      </p>
      <CopyId label={t("yourAccountId")} value={me.accountId} />
    </section>
  );
}

function Notifications() {
  const { t } = useI18n();
  const [prefs, setPrefs] = useState<NotifyPrefs>(loadPrefs);
  const [allowed, setAllowed] = useState<Permission>(permission);

  function update(next: NotifyPrefs) {
    savePrefs(next);
    setPrefs(next);
  }

  async function toggleSystem(on: boolean) {
    if (!on || permission() === "granted") {
      update({ ...prefs, system: on });
      return;
    }
    // Asked here, from the click, never on load.
    const answer = await requestPermission();
    setAllowed(answer);
    update({ ...prefs, system: answer === "granted" });
  }

  // Over plain HTTP on a LAN the browser refuses notifications whatever the permission says:
  // the switch is off and says why (not "blocked for this site", which the person cannot fix).
  const insecure = isLimited("notifications");
  const blocked = insecure || allowed === "denied" || allowed === "unsupported";
  return (
    <fieldset className="form notify">
      <legend>{t("notifications")}</legend>
      <label className="check">
        <input
          type="checkbox"
          checked={prefs.system && allowed === "granted" && !insecure}
          disabled={insecure || allowed === "unsupported"}
          aria-describedby={blocked ? "notify-blocked" : undefined}
          onChange={(e) => void toggleSystem(e.target.checked)}
        />
        {t("notifySystem")}
      </label>
      <label className="check">
        <input
          type="checkbox"
          checked={prefs.preview}
          aria-describedby="notify-preview-hint"
          onChange={(e) => update({ ...prefs, preview: e.target.checked })}
        />
        {t("notifyPreview")}
      </label>
      <p id="notify-preview-hint" className="muted hint">
        {t("notifyPreviewHint")}
      </p>
      {blocked && (
        <p id="notify-blocked" role="alert" className="warning">
          {insecure ? t("insecureReasonNotify") : allowed === "denied" ? t("notifyDenied") : t("notifyUnsupported")}
        </p>
      )}
      <PushSwitch onPermission={setAllowed} />
    </fieldset>
  );
}

/** "Notify me when the app is closed": Web Push through the browser's push service. */
function PushSwitch({ onPermission }: { onPermission: (p: Permission) => void }) {
  const { t } = useI18n();
  const support = pushSupport();
  const [on, setOn] = useState(false);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<PushResult | null>(null);

  useEffect(() => {
    if (support !== "ok") return;
    let live = true;
    pushIsOn()
      .then((value) => live && setOn(value))
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [support]);

  async function toggle(next: boolean) {
    setBusy(true);
    setResult(null);
    try {
      if (next) {
        const outcome = await enablePush(pushTexts(t));
        onPermission(permission());
        setOn(outcome === "on");
        setResult(outcome);
      } else {
        await disablePush();
        setOn(false);
      }
    } catch (err) {
      // The server could not be asked (offline): nothing changed.
      setResult({ refused: reasonOf(err) });
    } finally {
      setBusy(false);
    }
  }

  const reason =
    support === "insecure"
      ? t("pushInsecure")
      : support === "unsupported"
        ? t("pushUnsupported")
        : result === "unreachable"
          ? t("pushUnavailable")
          : result === "server-off"
            ? t("pushServerOff")
            : result === "denied"
              ? t("notifyDenied")
              : result !== null && typeof result === "object"
                ? t("pushRefused", { reason: errorText(t, result.refused) })
                : null;
  return (
    <>
      <label className="check">
        <input
          type="checkbox"
          checked={on}
          disabled={support !== "ok" || busy}
          aria-describedby={reason ? "push-reason" : "push-hint"}
          onChange={(e) => void toggle(e.target.checked)}
        />
        {t("pushSwitch")}
      </label>
      <p id="push-hint" className="muted hint">
        {t("pushHint")}
      </p>
      {reason && (
        <p id="push-reason" role="alert" className="warning">
          {reason}
        </p>
      )}
    </>
  );
}

/** The accounts we blocked, each with Unblock. */
/**
 * Sign out, after saying what this device loses: its keys and its copy of the encrypted history
 * (wiped from this browser). With no other device of this account linked, and no key backup
 * yet, nothing can read the earlier encrypted messages again: the warning says so plainly (with a
 * backup, it says the recovery key brings them back).
 */
function SignOut({ onSignOut }: { onSignOut: () => Promise<void> }) {
  const { t } = useI18n();
  /** null: not asked; "checking": looking for other devices; then how many others there are
   * (-1 when that could not be found out, e.g. offline: the stronger warning then). */
  const [others, setOthers] = useState<null | "checking" | number>(null);
  const [backedUp, setBackedUp] = useState(false);
  const [busy, setBusy] = useState(false);

  async function ask() {
    setOthers("checking");
    try {
      const [{ devices }, backup] = await Promise.all([deviceClient.listDevices({}), currentBackup().catch(() => null)]);
      setBackedUp(backup !== null);
      setOthers(devices.filter((d) => !d.current).length);
    } catch {
      setOthers(-1);
    }
  }

  return (
    <>
      <button type="button" className="danger" onClick={() => void ask()}>
        {t("signOut")}
      </button>
      {others !== null && (
        <Confirm
          title={t("signOutConfirmTitle")}
          action={t("signOut")}
          busy={busy || others === "checking"}
          onCancel={() => setOthers(null)}
          onConfirm={() => {
            setBusy(true);
            void onSignOut().finally(() => setBusy(false));
          }}
        >
          <p>{t("signOutWipes")}</p>
          {others === "checking" ? (
            <p className="muted" role="status">
              {t("signOutChecking")}
            </p>
          ) : others > 0 ? (
            <p>{t("signOutOtherDevices", { n: others })}</p>
          ) : others === 0 && backedUp ? (
            <p>{t("signOutBackedUp")}</p>
          ) : (
            <p className="warning" role="alert">
              {others === 0 ? t("signOutOnlyDevice") : t("signOutUnknownDevices")}
            </p>
          )}
        </Confirm>
      )}
    </>
  );
}

function Blocked({ chat }: { chat: Chat }) {
  const { t } = useI18n();
  useChat(chat, (s) => s.profiles); // names arrive after the list
  const [blocked, setBlocked] = useState<string[] | null>(null);
  const [error, setError] = useState("");

  useEffect(() => {
    let live = true;
    chat.conversations
      .blockedAccounts()
      .then((list) => live && setBlocked(list.map((b) => b.accountId)))
      .catch((err: unknown) => live && setError(errorText(t, reasonOf(err))));
    return () => {
      live = false;
    };
  }, [chat, t]);

  async function unblock(accountId: string) {
    try {
      await chat.conversations.unblock(accountId);
      setBlocked((list) => (list ?? []).filter((id) => id !== accountId));
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    }
  }

  return (
    <section aria-labelledby="blocked-heading" className="form">
      <h3 id="blocked-heading">{t("blockedAccounts")}</h3>
      {error && (
        <p role="alert" className="warning">
          {error}
        </p>
      )}
      {blocked && blocked.length === 0 && <p className="muted">{t("noBlocked")}</p>}
      {blocked && blocked.length > 0 && (
        <ul className="blocked-list">
          {blocked.map((id) => {
            const name = personName(chat, t, id);
            return (
              <li key={id}>
                <span>{name}</span>
                <button type="button" aria-label={t("unblockPerson", { name })} onClick={() => void unblock(id)}>
                  {t("unblock")}
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}

export function Settings({
  chat,
  onClose,
  onDevices,
  onSignOut,
  onDeleteAccount,
  swap,
  theme,
  setTheme,
}: {
  chat: Chat;
  onClose: () => void;
  onDevices: () => void;
  onSignOut: () => Promise<void>;
  /** Deletes the account (`request`), then wipes this device (App.tsx). */
  onDeleteAccount: (request: () => Promise<unknown>) => Promise<void>;
  /** Restoring from the backup on a device without the account key (App.tsx). */
  swap?: EngineSwap | undefined;
  theme: Theme;
  setTheme: (t: Theme) => void;
}) {
  const { t } = useI18n();
  return (
    <Dialog title={t("settings")} onClose={onClose} focusInput={false}>
      <Profile chat={chat} />
      <AccountSecurity />
      <RecoverySettings chat={chat} swap={swap} />
      <Notifications />
      <CallSettings calls={chat.calls} voice={chat.voice} />
      <Blocked chat={chat} />
      <button type="button" onClick={onDevices}>
        {t("devices")}
      </button>
      <Preferences theme={theme} setTheme={setTheme} />
      <section aria-labelledby="party-link-heading" className="form">
        <h3 id="party-link-heading">{t("partyTitle")}</h3>
        <p className="muted">{t("partyLinkNote")}</p>
        <p>
          <a href="/party">{t("partyOpen")}</a>
        </p>
      </section>
      <Diagnostics />
      <YourData chat={chat} onDeleteAccount={onDeleteAccount} />
      <div className="row">
        <SignOut onSignOut={onSignOut} />
        <button type="button" onClick={onClose}>
          {t("closeSettings")}
        </button>
      </div>
    </Dialog>
  );
}
