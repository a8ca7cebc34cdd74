// ConversationView.tsx — one conversation: its header (title, its kind's mark — lock or cloud —,
// the disappearing-message timer, verified mark, search, about, verify, members, calls), the
// pinned bar (conversation/Pins.tsx), warnings (no account key on this device: recovery/NeedsKeyBanner.tsx, a member's key changed), the history
// (conversation/MessageList.tsx), the composer (conversation/Composer.tsx) and files to send,
// picked, pasted or dropped anywhere on it (conversation/Uploads.tsx). A guild's channel shows the
// same way, with its topic, the member list's toggle instead of members and calls, and a composer
// that says when its permissions, a timeout or slow mode hold it (guild/channelRules.ts).
import { useRef, useState, type DragEvent } from "react";
import { ConversationKind, ConversationMode, MemberRole } from "../gen/kitsulan/v1/conversation_pb";
import { useI18n } from "../i18n/i18n";
import { useChat, type Chat, type Item } from "../state/chat";
import { CallButtons } from "./call/CallButtons";
import { InfoIcon, PeopleIcon, SearchIcon, ShieldIcon } from "./call/icons";
import { ComposeContext, Composer, useCompose } from "./conversation/Composer";
import { MessageList, TypingLine } from "./conversation/MessageList";
import { RemovedBanner } from "./conversation/RemovedBanner";
import { removedFrom } from "../state/conversations";
import { AttachDialog, UploadList, useUploads } from "./conversation/Uploads";
import { KindMark } from "./KindMark";
import { ConversationInfo } from "./conversation/ConversationInfo";
import { PinnedBar } from "./conversation/Pins";
import { durationText } from "./duration";
import { ConversationAvatar } from "./Avatar";
import { Members } from "./Members";
import { RequestBanner } from "./RequestBanner";
import { NeedsKeyBanner } from "./recovery/NeedsKeyBanner";
import { conversationTitle, personName } from "./names";
import { useChannelComposer } from "./guild/channelRules";

