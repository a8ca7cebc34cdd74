// ChannelMembers.tsx — the member list on the right of a private end-to-end encrypted channel: the
// people who can read it (its conversation's members, not the guild's roles), a line saying only
// they can; with MANAGE_CHANNELS there, "Add people" (guild members not in it yet) and a remove
// button on those below our highest role; "Leave the channel" for everyone. Each change asks
// first where it cannot be undone, and the server's refusal shows in words (channelErrorText).
import { useEffect, useState } from "react";
import type { GuildChannel } from "../../gen/kitsulan/v1/guild_pb";
import { reasonOf } from "../../errors";
import { useI18n } from "../../i18n/i18n";
import { channelErrorText } from "../../i18n/messages";
import { useChat, type Chat } from "../../state/chat";
import { has, outranks, Perm, type GuildView } from "../../state/guilds";
import { PersonAvatar } from "../Avatar";
import { Confirm } from "../Confirm";
import { personName } from "../names";
import { AddToChannel } from "./AddToChannel";

export function ChannelMembers({ chat, view, channel, onClose }: { chat: Chat; view: GuildView; channel: GuildChannel; onClose: () => void }) {
  const { t } = useI18n();
  const conversation = useChat(chat, (s) => s.guilds.channels[channel.id]);
  const me = useChat(chat, (s) => s.me.accountId);
  const online = useChat(chat, (s) => s.online);
  useChat(chat, (s) => s.profiles); // names as they arrive
  const [adding, setAdding] = useState(false);
  const [removing, setRemoving] = useState<string | null>(null);
  const [leaving, setLeaving] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // The guild's members with their roles: who stands below us (and their names).
  const guildId = view.guild.id;
  const [guildMembers, setGuildMembers] = useState(() => chat.guilds.listedMembers(guildId));
  // Read again when someone joins or leaves the guild, or the roles change (not on every change).
  const generation = `${view.guild.memberCount}/${view.roles.map((r) => `${r.id}:${r.position}`).join(",")}`;
  useEffect(() => {
    let live = true;
    void chat.guilds
      .allMembers(guildId)
      .then((m) => live && setGuildMembers(m))
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [chat, guildId, generation]);
  if (!conversation) return null;
  const manages = has(channel.permissions, Perm.MANAGE_CHANNELS);
  const listed = new Map(guildMembers.map((m) => [m.accountId, m]));
  const ids = conversation.members.map((m) => m.accountId);
  const others = ids.filter((id) => id !== me).sort((a, b) => personName(chat, t, a).localeCompare(personName(chat, t, b)));

  async function act(f: () => Promise<void>): Promise<void> {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (err) {
      setError(channelErrorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
      setRemoving(null);
      setLeaving(false);
    }
  }

  const row = (id: string) => {
    const name = personName(chat, t, id);
    const owner = view.guild.ownerId === id;
    // Those we do not stand above: no button (the server would refuse); unknown rank: it decides.
    const removable = manages && id !== me && outranks(view, me, listed.get(id)) !== false;
    return (
      <li key={id} className="channel-member">
        <span className={id === me || online[id] ? "member online" : "member"}>
          <span className="member-avatar" aria-hidden="true">
            <PersonAvatar chat={chat} accountId={id} name={chat.nameOf(id) || name} className="avatar" />
            {(id === me || online[id]) && <span className="presence-dot" />}
          </span>
          <span className="member-name">{name}</span>
          {owner && (
            <span title={t("guildOwner")}>
              <span aria-hidden="true">👑</span>
              <span className="visually-hidden">, {t("guildOwner")}</span>
            </span>
          )}
        </span>
        {removable && (
          <button type="button" className="icon danger" aria-label={t("channelRemoveNamed", { name })} title={t("channelRemoveNamed", { name })} disabled={busy} onClick={() => setRemoving(id)}>
            ×
          </button>
        )}
      </li>
    );
  };

  return (
    <aside className="guild-members channel-members" aria-label={t("channelMembers")}>
      <header className="bar">
        <h2 className="members-title">
          {t("members")} <span className="muted">— {ids.length}</span>
        </h2>
        <button type="button" className="icon members-close" aria-label={t("close")} onClick={onClose}>
          ×
        </button>
      </header>
      <div className="members-scroll">
        <p className="channel-e2ee-note muted">
          <span aria-hidden="true">🔒 </span>
          {t("channelE2eeInfo")}
        </p>
        {manages && (
          <button type="button" className="primary channel-add" disabled={busy} onClick={() => setAdding(true)}>
            {t("channelAddPeople")}
          </button>
        )}
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <ul className="member-list">{[me, ...others].filter((id) => ids.includes(id)).map(row)}</ul>
        <button type="button" className="danger channel-leave" disabled={busy} onClick={() => setLeaving(true)}>
          {t("channelLeave")}
        </button>
      </div>
      {adding && <AddToChannel chat={chat} channel={channel} guildMembers={guildMembers} inChannel={ids} onClose={() => setAdding(false)} />}
      {removing && (
        <Confirm
          title={t("channelRemoveTitle", { name: personName(chat, t, removing), channel: channel.name })}
          action={t("removeMember")}
          busy={busy}
          onCancel={() => setRemoving(null)}
          onConfirm={() => void act(() => chat.channelMembers.remove(channel.id, removing))}
        >
          <p>{t("channelRemoveNote")}</p>
        </Confirm>
      )}
      {leaving && (
        <Confirm
          title={t("channelLeaveTitle", { name: channel.name })}
          action={t("leave")}
          busy={busy}
          onCancel={() => setLeaving(false)}
          onConfirm={() => void act(() => chat.channelMembers.leave(channel.id))}
        >
          <p>{t("channelLeaveNote")}</p>
        </Confirm>
      )}
    </aside>
  );
}
