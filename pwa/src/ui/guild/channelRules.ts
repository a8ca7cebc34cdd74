// channelRules.ts — what the composer of a guild's channel says and allows: nothing to write with
// without SEND_MESSAGES (an announcement channel, a role's overwrite) or in a timeout, and slow
// mode (the seconds to wait after our last message, counted down; members who manage messages or
// channels are exempt, as on the server).
import { useEffect, useState } from "react";
import { GuildChannelKind } from "../../gen/kitsulan/v1/guild_pb";
import { useI18n } from "../../i18n/i18n";
import { useChat, type Chat } from "../../state/chat";
import { has, Perm, slowModeWait } from "../../state/guilds";
import { durationText } from "../duration";

export interface ChannelComposer {
  /** Why we may not write now (null: we may). */
  blocked: string | null;
  /** The slow mode line. */
  notice: string | null;
  /** No ATTACH_FILES here. */
  noFiles: boolean;
  /** Slow mode's wait: the draft may be written, not sent yet. */
  holdSend: boolean;
}

export function useChannelComposer(chat: Chat, conversationId: string): ChannelComposer | null {
  const { t, lang } = useI18n();
  useChat(chat, (s) => s.guilds.views); // re-render when the guild is read again
  const me = useChat(chat, (s) => s.me.accountId);
  const thread = useChat(chat, (s) => s.threads[conversationId]);
  const pending = useChat(chat, (s) => s.outbox[conversationId]);
  const [now, setNow] = useState(() => Date.now());
  const guild = chat.guilds.guildOf(conversationId);
  const info = guild?.channels.find((c) => c.id === conversationId);
  // Our last message here: in the outbox, or the newest of ours the thread holds.
  let lastSentMs: number | null = null;
  if (pending && pending.length > 0) lastSentMs = now;
  else {
    for (const i of thread?.items ?? []) {
      if (i.message.senderAccountId === me && !i.message.system) lastSentMs = Math.max(lastSentMs ?? 0, Number(i.message.sentAtMs));
    }
  }
  const exempt = info ? has(info.permissions, Perm.MANAGE_MESSAGES) || has(info.permissions, Perm.MANAGE_CHANNELS) : true;
  const wait = info && !exempt ? slowModeWait(lastSentMs, info.slowModeS, now) : 0;
  const timedOut = guild ? Number(guild.myTimedOutUntilMs) > now : false;

  // Counting down: a tick a second while there is something to wait for.
  useEffect(() => {
    if (wait <= 0 && !timedOut) return;
    const id = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(id);
  }, [wait, timedOut]);

  if (!guild || !info) return null;
  let blocked: string | null = null;
  if (timedOut) {
    blocked = t("timedOutUntil", {
      time: new Date(Number(guild.myTimedOutUntilMs)).toLocaleString(lang, { dateStyle: "short", timeStyle: "short" }),
    });
  } else if (!has(info.permissions, Perm.SEND_MESSAGES)) {
    blocked = info.kind === GuildChannelKind.ANNOUNCEMENT ? t("announcementNoSend") : t("noSendPermission");
  }
  let notice: string | null = null;
  if (!blocked && wait > 0) notice = t("slowModeWait", { n: wait });
  else if (!blocked && info.slowModeS > 0) {
    notice = t("slowMode", { time: durationText(lang, info.slowModeS) }) + (exempt ? ` ${t("slowModeExempt")}` : "");
  }
  return { blocked, notice, noFiles: !has(info.permissions, Perm.ATTACH_FILES), holdSend: !blocked && wait > 0 };
}
