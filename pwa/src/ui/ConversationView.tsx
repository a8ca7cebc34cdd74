// ConversationView.tsx — one conversation: history (scrolling back loads older pages), day
// separators, bubbles (MessageBubble.tsx), the typing indicator, and the composer (Enter sends,
// Shift+Enter makes a new line; Escape cancels a reply or an edit).
import {
  useEffect,
  useLayoutEffect,
  useRef,
  useState,
  type ClipboardEvent,
  type DragEvent,
  type FormEvent,
  type KeyboardEvent,
} from "react";
import { Cancelled } from "../attachments/transfer";
import { ConversationKind, ConversationMode, MemberRole } from "../gen/kitsulan/v1/conversation_pb";
import { useI18n, type Translate } from "../i18n/i18n";
import { useChat, type Chat, type Item, type Receipt } from "../state/chat";
import { AttachDialog, FileView, UploadList, type Upload } from "./Attachment";
import { CallButtons } from "./call/CallButtons";
import { PaperclipIcon } from "./call/icons";
import { LockIcon } from "./LockIcon";
import { ConversationAvatar } from "./Avatar";
import { Members } from "./Members";
import { RequestBanner } from "./RequestBanner";
import { MessageBubble, snippet, type Tick } from "./MessageBubble";
import { conversationTitle, personName } from "./names";

const EMPTY: Item[] = [];
const NO_RECEIPTS: Record<string, Receipt> = {};
const NO_TYPING: Record<string, number> = {};

function dayLabel(t: Translate, lang: string, ms: number): string {
  const d = new Date(ms);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86_400_000);
  if (d.toDateString() === today.toDateString()) return t("today");
  if (d.toDateString() === yesterday.toDateString()) return t("yesterday");
  return d.toLocaleDateString(lang, { day: "numeric", month: "long", year: "numeric" });
}

