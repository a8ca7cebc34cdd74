// ChannelSidebar.tsx — the selected guild's column: its name with the settings and invite
// buttons, and its channels grouped by category (each category folds, remembered on this
// device), unread channels in bold with the mentions of us as a badge; voice channels are
// listed (their media comes with the SFU).
import { useState } from "react";
import { GuildChannelKind, type GuildChannel } from "../../gen/kitsulan/v1/guild_pb";
import { useI18n, type Translate } from "../../i18n/i18n";
import { useChat, type Chat } from "../../state/chat";
import { grouped, has, Perm } from "../../state/guilds";
import { lastChannel } from "./GuildRail";
import { VoiceBar, VoicePeople } from "./VoiceChannel";

const FOLDED = "kitsulan.folded";

function loadFolded(): Set<string> {
  try {
    const v: unknown = JSON.parse(localStorage.getItem(FOLDED) ?? "[]");
    return new Set(Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
  } catch {
    return new Set();
  }
}

/** The mark before a channel's name: # for text, a megaphone for announcements, a speaker for
 * voice, a lock for a private end-to-end encrypted channel. */
export function channelMark(c: Pick<GuildChannel, "kind" | "e2ee">): string {
  if (c.e2ee) return "🔒";
  if (c.kind === GuildChannelKind.ANNOUNCEMENT) return "📢";
  if (c.kind === GuildChannelKind.VOICE) return "🔊";
  return "#";
}

export function channelKindName(t: Translate, kind: GuildChannelKind): string {
  switch (kind) {
    case GuildChannelKind.ANNOUNCEMENT:
      return t("channelAnnouncement");
    case GuildChannelKind.VOICE:
      return t("channelVoice");
    case GuildChannelKind.CATEGORY:
      return t("channelCategory");
    default:
      return t("channelText");
  }
}

export function ChannelSidebar({
  chat,
  guildId,
  onSettings,
  onInvite,
  onOpened,
}: {
  chat: Chat;
  guildId: string;
  onSettings: () => void;
  onInvite: () => void;
  /** A channel was picked (a phone closes the drawer). */
  onOpened: () => void;
}) {
  const { t } = useI18n();
  const view = useChat(chat, (s) => s.guilds.views[guildId]);
  const convs = useChat(chat, (s) => s.guilds.channels);
  const active = useChat(chat, (s) => s.active);
  const status = useChat(chat, (s) => s.status);
  const [folded, setFolded] = useState(loadFolded);

  if (!view) {
    return (
      <aside className="sidebar channels" aria-label={t("channels")}>
        <p className="muted pad" role="status">
          {t("working")}
        </p>
      </aside>
    );
  }
  const perms = view.myPermissions;
  const mayInvite = has(perms, Perm.CREATE_INVITES);

  const fold = (id: string) => {
    const next = new Set(folded);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    localStorage.setItem(FOLDED, JSON.stringify([...next]));
    setFolded(next);
  };

  const row = (c: GuildChannel) => {
    const conv = convs[c.id];
    const unread = c.kind !== GuildChannelKind.VOICE && (conv?.unreadCount ?? 0) > 0;
    const mentions = conv?.mentionCount ?? 0;
    const current = active === c.id;
    const mark = channelMark(c);
    const label = [
      `${mark}${mark === "#" ? "" : " "}${c.name}`,
      c.kind === GuildChannelKind.VOICE ? t("channelVoice") : "",
      c.e2ee ? t("e2ee") : "",
      mentions > 0 ? t("mentionBadge", { n: mentions }) : unread ? t("guildUnread") : "",
    ]
      .filter(Boolean)
      .join(", ");
    return (
      <li key={c.id}>
        <button
          type="button"
          className={`channel${current ? " current" : ""}${unread ? " unread" : ""}`}
          aria-current={current ? "page" : undefined}
          aria-label={label}
          title={c.topic || c.name}
          onClick={() => {
            lastChannel.set(guildId, c.id);
            chat.setActive(c.id);
            onOpened();
          }}
        >
          <span className="channel-mark" aria-hidden="true">
            {channelMark(c)}
          </span>
          <span className="channel-name">{c.name}</span>
          {mentions > 0 && (
            <span className="badge mention-badge" aria-hidden="true">
              {mentions}
            </span>
          )}
        </button>
        {c.kind === GuildChannelKind.VOICE && <VoicePeople chat={chat} channel={c} />}
      </li>
    );
  };

  return (
    <aside className="sidebar channels" aria-label={t("channels")}>
      <header className="bar guild-head">
        <h1 className="app-title guild-title" title={view.guild.name}>
          {view.guild.name}
        </h1>
        {status !== "online" && (
          <span className={`status status-${status}`} role="status">
            {status === "connecting" ? t("connecting") : t("offline")}
          </span>
        )}
        {mayInvite && (
          <button type="button" className="icon" aria-label={t("invitePeople")} title={t("invitePeople")} onClick={onInvite}>
            <span aria-hidden="true">👤+</span>
          </button>
        )}
        <button type="button" className="icon" aria-label={t("guildSettings")} title={t("guildSettings")} onClick={onSettings}>
          ⚙
        </button>
      </header>
      <nav className="channel-list" aria-label={t("channels")}>
        {grouped(view.channels).map((g) => {
          if (!g.category) return <ul key="top">{g.channels.map(row)}</ul>;
          const id = g.category.id;
          const closed = folded.has(id);
          // Folded, a category still shows the open channel and those with unread messages.
          const shown = closed ? g.channels.filter((c) => c.id === active || (c.kind !== GuildChannelKind.VOICE && (convs[c.id]?.unreadCount ?? 0) > 0)) : g.channels;
          return (
            <section key={id} className="category" aria-label={g.category.name}>
              <h2>
                <button type="button" className="category-toggle" aria-expanded={!closed} onClick={() => fold(id)}>
                  <span aria-hidden="true">{closed ? "▸" : "▾"}</span> {g.category.name}
                </button>
              </h2>
              {shown.length > 0 && <ul>{shown.map(row)}</ul>}
            </section>
          );
        })}
      </nav>
      <VoiceBar
        chat={chat}
        onOpen={(id) => {
          chat.setActive(id);
          onOpened();
        }}
      />
    </aside>
  );
}
