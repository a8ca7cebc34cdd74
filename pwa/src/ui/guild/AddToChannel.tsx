// AddToChannel.tsx — "Add people" of a private end-to-end encrypted channel: the guild's members
// not in it yet, found by name, ticked, and added in one call (all of them or, if the server
// refuses one, none: the reason shows and the ticks stay).
import { useState, type FormEvent } from "react";
import type { GuildChannel, GuildMember } from "../../gen/kitsulan/v1/guild_pb";
import { reasonOf } from "../../errors";
import { useI18n } from "../../i18n/i18n";
import { channelErrorText } from "../../i18n/messages";
import type { Chat } from "../../state/chat";
import { candidates, MAX_CHANNEL_MEMBERS } from "../../state/channelMembers";
import { PersonAvatar } from "../Avatar";
import { Dialog } from "../Dialog";
import { personName } from "../names";

export function AddToChannel({
  chat,
  channel,
  guildMembers,
  inChannel,
  onClose,
}: {
  chat: Chat;
  channel: GuildChannel;
  /** The guild's members as listed (ListMembers). */
  guildMembers: GuildMember[];
  /** Who is in the channel already. */
  inChannel: string[];
  onClose: () => void;
}) {
  const { t } = useI18n();
  const [filter, setFilter] = useState("");
  const [picked, setPicked] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const name = (id: string) => personName(chat, t, id);
  const shown = candidates(guildMembers, inChannel, filter, name);
  const anyone = candidates(guildMembers, inChannel, "", name).length > 0;
  const room = MAX_CHANNEL_MEMBERS - inChannel.length;

  async function add(e: FormEvent) {
    e.preventDefault();
    if (picked.length === 0) return;
    setBusy(true);
    setError(null);
    try {
      await chat.channelMembers.add(channel.id, picked);
      onClose();
    } catch (err) {
      setError(channelErrorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title={t("channelAddPeopleTo", { name: channel.name })} onClose={onClose}>
      <form className="form" onSubmit={(e) => void add(e)}>
        {anyone ? (
          <>
            <label>
              {t("channelAddFilter")}
              <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} />
            </label>
            <ul className="member-list add-list">
              {shown.map((id) => (
                <li key={id}>
                  <label className="check add-member">
                    <input
                      type="checkbox"
                      checked={picked.includes(id)}
                      disabled={!picked.includes(id) && picked.length >= room}
                      onChange={(e) => setPicked((p) => (e.target.checked ? [...p, id] : p.filter((x) => x !== id)))}
                    />
                    <span className="member-avatar" aria-hidden="true">
                      <PersonAvatar chat={chat} accountId={id} name={chat.nameOf(id) || name(id)} className="avatar" />
                    </span>
                    <span className="member-name">{name(id)}</span>
                  </label>
                </li>
              ))}
            </ul>
            <p className="muted small">{t("channelAddNote")}</p>
          </>
        ) : (
          <p className="muted">{t("channelAddNone")}</p>
        )}
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <div className="row">
          <button type="button" onClick={onClose}>
            {t("cancel")}
          </button>
          {anyone && (
            <button type="submit" className="primary" disabled={busy || picked.length === 0}>
              {t("channelAddSelected", { n: picked.length })}
            </button>
          )}
        </div>
      </form>
    </Dialog>
  );
}
