// Composer.tsx — writing in a conversation: the draft (Enter sends, Shift+Enter makes a new line;
// Escape cancels a reply or an edit), what it answers (and the part of it quoted) or edits,
// `@` suggestions of the members to mention (state/mentions.ts; the sent text carries them),
// typing updates (at most one every 3 s while the draft changes), the attach button and pasted
// files (handed to Uploads.tsx).
import { useEffect, useRef, useState, type ClipboardEvent, type FormEvent, type KeyboardEvent } from "react";
import { useI18n } from "../../i18n/i18n";
import type { Mention } from "../../crypto/content";
import type { Chat, Item } from "../../state/chat";
import { mentionQuery, mentionsIn, suggestions, type Mentionable } from "../../state/mentions";
import { PaperclipIcon } from "../call/icons";
import { snippet } from "../MessageBubble";
import { personName } from "../names";

/** The draft and what it replies to or edits, shared by the message list (Reply, Edit) and the
 * composer. */
export function useCompose() {
  const [draft, setDraft] = useState("");
  const [replyTo, setReplyTo] = useState<Item | null>(null);
  /** The part of the message answered that the reply quotes ("" for a plain reply). */
  const [quote, setQuote] = useState("");
  const [editing, setEditing] = useState<Item | null>(null);
  /** The people picked from the `@` suggestions while writing (their names are found again in
   * the text when it is sent). */
  const [picked, setPicked] = useState<Mentionable[]>([]);
  const input = useRef<HTMLTextAreaElement>(null);

  function startReply(item: Item, quoted = "") {
    setEditing(null);
    setReplyTo(item);
    setQuote(quoted);
    input.current?.focus();
  }

  function startEdit(item: Item) {
    if (item.content.kind !== "text") return;
    setReplyTo(null);
    setQuote("");
    setEditing(item);
    setDraft(item.content.text);
    // Who the text mentioned stays mentioned while it is there.
    setPicked((item.content.mentions ?? []).map((m) => ({ accountId: m.accountId, name: item.content.kind === "text" ? item.content.text.slice(m.start + 1, m.end) : "" })));
    input.current?.focus();
  }

  function cancel() {
    if (editing) setDraft("");
    setEditing(null);
    setReplyTo(null);
    setQuote("");
  }

  /** Someone picked from the suggestions. */
  function pick(person: Mentionable) {
    setPicked((p) => (p.some((x) => x.accountId === person.accountId && x.name === person.name) ? p : [...p, person]));
  }

  /** The draft to send, what it replies to (and quotes) or edits, and whom it mentions; nothing
   * is cleared yet. */
  function take(): { text: string; replyTo: Item | null; quote: string; editing: Item | null; mentions: Mention[] } | null {
    const text = draft.trim();
    if (!text) return null;
    return { text, replyTo, quote: replyTo ? quote : "", editing, mentions: mentionsIn(text, picked) };
  }

  /** The outbox has `text` (it is safe): the draft is cleared, unless it changed meanwhile. */
  function sent(text: string) {
    setDraft((d) => (d.trim() === text ? "" : d));
    setEditing(null);
    setReplyTo(null);
    setQuote("");
    setPicked([]);
  }

  return { draft, setDraft, replyTo, quote, editing, input, startReply, startEdit, cancel, take, sent, pick };
}

export type Compose = ReturnType<typeof useCompose>;

