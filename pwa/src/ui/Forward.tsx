// Forward.tsx — "Forward" a message to another conversation: the person picks one; the text or
// file is sent there as a new message of its own, marked forwarded (who wrote it and when:
// Content.forwarded), through the outbox like any send. Into a cloud chat it goes as new cloud
// content, which the picker says; the server never unwraps an E2EE message. A file can be
// downloaded only by the members of the conversation it was sent in, so it is downloaded and
// decrypted here, then uploaded again under a new key into the chosen one (state/files.ts).
import { useState } from "react";
import { Expired, HashMismatch } from "../attachments/errors";
import { ConversationMode } from "../gen/kitsulan/v1/conversation_pb";
import { useI18n } from "../i18n/i18n";
import { useChat, type Chat, type Item } from "../state/chat";
import { removedFrom } from "../state/conversations";
import { Dialog } from "./Dialog";
import { KindIcon } from "./KindMark";
import { conversationTitle } from "./names";

/** Whether `item` can be forwarded: a text, or a file that was sent (has its attachment). */
export function forwardable(item: Item): boolean {
  return item.content.kind === "text" || (item.content.kind === "attachment" && item.content.file.attachment !== "");
}

export function Forward({ chat, item, onClose }: { chat: Chat; item: Item; onClose: () => void }) {
  const { t } = useI18n();
  const conversations = useChat(chat, (s) => s.conversations);
  const me = useChat(chat, (s) => s.me.accountId);
  const [error, setError] = useState<string | null>(null);
  /** The file's download, while a file is being forwarded. */
  const [fetching, setFetching] = useState<{ done: number; total: number } | null>(null);
  const fromE2ee = !chat.isCloud(item.message.conversationId);
  const content = item.content;
  /** What goes: the text, or the file (then downloaded and uploaded again). */
  const what = content.kind === "text" ? { text: content.text } : content.kind === "attachment" ? { file: content.file } : null;
  if (!forwardable(item) || !what) return null;
  const targets = conversations.filter((c) => !c.request && !removedFrom(c, me));
  const forwarded = { fromAccountId: item.message.senderAccountId, sentAtMs: Number(item.message.sentAtMs) };

  async function forward(conversationId: string, go: NonNullable<typeof what>) {
    setError(null);
    try {
      if ("text" in go) {
        // The original's mentions named members of its own conversation: not carried over.
        await chat.outbox.send(conversationId, go.text, "", { forwarded });
      } else {
        setFetching({ done: 0, total: go.file.size });
        await chat.files.forwardFile(conversationId, go.file, forwarded, (done, total) => setFetching({ done, total }));
      }
      onClose();
      chat.setActive(conversationId);
    } catch (err) {
      setFetching(null);
      if ("text" in go) {
        console.warn("forward not kept", err);
        setError(t("outboxNotKept"));
      } else if (err instanceof Expired) {
        chat.files.markExpired(go.file.attachment);
        setError(t("forwardExpired"));
      } else {
        if (!(err instanceof HashMismatch)) console.warn("file not forwarded", err);
        setError(err instanceof HashMismatch ? t("attachmentTampered") : t("forwardFileFailed"));
      }
    }
  }

  const toCloud = "text" in what ? t("forwardToCloud") : t("forwardFileToCloud");
  return (
    <Dialog title={t("forwardTo")} onClose={onClose} focusInput={false}>
      <ul className="forward-list" aria-label={t("forwardTo")}>
        {targets.map((c) => (
          <li key={c.id}>
            <button type="button" disabled={fetching !== null} onClick={() => void forward(c.id, what)}>
              <span className="conv-title">
                <KindIcon mode={c.mode} />
                <span className="name">{conversationTitle(chat, t, c)}</span>
              </span>
              {fromE2ee && c.mode === ConversationMode.CLOUD && <small className="muted">{toCloud}</small>}
            </button>
          </li>
        ))}
      </ul>
      {fetching && "file" in what && (
        <div role="status" className="muted forward-progress">
          <p>{t("forwardPreparing", { name: what.file.name })}</p>
          <progress max={fetching.total || 1} value={fetching.done} aria-label={t("forwardPreparing", { name: what.file.name })} />
        </div>
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </Dialog>
  );
}
