// VoiceChannel.tsx — a voice channel, opened: listed and ordered today, its voice comes with the
// built-in media server (the SFU); the page says so instead of pretending to connect.
import type { GuildChannel } from "../../gen/kitsulan/v1/guild_pb";
import { useI18n } from "../../i18n/i18n";
import { PeopleIcon } from "../call/icons";
import { channelMark } from "./ChannelSidebar";

export function VoiceChannel({
  channel,
  onMembers,
  membersOpen,
  onChannels,
}: {
  channel: GuildChannel;
  onMembers: () => void;
  membersOpen: boolean;
  onChannels: () => void;
}) {
  const { t } = useI18n();
  return (
    <section className="conversation voice-channel" aria-label={channel.name}>
      <header className="bar">
        <button type="button" className="icon back" aria-label={t("channelsAndGuilds")} onClick={onChannels}>
          ☰
        </button>
        <div className="conv-head">
          <h2>
            <span aria-hidden="true">{channelMark(channel)} </span>
            {channel.name}
          </h2>
          {channel.topic && <span className="channel-topic muted">{channel.topic}</span>}
        </div>
        <span className="head-tools" />
        <button type="button" className="members-button" aria-label={t("guildMembers")} aria-pressed={membersOpen} onClick={onMembers}>
          <PeopleIcon />
          <span className="members-label">{t("members")}</span>
        </button>
      </header>
      <div className="voice-soon">
        <p className="voice-icon" aria-hidden="true">
          {channelMark(channel)}
        </p>
        <p>{t("voiceSoon")}</p>
      </div>
    </section>
  );
}
