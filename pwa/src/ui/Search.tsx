// Search.tsx — the search panel (Ctrl+F, or the search buttons): words to find, in every
// conversation or one; results newest first with the snippet and its matches highlighted. Cloud
// conversations are searched by the server, E2EE ones only in this device's own index of what it
// decrypted (state/search.ts), and the panel says so. Who wrote it and a range of days narrow
// both alike; clearing the query (its ✕, or Clear) clears them too, and "More results" pages
// with the filters the search was made with. A result opens its message (jump.ts).
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent, type ReactNode } from "react";
import { reasonOf } from "../errors";
import { ConversationMode } from "../gen/kitsulan/v1/conversation_pb";
import { useI18n } from "../i18n/i18n";
import { errorText } from "../i18n/messages";
import { useChat, type Chat } from "../state/chat";
import { dayRange, MAX_QUERY, searchPeople, type Hit, type Range, type SearchFilter } from "../state/search";
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
  const listed = useChat(chat, (s) => s.conversations);
  // A guild's channel opened it: searched within (channels are not in the list; search across
  // every conversation does not cover them yet, docs/guilds.md).
  const openChannel = useChat(chat, (s) => (initialConversation ? s.guilds.channels[initialConversation] : undefined));
  const conversations = useMemo(() => (openChannel ? [openChannel, ...listed] : listed), [openChannel, listed]);
  const [query, setQuery] = useState("");
  useChat(chat, (s) => s.profiles); // the sender list's names arrive after it
  const [where, setWhere] = useState(initialConversation ?? "");
  const [sender, setSender] = useState("");
  const [fromDay, setFromDay] = useState("");
  const [toDay, setToDay] = useState("");
  const [hits, setHits] = useState<Hit[] | null>(null);
  const [next, setNext] = useState("");
  /** The query and filters of the results shown: "More results" asks for their next page. */
  const [asked, setAsked] = useState<{ query: string; filter: SearchFilter } | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const queryBox = useRef<HTMLInputElement>(null);

  const people = searchPeople(conversations, where)
    .map((id) => ({ id, name: personName(chat, t, id) }))
    .sort((a, b) => a.name.localeCompare(b.name, lang));

  const clear = useCallback(() => {
    setQuery("");
    setSender("");
    setFromDay("");
    setToDay("");
    setHits(null);
    setNext("");
    setAsked(null);
    setError(null);
  }, []);

  // The search box's own ✕ (and Escape in it) empties it with a "search" event: the filters go too.
  useEffect(() => {
    const box = queryBox.current;
    const cleared = () => {
      if (box?.value === "") clear();
    };
    box?.addEventListener("search", cleared);
    return () => box?.removeEventListener("search", cleared);
  }, [clear]);

  async function run(e?: FormEvent, pageToken = "") {
    e?.preventDefault();
    const page = pageToken && asked ? asked : { query: query.trim(), filter: currentFilter() };
    if (!page.query) return;
    setBusy(true);
    setError(null);
    try {
      const res = await chat.search(page.query, { ...page.filter, ...(pageToken ? { pageToken } : {}) });
      setHits((h) => (pageToken && h ? [...h, ...res.hits] : res.hits));
      setNext(res.next);
      setAsked(page);
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  function currentFilter(): SearchFilter {
    return {
      ...(where ? { conversationId: where } : {}),
      ...(sender ? { senderAccountId: sender } : {}),
      ...dayRange(fromDay, toDay),
    };
  }

  return (
    <Dialog title={t("searchMessages")} onClose={onClose}>
      <form className="search-form" role="search" onSubmit={(e) => void run(e)}>
        <label>
          {t("search")}
          <input
            ref={queryBox}
            type="search"
            name="query"
            maxLength={MAX_QUERY}
            value={query}
            onChange={(e) => setQuery(e.target.value)}
          />
        </label>
        <label>
          {t("searchWhere")}
          <select
            value={where}
            onChange={(e) => {
              const id = e.target.value;
              setWhere(id);
              // A sender who is not in the conversation chosen would find nothing there.
              if (sender && !searchPeople(conversations, id).includes(sender)) setSender("");
            }}
          >
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
        <label>
          {t("searchSender")}
          <select name="sender" value={sender} onChange={(e) => setSender(e.target.value)}>
            <option value="">{t("searchAnyone")}</option>
            {people.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </label>
        <fieldset className="search-dates">
          <legend>{t("searchDates")}</legend>
          <label>
            {t("searchFromDay")}
            <input type="date" name="from" value={fromDay} max={toDay || undefined} onChange={(e) => setFromDay(e.target.value)} />
          </label>
          <label>
            {t("searchToDay")}
            <input type="date" name="to" value={toDay} min={fromDay || undefined} onChange={(e) => setToDay(e.target.value)} />
          </label>
        </fieldset>
        <p className="muted">{t("searchNote")}</p>
        <div className="row">
          <button type="button" onClick={onClose}>
            {t("cancel")}
          </button>
          <button type="button" onClick={clear} disabled={busy}>
            {t("searchClear")}
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
