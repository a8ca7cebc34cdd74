// names.ts — what to call a person or a conversation: display names (else usernames) from the
// profiles the chat state fetched with AccountService.GetProfiles.
import type { Translate } from "../i18n/i18n";
import type { Chat } from "../state/chat";
import { ConversationKind, type Conversation } from "../gen/kitsulan/v1/conversation_pb";

export function personName(chat: Chat, t: Translate, accountId: string): string {
  if (accountId === chat.get().me.accountId) return t("you");
  return chat.nameOf(accountId) || t("unknownPerson", { id: accountId.slice(-6) });
}

export function conversationTitle(chat: Chat, t: Translate, c: Conversation): string {
  if (c.kind === ConversationKind.GROUP) return c.title || t("group");
  // A guild's channel: "#general".
  if (c.kind === ConversationKind.CHANNEL) return `#${c.title}`;
  const other = c.members.find((m) => m.accountId !== chat.get().me.accountId);
  return other ? personName(chat, t, other.accountId) : t("directWith");
}