export function ConversationView({
  chat,
  conversationId,
  onSearch,
  onForward,
  channel,
}: {
  chat: Chat;
  conversationId: string;
  /** Opens the search panel (on this conversation). */
  onSearch?: () => void;
  /** Forwards a message to another conversation (the picker of Forward.tsx). */
  onForward?: (item: Item) => void;
  /** A guild's channel: its member list's toggle and the channel list (a phone's drawer). */
  channel?: { onMembers: () => void; membersOpen: boolean; onChannels: () => void };
}) {
  const { t, lang } = useI18n();
  // A conversation of the list, or a guild's channel (state/guilds.ts).
  const conversation = useChat(chat, (s) => s.conversations.find((c) => c.id === conversationId) ?? s.guilds.channels[conversationId]);
  const channelInfo = useChat(chat, (s) => (s.guilds.channels[conversationId] ? chat.guilds.channelInfo(conversationId) : undefined));
  const rules = useChannelComposer(chat, conversationId);
  const keyWarning = useChat(chat, (s) => s.keyWarning);
  const verified = useChat(chat, (s) => s.verified);
  const me = useChat(chat, (s) => s.me);
  useChat(chat, (s) => s.profiles); // re-render when names arrive
  const ttlChoices = useChat(chat, (s) => s.ttlChoices);
  const needsLink = chat.engine.state !== "ready";
  const [showMembers, setShowMembers] = useState(false);
  const [showInfo, setShowInfo] = useState(false);
  const [dragging, setDragging] = useState(false);
  const stickToBottom = useRef(true);
  const compose = useCompose();
  const uploads = useUploads(chat, conversationId, needsLink);

  if (!conversation) return null;
  const title = conversationTitle(chat, t, conversation);
  const isGroup = conversation.kind === ConversationKind.GROUP;
  const myRole = conversation.members.find((m) => m.accountId === me.accountId)?.role;
  const isChannel = conversation.kind === ConversationKind.CHANNEL;
  // A channel's "admin" is whoever may manage messages there (guilds.ts).
  const administers = (isGroup || isChannel) && (myRole === MemberRole.OWNER || myRole === MemberRole.ADMIN);
  // Removed from this group: its history as this device holds it, read-only.
  const removed = removedFrom(conversation, me.accountId);
  const others = conversation.members.filter((m) => m.accountId !== me.accountId);
  // A direct conversation's contact: verified with SAS emoji here, or not (yet).
  const contact = !isGroup && !isChannel && others.length === 1 ? others[0]?.accountId : undefined;
  const contactName = contact ? personName(chat, t, contact) : "";
  const contactVerified = contact !== undefined && verified[contact] === true;

  const hasFiles = (e: DragEvent) => e.dataTransfer.types.includes("Files");

  return (
    <section
      className={dragging ? "conversation dragging" : "conversation"}
      aria-label={title}
      onDragOver={(e) => {
        if (!hasFiles(e) || needsLink || removed || rules?.blocked || rules?.noFiles) return;
        e.preventDefault();
        e.dataTransfer.dropEffect = "copy";
        setDragging(true);
      }}
      onDragLeave={(e) => {
        if (e.currentTarget === e.target || !e.currentTarget.contains(e.relatedTarget as Node | null)) setDragging(false);
      }}
      onDrop={(e) => {
        e.preventDefault();
        setDragging(false);
        uploads.stage(e.dataTransfer.files);
      }}
    >
      {dragging && (
        <div className="drop-overlay" aria-hidden="true">
          {t("dropFiles")}
        </div>
      )}
      {uploads.staged && (
        <AttachDialog
          files={uploads.staged}
          ttlChoices={ttlChoices}
          onSend={(ttl, keep) => {
            stickToBottom.current = true;
            if (uploads.staged) uploads.send(uploads.staged, ttl, keep);
          }}
          onClose={uploads.unstage}
        />
      )}
      <header className="bar">
        {channel ? (
          <button type="button" className="icon back" aria-label={t("channelsAndGuilds")} onClick={channel.onChannels}>
            ☰
          </button>
        ) : (
          <button type="button" className="icon back" aria-label={t("backToList")} onClick={() => chat.setActive(null)}>
            ←
          </button>
        )}
        {!isChannel && <ConversationAvatar chat={chat} conversation={conversation} name={title} className="avatar head-avatar" />}
        <div className="conv-head">
          <h2>{title}</h2>
          {channelInfo?.topic && (
            <span className="channel-topic muted" title={channelInfo.topic}>
              {channelInfo.topic}
            </span>
          )}
          <span className="conv-marks">
            <KindMark mode={conversation.mode} />
            {conversation.messageTimerSeconds > 0 && (
              <span className="timer-mark" title={t("disappearingAfter", { time: durationText(lang, conversation.messageTimerSeconds) })}>
                ⏱ <span className="timer-text">{durationText(lang, conversation.messageTimerSeconds)}</span>
              </span>
            )}
          </span>
          {contactVerified && (
            <span className="verified-mark" title={t("verifiedNote", { name: contactName })}>
              ✓ {t("verifiedMark")}
            </span>
          )}
        </div>
        <span className="head-tools">
          {onSearch && (
            <button type="button" className="icon head-search" aria-label={t("searchMessages")} title={t("searchMessages")} onClick={onSearch}>
              <SearchIcon />
            </button>
          )}
          {!isChannel && (
            <button type="button" className="icon" aria-label={t("conversationInfo")} title={t("conversationInfo")} onClick={() => setShowInfo(true)}>
              <InfoIcon />
            </button>
          )}
        </span>
        {contact && !needsLink && (
          <button
            type="button"
            className="members-button"
            aria-label={t("verifyPerson", { name: contactName })}
            onClick={() => chat.verify(contact)}
          >
            {/* Phones show the icon, leaving the header's room to the name. */}
            <ShieldIcon />
            <span className="members-label">{t("verify")}</span>
          </button>
        )}
        {isGroup && (
          <button
            type="button"
            className="members-button"
            aria-label={`${t("members")} (${conversation.members.length})`}
            onClick={() => setShowMembers(true)}
          >
            {/* Phones show the icon and the count, wider screens the words. */}
            <PeopleIcon />
            <span className="members-label">
              {t("members")} ({conversation.members.length})
            </span>
            <span className="members-count">{conversation.members.length}</span>
          </button>
        )}
        {channel && (
          <button
            type="button"
            className="members-button"
            // A private encrypted channel lists its own members, not the guild's.
            aria-label={channelInfo?.e2ee ? t("channelMembersCount", { n: conversation.members.length }) : t("guildMembers")}
            aria-pressed={channel.membersOpen}
            onClick={channel.onMembers}
          >
            <PeopleIcon />
            <span className="members-label">{t("members")}</span>
            {channelInfo?.e2ee && <span className="members-count">{conversation.members.length}</span>}
          </button>
        )}
        {!conversation.request && !removed && !isChannel && <CallButtons chat={chat} conversationId={conversationId} disabled={needsLink} />}
      </header>
      {showMembers && <Members chat={chat} conversation={conversation} onClose={() => setShowMembers(false)} />}
      {showInfo && <ConversationInfo chat={chat} conversation={conversation} onClose={() => setShowInfo(false)} />}
      <PinnedBar chat={chat} conversation={conversation} />
      {needsLink && <NeedsKeyBanner />}
      {keyWarning &&
        conversation.members.some((m) => m.accountId === keyWarning) &&
        (chat.engine.changedAfterVerification(keyWarning) ? (
          <p role="alert" className="warning key-changed-verified">
            {t("keyChangedVerified", { name: personName(chat, t, keyWarning) })}
          </p>
        ) : (
          <p role="alert" className="warning">
            {t("keyChanged", { name: personName(chat, t, keyWarning) })}
          </p>
        ))}
      <MessageList
        chat={chat}
        conversation={conversation}
        title={title}
        administers={administers}
        stickToBottom={stickToBottom}
        onReply={compose.startReply}
        onEdit={compose.startEdit}
        onForward={onForward}
        readOnly={removed}
      />
      <TypingLine chat={chat} conversationId={conversationId} />
      <ComposeContext chat={chat} compose={compose} />
      <UploadList uploads={uploads.uploads} onCancel={uploads.cancel} />
      {removed ? (
        <RemovedBanner chat={chat} conversation={conversation} />
      ) : conversation.request ? (
        <RequestBanner chat={chat} conversation={conversation} />
      ) : (
        <Composer
          chat={chat}
          conversationId={conversationId}
          compose={compose}
          // A cloud conversation needs no keys to write in; file uploads still encrypt their blob.
          disabled={needsLink && conversation.mode !== ConversationMode.CLOUD}
          blocked={rules?.blocked}
          notice={rules?.notice}
          noFiles={rules?.noFiles}
          holdSend={rules?.holdSend}
          onSend={() => {
            stickToBottom.current = true;
          }}
          onFiles={uploads.stage}
        />
      )}
    </section>
  );
}
