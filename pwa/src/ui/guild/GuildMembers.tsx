// GuildMembers.tsx — the member list on the right of a guild: pages of ListMembers loaded as the
// list scrolls (a hundred at a time), grouped by each member's highest role (in the role's
// colour, highest first), online members first within a group with a dot (live in a guild of up
// to 250 members, as read with the list in a bigger one; docs/guilds.md). A member opens a card
// with what we may do to them: their roles,
// a timeout, kick, ban.
import { useCallback, useEffect, useRef, useState } from "react";
import type { GuildMember, GuildRole } from "../../gen/kitsulan/v1/guild_pb";
import { reasonOf } from "../../errors";
import { useI18n } from "../../i18n/i18n";
import { errorText } from "../../i18n/messages";
import { useChat, type Chat } from "../../state/chat";
import { has, highestRole, myRank, Perm, PRESENCE_LIVE_MAX, type GuildView } from "../../state/guilds";
import { PersonAvatar } from "../Avatar";
import { Dialog } from "../Dialog";
import { durationText } from "../duration";
import { personName } from "../names";

const PAGE = 100;

/** A role's colour as CSS (undefined: none). */
export function roleColor(r: Pick<GuildRole, "color"> | null | undefined): string | undefined {
  return r && r.color !== 0 ? `#${r.color.toString(16).padStart(6, "0")}` : undefined;
}

export function GuildMembers({ chat, guildId, onClose }: { chat: Chat; guildId: string; onClose: () => void }) {
  const { t } = useI18n();
  const view = useChat(chat, (s) => s.guilds.views[guildId]);
  const online = useChat(chat, (s) => s.online);
  const me = useChat(chat, (s) => s.me.accountId);
  useChat(chat, (s) => s.profiles); // names as they arrive
  const [members, setMembers] = useState<GuildMember[]>(() => chat.guilds.listedMembers(guildId));
  const [more, setMore] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState<GuildMember | null>(null);
  const loading = useRef(false);
  const bottom = useRef<HTMLDivElement>(null);
  const listRef = useRef<HTMLDivElement>(null);
  // Read again from the start when the guild changes (someone joined, left, got a role: each
  // `guild` event reads it again). A list scrolled past its first page is read again only when
  // the members or roles changed, not to lose the reader's place on every change of the guild.
  const [pages, setPages] = useState(1);
  const generation =
    pages > 1 ? `${view?.guild.memberCount ?? 0n}/${view?.roles.map((r) => `${r.id}:${r.position}`).join(",") ?? ""}` : view;

  const loadPage = useCallback(
    async (after: string, replace: boolean) => {
      if (loading.current) return;
      loading.current = true;
      try {
        const page = await chat.guilds.members(guildId, after, PAGE);
        setMembers((m) => (replace ? page : [...m, ...page.filter((p) => !m.some((x) => x.accountId === p.accountId))]));
        setPages((n) => (replace ? 1 : n + 1));
        setMore(page.length === PAGE);
        setError(null);
      } catch (err) {
        setError(errorText(t, reasonOf(err)));
      } finally {
        loading.current = false;
      }
    },
    [chat, guildId, t],
  );

  useEffect(() => {
    void loadPage("", true);
  }, [loadPage, generation]);

  // The next page when the end of the list comes into view.
  useEffect(() => {
    const el = bottom.current;
    if (!el || !more) return;
    const io = new IntersectionObserver(
      (entries) => {
        const last = members[members.length - 1];
        if (entries.some((e) => e.isIntersecting) && last) void loadPage(last.accountId, false);
      },
      { root: listRef.current },
    );
    io.observe(el);
    return () => io.disconnect();
  }, [members, more, loadPage]);

  if (!view) return null;
  // In a guild of up to PRESENCE_LIVE_MAX members the server tells this app when each member
  // comes and goes (the presence store); in a bigger one the list says who was online when it
  // was read.
  const live = (view.guild.memberCount ?? 0n) <= PRESENCE_LIVE_MAX;
  const isOnline = (m: GuildMember) => m.accountId === me || online[m.accountId] === true || (!live && m.online);
  // Highest role first; members without a role last.
  const roles = [...view.roles].filter((r) => r.id !== view.guild.id).sort((a, b) => b.position - a.position);
  const groups: Array<{ role: GuildRole | null; members: GuildMember[] }> = [...roles.map((role) => ({ role, members: [] as GuildMember[] })), { role: null, members: [] }];
  for (const m of members) {
    const top = highestRole(view.roles, m.roleIds);
    const g = groups.find((x) => (x.role?.id ?? null) === (top?.id ?? null)) ?? groups[groups.length - 1];
    g?.members.push(m);
  }
  const shownGroups = groups.filter((g) => g.members.length > 0);
  const byPresenceAndName = (a: GuildMember, b: GuildMember) =>
    Number(isOnline(b)) - Number(isOnline(a)) ||
    personName(chat, t, a.accountId).localeCompare(personName(chat, t, b.accountId));

  return (
    <aside className="guild-members" aria-label={t("guildMembers")}>
      <header className="bar">
        <h2 className="members-title">
          {t("members")} <span className="muted">— {String(view.guild.memberCount)}</span>
        </h2>
        <button type="button" className="icon members-close" aria-label={t("close")} onClick={onClose}>
          ×
        </button>
      </header>
      <div className="members-scroll" ref={listRef}>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        {shownGroups.map((g) => (
          <section key={g.role?.id ?? "none"} aria-label={g.role?.name ?? t("membersNoRole")}>
            {/* One group only (nobody has a role): the panel's heading says it all. */}
            {shownGroups.length > 1 && (
              <h3 className="member-group" style={{ color: roleColor(g.role) }}>
                {g.role?.name ?? t("membersNoRole")} — {g.members.length}
              </h3>
            )}
            <ul className="member-list">
              {[...g.members].sort(byPresenceAndName).map((m) => {
                const name = personName(chat, t, m.accountId);
                const on = isOnline(m);
                const timedOut = Number(m.timedOutUntilMs) > Date.now();
                return (
                  <li key={m.accountId}>
                    <button
                      type="button"
                      className={on ? "member online" : "member"}
                      onClick={() => setOpen(m)}
                    >
                      <span className="member-avatar" aria-hidden="true">
                        <PersonAvatar chat={chat} accountId={m.accountId} name={chat.nameOf(m.accountId) || name} className="avatar" />
                        {on && <span className="presence-dot" aria-hidden="true" />}
                      </span>
                      <span className="member-name" style={{ color: roleColor(g.role) }}>
                        {name}
                      </span>
                      {/* Read out after the name: what the dot and the marks show. */}
                      <span className="visually-hidden">
                        {[on ? t("presenceOnline") : "", view.guild.ownerId === m.accountId ? t("guildOwner") : "", timedOut ? t("timedOutMark") : ""]
                          .filter(Boolean)
                          .map((x) => `, ${x}`)
                          .join("")}
                      </span>
                      {view.guild.ownerId === m.accountId && (
                        <span aria-hidden="true" title={t("guildOwner")}>
                          👑
                        </span>
                      )}
                      {timedOut && (
                        <span aria-hidden="true" title={t("timedOutMark")}>
                          ⏱
                        </span>
                      )}
                    </button>
                  </li>
                );
              })}
            </ul>
          </section>
        ))}
        {more && (
          <div ref={bottom} className="member-more muted" aria-hidden="true">
            …
          </div>
        )}
      </div>
      {open && (
        <MemberCard
          chat={chat}
          view={view}
          member={open}
          onClose={() => setOpen(null)}
          onChanged={() => {
            setOpen(null);
            void loadPage("", true);
          }}
        />
      )}
    </aside>
  );
}

