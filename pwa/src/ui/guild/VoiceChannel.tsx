// VoiceChannel.tsx — a voice channel, opened: who is in it (GuildChannel.voice_account_ids, with a
// ring around whoever speaks; a person whose camera comes shows it in their tile, a shared screen
// gets a tile of its own), the button to join, and once in, mute (or push-to-talk), deafen, the
// camera, screen sharing, each person's volume and leave, with the end-to-end encryption said
// plainly (and, on a person's tile, when our key did not reach them or theirs us) and the
// connection's numbers folded away. The session itself
// is the chat's (voice/voice.ts), so it carries on while other channels of the guild are read;
// VoicePeople lists a voice channel's people in the channel sidebar, VoiceBar is the sidebar's
// "connected" strip.
import { useCallback, useSyncExternalStore } from "react";
import type { GuildChannel } from "../../gen/kitsulan/v1/guild_pb";
import { useI18n, type Translate } from "../../i18n/i18n";
import { errorText } from "../../i18n/messages";
import { isLimited } from "../../lib/secureContext";
import type { Chat } from "../../state/chat";
import { VOLUME_DEFAULT } from "../../voice/media";
import { NO_OLM_SESSION, type KeyTrouble } from "../../voice/keys";
import type { VoiceState } from "../../voice/voice";
import { PersonAvatar } from "../Avatar";
import { HangUpIcon, MicIcon, PeopleIcon, ScreenIcon, VideoIcon } from "../call/icons";
import { usePushToTalk } from "../call/InCall";
import { MediaView } from "../call/MediaView";
import { LockIcon } from "../LockIcon";
import { personName } from "../names";
import { channelMark } from "./ChannelSidebar";

export function useVoice(chat: Chat): VoiceState {
  return useSyncExternalStore(chat.voice.subscribe, chat.voice.get);
}

function voiceError(t: Translate, reason: string): string {
  switch (reason) {
    case "MIC_DENIED":
      return t("voiceMicDenied");
    case "NO_MIC":
      return t("voiceNoMic");
    case "UNSUPPORTED":
      return t("voiceUnsupported");
    case "CAMERA_DENIED":
      return t("voiceCameraDenied");
    case "NO_CAMERA":
      return t("voiceNoCamera");
    default:
      return errorText(t, reason);
  }
}

/** Why our key did not reach someone, as the end of a sentence. */
function keyReason(t: Translate, reason: string): string {
  const text = reason === "ACCOUNT_KEY_CHANGED" ? t("voiceKeyChangedReason") : reason === NO_OLM_SESSION ? t("voiceNoOlmReason") : errorText(t, reason);
  return /[.!?…]$/.test(text) ? text : `${text}.`;
}

/** The sentences of a person's key trouble: our key not sent to them, none of theirs here. */
function troubleTexts(t: Translate, name: string, trouble: KeyTrouble | undefined): string[] {
  if (!trouble) return [];
  return [
    trouble.notSent ? t("voiceCantEncrypt", { name, reason: keyReason(t, trouble.notSent) }) : "",
    trouble.noKey ? t("voiceNoKeyFrom", { name }) : "",
  ].filter(Boolean);
}

/** Whether our microphone is off: muted, or push-to-talk not held. */
function micOff(voice: VoiceState): boolean {
  return voice.muted || (voice.pushToTalk && !voice.talking);
}

/** What a person's tile or row is called: the name, then what is going on with them. */
function personLabel(t: Translate, name: string, speaking: boolean, me: boolean, voice: VoiceState, troubles: readonly string[] = []): string {
  return [name, speaking ? t("voiceSpeaking") : "", me && micOff(voice) ? t("voiceMicOff") : "", me && voice.deafened ? t("voiceSoundOff") : "", ...troubles]
    .filter(Boolean)
    .join(", ");
}

