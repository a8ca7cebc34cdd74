// Members.tsx — a group's members with their pictures and roles; owners and admins add people by
// username and set or remove the group's picture.
import { useState, type FormEvent } from "react";
import { reasonOf } from "../errors";
import { MemberRole, type Conversation } from "../gen/kitsulan/v1/conversation_pb";
import { useI18n } from "../i18n/i18n";
import { errorText } from "../i18n/messages";
import { useChat, type Chat } from "../state/chat";
import { Avatar, PersonAvatar } from "./Avatar";
import { AvatarPicker } from "./AvatarPicker";
import { Dialog } from "./Dialog";
import { conversationTitle, personName } from "./names";

export function Members({ chat, conversation, onClose }: { chat: Chat; conversation: Conversation; onClose: () => void }) {
  const { t } = useI18n();
  const me = useChat(chat, (s) => s.me);
  const verified = useChat(chat, (s) => s.verified);
  useChat(chat, (s) => s.profiles); // re-render when names arrive
  const [username, setUsername] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const myRole = conversation.members.find((m) => m.accountId === me.accountId)?.role;
  const canAdd = myRole === MemberRole.OWNER || myRole === MemberRole.ADMIN;

  async function add(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await chat.conversations.addMember(conversation.id, username);
      setUsername("");
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title={t("members")} onClose={onClose}>
      {canAdd && (
        <section aria-label={t("groupPicture")} className="form members-picture">
          <AvatarPicker
            name="groupAvatar"
            preview={
              <Avatar
                name={conversationTitle(chat, t, conversation)}
                owner={{ case: "conversationId", value: conversation.id }}
                avatarId={conversation.avatar?.avatarId}
                className="avatar avatar-lg"
              />
            }
            hasPicture={!!conversation.avatar?.avatarId}
            onSet={(file) => chat.profiles.setGroupAvatar(conversation.id, file)}
            onRemove={() => chat.profiles.removeGroupAvatar(conversation.id)}
          />
        </section>
      )}
      <ul className="members" aria-label={t("members")}>
        {conversation.members.map((m) => {
          const username = chat.get().profiles[m.accountId]?.username;
          return (
            <li key={m.accountId}>
              <PersonAvatar chat={chat} accountId={m.accountId} name={chat.nameOf(m.accountId) || personName(chat, t, m.accountId)} className="avatar member-avatar" />{" "}
              <strong>{personName(chat, t, m.accountId)}</strong>{" "}
              {username && <span className="muted">@{username}</span>}{" "}
              {m.role === MemberRole.OWNER && <span className="badge-soft">{t("roleOwner")}</span>}
              {m.role === MemberRole.ADMIN && <span className="badge-soft">{t("roleAdmin")}</span>}{" "}
              {verified[m.accountId] && <span className="verified-mark">✓ {t("verifiedMark")}</span>}
              {m.accountId !== me.accountId && chat.engine.state === "ready" && (
                <button
                  type="button"
                  className="link-button"
                  aria-label={t("verifyPerson", { name: personName(chat, t, m.accountId) })}
                  onClick={() => {
                    onClose();
                    chat.verify(m.accountId);
                  }}
                >
                  {t("verify")}
                </button>
              )}
            </li>
          );
        })}
      </ul>
      {canAdd && (
        <form className="form" onSubmit={add}>
          <label>
            {t("addMember")}
            <input
              name="username"
              required
              autoCapitalize="none"
              autoComplete="off"
              spellCheck={false}
              value={username}
              onChange={(e) => setUsername(e.target.value)}
            />
          </label>
          {error && (
            <p role="alert" className="error">
              {error}
            </p>
          )}
          <div className="row">
            <button type="submit" className="primary" disabled={busy}>
              {t("add")}
            </button>
          </div>
        </form>
      )}
      <div className="row">
        <button type="button" onClick={onClose}>
          {t("close")}
        </button>
      </div>
    </Dialog>
  );
}
