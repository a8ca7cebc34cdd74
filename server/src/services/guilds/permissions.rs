//! What a member of a guild may do, computed here and nowhere else: every guild RPC and every
//! guild event asks [`in_channel`] (or [`in_guild`] for what is not about one channel), and
//! every change of roles, overwrites or members asks the hierarchy checks below
//! ([`can_edit_role`], [`can_grant`], [`can_moderate`]), so nobody grants a permission they do
//! not have or touches a role or a member at or above their own.
//!
//! The rules are Discord's, as it documents them ("Permissions": permission hierarchy and
//! overwrites), so people who run communities find what they know:
//!
//! 1. The owner has every permission, everywhere, and is never timed out.
//! 2. The base is `@everyone`'s permissions ORed with those of every role the member has.
//!    `ADMINISTRATOR` in the base is every permission, everywhere; overwrites do not apply.
//! 3. In a channel, in this order: the `@everyone` overwrite (deny, then allow), then the role
//!    overwrites of the member's roles together (all their denies, then all their allows, so an
//!    allow of one role beats a deny of another), then the member's own overwrite (deny, then
//!    allow).
//! 4. Implicit: without `VIEW_CHANNEL` a channel gives nothing at all (not even typing or
//!    presence in it); in a text channel, without `SEND_MESSAGES` a member also cannot mention
//!    everyone or attach files; in a voice channel, without `CONNECT` they cannot speak.
//! 5. A member in a timeout keeps only `VIEW_CHANNEL` until it ends (administrators and the
//!    owner cannot be timed out: [`can_moderate`] refuses it).
//! 6. Ours, not Discord's: a private end-to-end encrypted channel is seen by its members and
//!    nobody else, because only their devices hold its keys. Its member list, not roles or
//!    overwrites, gives `VIEW_CHANNEL`: someone not in it has nothing there (the owner and
//!    administrators included); someone in it sees it whatever the overwrites say, and the
//!    rest of what they may do there follows rules 1 to 5.
//!
//! The bits are stored (roles, overwrites) and sent (the API's `permissions` fields), so a bit
//! never changes its number; a new permission takes a new bit.

use std::fmt;

use crate::ids::{AccountId, RoleId};

/// A set of guild permissions.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Permissions(u64);

impl Permissions {
    /// See a channel and read it (its messages, who types, who is in a voice channel).
    pub const VIEW_CHANNEL: Self = Self(1 << 0);
    /// Send messages in text channels.
    pub const SEND_MESSAGES: Self = Self(1 << 1);
    /// Delete and pin others' messages.
    pub const MANAGE_MESSAGES: Self = Self(1 << 2);
    /// Create, edit, order and delete channels and categories, and set their overwrites.
    pub const MANAGE_CHANNELS: Self = Self(1 << 3);
    /// Create, edit, order and delete roles below one's own, and give or take them.
    pub const MANAGE_ROLES: Self = Self(1 << 4);
    /// Remove members (they may come back with an invite).
    pub const KICK_MEMBERS: Self = Self(1 << 5);
    /// Ban members (no coming back until unbanned).
    pub const BAN_MEMBERS: Self = Self(1 << 6);
    /// Put members in a timeout.
    pub const TIMEOUT_MEMBERS: Self = Self(1 << 7);
    /// Make invites.
    pub const CREATE_INVITES: Self = Self(1 << 8);
    /// Mention `@everyone`.
    pub const MENTION_EVERYONE: Self = Self(1 << 9);
    /// Attach files.
    pub const ATTACH_FILES: Self = Self(1 << 10);
    /// React to messages.
    pub const ADD_REACTIONS: Self = Self(1 << 11);
    /// Join voice channels.
    pub const CONNECT: Self = Self(1 << 12);
    /// Speak (send audio and video) in voice channels.
    pub const SPEAK: Self = Self(1 << 13);
    /// Change the guild's name, icon and description.
    pub const MANAGE_GUILD: Self = Self(1 << 14);
    /// Read the audit log.
    pub const VIEW_AUDIT_LOG: Self = Self(1 << 15);
    /// Every permission, in every channel, whatever the overwrites say.
    pub const ADMINISTRATOR: Self = Self(1 << 16);

    /// No permission.
    pub const NONE: Self = Self(0);
    /// Every permission this server knows.
    pub const ALL: Self = Self((1 << 17) - 1);
    /// What `@everyone` has in a new guild: see, talk, react, attach, invite, join voice.
    pub const EVERYONE_DEFAULT: Self = Self(
        Self::VIEW_CHANNEL.0
            | Self::SEND_MESSAGES.0
            | Self::ADD_REACTIONS.0
            | Self::ATTACH_FILES.0
            | Self::CREATE_INVITES.0
            | Self::CONNECT.0
            | Self::SPEAK.0,
    );