/** Timeout lengths offered (seconds). */
const TIMEOUTS = [60, 300, 600, 3_600, 86_400, 604_800];

/** What we may do to a member: give and take their roles, time them out, kick or ban them
 * (each as far as our permissions and rank allow; the server checks it again). */
function MemberCard({ chat, view, member, onClose, onChanged }: { chat: Chat; view: GuildView; member: GuildMember; onClose: () => void; onChanged: () => void }) {
  const { t, lang } = useI18n();
  const me = chat.get().me.accountId;
  const guildId = view.guild.id;
  const name = personName(chat, t, member.accountId);
  const perms = view.myPermissions;
  const rank = myRank(view, me);
  const theirRank = view.guild.ownerId === member.accountId ? Number.MAX_SAFE_INTEGER : (highestRole(view.roles, member.roleIds)?.position ?? 0);
  const self = member.accountId === me;
  const above = !self && rank > theirRank;
  const [roleIds, setRoleIds] = useState(member.roleIds);
  const [reason, setReason] = useState("");
  const [wipe, setWipe] = useState(false);
  const [timeout, setTimeoutS] = useState(600);
  const [confirm, setConfirm] = useState<"kick" | "ban" | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const assignable = view.roles.filter((r) => r.id !== guildId && r.position < rank);
  const timedOut = Number(member.timedOutUntilMs) > Date.now();

  async function act(f: () => Promise<unknown>) {
    setBusy(true);
    setError(null);
    try {
      await f();
      onChanged();
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
      setConfirm(null);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title={name} onClose={onClose} focusInput={false}>
      <div className="member-card">
        <p className="muted">
          {t("memberSince", { date: new Date(Number(member.joinedAtMs)).toLocaleDateString(lang, { dateStyle: "medium" }) })}
          {view.guild.ownerId === member.accountId && ` · ${t("guildOwner")}`}
          {timedOut && ` · ${t("timedOutUntil", { time: new Date(Number(member.timedOutUntilMs)).toLocaleString(lang, { dateStyle: "short", timeStyle: "short" }) })}`}
        </p>
        {view.roles.length > 1 && (
          <fieldset className="member-roles" disabled={!has(perms, Perm.MANAGE_ROLES) || (!above && !self) || busy}>
            <legend>{t("roles")}</legend>
            {view.roles
              .filter((r) => r.id !== guildId)
              .sort((a, b) => b.position - a.position)
              .map((r) => (
                <label key={r.id} className="check">
                  <input
                    type="checkbox"
                    checked={roleIds.includes(r.id)}
                    disabled={!assignable.includes(r)}
                    onChange={(e) => setRoleIds((ids) => (e.target.checked ? [...ids, r.id] : ids.filter((x) => x !== r.id)))}
                  />
                  <span style={{ color: roleColor(r) }}>{r.name}</span>
                </label>
              ))}
            {has(perms, Perm.MANAGE_ROLES) && (above || self) && (
              <button type="button" disabled={busy} onClick={() => void act(() => chat.guilds.setMemberRoles(guildId, member.accountId, roleIds))}>
                {t("saveRoles")}
              </button>
            )}
          </fieldset>
        )}
        {above && (has(perms, Perm.KICK_MEMBERS) || has(perms, Perm.BAN_MEMBERS) || has(perms, Perm.TIMEOUT_MEMBERS)) && (
          <div className="form">
            <label>
              {t("modReason")}
              <input value={reason} maxLength={512} onChange={(e) => setReason(e.target.value)} />
            </label>
            {has(perms, Perm.TIMEOUT_MEMBERS) && (
              <div className="row start">
                <label className="inline">
                  {t("timeoutFor")}
                  <select value={timeout} onChange={(e) => setTimeoutS(Number(e.target.value))}>
                    {TIMEOUTS.map((s) => (
                      <option key={s} value={s}>
                        {durationText(lang, s)}
                      </option>
                    ))}
                  </select>
                </label>
                <button type="button" disabled={busy} onClick={() => void act(() => chat.guilds.timeOut(guildId, member.accountId, timeout, reason))}>
                  {t("timeOut")}
                </button>
                {timedOut && (
                  <button type="button" disabled={busy} onClick={() => void act(() => chat.guilds.timeOut(guildId, member.accountId, 0, reason))}>
                    {t("endTimeout")}
                  </button>
                )}
              </div>
            )}
            <div className="row start">
              {has(perms, Perm.KICK_MEMBERS) && (
                <button type="button" className="danger" disabled={busy} onClick={() => setConfirm("kick")}>
                  {t("kick")}
                </button>
              )}
              {has(perms, Perm.BAN_MEMBERS) && (
                <button type="button" className="danger" disabled={busy} onClick={() => setConfirm("ban")}>
                  {t("ban")}
                </button>
              )}
            </div>
          </div>
        )}
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <div className="row">
          <button type="button" onClick={onClose}>
            {t("close")}
          </button>
        </div>
      </div>
      {confirm && (
        <Dialog title={confirm === "kick" ? t("kickTitle", { name }) : t("banTitle", { name })} onClose={() => setConfirm(null)} focusInput={false}>
          <p>{confirm === "kick" ? t("kickNote") : t("banNote")}</p>
          {confirm === "ban" && (
            <label className="check">
              <input type="checkbox" checked={wipe} onChange={(e) => setWipe(e.target.checked)} />
              {t("banWipe")}
            </label>
          )}
          <div className="row">
            <button type="button" onClick={() => setConfirm(null)}>
              {t("cancel")}
            </button>
            <button
              type="button"
              className="danger"
              disabled={busy}
              onClick={() =>
                void act(() =>
                  confirm === "kick" ? chat.guilds.kick(guildId, member.accountId, reason) : chat.guilds.ban(guildId, member.accountId, reason, wipe ? 86_400 : 0),
                )
              }
            >
              {confirm === "kick" ? t("kick") : t("ban")}
            </button>
          </div>
        </Dialog>
      )}
    </Dialog>
  );
}
