// Messenger.tsx — the signed-in layout: conversation list beside the open conversation on wide
// screens, one or the other on phones; settings and new-conversation dialogs on top.
import { lazy, Suspense, useEffect, useState } from "react";
import { useI18n } from "../i18n/i18n";
import { useChat, type Chat } from "../state/chat";
import type { Theme } from "../theme";
import { useLoadedCalls } from "./call/useCalls";
import { ConversationList } from "./ConversationList";
import { ConversationView } from "./ConversationView";
import { Devices } from "./Devices";
import { NewConversation } from "./NewConversation";
import { Notifier } from "./Notifier";
import { onOpenRecovery } from "./recovery/openRecovery";
import type { EngineSwap } from "./recovery/RecoverySettings";
import { Settings } from "./Settings";
import { unreadOf } from "../state/reactions";
import { VerifyDialog } from "./VerifyDialog";

// The call screen and the call code are a chunk of their own, loaded on the first call.
const CallScreen = lazy(() => import("./call/CallScreen").then((m) => ({ default: m.CallScreen })));

export function Messenger({
  chat,
  onSignOut,
  swap,
  theme,
  setTheme,
}: {
  chat: Chat;
  onSignOut: () => Promise<void>;
  /** Restoring from the backup in Settings swaps the engine (App.tsx). */
  swap?: EngineSwap;
  theme: Theme;
  setTheme: (t: Theme) => void;
}) {
  const { t } = useI18n();
  const active = useChat(chat, (s) => s.active);
  const status = useChat(chat, (s) => s.status);
  const calls = useLoadedCalls(chat);
  const [dialog, setDialog] = useState<"none" | "new" | "settings" | "devices">("none");
  // The unread total in the tab's title, "(3) KitsuLAN" (message requests do not count).
  const unread = useChat(chat, (s) =>
    s.conversations.reduce((n, c) => (c.request ? n : n + unreadOf(c, s.threads[c.id], s.me.accountId)), 0),
  );
  const appName = t("appName");
  useEffect(() => {
    document.title = unread > 0 ? `(${unread}) ${appName}` : appName;
    return () => {
      document.title = appName;
    };
  }, [unread, appName]);

  // An undecryptable message's "Restore from recovery key" opens Settings → Recovery key.
  useEffect(() => onOpenRecovery(() => setDialog("settings")), []);

  useEffect(() => {
    const onVisible = () => {
      const id = chat.get().active;
      if (id && document.visibilityState === "visible") {
        chat.receipts.markReadIfVisible(id);
        chat.refreshNames(id);
      }
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => document.removeEventListener("visibilitychange", onVisible);
  }, [chat]);

  return (
    <div className={active ? "messenger has-active" : "messenger"}>
      <aside className="sidebar" aria-label={t("conversations")}>
        <header className="bar">
          <h1 className="app-title">{t("appName")}</h1>
          <span className={`status status-${status}`} role="status">
            {status === "online" ? t("online") : status === "connecting" ? t("connecting") : t("offline")}
          </span>
          <button type="button" className="icon" aria-label={t("settings")} onClick={() => setDialog("settings")}>
            ⚙
          </button>
        </header>
        <button type="button" className="primary new" onClick={() => setDialog("new")}>
          {t("newConversation")}
        </button>
        <ConversationList chat={chat} />
      </aside>
      <main className="pane">
        {active ? <ConversationView key={active} chat={chat} conversationId={active} /> : <div className="empty" />}
      </main>
      <Notifier chat={chat} />
      {calls && (
        <Suspense fallback={null}>
          <CallScreen chat={chat} calls={calls} />
        </Suspense>
      )}
      {dialog === "new" && <NewConversation chat={chat} onClose={() => setDialog("none")} />}
      {dialog === "settings" && (
        <Settings
          chat={chat}
          onClose={() => setDialog("none")}
          onDevices={() => setDialog("devices")}
          onSignOut={onSignOut}
          swap={swap}
          theme={theme}
          setTheme={setTheme}
        />
      )}
      {dialog === "devices" && <Devices chat={chat} onClose={() => setDialog("none")} />}
      <VerifyDialog chat={chat} />
    </div>
  );
}