export function ConversationView({ chat, conversationId }: { chat: Chat; conversationId: string }) {
  const { t, lang } = useI18n();
  const conversation = useChat(chat, (s) => s.conversations.find((c) => c.id === conversationId));
  const thread = useChat(chat, (s) => s.threads[conversationId]);
  const receipts = useChat(chat, (s) => s.receipts[conversationId] ?? NO_RECEIPTS);
  const typing = useChat(chat, (s) => s.typing[conversationId] ?? NO_TYPING);
  const keyWarning = useChat(chat, (s) => s.keyWarning);
  const verified = useChat(chat, (s) => s.verified);
  const me = useChat(chat, (s) => s.me);
  useChat(chat, (s) => s.profiles); // re-render when names arrive
  const needsLink = chat.engine.state !== "ready";
  const items = thread?.items ?? EMPTY;
  const [draft, setDraft] = useState("");
  const [replyTo, setReplyTo] = useState<Item | null>(null);
  const [editing, setEditing] = useState<Item | null>(null);
  const [showMembers, setShowMembers] = useState(false);
  const composerRef = useRef<HTMLTextAreaElement>(null);
  const listRef = useRef<HTMLDivElement>(null);
  const topRef = useRef<HTMLDivElement>(null);
  const stickToBottom = useRef(true);
  const heightBefore = useRef<number | null>(null);
  const lastTyping = useRef(0);
  const ttlChoices = useChat(chat, (s) => s.ttlChoices);
  const [staged, setStaged] = useState<File[] | null>(null);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [dragging, setDragging] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const uploadKey = useRef(0);

  // Keep the view at the bottom when new messages arrive (if it was there), and keep the
  // position when older ones are prepended.
  useLayoutEffect(() => {
    const el = listRef.current;
    if (!el) return;
    if (heightBefore.current !== null) {
      el.scrollTop += el.scrollHeight - heightBefore.current;
      heightBefore.current = null;
    } else if (stickToBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [items]);

  useEffect(() => {
    chat.markReadIfVisible(conversationId);
  }, [chat, conversationId, items]);

  const loadOlder = () => {
    if (!thread?.more) return;
    heightBefore.current = listRef.current?.scrollHeight ?? null;
    void chat.loadOlder(conversationId);
  };

  useEffect(() => {
    const top = topRef.current;
    const root = listRef.current;
    if (!top || !root) return;
    const io = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting) && thread?.loaded && thread.more) loadOlder();
      },
      { root },
    );
    io.observe(top);
    return () => io.disconnect();
  });

  if (!conversation) return null;
  const title = conversationTitle(chat, t, conversation);
  const isGroup = conversation.kind === ConversationKind.GROUP;
  const myRole = conversation.members.find((m) => m.accountId === me.accountId)?.role;
  const administers = isGroup && (myRole === MemberRole.OWNER || myRole === MemberRole.ADMIN);
  const byId = new Map(items.map((i) => [i.message.id, i]));
  const others = conversation.members.filter((m) => m.accountId !== me.accountId);
  // A direct conversation's contact: verified with SAS emoji here, or not (yet).
  const contact = !isGroup && others.length === 1 ? others[0]?.accountId : undefined;
  const contactName = contact ? personName(chat, t, contact) : "";
  const contactVerified = contact !== undefined && verified[contact] === true;

  const tickOf = (item: Item): Tick => {
    if (item.local) return item.local;
    const seq = item.message.seq;
    const all = (f: (r: Receipt, readSeq: bigint) => boolean) =>
      others.length > 0 && others.every((m) => f(receipts[m.accountId] ?? { delivered: 0n, read: 0n }, m.readSeq));
    if (all((r, readSeq) => r.read >= seq || readSeq >= seq)) return "read";
    if (all((r, readSeq) => r.delivered >= seq || r.read >= seq || readSeq >= seq)) return "delivered";
    return "sent";
  };

  async function submit(e?: FormEvent) {
    e?.preventDefault();
    const text = draft.trim();
    if (!text) return;
    setDraft("");
    chat.typing(conversationId, false);
    lastTyping.current = 0;
    const edit = editing;
    const reply = replyTo;
    setEditing(null);
    setReplyTo(null);
    try {
      if (edit) {
        await chat.edit(conversationId, edit, text);
      } else {
        stickToBottom.current = true;
        await chat.send(conversationId, text, undefined, reply?.message.id ?? "");
      }
    } catch (err) {
      console.warn(edit ? "edit failed" : "send failed", err);
    }
  }

  function cancelCompose() {
    if (editing) setDraft("");
    setEditing(null);
    setReplyTo(null);
  }

  function startReply(item: Item) {
    setEditing(null);
    setReplyTo(item);
    composerRef.current?.focus();
  }

  function startEdit(item: Item) {
    if (item.content.kind !== "text") return;
    setReplyTo(null);
    setEditing(item);
    setDraft(item.content.text);
    composerRef.current?.focus();
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void submit();
    } else if (e.key === "Escape" && (editing || replyTo)) {
      e.preventDefault();
      cancelCompose();
    }
  }

  function onDraft(value: string) {
    setDraft(value);
    const now = Date.now();
    if (value && now - lastTyping.current > 3000) {
      lastTyping.current = now;
      chat.typing(conversationId, true);
    }
  }

  function stage(files: FileList | File[] | null | undefined) {
    const list = files ? [...files] : [];
    if (list.length > 0 && !needsLink) setStaged(list);
  }

  function patchUpload(key: number, patch: Partial<Upload> | null) {
    setUploads((list) =>
      patch === null ? list.filter((u) => u.key !== key) : list.map((u) => (u.key === key ? { ...u, ...patch } : u)),
    );
  }

  function sendFiles(files: File[], ttlSeconds: number, keepOriginal: boolean) {
    setStaged(null);
    stickToBottom.current = true;
    for (const file of files) {
      const key = ++uploadKey.current;
      const controller = new AbortController();
      setUploads((list) => [...list, { key, name: file.name, done: 0, total: file.size, controller }]);
      chat
        .sendFile(
          conversationId,
          file,
          { ttlSeconds, keepOriginal },
          (done, total) => patchUpload(key, { done, total }),
          controller.signal,
        )
        .then(
          () => patchUpload(key, null),
          (err: unknown) => {
            if (err instanceof Cancelled) patchUpload(key, null);
            else {
              console.warn("sending a file failed", err);
              patchUpload(key, { error: t("uploadFailed", { name: file.name }) });
            }
          },
        );
    }
  }

  function cancelUpload(u: Upload) {
    if (u.error) patchUpload(u.key, null);
    else u.controller.abort();
  }

  const hasFiles = (e: DragEvent) => e.dataTransfer.types.includes("Files");

  function onPaste(e: ClipboardEvent<HTMLTextAreaElement>) {
    if (e.clipboardData.files.length > 0) {
      e.preventDefault();
      stage(e.clipboardData.files);
    }
  }

  const typingNames = Object.keys(typing).map((id) => personName(chat, t, id));
  let lastDay = "";
  let lastSender = "";

  return (
    <section
      className={dragging ? "conversation dragging" : "conversation"}
      aria-label={title}
      onDragOver={(e) => {
        if (!hasFiles(e) || needsLink) return;
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
        stage(e.dataTransfer.files);
      }}
    >
      {dragging && (
        <div className="drop-overlay" aria-hidden="true">
          {t("dropFiles")}
        </div>
      )}
      {staged && (
        <AttachDialog
          files={staged}
          ttlChoices={ttlChoices}
          onSend={(ttl, keep) => sendFiles(staged, ttl, keep)}
          onClose={() => setStaged(null)}
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
            {t("verify")}
          </button>
        )}
        {isGroup && (
          <button type="button" className="members-button" onClick={() => setShowMembers(true)}>
            {t("members")} ({conversation.members.length})
          </button>
        )}
        {!conversation.request && <CallButtons chat={chat} conversationId={conversationId} disabled={needsLink} />}
      </header>
      {showMembers && <Members chat={chat} conversation={conversation} onClose={() => setShowMembers(false)} />}
      {needsLink && (
        <p role="alert" className="warning">
          {t("needsLink")}
        </p>
      )}
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
      <div
        className="messages"
        ref={listRef}
        role="log"
        aria-live="polite"
        aria-label={title}
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget;
          stickToBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
        }}
      >
        <div ref={topRef} className="top-sentinel" />
        {thread?.more && thread.loaded && (
          <button type="button" className="load-older" onClick={loadOlder}>
            {t("loadOlder")}
          </button>
        )}
        {thread?.loaded && items.length === 0 && <p className="muted pad">{t("noMessages")}</p>}
        {items.map((item) => {
          const m = item.message;
          const ms = Number(m.sentAtMs);
          const day = new Date(ms).toDateString();
          const mine = m.senderAccountId === me.accountId;
          const showDay = day !== lastDay;
          const showName = isGroup && !mine && (showDay || lastSender !== m.senderAccountId);
          lastDay = day;
          lastSender = m.senderAccountId;
          const tick = mine ? tickOf(item) : null;
          return (
            <div key={m.id} className="msg-wrap">
              {showDay && (
                <div className="day" role="separator" aria-label={dayLabel(t, lang, ms)}>
                  <span>{dayLabel(t, lang, ms)}</span>
                </div>
              )}
              <MessageBubble
                item={item}
                mine={mine}
                sender={showName ? personName(chat, t, m.senderAccountId) : null}
                quoted={
                  m.replyTo
                    ? {
                        name: byId.has(m.replyTo)
                          ? personName(chat, t, byId.get(m.replyTo)?.message.senderAccountId ?? "")
                          : "",
                        text: snippet(byId.get(m.replyTo)),
                      }
                    : null
                }
                tick={tick}
                canDelete={mine || administers}
                onReply={() => startReply(item)}
                onEdit={() => startEdit(item)}
                onDelete={() => void chat.remove(conversationId, item).catch((err) => console.warn("delete failed", err))}
                onRetry={() => void chat.send(conversationId, item.text ?? "", item).catch(() => undefined)}
                file={
                  item.content.kind === "attachment" ? (
                    <FileView chat={chat} file={item.content.file} mine={mine} sending={item.local !== undefined} />
                  ) : undefined
                }
              />
            </div>
          );
        })}
      </div>
      <p className="typing" aria-live="polite">
        {typingNames.length > 0 ? t("typing", { name: typingNames.join(", ") }) : " "}
      </p>
      {(replyTo || editing) && (
        <div className="compose-context">
          <span>
            {editing
              ? t("editingMessage")
              : t("replyingTo", { name: personName(chat, t, replyTo?.message.senderAccountId ?? "") })}
            {replyTo && <span className="muted"> {snippet(replyTo)}</span>}
          </span>
          <button type="button" className="icon" aria-label={editing ? t("cancelEdit") : t("cancelReply")} onClick={cancelCompose}>
            ×
          </button>
        </div>
      )}
      <UploadList uploads={uploads} onCancel={cancelUpload} />
      {conversation.request ? (
        <RequestBanner chat={chat} conversation={conversation} />
      ) : (
        <form className="composer" onSubmit={submit}>
          <input
            ref={fileInput}
            type="file"
            multiple
            hidden
            onChange={(e) => {
              stage(e.target.files);
              e.target.value = "";
            }}
          />
          <button
            type="button"
            className="icon attach"
            aria-label={t("attach")}
            title={t("attach")}
            disabled={needsLink}
            onClick={() => fileInput.current?.click()}
          >
            <PaperclipIcon />
          </button>
          <textarea
            ref={composerRef}
            aria-label={t("message")}
            placeholder={t("message")}
            rows={1}
            value={draft}
            disabled={needsLink}
            onChange={(e) => onDraft(e.target.value)}
            onKeyDown={onKeyDown}
            onPaste={onPaste}
          />
          <button type="submit" className="primary" disabled={needsLink || !draft.trim()}>
            {editing ? t("save") : t("send")}
          </button>
        </form>
      )}
    </section>
  );
}