/** "Replying to Alice: …" or "Editing message", with its cancel button. */
export function ComposeContext({ chat, compose }: { chat: Chat; compose: Compose }) {
  const { t } = useI18n();
  const { replyTo, editing, quote } = compose;
  if (!replyTo && !editing) return null;
  const name = personName(chat, t, replyTo?.message.senderAccountId ?? "");
  return (
    <div className="compose-context">
      <span>
        {editing ? t("editingMessage") : quote ? t("quoting", { name }) : t("replyingTo", { name })}
        {replyTo && <span className="muted"> {quote ? `“${quote.length > 120 ? `${quote.slice(0, 120)}…` : quote}”` : snippet(replyTo)}</span>}
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
  blocked,
  notice,
  noFiles = false,
  holdSend = false,
  onSend,
  onFiles,
}: {
  chat: Chat;
  conversationId: string;
  compose: Compose;
  /** No E2EE on this device yet (it needs linking). */
  disabled: boolean;
  /** Why we may not write here (a guild's channel: no permission to post there, a timeout): the
   * composer is disabled and says so where the text would go. */
  blocked?: string | null | undefined;
  /** A line above the composer (a channel's slow mode). */
  notice?: string | null | undefined;
  /** Files may not be attached here (a channel without ATTACH_FILES for us). */
  noFiles?: boolean | undefined;
  /** Not yet (slow mode's wait, said by `notice`): the draft stays, Send waits. */
  holdSend?: boolean | undefined;
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
  /** The `@…` being typed and the members it may name (the suggestions' list). */
  const [mention, setMention] = useState<{ start: number; query: string } | null>(null);
  const [choice, setChoice] = useState(0);
  const me = chat.get().me.accountId;
  const people: Mentionable[] = chat
    .mentionable(conversationId)
    .filter((id) => id !== me)
    .map((id) => ({ accountId: id, name: personName(chat, t, id) }));
  const offered = mention ? suggestions(people, mention.query) : [];

  /** Puts `@Name ` in place of the `@…` typed, and remembers whom it names. */
  function mentionPerson(person: Mentionable) {
    if (!mention) return;
    const caret = input.current?.selectionStart ?? draft.length;
    const before = draft.slice(0, mention.start);
    const text = `${before}@${person.name} ${draft.slice(caret)}`;
    compose.setDraft(text);
    compose.pick(person);
    setMention(null);
    const at = before.length + person.name.length + 2;
    requestAnimationFrame(() => {
      input.current?.focus();
      input.current?.setSelectionRange(at, at);
    });
  }

  // Opening a conversation puts the cursor here, so one can type at once; not on touch screens,
  // where it would pop up the keyboard over the history the person opened it to read.
  useEffect(() => {
    if (disabled || window.matchMedia("(pointer: coarse)").matches) return;
    input.current?.focus({ preventScroll: true });
  }, [conversationId, disabled, input]);

  async function submit(e?: FormEvent) {
    e?.preventDefault();
    if (blocked || holdSend) return;
    const taken = compose.take();
    if (!taken) return;
    chat.receipts.typing(conversationId, false);
    lastTyping.current = 0;
    const { text, editing: edit, replyTo: reply, quote, mentions } = taken;
    setMention(null);
    // The draft stays until the outbox has the message (written to this device): then it goes
    // out when it can, and is never lost.
    try {
      if (edit) {
        await chat.outbox.edit(conversationId, edit.message.id, text, mentions);
      } else {
        onSend();
        await chat.outbox.send(conversationId, text, reply?.message.id ?? "", { quote, mentions });
      }
      setError(null);
      compose.sent(text);
    } catch (err) {
      console.warn("the outbox did not take the message", err);
      setError(t("outboxNotKept"));
    }
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (offered.length > 0) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        setChoice((c) => (c + (e.key === "ArrowDown" ? 1 : offered.length - 1)) % offered.length);
        return;
      }
      if ((e.key === "Enter" || e.key === "Tab") && !e.shiftKey && !e.nativeEvent.isComposing) {
        e.preventDefault();
        const person = offered[Math.min(choice, offered.length - 1)];
        if (person) mentionPerson(person);
        return;
      }
      if (e.key === "Escape") {
        e.preventDefault();
        setMention(null);
        return;
      }
    }
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void submit();
    } else if (e.key === "Escape" && (editing || replyTo)) {
      e.preventDefault();
      compose.cancel();
    }
  }

  function onDraft(value: string, caret: number) {
    compose.setDraft(value);
    setMention(mentionQuery(value, caret));
    setChoice(0);
    const now = Date.now();
    if (value && now - lastTyping.current > 3000) {
      lastTyping.current = now;
      chat.receipts.typing(conversationId, true);
    }
  }

  function onPaste(e: ClipboardEvent<HTMLTextAreaElement>) {
    if (e.clipboardData.files.length > 0 && !noFiles) {
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
      {notice && (
        <p className="composer-notice muted" role="status">
          {notice}
        </p>
      )}
      {offered.length > 0 && (
        <div className="mention-suggest" role="listbox" aria-label={t("mentionSuggestions")}>
          {offered.map((p, i) => (
            <button
              key={p.accountId}
              type="button"
              role="option"
              aria-selected={i === choice}
              aria-label={t("mentionPerson", { name: p.name })}
              // Keeps the focus (and the caret) in the text while picking.
              onMouseDown={(e) => e.preventDefault()}
              onClick={() => mentionPerson(p)}
            >
              @{p.name}
            </button>
          ))}
        </div>
      )}
      <form className={blocked ? "composer blocked" : "composer"} onSubmit={submit}>
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
        {!blocked && (
          <button
            type="button"
            className="icon attach"
            aria-label={t("attach")}
            title={t("attach")}
            disabled={disabled || noFiles}
            onClick={() => fileInput.current?.click()}
          >
            <PaperclipIcon />
          </button>
        )}
        <textarea
          ref={compose.input}
          aria-label={t("message")}
          placeholder={blocked ?? t("message")}
          title={blocked ?? undefined}
          rows={1}
          value={draft}
          disabled={disabled || Boolean(blocked)}
          onChange={(e) => onDraft(e.target.value, e.target.selectionStart)}
          onKeyDown={onKeyDown}
          onPaste={onPaste}
        />
        {/* Nothing to send with while we may not write here: the reason takes the width. */}
        {!blocked && (
          <button type="submit" className="primary" disabled={disabled || holdSend || !draft.trim()}>
            {editing ? t("save") : t("send")}
          </button>
        )}
      </form>
    </>
  );
}
