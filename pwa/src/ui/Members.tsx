// Members.tsx — a group's members with their pictures and roles; owners and admins add people by
// username, set or remove the group's picture, rename it and remove members (each member's
// menu; the owner also makes admins or members again); everyone may leave (after a confirmation).
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
import { removedFrom } from "../state/conversations";

/** What a member's menu is showing: its actions, or the confirmation of a removal. */
type MenuState = { accountId: string; confirmRemove: boolean } | null;

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
  const isOwner = myRole === MemberRole.OWNER;
  const [menu, setMenu] = useState<MenuState>(null);
  const [confirmLeave, setConfirmLeave] = useState(false);
  const [renaming, setRenaming] = useState(false);
  const groupTitle = conversationTitle(chat, t, conversation);
  const removed = removedFrom(conversation, me.accountId);

  /** Runs a management call, showing the server's reason if it is refused. */
  async function manage(action: () => Promise<void>): Promise<boolean> {
    setBusy(true);
    setError(null);
    try {
      await action();
      return true;
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
      return false;
    } finally {
      setBusy(false);
    }
  }

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

  // Renaming replaces this dialog (one modal at a time), and comes back to it.
  if (renaming) return <RenameDialog chat={chat} conversation={conversation} onClose={() => setRenaming(false)} />;

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
          const name = personName(chat, t, m.accountId);
          // Owners manage everyone else; admins manage plain members.
          const manageable =
            m.accountId !== me.accountId && (isOwner || (myRole === MemberRole.ADMIN && m.role === MemberRole.MEMBER));
          const open = menu?.accountId === m.accountId;
          return (
            <li key={m.accountId} className="member-row">
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
              {manageable && (
                <button
                  type="button"
                  className="member-menu-button"
                  aria-label={t("memberMenu", { name })}
                  aria-expanded={open}
                  onClick={() => setMenu(open ? null : { accountId: m.accountId, confirmRemove: false })}
                >
                  ⋯
                </button>
              )}
              {manageable && open && (
                <div className="member-actions" role="group" aria-label={t("memberMenu", { name })}>
                  {menu.confirmRemove ? (
                    <>
                      <p>{t("removeMemberConfirm", { name, title: groupTitle })}</p>
                      <button
                        type="button"
                        className="danger"
                        autoFocus
                        disabled={busy}
                        onClick={() =>
                          void manage(() => chat.conversations.removeMember(conversation.id, m.accountId)).then(
                            (ok) => ok && setMenu(null),
                          )
                        }
                      >
                        {t("removeMember")}
                      </button>
                      <button type="button" onClick={() => setMenu(null)}>
                        {t("cancel")}
                      </button>
                    </>
                  ) : (
                    <>
                      {isOwner && (m.role === MemberRole.MEMBER || m.role === MemberRole.ADMIN) && (
                        <button
                          type="button"
                          disabled={busy}
                          onClick={() => {
                            // The owner makes a member an admin, or an admin a member again.
                            const role = m.role === MemberRole.MEMBER ? MemberRole.ADMIN : MemberRole.MEMBER;
                            void manage(() => chat.conversations.setRole(conversation.id, m.accountId, role)).then(
                              (ok) => ok && setMenu(null),
                            );
                          }}
                        >
                          {m.role === MemberRole.MEMBER ? t("makeAdmin") : t("makeMember")}
                        </button>
                      )}
                      <button
                        type="button"
                        className="danger"
                        disabled={busy}
                        onClick={() => setMenu({ accountId: m.accountId, confirmRemove: true })}
                      >
                        {t("removeFromGroup")}
                      </button>
                    </>
                  )}
                </div>
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
      {!canAdd && error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {confirmLeave ? (
        <div className="member-actions leave-confirm" role="group" aria-label={t("leaveGroup")}>
          <p>{t("leaveGroupConfirm", { title: groupTitle })}</p>
          <button
            type="button"
            className="danger"
            autoFocus
            disabled={busy}
            onClick={() =>
              void manage(() => chat.conversations.leave(conversation.id)).then((ok) => {
                if (ok) onClose();
              })
            }
          >
            {t("leave")}
          </button>
          <button type="button" onClick={() => setConfirmLeave(false)}>
            {t("cancel")}
          </button>
        </div>
      ) : (
        <div className="row">
          {canAdd && (
            <button type="button" onClick={() => setRenaming(true)}>
              {t("renameGroup")}
            </button>
          )}
          {!removed && (
            <button type="button" className="danger" onClick={() => setConfirmLeave(true)}>
              {t("leaveGroup")}
            </button>
          )}
          <button type="button" onClick={onClose}>
            {t("close")}
          </button>
        </div>
      )}
    </Dialog>
  );
}

/** Renames a group: its title now, the first input focused; the server's reason if refused. */
function RenameDialog({ chat, conversation, onClose }: { chat: Chat; conversation: Conversation; onClose: () => void }) {
  const { t } = useI18n();
  const [title, setTitle] = useState(conversation.title);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function save(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await chat.conversations.rename(conversation.id, title);
      onClose();
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title={t("renameGroup")} onClose={onClose}>
      <form className="form" onSubmit={save}>
        <label>
          {t("groupTitle")}
          <input name="title" required maxLength={100} autoFocus value={title} onChange={(e) => setTitle(e.target.value)} />
        </label>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <div className="row">
          <button type="submit" className="primary" disabled={busy || title.trim() === "" || title.trim() === conversation.title}>
            {t("save")}
          </button>
          <button type="button" onClick={onClose}>
            {t("cancel")}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
