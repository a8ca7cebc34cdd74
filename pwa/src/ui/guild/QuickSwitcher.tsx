// QuickSwitcher.tsx — Ctrl+K: type part of a name and jump to a guild, one of its channels or a
// direct conversation; ↑/↓ pick, Enter opens, Escape closes.
import { useId, useMemo, useState, type KeyboardEvent } from "react";
import { useI18n } from "../../i18n/i18n";
import { useChat, type Chat } from "../../state/chat";
import { opensAsChat } from "../../state/guilds";
import { Dialog } from "../Dialog";
import { conversationTitle } from "../names";
import { channelMark } from "./ChannelSidebar";
import { openGuild } from "./GuildRail";

interface Choice {
  key: string;
  /** The name matched against what was typed ("general", "LAN party"). */
  name: string;
  /** As the list shows it ("# general"). */
  label: string;
  hint: string;
  open: () => void;
}

const MAX = 30;

export function QuickSwitcher({ chat, onClose }: { chat: Chat; onClose: () => void }) {
  const { t } = useI18n();
  const guilds = useChat(chat, (s) => s.guilds);
  const conversations = useChat(chat, (s) => s.conversations);
  const [query, setQuery] = useState("");
  const [at, setAt] = useState(0);
  const listId = useId();

  const choices = useMemo(() => {
    const all: Choice[] = [];
    for (const id of guilds.order) {
      const v = guilds.views[id];
      if (!v) continue;
      all.push({ key: `g${id}`, name: v.guild.name, label: v.guild.name, hint: t("switcherGuild"), open: () => openGuild(chat, id) });
      for (const c of v.channels) {
        if (!opensAsChat(c)) continue;
        all.push({ key: `c${c.id}`, name: c.name, label: `${channelMark(c)} ${c.name}`, hint: v.guild.name, open: () => chat.setActive(c.id) });
      }
    }
    for (const c of conversations) {
      if (c.request) continue;
      const title = conversationTitle(chat, t, c);
      all.push({ key: `d${c.id}`, name: title, label: title, hint: t("directMessages"), open: () => chat.setActive(c.id) });
    }
    const q = query.trim().toLowerCase();
    const found = q ? all.filter((c) => c.name.toLowerCase().includes(q) || c.hint.toLowerCase().includes(q)) : all;
    // Names that start with what was typed come first (the sort keeps the order otherwise).
    const starts = (c: Choice) => (q && c.name.toLowerCase().startsWith(q) ? 0 : 1);
    return found.sort((a, b) => starts(a) - starts(b)).slice(0, MAX);
  }, [guilds, conversations, query, chat, t]);

  const pick = (c: Choice | undefined) => {
    if (!c) return;
    onClose();
    if (c.key.startsWith("d")) chat.guilds.select(null);
    c.open();
  };

  const onKey = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const n = choices.length;
      if (n > 0) setAt((x) => (x + (e.key === "ArrowDown" ? 1 : n - 1)) % n);
    } else if (e.key === "Enter") {
      e.preventDefault();
      pick(choices[at]);
    }
  };

  const current = choices[at];
  return (
    <Dialog title={t("quickSwitcher")} onClose={onClose}>
      <input
        type="search"
        role="combobox"
        aria-label={t("quickSwitcherSearch")}
        aria-expanded="true"
        aria-controls={listId}
        aria-activedescendant={current ? `${listId}-${current.key}` : undefined}
        placeholder={t("quickSwitcherHint")}
        value={query}
        onChange={(e) => {
          setQuery(e.target.value);
          setAt(0);
        }}
        onKeyDown={onKey}
      />
      <ul className="switcher" role="listbox" id={listId} aria-label={t("quickSwitcher")}>
        {choices.map((c, i) => (
          <li
            key={c.key}
            id={`${listId}-${c.key}`}
            role="option"
            aria-selected={i === at}
            className={i === at ? "switcher-item current" : "switcher-item"}
            onMouseDown={(e) => e.preventDefault()}
            onClick={() => pick(c)}
          >
            <span className="fill">{c.label}</span>
            <span className="muted">{c.hint}</span>
          </li>
        ))}
        {choices.length === 0 && <li className="muted pad">{t("quickSwitcherNone")}</li>}
      </ul>
    </Dialog>
  );
}
