// Messenger.tsx — the signed-in layout: the guild rail (direct messages, then each guild), the
// conversation list or the selected guild's channels beside the open conversation or channel,
// and a guild's member list on the right (a private encrypted channel's own members, with adding
// and removing them: guild/ChannelMembers.tsx), on wide screens; on phones one at a time, the rail
// with the channels and the member list sliding in over a channel. Settings, new-conversation,
// guild and invite dialogs on top; Ctrl+K switches, Alt+↑/↓ moves between a guild's channels.
import { lazy, Suspense, useCallback, useEffect, useRef, useState } from "react";
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
import { adjacentChannel, opensAsChat } from "../state/guilds";
import { clearPendingInvite, pendingInvite } from "../lib/invite";
import { AddGuild } from "./guild/AddGuild";
import { ChannelMembers } from "./guild/ChannelMembers";
import { ChannelSidebar } from "./guild/ChannelSidebar";
import { GuildMembers } from "./guild/GuildMembers";
import { GuildRail, lastChannel, openGuild } from "./guild/GuildRail";
import { GuildSettings } from "./guild/GuildSettings";
import { InviteJoin } from "./guild/InviteJoin";
import { InviteMaker } from "./guild/Invites";
import { QuickSwitcher } from "./guild/QuickSwitcher";
import { VoiceChannel } from "./guild/VoiceChannel";
import { Dialog } from "./Dialog";

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
  const [dialog, setDialog] = useState<
    "none" | "new" | "settings" | "devices" | "myQr" | "scan" | "search" | "addGuild" | "guildSettings" | "invitePeople" | "switcher"
  >("none");
  const selected = useChat(chat, (s) => s.guilds.selected);
  const selectedView = useChat(chat, (s) => (s.guilds.selected ? s.guilds.views[s.guilds.selected] : undefined));
  const closed = useChat(chat, (s) => s.guilds.closed);
  /** The open channel as GetGuild gave it (undefined: a direct conversation, or none). */
  const channel = useChat(chat, (s) => (s.active && s.guilds.channels[s.active] ? chat.guilds.channelInfo(s.active) : undefined));
  /** The invite whose page is open (`/invite/CODE`, or a link pasted in "+"). */
  const [invite, setInvite] = useState<string | null>(pendingInvite);
  /** The member list beside a guild's channel (wide screens start with it open). */
  const [membersOpen, setMembersOpen] = useState(() => window.matchMedia("(min-width: 1000px)").matches);
  /** Phones: the rail and the channels slid in over the channel. */
  const [drawer, setDrawer] = useState(false);
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
  const closeDialog = useCallback(() => setDialog("none"), []);

  // Narrowed to a phone's width, the member list closes (it would cover the channel); widened
  // to a desktop's, it opens beside it again.
  useEffect(() => {
    const phone = window.matchMedia("(max-width: 700px)");
    const wide = window.matchMedia("(min-width: 1000px)");
    const onPhone = () => {
      if (phone.matches) setMembersOpen(false);
    };
    const onWide = () => {
      if (wide.matches) setMembersOpen(true);
    };
    phone.addEventListener("change", onPhone);
    wide.addEventListener("change", onWide);
    return () => {
      phone.removeEventListener("change", onPhone);
      wide.removeEventListener("change", onWide);
    };
  }, []);

  // Ctrl+K (⌘K) opens the quick switcher; Alt+↑/↓ moves between the channels of the guild shown.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      // Escape closes a phone's drawer and member list (dialogs close themselves).
      if (e.key === "Escape") {
        setDrawer(false);
        if (window.matchMedia("(max-width: 700px)").matches) setMembersOpen(false);
        return;
      }
      if ((e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && e.key.toLowerCase() === "k") {
        e.preventDefault();
        setDialog("switcher");
        return;
      }
      if (e.altKey && !e.ctrlKey && !e.metaKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
        const s = chat.get();
        const view = s.guilds.selected ? s.guilds.views[s.guilds.selected] : undefined;
        if (!view) return;
        e.preventDefault();
        const next = adjacentChannel(view, s.active, e.key === "ArrowUp" ? -1 : 1);
        if (next) {
          lastChannel.set(view.guild.id, next);
          chat.setActive(next);
        }
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [chat]);

  // The drawer opened: the keyboard goes into it, on the channel open (else the first one).
  const side = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!drawer) return;
    const el = side.current;
    (el?.querySelector<HTMLElement>(".channel-list [aria-current='page']") ?? el?.querySelector<HTMLElement>("button"))?.focus();
  }, [drawer]);

  // The unread total in the tab's title, "(3) KitsuLAN" (message requests do not count).
  const unread = useChat(chat, (s) =>
    s.conversations.reduce((n, c) => (c.request ? n : n + unreadOf(c, s.threads[c.id], s.me.accountId)), 0),
  );
  // Guilds' channels count in the title by their mentions of us only (they are busy).
  const guildMentions = useChat(chat, (s) => Object.values(s.guilds.channels).reduce((n, c) => n + c.mentionCount, 0));
  const appName = t("appName");
  useEffect(() => {
    const shown = unread + guildMentions;
    document.title = shown > 0 ? `(${shown}) ${appName}` : appName;
    return () => {
      document.title = appName;
    };
  }, [unread, guildMentions, appName]);

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
  // The voice channel stays while other channels of its guild are read; going to another guild
  // or to the direct messages leaves it, as does closing the page (a reload joins again).
  const voiceGuild = useRef(selected);
  useEffect(() => {
    const before = voiceGuild.current;
    voiceGuild.current = selected;
    const inVoice = chat.voice.get().guildId;
    if (inVoice && before === inVoice && selected !== inVoice) void chat.voice.leave();
  }, [chat, selected]);
  useEffect(() => {
    const hide = (e: PageTransitionEvent) => {
      if (!e.persisted) chat.voice.pageHidden();
    };
    window.addEventListener("pagehide", hide);
    return () => window.removeEventListener("pagehide", hide);
  }, [chat]);

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

  const cls = ["messenger", "with-rail", active ? "has-active" : "", drawer ? "drawer-open" : "", selected && membersOpen ? "with-members" : ""].filter(Boolean).join(" ");
  const channelProps = channel
    ? { onMembers: () => setMembersOpen((o) => !o), membersOpen, onChannels: () => setDrawer(true) }
    : undefined;

  return (
    <div className={cls}>
      {/* Phones: a tap beside the drawer or the member list closes it. */}
      {(drawer || (selected && membersOpen && active)) && (
        <div
          className="scrim"
          aria-hidden="true"
          onClick={() => {
            setDrawer(false);
            if (window.matchMedia("(max-width: 700px)").matches) setMembersOpen(false);
          }}
        />
      )}
      <div className="side" ref={side}>
        <GuildRail chat={chat} dmUnread={unread} onAdd={() => setDialog("addGuild")} />
        {selected ? (
          <ChannelSidebar
            chat={chat}
            guildId={selected}
            onSettings={() => setDialog("guildSettings")}
            onInvite={() => setDialog("invitePeople")}
            onOpened={() => setDrawer(false)}
          />
        ) : (
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
        )}
      </div>
      <main className="pane">
        {active && channel && channelProps && !opensAsChat(channel) ? (
          <VoiceChannel key={active} chat={chat} guildId={selected ?? ""} channel={channel} {...channelProps} />
        ) : active ? (
          <ConversationView
            key={active}
            chat={chat}
            conversationId={active}
            onSearch={() => setDialog("search")}
            onForward={setForwarding}
            {...(channelProps ? { channel: channelProps } : {})}
          />
        ) : selectedView ? (
          <div className="empty guild-empty">
            {/* The channel open a moment ago went (we were taken out of it): say so. */}
            {closed?.guildId === selected ? (
              <p className="muted" role="status">
                {t("channelGone", { name: closed.name })}
              </p>
            ) : (
              <p className="muted">{t("guildNoChannel")}</p>
            )}
          </div>
        ) : (
          <div className="empty" />
        )}
      </main>
      {selected &&
        membersOpen &&
        (channel?.e2ee && selectedView ? (
          <ChannelMembers key={channel.id} chat={chat} view={selectedView} channel={channel} onClose={() => setMembersOpen(false)} />
        ) : (
          <GuildMembers key={selected} chat={chat} guildId={selected} onClose={() => setMembersOpen(false)} />
        ))}
      {dialog === "addGuild" && (
        <AddGuild
          chat={chat}
          onClose={closeDialog}
          onCreated={(id) => {
            setDialog("none");
            openGuild(chat, id);
          }}
          onInvite={(code) => {
            setDialog("none");
            setInvite(code);
          }}
        />
      )}
      {dialog === "guildSettings" && selected && <GuildSettings chat={chat} guildId={selected} onClose={closeDialog} />}
      {dialog === "invitePeople" && selected && (
        <Dialog title={t("invitePeopleTo", { name: selectedView?.guild.name ?? "" })} onClose={closeDialog} focusInput={false}>
          <InviteMaker chat={chat} guildId={selected} />
          <div className="row">
            <button type="button" onClick={closeDialog}>
              {t("close")}
            </button>
          </div>
        </Dialog>
      )}
      {dialog === "switcher" && <QuickSwitcher chat={chat} onClose={closeDialog} />}
      {invite && (
        <InviteJoin
          chat={chat}
          code={invite}
          onClose={() => {
            clearPendingInvite();
            setInvite(null);
          }}
          onJoined={(id) => {
            clearPendingInvite();
            setInvite(null);
            openGuild(chat, id);
          }}
        />
      )}
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
