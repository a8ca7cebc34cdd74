// Pins.tsx — the pinned bar under a conversation's header (the most recent pin and how many there
// are; state/pins.ts) and the pin list it opens (ListPins, most recent first): each pin goes to
// its message (jump.ts), and those who may pin can unpin it there.
import { useState } from "react";
import { reasonOf } from "../../errors";
import type { Conversation } from "../../gen/kitsulan/v1/conversation_pb";
import { useI18n } from "../../i18n/i18n";
import { errorText } from "../../i18n/messages";
import { useChat, type Chat, type Item } from "../../state/chat";
import { canPin } from "../../state/pins";
import { Dialog } from "../Dialog";
import { snippet } from "../MessageBubble";
import { personName } from "../names";
import { jumpTo } from "./jump";

const NO_PINS: Item[] = [];

export function PinnedBar({ chat, conversation }: { chat: Chat; conversation: Conversation }) {
  const { t } = useI18n();
  const pins = useChat(chat, (s) => s.pins[conversation.id] ?? NO_PINS);
  const [open, setOpen] = useState(false);
  const latest = pins[0];
  if (!latest) return null;
  const text = snippet(latest) ?? t("originalMessage");
  return (
    <>
      <button type="button" className="pinned-bar" aria-label={t("pinnedBar", { n: pins.length, text })} onClick={() => setOpen(true)}>
        <span aria-hidden="true">📌</span>
        <span className="pinned-text">
          <strong>{t("pinned")}</strong> {text}
        </span>
        {pins.length > 1 && <span className="badge-soft">{pins.length}</span>}
      </button>
      {open && <PinList chat={chat} conversation={conversation} pins={pins} onClose={() => setOpen(false)} />}
    </>
  );
}

function PinList({ chat, conversation, pins, onClose }: { chat: Chat; conversation: Conversation; pins: Item[]; onClose: () => void }) {
  const { t, lang } = useI18n();
  const [error, setError] = useState<string | null>(null);
  const mayPin = canPin(conversation, chat.get().me.accountId);
  return (
    <Dialog title={t("pinnedMessages")} onClose={onClose} focusInput={false}>
      {pins.length === 0 && <p className="muted">{t("noPins")}</p>}
      <ul className="pin-list" aria-label={t("pinnedMessages")}>
        {pins.map((item) => (
          <li key={item.message.id} className="row">
            <button
              type="button"
              aria-label={`${t("goToMessage")}: ${snippet(item) ?? ""}`}
              onClick={() => {
                onClose();
                void jumpTo(chat, conversation.id, item.message.id);
              }}
            >
              <span className="hit-meta">
                {personName(chat, t, item.message.senderAccountId)} ·{" "}
                {new Date(Number(item.message.sentAtMs)).toLocaleString(lang, { dateStyle: "short", timeStyle: "short" })}
              </span>
              <span>{snippet(item) ?? t("originalMessage")}</span>
            </button>
            {mayPin && (
              <button
                type="button"
                className="unpin"
                onClick={() =>
                  void chat.pins.pin(conversation.id, item.message.id, true).catch((err: unknown) => setError(errorText(t, reasonOf(err))))
                }
              >
                {t("unpin")}
              </button>
            )}
          </li>
        ))}
      </ul>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </Dialog>
  );
}
