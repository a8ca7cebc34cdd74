// Search.tsx — the search panel (Ctrl+F, or the search buttons): words to find, in every
// conversation or one; results newest first with the snippet and its matches highlighted. Cloud
// conversations are searched by the server, E2EE ones only in this device's own index of what it
// decrypted (state/search.ts), and the panel says so. A result opens its message (jump.ts).
import { useState, type FormEvent, type ReactNode } from "react";
import { reasonOf } from "../errors";
import { ConversationMode } from "../gen/kitsulan/v1/conversation_pb";
import { useI18n } from "../i18n/i18n";
import { errorText } from "../i18n/messages";
import { useChat, type Chat } from "../state/chat";
import { MAX_QUERY, type Hit, type Range } from "../state/search";
import { jumpTo } from "./conversation/jump";
import { Dialog } from "./Dialog";
import { conversationTitle, personName } from "./names";

/** `text` with `ranges` as <mark>. */
export function highlighted(text: string, ranges: Range[]): ReactNode[] {
  const out: ReactNode[] = [];
  let at = 0;
  for (const [i, r] of [...ranges].sort((a, b) => a.start - b.start).entries()) {
    if (r.start < at || r.end > text.length) continue;
    if (r.start > at) out.push(text.slice(at, r.start));
    out.push(<mark key={i}>{text.slice(r.start, r.end)}</mark>);
    at = r.end;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

export function Search({ chat, initialConversation, onClose }: { chat: Chat; initialConversation: string | null; onClose: () => void }) {
  const { t, lang } = useI18n();
  const conversations = useChat(chat, (s) => s.conversations);
  const [query, setQuery] = useState("");
  const [where, setWhere] = useState(initialConversation ?? "");
  const [hits, setHits] = useState<Hit[] | null>(null);
  const [next, setNext] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function run(e?: FormEvent, pageToken = "") {
    e?.preventDefault();
    if (!query.trim()) return;
    setBusy(true);
    setError(null);
    try {
      const res = await chat.search(query.trim(), { ...(where ? { conversationId: where } : {}), ...(pageToken ? { pageToken } : {}) });
      setHits((h) => (pageToken && h ? [...h, ...res.hits] : res.hits));
      setNext(res.next);
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title={t("searchMessages")} onClose={onClose}>
      <form className="search-form" role="search" onSubmit={(e) => void run(e)}>
        <label>
          {t("search")}
          <input type="search" name="query" maxLength={MAX_QUERY} value={query} onChange={(e) => setQuery(e.target.value)} />
        </label>
        <label>
          {t("searchWhere")}
          <select value={where} onChange={(e) => setWhere(e.target.value)}>
            <option value="">{t("searchAll")}</option>
            {conversations
              .filter((c) => !c.request)
              .map((c) => (
                <option key={c.id} value={c.id}>
                  {conversationTitle(chat, t, c)} {c.mode === ConversationMode.CLOUD ? "☁" : "🔒"}
                </option>
              ))}
          </select>
        </label>
        <p className="muted">{t("searchNote")}</p>
        <div className="row">
          <button type="button" onClick={onClose}>
            {t("cancel")}
          </button>
          <button type="submit" className="primary" disabled={busy || !query.trim()}>
            {t("search")}
          </button>
        </div>
      </form>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {hits && hits.length === 0 && <p className="muted">{t("searchNothing")}</p>}
      {hits && hits.length > 0 && (
        <ul className="search-results" aria-label={t("searchMessages")}>
          {hits.map((h) => {
            const c = conversations.find((x) => x.id === h.conversationId);
            return (
              <li key={h.messageId}>
                <button
                  type="button"
                  onClick={() => {
                    onClose();
                    void jumpTo(chat, h.conversationId, h.messageId);
                  }}
                >
                  <span className="hit-meta">
                    {c ? conversationTitle(chat, t, c) : ""} · {personName(chat, t, h.senderAccountId)} ·{" "}
                    {new Date(h.sentAtMs).toLocaleString(lang, { dateStyle: "short", timeStyle: "short" })}
                    {h.local ? ` · ${t("searchOnDevice")}` : ""}
                  </span>
                  <span className="hit-snippet">{highlighted(h.snippet, h.highlights)}</span>
                </button>
              </li>
            );
          })}
        </ul>
      )}
      {next && (
        <button type="button" disabled={busy} onClick={() => void run(undefined, next)}>
          {t("searchMore")}
        </button>
      )}
    </Dialog>
  );
}
