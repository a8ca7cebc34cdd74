// GuildRail.tsx — the column of round icons on the left, as in Discord: the direct messages (the
// conversation list) first, then one icon per guild (its initials), a dot when a channel has
// unread messages and a badge with the mentions of us, and "+" to make a guild or join one.
import { useI18n } from "../../i18n/i18n";
import { useChat, type Chat } from "../../state/chat";
import { adjacentChannel, guildUnread, initials } from "../../state/guilds";
import { useAvatarUrl } from "../Avatar";

/** A guild's icon, or its initials while there is none (or it cannot be loaded). */
export function GuildIcon({ id, iconId, name }: { id: string; iconId: string | undefined; name: string }) {
  const url = useAvatarUrl({ case: "guildId", value: id }, iconId || undefined);
  return url ? (
    <img className="rail-img" src={url} alt="" aria-hidden="true" draggable={false} />
  ) : (
    <span aria-hidden="true">{initials(name)}</span>
  );
}

export function GuildRail({ chat, dmUnread, onAdd }: { chat: Chat; dmUnread: number; onAdd: () => void }) {
  const { t } = useI18n();
  const guilds = useChat(chat, (s) => s.guilds);
  const selected = guilds.selected;
  return (
    <nav className="rail" aria-label={t("guildRail")}>
      <ul>
        <li>
          <button
            type="button"
            className={selected === null ? "rail-icon dm current" : "rail-icon dm"}
            aria-current={selected === null ? "page" : undefined}
            title={t("directMessages")}
            onClick={() => {
              const active = chat.get().active;
              chat.guilds.select(null);
              // A channel on screen gives way to the conversation list.
              if (active && chat.guilds.channel(active)) chat.setActive(null);
            }}
          >
            <span aria-hidden="true">💬</span>
            <span className="visually-hidden">{dmUnread > 0 ? `${t("directMessages")}, ${t("unread", { n: dmUnread })}` : t("directMessages")}</span>
            {dmUnread > 0 && <span className="rail-badge" aria-hidden="true">{dmUnread > 99 ? "99+" : dmUnread}</span>}
          </button>
        </li>
        <li className="rail-sep" aria-hidden="true" />
        {guilds.order.map((id) => {
          const view = guilds.views[id];
          const name = view?.guild.name ?? "…";
          const { unread, mentions } = guildUnread(guilds, id);
          const label = [name, mentions > 0 ? t("mentionBadge", { n: mentions }) : unread ? t("guildUnread") : ""].filter(Boolean).join(", ");
          return (
            <li key={id} className={unread ? "rail-item unread" : "rail-item"}>
              <button
                type="button"
                className={selected === id ? "rail-icon current" : "rail-icon"}
                aria-current={selected === id ? "page" : undefined}
                title={name}
                onClick={() => openGuild(chat, id)}
              >
                {/* The name is read out; the icon or the initials are what shows. */}
                <GuildIcon id={id} iconId={view?.guild.iconId} name={name} />
                <span className="visually-hidden">{label}</span>
                {mentions > 0 && <span className="rail-badge" aria-hidden="true">{mentions > 99 ? "99+" : mentions}</span>}
              </button>
            </li>
          );
        })}
        <li>
          <button type="button" className="rail-icon add" aria-label={t("addGuild")} title={t("addGuild")} onClick={onAdd}>
            <span aria-hidden="true">+</span>
          </button>
        </li>
      </ul>
    </nav>
  );
}

/** Shows a guild: the channel opened last in it (this session), else its first text channel. */
export function openGuild(chat: Chat, guildId: string): void {
  chat.guilds.select(guildId);
  const s = chat.get();
  const view = s.guilds.views[guildId];
  if (!view) return;
  const current = s.active ? chat.guilds.guildOf(s.active) : undefined;
  if (current?.guild.id === guildId) return;
  const remembered = lastChannel.get(guildId);
  const first = remembered && s.guilds.channels[remembered] ? remembered : firstChannel(chat, guildId);
  chat.setActive(first);
}

/** The channel last opened in each guild (this session). */
export const lastChannel = new Map<string, string>();

function firstChannel(chat: Chat, guildId: string): string | null {
  const view = chat.get().guilds.views[guildId];
  return view ? adjacentChannel(view, null, 1) : null;
}
