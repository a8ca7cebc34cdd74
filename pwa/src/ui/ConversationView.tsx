// ConversationView.tsx — one conversation: its header (title, E2EE and verified marks, verify,
// members, calls), warnings (no account key on this device: recovery/NeedsKeyBanner.tsx, a member's key changed), the history
// (conversation/MessageList.tsx), the composer (conversation/Composer.tsx) and files to send,
// picked, pasted or dropped anywhere on it (conversation/Uploads.tsx).
import { useRef, useState, type DragEvent } from "react";
import { ConversationKind, ConversationMode, MemberRole } from "../gen/kitsulan/v1/conversation_pb";
import { useI18n } from "../i18n/i18n";
import { useChat, type Chat } from "../state/chat";
import { CallButtons } from "./call/CallButtons";
import { PeopleIcon, ShieldIcon } from "./call/icons";
import { ComposeContext, Composer, useCompose } from "./conversation/Composer";
import { MessageList, TypingLine } from "./conversation/MessageList";
import { RemovedBanner } from "./conversation/RemovedBanner";
import { removedFrom } from "../state/conversations";
import { AttachDialog, UploadList, useUploads } from "./conversation/Uploads";
import { LockIcon } from "./LockIcon";
import { ConversationAvatar } from "./Avatar";
import { Members } from "./Members";
import { RequestBanner } from "./RequestBanner";
import { NeedsKeyBanner } from "./recovery/NeedsKeyBanner";
import { conversationTitle, personName } from "./names";

export function ConversationView({ chat, conversationId }: { chat: Chat; conversationId: string }) {
  const { t } = useI18n();
  const conversation = useChat(chat, (s) => s.conversations.find((c) => c.id === conversationId));
  const keyWarning = useChat(chat, (s) => s.keyWarning);
  const verified = useChat(chat, (s) => s.verified);
  const me = useChat(chat, (s) => s.me);
  useChat(chat, (s) => s.profiles); // re-render when names arrive
  const ttlChoices = useChat(chat, (s) => s.ttlChoices);
  const needsLink = chat.engine.state !== "ready";
  const [showMembers, setShowMembers] = useState(false);
  const [dragging, setDragging] = useState(false);
  const stickToBottom = useRef(true);
  const compose = useCompose();
  const uploads = useUploads(chat, conversationId, needsLink);

  if (!conversation) return null;
  const title = conversationTitle(chat, t, conversation);
  const isGroup = conversation.kind === ConversationKind.GROUP;
  const myRole = conversation.members.find((m) => m.accountId === me.accountId)?.role;
  const administers = isGroup && (myRole === MemberRole.OWNER || myRole === MemberRole.ADMIN);
  // Removed from this group: its history as this device holds it, read-only.
  const removed = removedFrom(conversation, me.accountId);
  const others = conversation.members.filter((m) => m.accountId !== me.accountId);
  // A direct conversation's contact: verified with SAS emoji here, or not (yet).
  const contact = !isGroup && others.length === 1 ? others[0]?.accountId : undefined;
  const contactName = contact ? personName(chat, t, contact) : "";
  const contactVerified = contact !== undefined && verified[contact] === true;

  const hasFiles = (e: DragEvent) => e.dataTransfer.types.includes("Files");

  return (
    <section
      className={dragging ? "conversation dragging" : "conversation"}
      aria-label={title}
      onDragOver={(e) => {
        if (!hasFiles(e) || needsLink || removed) return;
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
        <button type="button" className="icon back" aria-label={t("backToList")} onClick={() => chat.setActive(null)}>
          ←
        </button>
        <ConversationAvatar chat={chat} conversation={conversation} name={title} className="avatar head-avatar" />
        <div className="conv-head">
          <h2>{title}</h2>
          {conversation.mode !== ConversationMode.CLOUD && (
            <span className="e2ee-mark" title={t("encryptedNote")}>
              <LockIcon /> {t("e2ee")}
            </span>
          )}
          {contactVerified && (
            <span className="verified-mark" title={t("verifiedNote", { name: contactName })}>
              ✓ {t("verifiedMark")}
            </span>
          )}
        </div>
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
        {!conversation.request && !removed && <CallButtons chat={chat} conversationId={conversationId} disabled={needsLink} />}
      </header>
      {showMembers && <Members chat={chat} conversation={conversation} onClose={() => setShowMembers(false)} />}
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
          disabled={needsLink}
          onSend={() => {
            stickToBottom.current = true;
          }}
          onFiles={uploads.stage}
        />
      )}
    </section>
  );
}