/** Push-to-talk in the room (the calls setting): see usePushToTalk. */
function useRoomPushToTalk(chat: Chat, on: boolean): void {
  const setTalking = useCallback((talking: boolean) => chat.voice.setTalking(talking), [chat]);
  usePushToTalk(on, setTalking);
}

/** One person in the room: their camera if it comes, else their avatar; their volume here. */
function PersonTile({ chat, voice, id, here }: { chat: Chat; voice: VoiceState; id: string; here: boolean }) {
  const { t } = useI18n();
  const me = chat.get().me.accountId;
  const name = personName(chat, t, id);
  const speaking = here && voice.speaking.includes(id);
  const self = id === me && here;
  const remote = here && id !== me ? voice.videos.find((v) => v.accountId === id && v.kind === "camera") : undefined;
  const stream = self ? voice.camera : remote ? voice.videoStreams[remote.slot] : undefined;
  const inRoom = here && voice.phase !== "failed" && voice.phase !== "idle";
  const trouble = inRoom && id !== me ? voice.keyTrouble[id] : undefined;
  const troubles = troubleTexts(t, name, trouble);
  return (
    <li
      className={`voice-tile${speaking ? " speaking" : ""}${stream ? " video" : ""}${trouble ? " trouble" : ""}`}
      data-speaking={speaking}
      aria-label={personLabel(t, name, speaking, self, voice, troubles)}
    >
      {stream ? (
        <MediaView stream={stream} muted mirrored={self} label={self ? t("yourCamera") : t("videoOf", { name })} />
      ) : (
        <PersonAvatar chat={chat} accountId={id} name={chat.nameOf(id) || name} className="avatar voice-avatar" />
      )}
      <span className="voice-tile-foot">
        <span className="voice-name">{name}</span>
        {inRoom && id !== me && <VolumeSlider chat={chat} voice={voice} id={id} name={name} />}
      </span>
      {trouble && <KeyWarning chat={chat} name={name} trouble={trouble} />}
      {self && (micOff(voice) || voice.deafened) && (
        <span className="voice-flags" aria-hidden="true">
          <MicIcon off />
        </span>
      )}
    </li>
  );
}

/**
 * Why a person and we cannot hear each other: our key did not reach them (with Retry; it is
 * also sent again at the next change of the room), or no key of theirs reached us (their device
 * retries on its side: nothing to do here).
 */
function KeyWarning({ chat, name, trouble }: { chat: Chat; name: string; trouble: KeyTrouble }) {
  const { t } = useI18n();
  return (
    <div className="voice-key-trouble" role="alert">
      {trouble.notSent && (
        <p>
          <span aria-hidden="true">⚠ </span>
          {t("voiceCantEncrypt", { name, reason: keyReason(t, trouble.notSent) })}{" "}
          <button type="button" className="link-button" aria-label={t("voiceRetryKeyFor", { name })} onClick={() => chat.voice.retryKeys()}>
            {t("retry")}
          </button>
        </p>
      )}
      {trouble.noKey && (
        <p>
          <span aria-hidden="true">⚠ </span>
          {t("voiceNoKeyFrom", { name })}
        </p>
      )}
    </div>
  );
}

/** A person's volume here, 0 to 100 %. */
function VolumeSlider({ chat, voice, id, name }: { chat: Chat; voice: VoiceState; id: string; name: string }) {
  const { t } = useI18n();
  const value = voice.volumes[id] ?? VOLUME_DEFAULT;
  return (
    <input
      type="range"
      className="voice-volume"
      min={0}
      max={100}
      step={5}
      value={value}
      aria-label={t("voiceVolumeOf", { name })}
      aria-valuetext={`${value} %`}
      onChange={(e) => chat.voice.setVolume(id, Number(e.target.value))}
    />
  );
}

/** A shared screen: its own tile, beside its person's. */
function ScreenTile({ label, stream }: { label: string; stream: MediaStream }) {
  return (
    <li className="voice-tile video screen" aria-label={label}>
      <MediaView stream={stream} muted label={label} />
      <span className="voice-tile-foot">
        <span className="voice-name">
          <ScreenIcon /> {label}
        </span>
      </span>
    </li>
  );
}