    /// The set with the bits of `bits` this server knows (unknown bits, from a newer client
    /// or a bad request, are dropped; the API refuses them before this).
    pub const fn from_bits_truncate(bits: u64) -> Self {
        Self(bits & Self::ALL.0)
    }

    /// The set of `bits`, if this server knows every one of them.
    pub const fn from_bits(bits: u64) -> Option<Self> {
        if bits & !Self::ALL.0 == 0 { Some(Self(bits)) } else { None }
    }

    /// The bits, as stored and sent.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every permission of `other` is in this set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets together.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// This set without the permissions of `other`.
    #[must_use]
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// What both sets have.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// `deny` taken away, then `allow` added: one step of rule 3.
    #[must_use]
    const fn overwritten(self, allow: Self, deny: Self) -> Self {
        self.without(deny).union(allow)
    }
}

impl std::ops::BitOr for Permissions {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        self.union(other)
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 17] = [
            "VIEW_CHANNEL",
            "SEND_MESSAGES",
            "MANAGE_MESSAGES",
            "MANAGE_CHANNELS",
            "MANAGE_ROLES",
            "KICK_MEMBERS",
            "BAN_MEMBERS",
            "TIMEOUT_MEMBERS",
            "CREATE_INVITES",
            "MENTION_EVERYONE",
            "ATTACH_FILES",
            "ADD_REACTIONS",
            "CONNECT",
            "SPEAK",
            "MANAGE_GUILD",
            "VIEW_AUDIT_LOG",
            "ADMINISTRATOR",
        ];
        let names: Vec<&str> =
            NAMES.iter().enumerate().filter(|(bit, _)| self.0 & (1 << bit) != 0).map(|(_, n)| *n).collect();
        write!(f, "Permissions({})", if names.is_empty() { "none".to_owned() } else { names.join(" | ") })
    }
}

/// A role as the rules need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// The role (`@everyone`'s is the guild's id).
    pub id: RoleId,
    /// Its place in the order: higher is above (`@everyone` is 0, the lowest).
    pub position: u32,
    /// What it gives.
    pub permissions: Permissions,
}

/// What a guild's roles and owner are.
#[derive(Clone, Debug)]
pub struct Guild<'a> {
    /// The owner.
    pub owner: AccountId,
    /// `@everyone`, which every member has.
    pub everyone: &'a Role,
    /// The other roles.
    pub roles: &'a [Role],
}

/// A member as the rules need them.
#[derive(Clone, Debug)]
pub struct Member<'a> {
    /// Who.
    pub account: AccountId,
    /// Their roles besides `@everyone` (ids of roles that no longer exist are ignored).
    pub roles: &'a [RoleId],
    /// Until when they are in a timeout (ms since the epoch; 0 or past: none).
    pub timed_out_until_ms: i64,
}

/// Whom a channel overwrite is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A role (`@everyone`'s id for everyone).
    Role(RoleId),
    /// One member.
    Member(AccountId),
}

/// A channel's overwrite for a role or a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overwrite {
    /// For whom.
    pub target: Target,
    /// Given in this channel.
    pub allow: Permissions,
    /// Taken in this channel.
    pub deny: Permissions,
}

/// The kinds of channel whose implicit rules differ (rule 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    /// Text (and announcement) channels.
    Text,
    /// Voice channels.
    Voice,
}

/// Who decides whether a member sees a channel (rule 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sight {
    /// Roles and overwrites: every channel but a private end-to-end encrypted one.
    Roles,
    /// A private end-to-end encrypted channel the member is in.
    Member,
    /// A private end-to-end encrypted channel the member is not in.
    Outsider,
}

/// A channel as the rules need it.
#[derive(Clone, Debug)]
pub struct Channel<'a> {
    /// Its kind.
    pub kind: ChannelKind,
    /// Its overwrites (those for roles that no longer exist are ignored).
    pub overwrites: &'a [Overwrite],
    /// Who decides whether the member sees it.
    pub sight: Sight,
}

impl Guild<'_> {
    fn role(&self, id: RoleId) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == id)
    }

    /// The roles `member` has that exist.
    fn roles_of<'m>(&'m self, member: &'m Member<'_>) -> impl Iterator<Item = &'m Role> + 'm {
        member.roles.iter().filter_map(|id| self.role(*id))
    }

    /// Whether `member` is an administrator (the owner, or a role with `ADMINISTRATOR`).
    pub fn is_administrator(&self, member: &Member<'_>) -> bool {
        base(self, member).is_none()
    }

    /// The position of `member`'s highest role (the owner is above every role).
    pub fn top_position(&self, member: &Member<'_>) -> u32 {
        if member.account == self.owner {
            return u32::MAX;
        }
        self.roles_of(member).map(|r| r.position).max().unwrap_or(self.everyone.position)
    }
}

