// Settings.tsx — profile (name, username, account id), devices, language, theme, sign out.
import { useI18n } from "../i18n/i18n";
import { useChat, type Chat } from "../state/chat";
import type { Theme } from "../theme";
import { CopyId } from "./CopyId";
import { Dialog } from "./Dialog";
import { Preferences } from "./Preferences";

export function Settings({
  chat,
  onClose,
  onDevices,
  onSignOut,
  theme,
  setTheme,
}: {
  chat: Chat;
  onClose: () => void;
  onDevices: () => void;
  onSignOut: () => Promise<void>;
  theme: Theme;
  setTheme: (t: Theme) => void;
}) {
  const { t } = useI18n();
  const me = useChat(chat, (s) => s.me);
  return (
    <Dialog title={t("settings")} onClose={onClose}>
      <section aria-label={t("profile")} className="form">
        <p>
          <strong>{me.displayName}</strong> <span className="muted">@{me.username}</span>
        </p>
        <CopyId label={t("yourAccountId")} value={me.accountId} />
      </section>
      <button type="button" onClick={onDevices}>
        {t("devices")}
      </button>
      <Preferences theme={theme} setTheme={setTheme} />
      <div className="row">
        <button type="button" className="danger" onClick={() => void onSignOut()}>
          {t("signOut")}
        </button>
        <button type="button" onClick={onClose}>
          {t("closeSettings")}
        </button>
      </div>
    </Dialog>
  );
}
