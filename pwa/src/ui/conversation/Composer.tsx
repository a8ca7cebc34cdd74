// Composer.tsx — writing in a conversation: the draft (Enter sends, Shift+Enter makes a new line;
// Escape cancels a reply or an edit), what it answers or edits, typing updates (at most one every
// 3 s while the draft changes), the attach button and pasted files (handed to Uploads.tsx).
import { useEffect, useRef, useState, type ClipboardEvent, type FormEvent, type KeyboardEvent } from "react";
import { useI18n } from "../../i18n/i18n";
import type { Chat, Item } from "../../state/chat";
import { PaperclipIcon } from "../call/icons";
import { snippet } from "../MessageBubble";
import { personName } from "../names";

/** The draft and what it replies to or edits, shared by the message list (Reply, Edit) and the
 * composer. */
export function useCompose() {
  const [draft, setDraft] = useState("");
  const [replyTo, setReplyTo] = useState<Item | null>(null);
  const [editing, setEditing] = useState<Item | null>(null);
  const input = useRef<HTMLTextAreaElement>(null);

  function startReply(item: Item) {
    setEditing(null);
    setReplyTo(item);
    input.current?.focus();
  }

  function startEdit(item: Item) {
    if (item.content.kind !== "text") return;
    setReplyTo(null);
    setEditing(item);
    setDraft(item.content.text);
    input.current?.focus();
  }

  function cancel() {
    if (editing) setDraft("");
    setEditing(null);
    setReplyTo(null);
  }

  /** The draft to send, and what it replies to or edits; nothing is cleared yet. */
  function take(): { text: string; replyTo: Item | null; editing: Item | null } | null {
    const text = draft.trim();
    if (!text) return null;
    return { text, replyTo, editing };
  }

  /** The outbox has `text` (it is safe): the draft is cleared, unless it changed meanwhile. */
  function sent(text: string) {
    setDraft((d) => (d.trim() === text ? "" : d));
    setEditing(null);
    setReplyTo(null);
  }

  return { draft, setDraft, replyTo, editing, input, startReply, startEdit, cancel, take, sent };
}

export type Compose = ReturnType<typeof useCompose>;

/** "Replying to Alice: …" or "Editing message", with its cancel button. */
export function ComposeContext({ chat, compose }: { chat: Chat; compose: Compose }) {
  const { t } = useI18n();
  const { replyTo, editing } = compose;
  if (!replyTo && !editing) return null;
  return (
    <div className="compose-context">
      <span>
        {editing
          ? t("editingMessage")
          : t("replyingTo", { name: personName(chat, t, replyTo?.message.senderAccountId ?? "") })}
        {replyTo && <span className="muted"> {snippet(replyTo)}</span>}
      </span>
      <button type="button" className="icon" aria-label={editing ? t("cancelEdit") : t("cancelReply")} onClick={compose.cancel}>
        ×
      </button>
    </div>
  );
}

export function Composer({
  chat,
  conversationId,
  compose,
  disabled,
  onSend,
  onFiles,
}: {
  chat: Chat;
  conversationId: string;
  compose: Compose;
  /** No E2EE on this device yet (it needs linking). */
  disabled: boolean;
  /** A message is about to be sent (the list then follows it to the bottom). */
  onSend: () => void;
  /** Files picked or pasted. */
  onFiles: (files: FileList | File[] | null) => void;
}) {
  const { t } = useI18n();
  const lastTyping = useRef(0);
  const [error, setError] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const { draft, editing, replyTo } = compose;
  const input = compose.input;

  // Opening a conversation puts the cursor here, so one can type at once; not on touch screens,
  // where it would pop up the keyboard over the history the person opened it to read.
  useEffect(() => {
    if (disabled || window.matchMedia("(pointer: coarse)").matches) return;
    input.current?.focus({ preventScroll: true });
  }, [conversationId, disabled, input]);

  async function submit(e?: FormEvent) {
    e?.preventDefault();
    const taken = compose.take();
    if (!taken) return;
    chat.receipts.typing(conversationId, false);
    lastTyping.current = 0;
    const { text, editing: edit, replyTo: reply } = taken;
    // The draft stays until the outbox has the message (written to this device): then it goes
    // out when it can, and is never lost.
    try {
      if (edit) {
        await chat.outbox.edit(conversationId, edit.message.id, text);
      } else {
        onSend();
        await chat.outbox.send(conversationId, text, reply?.message.id ?? "");
      }
      setError(null);
      compose.sent(text);
    } catch (err) {
      console.warn("the outbox did not take the message", err);
      setError(t("outboxNotKept"));
    }
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void submit();
    } else if (e.key === "Escape" && (editing || replyTo)) {
      e.preventDefault();
      compose.cancel();
    }
  }

  function onDraft(value: string) {
    compose.setDraft(value);
    const now = Date.now();
    if (value && now - lastTyping.current > 3000) {
      lastTyping.current = now;
      chat.receipts.typing(conversationId, true);
    }
  }

  function onPaste(e: ClipboardEvent<HTMLTextAreaElement>) {
    if (e.clipboardData.files.length > 0) {
      e.preventDefault();
      onFiles(e.clipboardData.files);
    }
  }

  return (
    <>
      {error && (
        <p role="alert" className="error composer-error">
          {error}
        </p>
      )}
      <form className="composer" onSubmit={submit}>
        <input
          ref={fileInput}
          type="file"
          multiple
          hidden
          onChange={(e) => {
            onFiles(e.target.files);
            e.target.value = "";
          }}
        />
        <button
          type="button"
          className="icon attach"
          aria-label={t("attach")}
          title={t("attach")}
          disabled={disabled}
          onClick={() => fileInput.current?.click()}
        >
          <PaperclipIcon />
        </button>
        <textarea
          ref={compose.input}
          aria-label={t("message")}
          placeholder={t("message")}
          rows={1}
          value={draft}
          disabled={disabled}
          onChange={(e) => onDraft(e.target.value)}
          onKeyDown={onKeyDown}
          onPaste={onPaste}
        />
        <button type="submit" className="primary" disabled={disabled || !draft.trim()}>
          {editing ? t("save") : t("send")}
        </button>
      </form>
    </>
  );
}