export function VoiceChannel({
  chat,
  guildId,
  channel,
  onMembers,
  membersOpen,
  onChannels,
}: {
  chat: Chat;
  guildId: string;
  channel: GuildChannel;
  onMembers: () => void;
  membersOpen: boolean;
  onChannels: () => void;
}) {
  const { t } = useI18n();
  const noMedia = isLimited("calls");
  const voice = useVoice(chat);
  const me = chat.get().me.accountId;
  const here = voice.channelId === channel.id;
  const inside = here && voice.phase !== "failed" && voice.phase !== "idle";
  const people = channel.voiceAccountIds;
  const elsewhere = voice.channelId && !here && voice.phase !== "failed" && voice.phase !== "idle" ? chat.guilds.channelInfo(voice.channelId) : undefined;
  const canShare = typeof navigator !== "undefined" && "getDisplayMedia" in (navigator.mediaDevices ?? {});
  useRoomPushToTalk(chat, inside && voice.pushToTalk);
  const status =
    voice.phase === "joining" ? t("voiceJoining") : voice.phase === "connecting" ? t("voiceConnecting") : voice.phase === "connected" ? t("voiceConnected") : "";

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
      <div className="voice-body">
        <p className="voice-e2ee">
          <LockIcon />
          <span>
            <strong>{t("e2ee")}</strong> · {t("voiceE2eeNote")}
          </span>
        </p>
        {here && voice.error && (
          <p className="error" role="alert">
            {voiceError(t, voice.error)}
          </p>
        )}
        <h3 className="voice-heading">{t("voiceInChannel")}</h3>
        {people.length === 0 ? (
          <p className="muted">{t("voiceEmpty")}</p>
        ) : (
          <ul className="voice-grid" aria-label={t("voiceInChannel")}>
            {people.map((id) => (
              <PersonTile key={id} chat={chat} voice={voice} id={id} here={here} />
            ))}
            {inside && voice.screen && <ScreenTile key="screen-me" label={t("voiceYourScreen")} stream={voice.screen} />}
            {inside &&
              voice.videos
                .filter((v) => v.kind === "screen" && people.includes(v.accountId))
                .flatMap((v) => {
                  const stream = voice.videoStreams[v.slot];
                  const label = t("voiceScreenOf", { name: personName(chat, t, v.accountId) });
                  return stream ? [<ScreenTile key={`screen-${v.accountId}`} label={label} stream={stream} />] : [];
                })}
          </ul>
        )}
        {inside ? (
          <>
            <p className="muted voice-status" role="status">
              {status}
            </p>
            {voice.pushToTalk && <TalkButton chat={chat} voice={voice} />}
            <div className="voice-controls">
              <MuteButton chat={chat} voice={voice} look="round" />
              <button type="button" className={`round${voice.deafened ? " off" : ""}`} aria-pressed={voice.deafened} aria-label={t("voiceDeafen")} title={t("voiceDeafen")} onClick={() => chat.voice.setDeafened(!voice.deafened)}>
                <HeadphonesIcon off={voice.deafened} />
              </button>
              <button
                type="button"
                className={`round${voice.camera ? " on" : ""}`}
                disabled={noMedia}
                aria-label={voice.camera ? t("voiceCameraOff") : t("voiceCameraOn")}
                title={noMedia ? t("insecureReasonCalls") : voice.camera ? t("voiceCameraOff") : t("voiceCameraOn")}
                onClick={() => void chat.voice.setCamera(!voice.camera)}
              >
                <VideoIcon off={!voice.camera} />
              </button>
              {canShare && (
                <button
                  type="button"
                  className={`round${voice.screen ? " on" : ""}`}
                  disabled={noMedia}
                  aria-label={voice.screen ? t("voiceStopSharing") : t("voiceShareScreen")}
                  title={noMedia ? t("insecureReasonCalls") : voice.screen ? t("voiceStopSharing") : t("voiceShareScreen")}
                  onClick={() => void chat.voice.setSharing(!voice.screen)}
                >
                  <ScreenIcon />
                </button>
              )}
              <LeaveButton chat={chat} look="round" />
            </div>
            {noMedia && <p className="muted voice-hint">{t("insecureReasonCalls")}</p>}
            {voice.pushToTalk && <p className="muted voice-hint">{t("pushToTalkHint")}</p>}
            <p className="muted voice-hint">{t("voiceKeepsOn")}</p>
            <details className="voice-details">
              <summary>{t("voiceDetails")}</summary>
              <table aria-label={t("voiceStats")}>
                <thead>
                  <tr>
                    <th scope="col">{t("voicePerson")}</th>
                    <th scope="col">{t("voiceFramesOpened")}</th>
                    <th scope="col">{t("voiceLevel")}</th>
                    <th scope="col">{t("voiceKid")}</th>
                    <th scope="col">{t("voiceVideoFramesOpened")}</th>
                    <th scope="col">{t("voiceKeys")}</th>
                  </tr>
                </thead>
                <tbody>
                  {people.map((id) => (
                    <tr key={id}>
                      <th scope="row">{personName(chat, t, id)}</th>
                      <td>{id === me ? "—" : (voice.opened[id] ?? 0)}</td>
                      <td>{voice.levels[id] ?? 0}</td>
                      <td>{id === me ? (voice.ownKid ?? "—") : (voice.lastKid[id] ?? "—")}</td>
                      <td>{id === me ? "—" : (voice.videoOpened[id] ?? 0)}</td>
                      <td>{id === me ? "—" : keyCell(t, voice.keyTrouble[id])}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <p>{t("voiceSealed", { n: voice.sealed })}</p>
              <p>{t("voiceVideoSealed", { n: voice.videoSealed })}</p>
              <p>{t("voiceNotOpened", { n: voice.failed })}</p>
              <p>{t("voiceKeysHeld", { n: voice.peerKeys })}</p>
            </details>
          </>
        ) : (
          <div className="voice-join">
            {elsewhere && <p className="muted">{t("voiceElsewhere", { name: elsewhere.name })}</p>}
            {/* Over plain HTTP by a LAN name the browser gives no microphone: say so, as calls do. */}
            {noMedia && <p className="muted">{t("insecureReasonCalls")}</p>}
            <button
              type="button"
              className="primary"
              disabled={(voice.phase === "joining" && here) || noMedia}
              onClick={() => void chat.voice.join(channel.id, guildId)}
            >
              {t("voiceJoin")}
            </button>
          </div>
        )}
      </div>
    </section>
  );
}

/** The key exchange with a person, in the connection details. */
function keyCell(t: Translate, trouble: KeyTrouble | undefined): string {
  if (!trouble) return t("voiceKeysOk");
  return [trouble.notSent ? t("voiceKeyNotSent", { reason: keyReason(t, trouble.notSent) }) : "", trouble.noKey ? t("voiceKeyNotReceived") : ""].filter(Boolean).join("; ");
}

/** The people in a voice channel, small, under its row in the channel sidebar. */
export function VoicePeople({ chat, channel }: { chat: Chat; channel: GuildChannel }) {
  const { t } = useI18n();
  const voice = useVoice(chat);
  if (channel.voiceAccountIds.length === 0) return null;
  const here = voice.channelId === channel.id;
  return (
    <ul className="voice-people" aria-label={t("voicePeopleIn", { name: channel.name })}>
      {channel.voiceAccountIds.map((id) => {
        const name = personName(chat, t, id);
        const speaking = here && voice.speaking.includes(id);
        return (
          <li key={id} className={speaking ? "speaking" : undefined} data-speaking={speaking} aria-label={speaking ? `${name}, ${t("voiceSpeaking")}` : name}>
            <PersonAvatar chat={chat} accountId={id} name={chat.nameOf(id) || name} className="avatar" />
            <span className="voice-people-name">{name}</span>
          </li>
        );
      })}
    </ul>
  );
}

/** The strip at the foot of the channel sidebar while this device is in a voice channel. */
export function VoiceBar({ chat, onOpen }: { chat: Chat; onOpen: (channelId: string) => void }) {
  const { t } = useI18n();
  const voice = useVoice(chat);
  if (!voice.channelId || voice.phase === "idle" || voice.phase === "failed") return null;
  const channel = chat.guilds.channelInfo(voice.channelId);
  const channelId = voice.channelId;
  return (
    <div className="voice-bar" role="group" aria-label={t("voiceConnected")}>
      <button type="button" className="voice-bar-name" onClick={() => onOpen(channelId)}>
        <span className="voice-bar-state">{voice.phase === "connected" ? t("voiceConnected") : t("voiceConnecting")}</span>
        <span className="voice-bar-channel">🔊 {channel?.name ?? ""}</span>
      </button>
      <MuteButton chat={chat} voice={voice} look="icon" />
      <LeaveButton chat={chat} look="icon" />
    </div>
  );
}

/** The microphone's switch, in the room's controls (`round`) or the sidebar strip (`icon`). */
function MuteButton({ chat, voice, look }: { chat: Chat; voice: VoiceState; look: "round" | "icon" }) {
  const { t } = useI18n();
  return (
    <button type="button" className={`${look}${voice.muted ? " off" : ""}`} aria-pressed={voice.muted} aria-label={t("voiceMute")} title={t("voiceMute")} onClick={() => chat.voice.setMuted(!voice.muted)}>
      <MicIcon off={voice.muted} />
    </button>
  );
}

/** Push-to-talk's button: the microphone is live while it (or Space) is held. */
function TalkButton({ chat, voice }: { chat: Chat; voice: VoiceState }) {
  const { t } = useI18n();
  return (
    <button
      type="button"
      data-ptt="1"
      className={`voice-talk${voice.talking ? " on" : ""}`}
      aria-pressed={voice.talking}
      aria-label={t("holdToTalk")}
      onPointerDown={() => chat.voice.setTalking(true)}
      onPointerUp={() => chat.voice.setTalking(false)}
      onPointerLeave={() => chat.voice.setTalking(false)}
      onPointerCancel={() => chat.voice.setTalking(false)}
      onKeyDown={(e) => {
        // Enter on the focused button holds too (Space is handled for the whole page).
        if (e.key === "Enter" && !e.repeat) chat.voice.setTalking(true);
      }}
      onKeyUp={(e) => {
        if (e.key === "Enter") chat.voice.setTalking(false);
      }}
      onContextMenu={(e) => e.preventDefault()}
    >
      <MicIcon off={!voice.talking} /> <span>{t("talk")}</span>
    </button>
  );
}

/** Leaves the voice channel. */
function LeaveButton({ chat, look }: { chat: Chat; look: "round" | "icon" }) {
  const { t } = useI18n();
  return (
    <button type="button" className={`${look} hangup`} aria-label={t("voiceLeave")} title={t("voiceLeave")} onClick={() => void chat.voice.leave()}>
      <HangUpIcon />
    </button>
  );
}

/** Headphones, struck through when deafened. */
function HeadphonesIcon({ off = false }: { off?: boolean }) {
  return (
    <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round">
      <path d="M3 18v-6a9 9 0 0 1 18 0v6" />
      <path d="M21 19a2 2 0 0 1-2 2h-1v-7h3zM3 19a2 2 0 0 0 2 2h1v-7H3z" />
      {off && <line x1="3" y1="3" x2="21" y2="21" />}
    </svg>
  );
}