/// Rules 1 and 2: `None` for an administrator (the owner, or `ADMINISTRATOR` from a role), who
/// has everything everywhere; otherwise `@everyone` and the member's roles, before any channel.
fn base(guild: &Guild<'_>, member: &Member<'_>) -> Option<Permissions> {
    if member.account == guild.owner {
        return None;
    }
    let base = guild.roles_of(member).fold(guild.everyone.permissions, |all, role| all | role.permissions);
    (!base.contains(Permissions::ADMINISTRATOR)).then_some(base)
}

/// Rule 5, for someone who is not an administrator (they are never timed out).
fn timed_out(member: &Member<'_>, now_ms: i64) -> bool {
    member.timed_out_until_ms > now_ms
}

/// What `member` may do in the guild as a whole (manage it, its roles, its members; read its
/// audit log): rules 1, 2 and 5.
pub fn in_guild(guild: &Guild<'_>, member: &Member<'_>, now_ms: i64) -> Permissions {
    let Some(base) = base(guild, member) else { return Permissions::ALL };
    if timed_out(member, now_ms) { base.intersection(Permissions::VIEW_CHANNEL) } else { base }
}

/// What `member` may do in `channel`: rules 1 to 6.
pub fn in_channel(guild: &Guild<'_>, member: &Member<'_>, channel: &Channel<'_>, now_ms: i64) -> Permissions {
    if channel.sight == Sight::Outsider {
        return Permissions::NONE;
    }
    let Some(mut perms) = base(guild, member) else { return Permissions::ALL };
    let for_target = |target: Target| channel.overwrites.iter().filter(move |o| o.target == target);
    for o in for_target(Target::Role(guild.everyone.id)) {
        perms = perms.overwritten(o.allow, o.deny);
    }
    let (mut allow, mut deny) = (Permissions::NONE, Permissions::NONE);
    for role in guild.roles_of(member).filter(|r| r.id != guild.everyone.id) {
        for o in for_target(Target::Role(role.id)) {
            allow = allow | o.allow;
            deny = deny | o.deny;
        }
    }
    perms = perms.overwritten(allow, deny);
    for o in for_target(Target::Member(member.account)) {
        perms = perms.overwritten(o.allow, o.deny);
    }
    // Administration is a guild-wide grant: an overwrite cannot give it.
    perms = perms.without(Permissions::ADMINISTRATOR);
    if channel.sight == Sight::Member {
        perms = perms | Permissions::VIEW_CHANNEL;
    }
    if !perms.contains(Permissions::VIEW_CHANNEL) {
        return Permissions::NONE;
    }
    match channel.kind {
        ChannelKind::Text if !perms.contains(Permissions::SEND_MESSAGES) => {
            perms = perms.without(Permissions::MENTION_EVERYONE | Permissions::ATTACH_FILES);
        }
        ChannelKind::Voice if !perms.contains(Permissions::CONNECT) => {
            perms = perms.without(Permissions::SPEAK)
        }
        _ => {}
    }
    if timed_out(member, now_ms) {
        return perms.intersection(Permissions::VIEW_CHANNEL);
    }
    perms
}

/// Whether `actor` may create, edit, move or delete `role`, or give it or take it: with
/// `MANAGE_ROLES`, and only roles strictly below their own highest (the owner: any role).
/// `@everyone` is below every role, so a role manager may edit it.
pub fn can_edit_role(guild: &Guild<'_>, actor: &Member<'_>, role: &Role, now_ms: i64) -> bool {
    in_guild(guild, actor, now_ms).contains(Permissions::MANAGE_ROLES)
        && role.position < guild.top_position(actor)
}

/// Whether `actor`, whose permissions where the change applies are `actor_has` (from
/// [`in_guild`] for a role, [`in_channel`] for an overwrite), may set `wanted` (a role's
/// permissions, or an overwrite's allow and deny together): only permissions they have.
pub fn can_grant(actor_has: Permissions, wanted: Permissions) -> bool {
    actor_has.contains(wanted)
}

/// Whether `actor` may act on `target` with `needed` (kick, ban, timeout, or changing their
/// roles): they have it, `target` is someone else, not the owner, and strictly below them; an
/// administrator cannot be put in a timeout.
pub fn can_moderate(
    guild: &Guild<'_>,
    actor: &Member<'_>,
    target: &Member<'_>,
    needed: Permissions,
    now_ms: i64,
) -> bool {
    if actor.account == target.account || target.account == guild.owner {
        return false;
    }
    if needed.contains(Permissions::TIMEOUT_MEMBERS) && guild.is_administrator(target) {
        return false;
    }
    in_guild(guild, actor, now_ms).contains(needed) && guild.top_position(target) < guild.top_position(actor)
}

#[cfg(test)]
mod tests;
