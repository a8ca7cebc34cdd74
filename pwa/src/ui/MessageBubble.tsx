// MessageBubble.tsx — one message: sender (groups), "Forwarded from", the quoted message it
// replies to (or the part of it quoted), the text (safe Markdown, its mentions highlighted), time,
// "edited", pinned, delivered/read ticks, and its actions (reply — quoting the text selected in
// it —, react with the picker of conversation/Reactions.tsx, copy text, forward, pin; edit and
// delete for our own) behind a keyboard-reachable menu button.
import { useRef, useState, type ReactNode } from "react";
import { categoryOf } from "../crypto/undecryptable";
import { useI18n, type Translate } from "../i18n/i18n";
import { errorText, type MessageKey } from "../i18n/messages";
import { markdownToText } from "../markdown/plainText";
import { SafeMarkdown } from "../markdown/SafeMarkdown";
import type { Item } from "../state/chat";
import { Confirm } from "./Confirm";
import { forwardable } from "./Forward";
import { ReactionPicker } from "./conversation/Reactions";

export type Tick = "sending" | "failed" | "sent" | "delivered" | "read";

/** A one-line summary of a message (for quotes). */
export function snippet(item: Item | undefined): string | null {
  if (item?.content.kind === "attachment") return item.content.file.name;
  if (!item || item.content.kind !== "text") return null;
  const text = markdownToText(item.content.text);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/** The outbox's own reasons (state/outbox.ts); the others are the server's. */
const OUTBOX_REASONS: Record<string, MessageKey> = {
  TIMED_OUT: "outboxTimedOut",
  KEY_CHANGED: "outboxKeyChanged",
  FILE_LOST: "outboxFileLost",
  TEXT_TOO_LONG: "outboxTextTooLong",
};

/** Why one of our messages (or an edit, a deletion) is not sent, for people. */
export function notSentReason(t: Translate, reason: string | undefined): string {
  if (!reason) return "";
  const own = OUTBOX_REASONS[reason];
  return own ? t(own) : errorText(t, reason);
}

export function MessageBubble({
  item,
  mine,
  sender,
  quoted,
  tick,
  canDelete,
  onReply,
  onEdit,
  onDelete,
  onRetry,
  onDiscard,
  file,
  undecryptable,
  unreadableBy,
  readOnly = false,
  onReact,
  onPin,
  onCopy,
  onForward,
  forwardedFrom,
  mentionsMe = false,
}: {
  item: Item;
  mine: boolean;
  /** Shown above the text (groups), or null. */
  sender: string | null;
  /** The replied-to message: its sender's name and a snippet (null when not a reply). */
  quoted: { name: string; text: string | null } | null;
  tick: Tick | null;
  canDelete: boolean;
  /** Reply; `quote`: the text selected in this message when Reply was chosen (Reply.quote). */
  onReply: (quote?: string) => void;
  onEdit: () => void;
  onDelete: () => void;
  /** Not sent: try again. */
  onRetry: () => void;
  /** Not sent: drop it (a new message leaves the thread; an edit or a deletion is undone). */
  onDiscard?: () => void;
  /** The attachment (Attachment.tsx's FileView), for attachment messages. */
  file?: ReactNode;
  /** Who sent a message that did not decrypt, and why (conversation/UndecryptableNote.tsx). */
  undecryptable?: ReactNode;
  /** Our message: the names of the members who have no device that can read it. */
  unreadableBy?: string[] | undefined;
  /** The history of a group we were removed from: nothing to reply to, edit or delete. */
  readOnly?: boolean;
  /** Adds (or takes back) our reaction; returns an error to show (the limit), else null. */
  onReact?: (emoji: string) => string | null;
  /** Pins or unpins it (only where we may). */
  onPin?: (() => void) | undefined;
  /** Copies its text. */
  onCopy?: (() => void) | undefined;
  /** Forwards it to another conversation. */
  onForward?: (() => void) | undefined;
  /** Forwarded: the original sender's name ("" when hidden), else null. */
  forwardedFrom?: string | null;
  /** It mentions us (marked). */
  mentionsMe?: boolean;
}) {
  const { t, lang } = useI18n();
  const [menu, setMenu] = useState(false);
  const [picking, setPicking] = useState(false);
  const menuButton = useRef<HTMLButtonElement>(null);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const m = item.message;
  const ms = Number(m.sentAtMs);
  const live = m.deletedAtMs === 0n && !item.local && !readOnly;
  const act = (fn: () => void) => () => {
    setMenu(false);
    fn();
  };
  const article = useRef<HTMLElement>(null);
  /** The text selected inside this bubble (a quote for Reply), or "". */
  const selected = () => {
    const sel = window.getSelection();
    if (!sel || sel.isCollapsed || !article.current || !sel.anchorNode || !article.current.contains(sel.anchorNode)) return "";
    return sel.toString().trim();
  };
  /** What was selected in it when its menu opened: offered as a quote. */
  const [selection, setSelection] = useState("");
  const text = item.content.kind === "text" ? item.content.text : "";
  const mentionNames = item.content.kind === "text" ? (item.content.mentions ?? []).map((x) => text.slice(x.start, x.end)) : [];
  const classes = ["bubble", mine ? "mine" : "", mentionsMe ? "mentions-me" : ""].filter(Boolean).join(" ");
  return (
    <article ref={article} className={classes} data-message-id={m.id}>
      {sender && <div className="sender">{sender}</div>}
      {forwardedFrom !== undefined && forwardedFrom !== null && (
        <p className="forwarded-line">{forwardedFrom ? t("forwardedFrom", { name: forwardedFrom }) : t("forwarded")}</p>
      )}
      {quoted && (
        <blockquote className="quote">
          <strong>{quoted.name}</strong> {quoted.text ?? t("originalMessage")}
        </blockquote>
      )}
      {item.content.kind === "text" && <SafeMarkdown text={item.content.text} mentions={mentionNames} />}
      {item.content.kind === "attachment" && file}
      {item.content.kind === "deleted" && <p className="muted">{t("deleted")}</p>}
      {item.content.kind === "unsupported" && <p className="muted">{t("unsupportedMessage")}</p>}
      {item.content.kind === "undecryptable" &&
        (undecryptable ?? (
          <p className="muted">{categoryOf(item.content.reason) === "waiting" ? t("waitingForKey") : t("undecryptable")}</p>
        ))}
      {unreadableBy && unreadableBy.length > 0 && (
        <p className="unreadable-note" role="note">
          ⚠{" "}
          {unreadableBy.length === 1
            ? t("unreadableOne", { name: unreadableBy[0] ?? "" })
            : t("unreadableMany", { names: unreadableBy.join(", ") })}
        </p>
      )}
      <div className="meta">
        {m.pinnedAtMs !== 0n && m.deletedAtMs === 0n && (
          <span className="pin-mark" title={t("pinned")} aria-label={t("pinned")}>
            📌
          </span>
        )}
        {m.editedAtMs !== 0n && m.deletedAtMs === 0n && <span>{t("edited")}</span>}
        <time dateTime={new Date(ms).toISOString()}>
          {new Date(ms).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" })}
        </time>
        {tick &&
          (tick === "failed" ? (
            <span className="tick failed" role="img" aria-label={t("notSent")} title={t("notSent")}>
              !
            </span>
          ) : (
            <span className={`tick ${tick}`} role="img" aria-label={t(tick)} title={t(tick)}>
              {tick === "sending" ? "◷" : tick === "sent" ? "✓" : "✓✓"}
            </span>
          ))}
        {live && (
          <button
            type="button"
            className="msg-menu"
            aria-label={t("messageActions")}
            aria-expanded={menu}
            ref={menuButton}
            // The selection is still there before the click takes the focus.
            onPointerDown={() => {
              if (!menu) setSelection(selected());
            }}
            onClick={(e) => {
              // From the keyboard (no pointer went down first): the selection now.
              if (!menu && e.detail === 0) setSelection(selected());
              setMenu((v) => !v);
              setPicking(false);
            }}
          >
            ⋯
          </button>
        )}
      </div>
      {item.local === "failed" && (
        <div className="not-sent">
          <span className="not-sent-text">
            <strong>{m.seq > 0n ? t("changeNotSent") : t("notSent")}</strong>
            {item.failure ? ` — ${notSentReason(t, item.failure)}` : ""}
          </span>
          <span className="not-sent-actions">
            <button type="button" onClick={onRetry}>
              {t("retry")}
            </button>
            <button type="button" className="danger" onClick={onDiscard}>
              {m.seq > 0n ? t("discardChange") : t("delete")}
            </button>
          </span>
        </div>
      )}
      {menu && live && picking && onReact && (
        <ReactionPicker
          onPick={onReact}
          onClose={() => {
            setPicking(false);
            setMenu(false);
            menuButton.current?.focus();
          }}
        />
      )}
      {menu && live && !picking && (
        <div className="msg-actions" role="group" aria-label={t("messageActions")}>
          <button type="button" onClick={act(() => onReply())}>
            {t("reply")}
          </button>
          {selection && (item.content.kind === "text" || item.content.kind === "attachment") && (
            <button type="button" onClick={act(() => onReply(selection))}>
              {t("quoteSelection")}
            </button>
          )}
          {onReact && (item.content.kind === "text" || item.content.kind === "attachment") && (
            <button type="button" onClick={() => setPicking(true)}>
              {t("react")}
            </button>
          )}
          {onCopy && item.content.kind === "text" && (
            <button type="button" onClick={act(onCopy)}>
              {t("copyText")}
            </button>
          )}
          {onForward && forwardable(item) && (
            <button type="button" onClick={act(onForward)}>
              {t("forward")}
            </button>
          )}
          {onPin && (
            <button type="button" onClick={act(onPin)}>
              {m.pinnedAtMs !== 0n ? t("unpin") : t("pin")}
            </button>
          )}
          {mine && item.content.kind === "text" && (
            <button type="button" onClick={act(onEdit)}>
              {t("edit")}
            </button>
          )}
          {canDelete && (
            <button type="button" className="danger" onClick={act(() => setConfirmDelete(true))}>
              {t("delete")}
            </button>
          )}
        </div>
      )}
      {confirmDelete && (
        <Confirm
          title={t("deleteConfirmTitle")}
          action={t("delete")}
          onCancel={() => setConfirmDelete(false)}
          onConfirm={() => {
            setConfirmDelete(false);
            onDelete();
          }}
        >
          <p>{t("deleteConfirmText")}</p>
        </Confirm>
      )}
    </article>
  );
}
