// SystemLine.tsx — the sentence for a system entry of a conversation's history (Message.system,
// written by the server when it changed): "Alice removed Carol", "Bob left", "Alice changed the
// title to “LAN”", "Alice set disappearing messages to 1 day". Names come from the profiles; "you" forms have their own texts (Russian verbs
// and cases differ). Used in the history (centred, muted) and as the list's preview.
import { MemberRole, SystemEventKind, type SystemEvent } from "../../gen/kitsulan/v1/conversation_pb";
import type { Translate } from "../../i18n/i18n";
import type { Chat } from "../../state/chat";
import { durationText } from "../duration";
import { personName } from "../names";

export function systemText(chat: Chat, t: Translate, e: SystemEvent): string {
  const me = chat.get().me.accountId;
  const byMe = e.actorAccountId === me;
  const toMe = e.targetAccountId === me;
  const actor = personName(chat, t, e.actorAccountId);
  const target = personName(chat, t, e.targetAccountId);
  switch (e.kind) {
    case SystemEventKind.MEMBER_ADDED:
      return byMe ? t("sysAddedByYou", { target }) : toMe ? t("sysAddedYou", { actor }) : t("sysAdded", { actor, target });
    case SystemEventKind.MEMBER_REMOVED:
      return byMe ? t("sysRemovedByYou", { target }) : toMe ? t("sysRemovedYou", { actor }) : t("sysRemoved", { actor, target });
    case SystemEventKind.MEMBER_LEFT:
      return byMe ? t("sysLeftYou") : t("sysLeft", { actor });
    case SystemEventKind.ROLE_CHANGED:
      if (e.role === MemberRole.OWNER) return toMe ? t("sysOwnerYou") : t("sysOwner", { target });
      if (e.role === MemberRole.ADMIN) {
        return byMe ? t("sysAdminByYou", { target }) : toMe ? t("sysAdminYou", { actor }) : t("sysAdmin", { actor, target });
      }
      return byMe ? t("sysMemberByYou", { target }) : toMe ? t("sysMemberYou", { actor }) : t("sysMember", { actor, target });
    case SystemEventKind.TIMER_CHANGED: {
      if (e.timerSeconds === 0) return byMe ? t("sysTimerOffByYou") : t("sysTimerOff", { actor });
      // The page's language (i18n.tsx sets it), for the duration's words.
      const time = durationText(document.documentElement.lang || "en", e.timerSeconds);
      return byMe ? t("sysTimerByYou", { time }) : t("sysTimer", { actor, time });
    }
    case SystemEventKind.TITLE_CHANGED:
      return byMe ? t("sysTitleByYou", { title: e.title }) : t("sysTitle", { actor, title: e.title });
    default:
      return t("sysUnknown");
  }
}

export function SystemLine({ chat, t, event }: { chat: Chat; t: Translate; event: SystemEvent }) {
  return (
    <p className="system-line" role="note">
      {systemText(chat, t, event)}
    </p>
  );
}
