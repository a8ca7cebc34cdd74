// Messenger.tsx — the signed-in layout: conversation list beside the open conversation on wide
// screens, one or the other on phones; settings and new-conversation dialogs on top.
import { lazy, Suspense, useCallback, useEffect, useState } from "react";
import { useI18n } from "../i18n/i18n";
import { useChat, type Chat } from "../state/chat";
import type { Theme } from "../theme";
import { isContactFragment } from "../lib/contactLink";
import { useLoadedCalls } from "./call/useCalls";
import { SearchIcon } from "./call/icons";
import { AddContact, ContactAdded } from "./contacts/AddContact";
import { MyQrCode } from "./contacts/MyQrCode";
import { personName } from "./names";
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
import { Search } from "./Search";
import { Forward } from "./Forward";
import type { Item } from "../state/chat";

// The call screen and the call code are a chunk of their own, loaded on the first call.
const CallScreen = lazy(() => import("./call/CallScreen").then((m) => ({ default: m.CallScreen })));

export function Messenger({
  chat,
  onSignOut,
  onDeleteAccount,
  swap,
  theme,
  setTheme,
}: {
  chat: Chat;
  onSignOut: () => Promise<void>;
  /** Deletes the account (`request`), then wipes this device (App.tsx). */
  onDeleteAccount: (request: () => Promise<unknown>) => Promise<void>;
  /** Restoring from the backup in Settings swaps the engine (App.tsx). */
  swap?: EngineSwap;
  theme: Theme;
  setTheme: (t: Theme) => void;
}) {
  const { t } = useI18n();
  const active = useChat(chat, (s) => s.active);
  const status = useChat(chat, (s) => s.status);
  const calls = useLoadedCalls(chat);
  const [dialog, setDialog] = useState<"none" | "new" | "settings" | "devices" | "myQr" | "scan" | "search">("none");
  /** The message being forwarded (the conversation picker is open). */
  const [forwarding, setForwarding] = useState<Item | null>(null);
  /** A contact link the app was opened with (`/#/add/…`), taken from the address bar. */
  const [openedLink, setOpenedLink] = useState<string | null>(null);
  /** The person just added by their code: the offer to verify them. */
  const [added, setAdded] = useState<string | null>(null);

  // Someone's contact link opened the app (or was opened while it runs): check it like a scan.
  // The fragment leaves the address bar at once, so a reload does not take it again.
  useEffect(() => {
    const take = () => {
      if (!isContactFragment(window.location.hash)) return;
      const link = window.location.href;
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
      setOpenedLink(link);
      setDialog("scan");
    };
    take();
    window.addEventListener("hashchange", take);
    return () => window.removeEventListener("hashchange", take);
  }, []);

  const onContactAdded = useCallback(
    (conversationId: string, accountId: string) => {
      chat.setActive(conversationId);
      setOpenedLink(null);
      setDialog("none");
      setAdded(accountId);
    },
    [chat],
  );
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

  // Ctrl+F (⌘F) opens the search panel instead of the browser's find, which sees only what is on screen.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && e.key.toLowerCase() === "f") {
        e.preventDefault();
        setDialog("search");
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

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
          <button type="button" className="icon" aria-label={t("searchMessages")} title={t("searchMessages")} onClick={() => setDialog("search")}>
            <SearchIcon />
          </button>
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
        {active ? (
          <ConversationView key={active} chat={chat} conversationId={active} onSearch={() => setDialog("search")} onForward={setForwarding} />
        ) : (
          <div className="empty" />
        )}
      </main>
      <Notifier chat={chat} />
      {calls && (
        <Suspense fallback={null}>
          <CallScreen chat={chat} calls={calls} />
        </Suspense>
      )}
      {dialog === "new" && (
        <NewConversation chat={chat} onClose={() => setDialog("none")} onMyQr={() => setDialog("myQr")} onScan={() => setDialog("scan")} />
      )}
      {dialog === "myQr" && <MyQrCode chat={chat} onClose={() => setDialog("none")} />}
      {dialog === "search" && <Search chat={chat} initialConversation={active} onClose={() => setDialog("none")} />}
      {forwarding && <Forward chat={chat} item={forwarding} onClose={() => setForwarding(null)} />}
      {dialog === "scan" && (
        <AddContact
          chat={chat}
          initialLink={openedLink ?? undefined}
          onAdded={onContactAdded}
          onClose={() => {
            setOpenedLink(null);
            setDialog("none");
          }}
        />
      )}
      {added && <ContactAdded chat={chat} accountId={added} name={personName(chat, t, added)} onClose={() => setAdded(null)} />}
      {dialog === "settings" && (
        <Settings
          chat={chat}
          onClose={() => setDialog("none")}
          onDevices={() => setDialog("devices")}
          onSignOut={onSignOut}
          onDeleteAccount={onDeleteAccount}
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
