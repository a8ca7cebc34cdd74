//! Guilds (migration 0017): communities with members, roles, channels in categories, per-channel
//! overwrites, invites, bans and an audit log.
//!
//! The store keeps the facts; what a member may do is computed from them by the server
//! (`services/guilds/permissions.rs`), which checks before it calls any write here. The store
//! still keeps every rule that needs the database to hold: a guild's counts stay under their
//! caps, positions stay a dense order, an invite is used at most `max_uses` times, a banned
//! account does not join, and every moderation or settings change writes its audit entry in the
//! transaction that makes it, so the log never misses one and never records one that did not
//! happen.
//!
//! Every write that changes a guild starts by taking the guild's row (`lock_guild!`), so the
//! writes of one guild run one after another on PostgreSQL as they do on SQLite.

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::StoreError;
use crate::conversations::Role;
use crate::conversations::{Joining, join_members, leave_conversation, member_ids};
use crate::delivery::AccountEvent;
use crate::ids::{AccountId, AuditId, AvatarId, ChannelId, ConversationId, GuildId, InviteId, RoleId};

/// The most roles a guild has, `@everyone` included.
pub const MAX_GUILD_ROLES: usize = 250;
/// The most channels and categories a guild has.
pub const MAX_GUILD_CHANNELS: usize = 500;
/// The most invites of a guild that can still be used.
pub const MAX_GUILD_INVITES: usize = 1_000;

/// A guild as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildRecord {
    /// Its id (also its `@everyone` role's).
    pub id: GuildId,
    /// Its name.
    pub name: String,
    /// What it is about ("" for nothing).
    pub description: String,
    /// Its owner, who is always a member.
    pub owner: AccountId,
    /// The current icon's blob, if one is set.
    pub icon_id: Option<AvatarId>,
    /// Goes up with every icon change; 0: never had one.
    pub icon_version: i64,
    /// Creation (ms).
    pub created_at_ms: i64,
    /// How many members it has.
    pub member_count: i64,
}

/// A new guild.
#[derive(Debug, Clone)]
pub struct NewGuild {
    /// Its id.
    pub id: GuildId,
    /// Its name.
    pub name: String,
    /// What it is about.
    pub description: String,
    /// Who makes it (its owner and first member).
    pub owner: AccountId,
    /// What `@everyone` may do (permission bits).
    pub everyone_permissions: u64,
    /// Now (ms).
    pub created_at_ms: i64,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildRoleRecord {
    /// Its id (`@everyone`'s is the guild's).
    pub id: RoleId,
    /// Its name.
    pub name: String,
    /// 0xRRGGBB, or 0 for none.
    pub color: u32,
    /// Its place: `@everyone` 0, the others 1, 2, … upwards.
    pub position: u32,
    /// What it gives (permission bits).
    pub permissions: u64,
}

/// A member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildMemberRecord {
    /// Who.
    pub account_id: AccountId,
    /// When they joined (ms).
    pub joined_at_ms: i64,
    /// Until when they are in a timeout (ms; 0: never was).
    pub timed_out_until_ms: i64,
    /// Their roles besides `@everyone`, in id order.
    pub roles: Vec<RoleId>,
}

/// What kind a channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuildChannelKind {
    /// Holds channels; no messages of its own.
    Category,
    /// A text channel.
    Text,
    /// A text channel where only some roles post.
    Announcement,
    /// A voice channel.
    Voice,
}

impl GuildChannelKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Category => "category",
            Self::Text => "text",
            Self::Announcement => "announcement",
            Self::Voice => "voice",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "category" => Self::Category,
            "text" => Self::Text,
            "announcement" => Self::Announcement,
            "voice" => Self::Voice,
            other => return Err(StoreError::Corrupt(format!("guild channel kind {other:?}"))),
        })
    }
}

/// Whom an overwrite is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OverwriteTarget {
    /// A role (the guild's id for `@everyone`).
    Role(RoleId),
    /// One member.
    Member(AccountId),
}

/// A channel's overwrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverwriteRecord {
    /// For whom.
    pub target: OverwriteTarget,
    /// Permission bits given in the channel.
    pub allow: u64,
    /// Permission bits taken in the channel.
    pub deny: u64,
}

/// A channel or category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    /// Its id (and its conversation's, unless it is a category).
    pub id: ChannelId,
    /// Its guild.
    pub guild_id: GuildId,
    /// What kind.
    pub kind: GuildChannelKind,
    /// A private end-to-end encrypted channel (its members are its conversation's members).
    pub e2ee: bool,
    /// Its category.
    pub parent: Option<ChannelId>,
    /// Its place among its siblings (categories among categories, channels within their
    /// category), from 0.
    pub position: i64,
    /// Its name.
    pub name: String,
    /// Its topic ("" for none).
    pub topic: String,
    /// Seconds between one member's messages (0: no slow mode).
    pub slow_mode_s: i64,
    /// Its overwrites, roles first, each in id order.
    pub overwrites: Vec<OverwriteRecord>,
    /// The newest message's sequence number (0 for categories).
    pub last_seq: i64,
}

/// A new channel or category.
#[derive(Debug, Clone)]
pub struct NewChannel {
    /// Its id.
    pub id: ChannelId,
    /// Its guild.
    pub guild_id: GuildId,
    /// What kind.
    pub kind: GuildChannelKind,
    /// End-to-end encrypted (text channels only): its members are added to its conversation
    /// by the conversation store, as a group's are.
    pub e2ee: bool,
    /// Its category, if any (not for a category).
    pub parent: Option<ChannelId>,
    /// Its name.
    pub name: String,
    /// Its topic.
    pub topic: String,
    /// Its overwrites from the start (a private channel denies `@everyone` in the same
    /// transaction that makes it, so it is never visible to all).
    pub overwrites: Vec<OverwriteRecord>,
    /// Who makes it.
    pub created_by: AccountId,
    /// Now (ms).
    pub created_at_ms: i64,
}

/// Why a channel was not made, moved or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRefusal {
    /// No such guild, or no such channel in it.
    NotFound,
    /// The parent is not a category of the guild (or a category was given a parent).
    BadParent,
    /// The guild has [`MAX_GUILD_CHANNELS`] already.
    TooMany,
    /// The new order does not name every channel of the guild exactly once.
    NotAPermutation,
}

/// Why a role change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleRefusal {
    /// No such guild, or no such role in it (`@everyone` where it cannot be used counts too).
    NotFound,
    /// The guild has [`MAX_GUILD_ROLES`] already.
    TooMany,
    /// The new order does not name every role but `@everyone` exactly once.
    NotAPermutation,
    /// Not a member of the guild.
    NotMember,
}

/// A new invite.
#[derive(Debug, Clone)]
pub struct NewInvite {
    /// Its id.
    pub id: InviteId,
    /// Its guild.
    pub guild_id: GuildId,
    /// SHA-256 of the code.
    pub code_hash: [u8; 32],
    /// The code's first characters, to tell invites apart in a list.
    pub code_hint: String,
    /// Who makes it.
    pub created_by: AccountId,
    /// Now (ms).
    pub created_at_ms: i64,
    /// When it stops working (ms; 0: never).
    pub expires_at_ms: i64,
    /// How many joins it admits (0: any number).
    pub max_uses: i64,
}

/// An invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRecord {
    /// Its id.
    pub id: InviteId,
    /// Its guild.
    pub guild_id: GuildId,
    /// The code's first characters.
    pub code_hint: String,
    /// Who made it.
    pub created_by: AccountId,
    /// When (ms).
    pub created_at_ms: i64,
    /// When it stops working (ms; 0: never).
    pub expires_at_ms: i64,
    /// How many joins it admits (0: any number).
    pub max_uses: i64,
    /// How many joins it has admitted.
    pub uses: i64,
    /// When it was revoked (ms; 0: it was not).
    pub revoked_at_ms: i64,
}

impl InviteRecord {
    /// Whether someone can join with it at `now_ms`.
    pub fn usable(&self, now_ms: i64) -> Result<(), GuildJoinRefusal> {
        if self.revoked_at_ms != 0 {
            Err(GuildJoinRefusal::UnknownInvite)
        } else if self.expires_at_ms != 0 && self.expires_at_ms <= now_ms {
            Err(GuildJoinRefusal::Expired)
        } else if self.max_uses != 0 && self.uses >= self.max_uses {
            Err(GuildJoinRefusal::UsedUp)
        } else {
            Ok(())
        }
    }
}

/// What joining by invite did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuildJoin {
    /// Joined this guild now; the invite counted one use.
    Joined(GuildId),
    /// Was a member of this guild already; the invite did not count.
    AlreadyMember(GuildId),
}

/// Why joining by invite was refused. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuildJoinRefusal {
    /// No invite has this code, or it was revoked.
    UnknownInvite,
    /// It has expired.
    Expired,
    /// It has admitted as many as it may.
    UsedUp,
    /// The account is banned from the guild.
    Banned,
}

/// A ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    /// Who is banned.
    pub account_id: AccountId,
    /// By whom.
    pub banned_by: AccountId,
    /// Why ("" if not said).
    pub reason: String,
    /// When (ms).
    pub created_at_ms: i64,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// The guild was made.
    GuildCreated,
    /// Its name, description or icon changed.
    GuildUpdated,
    /// Its owner changed (target: the new owner).
    OwnershipTransferred,
    /// A channel or category was made (target: it).
    ChannelCreated,
    /// A channel's name, topic or slow mode changed.
    ChannelUpdated,
    /// A channel or category was deleted.
    ChannelDeleted,
    /// The channels were reordered.
    ChannelsArranged,
    /// An overwrite was set (target: the channel).
    OverwriteSet,
    /// An overwrite was removed (target: the channel).
    OverwriteRemoved,
    /// A role was made (target: it).
    RoleCreated,
    /// A role's name, colour or permissions changed.
    RoleUpdated,
    /// A role was deleted.
    RoleDeleted,
    /// The roles were reordered.
    RolesArranged,
    /// A member's roles changed (target: the member).
    MemberRolesChanged,
    /// A member was removed (target: them).
    MemberKicked,
    /// A member was banned (target: them).
    MemberBanned,
    /// A ban was lifted (target: who was banned).
    MemberUnbanned,
    /// A member was put in a timeout, or taken out of one (target: them).
    MemberTimedOut,
    /// An invite was made (target: it).
    InviteCreated,
    /// An invite was revoked (target: it).
    InviteRevoked,
    /// Someone else's message was deleted (target: the message).
    MessageDeleted,
}

impl AuditAction {
    const ALL: [Self; 21] = [
        Self::GuildCreated,
        Self::GuildUpdated,
        Self::OwnershipTransferred,
        Self::ChannelCreated,
        Self::ChannelUpdated,
        Self::ChannelDeleted,
        Self::ChannelsArranged,
        Self::OverwriteSet,
        Self::OverwriteRemoved,
        Self::RoleCreated,
        Self::RoleUpdated,
        Self::RoleDeleted,
        Self::RolesArranged,
        Self::MemberRolesChanged,
        Self::MemberKicked,
        Self::MemberBanned,
        Self::MemberUnbanned,
        Self::MemberTimedOut,
        Self::InviteCreated,
        Self::InviteRevoked,
        Self::MessageDeleted,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GuildCreated => "guild_created",
            Self::GuildUpdated => "guild_updated",
            Self::OwnershipTransferred => "ownership_transferred",
            Self::ChannelCreated => "channel_created",
            Self::ChannelUpdated => "channel_updated",
            Self::ChannelDeleted => "channel_deleted",
            Self::ChannelsArranged => "channels_arranged",
            Self::OverwriteSet => "overwrite_set",
            Self::OverwriteRemoved => "overwrite_removed",
            Self::RoleCreated => "role_created",
            Self::RoleUpdated => "role_updated",
            Self::RoleDeleted => "role_deleted",
            Self::RolesArranged => "roles_arranged",
            Self::MemberRolesChanged => "member_roles_changed",
            Self::MemberKicked => "member_kicked",
            Self::MemberBanned => "member_banned",
            Self::MemberUnbanned => "member_unbanned",
            Self::MemberTimedOut => "member_timed_out",
            Self::InviteCreated => "invite_created",
            Self::InviteRevoked => "invite_revoked",
            Self::MessageDeleted => "message_deleted",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("audit action {s:?}")))
    }
}

/// Who did what to what, for the audit log; written with the change it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who.
    pub actor: AccountId,
    /// What.
    pub action: AuditAction,
    /// To what (a channel, role, member, invite or message id), if anything.
    pub target: Option<Uuid>,
    /// What changed, for people to read (names before and after, a reason, a duration).
    pub detail: String,
    /// When (ms).
    pub at_ms: i64,
}

/// An entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its id (time-ordered).
    pub id: AuditId,
    /// The entry.
    pub entry: AuditEntry,
}

/// Guilds and everything in them.
#[async_trait]
pub trait GuildStore: Send + Sync {
    /// Makes a guild with its `@everyone` role, its owner as first member and `channels` (in
    /// the order given; categories before the channels in them).
    async fn create_guild(&self, guild: &NewGuild, channels: &[NewChannel]) -> Result<(), StoreError>;
    /// A guild.
    async fn guild(&self, id: GuildId) -> Result<Option<GuildRecord>, StoreError>;
    /// The guilds `account` is a member of, oldest first.
    async fn guilds_of(&self, account: AccountId) -> Result<Vec<GuildRecord>, StoreError>;
    /// Changes a guild's name and description; `false` if there is no such guild.
    async fn update_guild(
        &self,
        id: GuildId,
        name: &str,
        description: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
    /// Sets the guild's icon (`None`: removes it), with its audit entry; `None` when there is
    /// no such guild. The previous icon's blob is the caller's to delete.
    async fn set_guild_icon(
        &self,
        id: GuildId,
        icon: Option<AvatarId>,
        audit: &AuditEntry,
    ) -> Result<Option<crate::AvatarChange>, StoreError>;
    /// Makes `to` (a member) the owner; `false` if there is no such guild or `to` is not in it.
    async fn transfer_guild(
        &self,
        id: GuildId,
        to: AccountId,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
    /// Deletes a guild with its channels and their messages; `false` if there was none.
    async fn delete_guild(&self, id: GuildId) -> Result<bool, StoreError>;

    /// A member.
    async fn guild_member(
        &self,
        id: GuildId,
        account: AccountId,
    ) -> Result<Option<GuildMemberRecord>, StoreError>;
    /// Up to `limit` members after `after`, in account id order.
    async fn guild_members(
        &self,
        id: GuildId,
        after: Option<AccountId>,
        limit: u32,
    ) -> Result<Vec<GuildMemberRecord>, StoreError>;
    /// Those of `accounts` who are members, with their roles, in account id order.
    async fn guild_members_in(
        &self,
        id: GuildId,
        accounts: &[AccountId],
    ) -> Result<Vec<GuildMemberRecord>, StoreError>;
    /// Everyone who shares a guild of at most `max_members` members with `account`, but
    /// those `account` has blocked: who sees `account` come online and go offline.
    async fn guild_peers(&self, account: AccountId, max_members: i64) -> Result<Vec<AccountId>, StoreError>;
    /// Joins the guild of the invite whose code hashes to `code_hash`.
    async fn join_guild(
        &self,
        code_hash: &[u8; 32],
        account: AccountId,
        now_ms: i64,
    ) -> Result<Result<GuildJoin, GuildJoinRefusal>, StoreError>;
    /// `account` leaves (the owner cannot: `false`, as when they are not a member).
    async fn leave_guild(&self, id: GuildId, account: AccountId) -> Result<bool, StoreError>;
    /// Removes a member (not the owner); `false` if they were not one.
    async fn kick_member(
        &self,
        id: GuildId,
        account: AccountId,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
    /// Bans `account` (removing them if they are a member; the owner cannot be banned);
    /// `false` if they were banned already.
    async fn ban_member(
        &self,
        id: GuildId,
        account: AccountId,
        reason: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
    /// Lifts a ban; `false` if there was none.
    async fn unban_member(
        &self,
        id: GuildId,
        account: AccountId,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
    /// The guild's bans, newest first.
    async fn guild_bans(&self, id: GuildId) -> Result<Vec<BanRecord>, StoreError>;
    /// Whether `account` is banned from the guild.
    async fn is_banned(&self, id: GuildId, account: AccountId) -> Result<bool, StoreError>;
    /// Puts a member in a timeout until `until_ms` (0 or the past: out of it); `false` if
    /// they are not a member.
    async fn time_out_member(
        &self,
        id: GuildId,
        account: AccountId,
        until_ms: i64,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
    /// Gives a member exactly `roles` (besides `@everyone`).
    async fn set_member_roles(
        &self,
        id: GuildId,
        account: AccountId,
        roles: &[RoleId],
        audit: &AuditEntry,
    ) -> Result<Result<(), RoleRefusal>, StoreError>;

    /// The guild's roles, `@everyone` first, upwards.
    async fn guild_roles(&self, id: GuildId) -> Result<Vec<GuildRoleRecord>, StoreError>;
    /// Makes a role just above `@everyone` (below every other role).
    async fn create_role(
        &self,
        id: GuildId,
        role: RoleId,
        name: &str,
        color: u32,
        permissions: u64,
        audit: &AuditEntry,
    ) -> Result<Result<(), RoleRefusal>, StoreError>;
    /// Changes a role's name, colour and permissions (`@everyone`'s name stays).
    async fn update_role(
        &self,
        id: GuildId,
        role: RoleId,
        name: &str,
        color: u32,
        permissions: u64,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
    /// Deletes a role (not `@everyone`); `false` if there is none.
    async fn delete_role(&self, id: GuildId, role: RoleId, audit: &AuditEntry) -> Result<bool, StoreError>;
    /// Puts the roles but `@everyone` in this order, lowest first.
    async fn arrange_roles(
        &self,
        id: GuildId,
        lowest_first: &[RoleId],
        audit: &AuditEntry,
    ) -> Result<Result<(), RoleRefusal>, StoreError>;

    /// The guild's channels and categories: categories by position, each followed by its
    /// channels by position; channels without a category first.
    async fn guild_channels(&self, id: GuildId) -> Result<Vec<ChannelRecord>, StoreError>;
    /// A channel or category.
    async fn guild_channel(&self, channel: ChannelId) -> Result<Option<ChannelRecord>, StoreError>;
    /// Makes a channel (with its conversation) or a category, last among its siblings.
    async fn create_channel(
        &self,
        channel: &NewChannel,
        audit: &AuditEntry,
    ) -> Result<Result<(), ChannelRefusal>, StoreError>;
    /// Changes a channel's name, topic and slow mode; `false` if there is none.
    async fn update_channel(
        &self,
        channel: ChannelId,
        name: &str,
        topic: &str,
        slow_mode_s: i64,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
    /// Deletes a channel with its messages (a category: its channels move to the top level,
    /// after those there); `false` if there is none.
    async fn delete_channel(&self, channel: ChannelId, audit: &AuditEntry) -> Result<bool, StoreError>;
    /// Puts every channel and category of the guild where `layout` says, in its order: each
    /// entry is a channel and its category (`None` for categories and top-level channels).
    async fn arrange_channels(
        &self,
        id: GuildId,
        layout: &[(ChannelId, Option<ChannelId>)],
        audit: &AuditEntry,
    ) -> Result<Result<(), ChannelRefusal>, StoreError>;
    /// Sets a channel's overwrite for a role or member (replacing theirs); `false` if there is
    /// no such channel or role.
    async fn set_overwrite(
        &self,
        channel: ChannelId,
        overwrite: &OverwriteRecord,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
    /// Removes a channel's overwrite; `false` if there was none.
    async fn remove_overwrite(
        &self,
        channel: ChannelId,
        target: OverwriteTarget,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Makes an invite; `false` if the guild has [`MAX_GUILD_INVITES`] usable ones already.
    async fn create_invite(&self, invite: &NewInvite, audit: &AuditEntry) -> Result<bool, StoreError>;
    /// The invite whose code hashes to `code_hash`.
    async fn invite_by_code(&self, code_hash: &[u8; 32]) -> Result<Option<InviteRecord>, StoreError>;
    /// The guild's invites, newest first.
    async fn guild_invites(&self, id: GuildId) -> Result<Vec<InviteRecord>, StoreError>;
    /// Revokes an invite; `false` if there is none (or it was revoked already).
    async fn revoke_invite(
        &self,
        id: GuildId,
        invite: InviteId,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Records a change made elsewhere (a message deleted by a moderator).
    async fn record_audit(&self, id: GuildId, audit: &AuditEntry) -> Result<(), StoreError>;
    /// Up to `limit` entries of the audit log before `before` (or the newest), newest first.
    async fn audit_log(
        &self,
        id: GuildId,
        before: Option<AuditId>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Moves `account`'s read mark in a channel forward to `seq` (never back, never past the
    /// newest message); returns the mark.
    async fn mark_channel_read(
        &self,
        channel: ChannelId,
        account: AccountId,
        seq: i64,
    ) -> Result<i64, StoreError>;
    /// The private end-to-end encrypted channels of the guild that `account` is in.
    async fn sealed_channels(&self, id: GuildId, account: AccountId) -> Result<Vec<ChannelId>, StoreError>;
    /// `account`'s read marks in the guild's channels (channels never read are left out; in a
    /// private E2EE channel, the mark of its member row).
    async fn channel_reads(
        &self,
        id: GuildId,
        account: AccountId,
    ) -> Result<Vec<(ChannelId, i64)>, StoreError>;
    /// How many messages after `account`'s read mark mention it, per channel of the guild
    /// (channels with none are left out).
    async fn channel_mentions(
        &self,
        id: GuildId,
        account: AccountId,
    ) -> Result<Vec<(ChannelId, i64)>, StoreError>;
    /// Up to `limit` messages `account` sent in the guild's channels at or after `since_ms`
    /// that are not deleted yet (channel, message), oldest first.
    async fn guild_messages_since(
        &self,
        id: GuildId,
        account: AccountId,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<(ChannelId, crate::ids::MessageId)>, StoreError>;
}

const GUILD_COLUMNS: &str = "g.id, g.name, g.description, g.owner_id, g.icon_id, g.icon_version, g.created_at_ms, \
     (SELECT COUNT(*) FROM guild_members m WHERE m.guild_id = g.id) AS member_count";
const CHANNEL_COLUMNS: &str = "ch.id, ch.guild_id, ch.kind, ch.parent_id, ch.position, ch.name, ch.topic, ch.slow_mode_s, \
     c.mode, COALESCE(c.last_seq, 0) AS last_seq";
const INVITE_COLUMNS: &str =
    "id, guild_id, code_hint, created_by, created_at_ms, expires_at_ms, max_uses, uses, revoked_at_ms";

fn bits(permissions: u64) -> i64 {
    // Permission bits use the low 17 bits; a stored value is never negative.
    i64::try_from(permissions).unwrap_or(0)
}

fn unbits(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

fn small(stored: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(stored).map_err(|_| StoreError::Corrupt(format!("{what} {stored}")))
}

/// Decoders shared by both backends (rows differ in type, the columns do not).
macro_rules! decode {
    (guild $row:expr) => {{
        let row = $row;
        GuildRecord {
            id: GuildId::from_uuid(row.try_get::<Uuid, _>("id")?),
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            owner: AccountId::from_uuid(row.try_get::<Uuid, _>("owner_id")?),
            icon_id: row.try_get::<Option<Uuid>, _>("icon_id")?.map(AvatarId::from_uuid),
            icon_version: row.try_get("icon_version")?,
            created_at_ms: row.try_get("created_at_ms")?,
            member_count: row.try_get("member_count")?,
        }
    }};
    (role $row:expr) => {{
        let row = $row;
        GuildRoleRecord {
            id: RoleId::from_uuid(row.try_get::<Uuid, _>("id")?),
            name: row.try_get("name")?,
            color: small(row.try_get("color")?, "role colour")?,
            position: small(row.try_get("position")?, "role position")?,
            permissions: unbits(row.try_get("permissions")?),
        }
    }};
    (channel $row:expr) => {{
        let row = $row;
        ChannelRecord {
            id: ChannelId::from_uuid(row.try_get::<Uuid, _>("id")?),
            guild_id: GuildId::from_uuid(row.try_get::<Uuid, _>("guild_id")?),
            kind: GuildChannelKind::parse(&row.try_get::<String, _>("kind")?)?,
            e2ee: row.try_get::<Option<String>, _>("mode")?.as_deref() == Some("e2ee"),
            parent: row.try_get::<Option<Uuid>, _>("parent_id")?.map(ChannelId::from_uuid),
            position: row.try_get("position")?,
            name: row.try_get("name")?,
            topic: row.try_get("topic")?,
            slow_mode_s: row.try_get("slow_mode_s")?,
            overwrites: Vec::new(),
            last_seq: row.try_get("last_seq")?,
        }
    }};
    (invite $row:expr) => {{
        let row = $row;
        InviteRecord {
            id: InviteId::from_uuid(row.try_get::<Uuid, _>("id")?),
            guild_id: GuildId::from_uuid(row.try_get::<Uuid, _>("guild_id")?),
            code_hint: row.try_get("code_hint")?,
            created_by: AccountId::from_uuid(row.try_get::<Uuid, _>("created_by")?),
            created_at_ms: row.try_get("created_at_ms")?,
            expires_at_ms: row.try_get("expires_at_ms")?,
            max_uses: row.try_get("max_uses")?,
            uses: row.try_get("uses")?,
            revoked_at_ms: row.try_get("revoked_at_ms")?,
        }
    }};
}

/// Takes the guild's row for the rest of the transaction (PostgreSQL: a row lock that orders
/// the guild's writers; SQLite: the write lock). Evaluates to whether the guild exists.
macro_rules! lock_guild {
    ($tx:expr, $id:expr) => {
        sqlx::query("UPDATE guilds SET created_at_ms = created_at_ms WHERE id = $1")
            .bind($id.as_uuid())
            .execute(&mut *$tx)
            .await?
            .rows_affected()
            == 1
    };
}

/// Writes an audit entry for guild `$id` in transaction `$tx`.
macro_rules! audit {
    ($tx:expr, $id:expr, $entry:expr) => {{
        let entry: &AuditEntry = $entry;
        sqlx::query(
            "INSERT INTO guild_audit_log (id, guild_id, actor_id, action, target_id, detail, at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::now_v7())
        .bind($id.as_uuid())
        .bind(entry.actor.as_uuid())
        .bind(entry.action.as_str())
        .bind(entry.target)
        .bind(&entry.detail)
        .bind(entry.at_ms)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Inserts a channel (and its conversation, unless it is a category) last among its siblings,
/// with its overwrites; the guild is locked. Evaluates to the refusal, if any.
macro_rules! insert_channel {
    ($tx:expr, $new:expr) => {{
        let new: &NewChannel = $new;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM guild_channels WHERE guild_id = $1")
            .bind(new.guild_id.as_uuid())
            .fetch_one(&mut *$tx)
            .await?;
        let parent_ok = match new.parent {
            None => true,
            Some(_) if new.kind == GuildChannelKind::Category => false,
            Some(parent) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM guild_channels WHERE id = $1 AND guild_id = $2 AND kind = 'category'",
                )
                .bind(parent.as_uuid())
                .bind(new.guild_id.as_uuid())
                .fetch_one(&mut *$tx)
                .await?
                    == 1
            }
        };
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_GUILD_CHANNELS {
            Some(ChannelRefusal::TooMany)
        } else if !parent_ok {
            Some(ChannelRefusal::BadParent)
        } else {
            let is_category = new.kind == GuildChannelKind::Category;
            let position: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM guild_channels WHERE guild_id = $1 \
                 AND (kind = 'category') = $2 AND parent_id IS NOT DISTINCT FROM $3",
            )
            .bind(new.guild_id.as_uuid())
            .bind(is_category)
            .bind(new.parent.map(|p| p.as_uuid()))
            .fetch_one(&mut *$tx)
            .await?;
            if !is_category {
                sqlx::query(
                    "INSERT INTO conversations (id, kind, mode, title, created_by, created_at_ms, last_activity_at_ms, guild_id) \
                     VALUES ($1, 'channel', $2, $3, $4, $5, $5, $6)",
                )
                .bind(new.id.as_uuid())
                .bind(if new.e2ee { "e2ee" } else { "cloud" })
                .bind(&new.name)
                .bind(new.created_by.as_uuid())
                .bind(new.created_at_ms)
                .bind(new.guild_id.as_uuid())
                .execute(&mut *$tx)
                .await?;
            }
            if new.e2ee {
                // Its maker is its first member, as a group's owner is (the channel's roles
                // are the guild's, so every member row says member).
                let maker = Joining { account: new.created_by, role: Role::Member, request: false, added_by: None };
                let channel = ConversationId::from_uuid(new.id.as_uuid());
                let _: Vec<AccountId> = join_members!($tx, channel, &[maker], new.created_at_ms, false);
            }
            sqlx::query(
                "INSERT INTO guild_channels (id, guild_id, kind, parent_id, position, name, topic, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(new.id.as_uuid())
            .bind(new.guild_id.as_uuid())
            .bind(new.kind.as_str())
            .bind(new.parent.map(|p| p.as_uuid()))
            .bind(position)
            .bind(&new.name)
            .bind(&new.topic)
            .bind(new.created_at_ms)
            .execute(&mut *$tx)
            .await?;
            for overwrite in &new.overwrites {
                upsert_overwrite!($tx, new.id, overwrite);
            }
            None
        }
    }};
}

/// Sets one overwrite of a channel (replacing the target's).
macro_rules! upsert_overwrite {
    ($tx:expr, $channel:expr, $overwrite:expr) => {{
        let o: &OverwriteRecord = $overwrite;
        let (role, account) = match o.target {
            OverwriteTarget::Role(role) => (Some(role.as_uuid()), None),
            OverwriteTarget::Member(account) => (None, Some(account.as_uuid())),
        };
        sqlx::query(
            "DELETE FROM guild_overwrites WHERE channel_id = $1 \
             AND role_id IS NOT DISTINCT FROM $2 AND account_id IS NOT DISTINCT FROM $3",
        )
        .bind($channel.as_uuid())
        .bind(role)
        .bind(account)
        .execute(&mut *$tx)
        .await?;
        sqlx::query(
            "INSERT INTO guild_overwrites (channel_id, role_id, account_id, allow, deny) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($channel.as_uuid())
        .bind(role)
        .bind(account)
        .bind(bits(o.allow))
        .bind(bits(o.deny))
        .execute(&mut *$tx)
        .await?;
    }};
}

/// The ids of guild `$id`'s private E2EE channels that `$account` is in, in id order.
macro_rules! sealed_channels {
    ($executor:expr, $id:expr, $account:expr) => {{
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT m.conversation_id FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.guild_id = $1 AND m.account_id = $2 ORDER BY m.conversation_id",
        )
        .bind($id.as_uuid())
        .bind($account.as_uuid())
        .fetch_all($executor)
        .await?;
        ids
    }};
}

/// Removes a member with their roles (not the owner), and takes them out of the guild's
/// private E2EE channels (their devices stop receiving those, and the members' apps hear it and
/// rotate the channel's keys). Evaluates to whether they were one.
macro_rules! remove_member {
    ($tx:expr, $id:expr, $account:expr) => {{
        let (id, account): (GuildId, AccountId) = ($id, $account);
        let removed = sqlx::query(
            "DELETE FROM guild_members WHERE guild_id = $1 AND account_id = $2 \
             AND account_id <> (SELECT owner_id FROM guilds WHERE id = $1)",
        )
        .bind(id.as_uuid())
        .bind(account.as_uuid())
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            == 1;
        if removed {
            let sealed: Vec<Uuid> = sealed_channels!(&mut *$tx, id, account);
            if !sealed.is_empty() {
                crate::delivery::lock_memberships!($tx, vec![account]);
            }
            for channel in sealed {
                let _: Option<Option<AccountId>> =
                    leave_conversation!($tx, ConversationId::from_uuid(channel), account);
            }
        }
        removed
    }};
}

/// An overwrite row: channel, role, account, allow, deny.
type OverwriteRow = (Uuid, Option<Uuid>, Option<Uuid>, i64, i64);

/// Reads overwrite rows (`channel_id, role_id, account_id, allow, deny`).
macro_rules! overwrite_rows {
    ($rows:expr) => {
        $rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get::<Uuid, _>("channel_id")?,
                    row.try_get::<Option<Uuid>, _>("role_id")?,
                    row.try_get::<Option<Uuid>, _>("account_id")?,
                    row.try_get::<i64, _>("allow")?,
                    row.try_get::<i64, _>("deny")?,
                ))
            })
            .collect::<Result<Vec<OverwriteRow>, StoreError>>()?
    };
}

impl_for_backends! {
    impl GuildStore {
        async fn create_guild(&self, guild: &NewGuild, channels: &[NewChannel]) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO guilds (id, name, description, owner_id, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(guild.id.as_uuid())
            .bind(&guild.name)
            .bind(&guild.description)
            .bind(guild.owner.as_uuid())
            .bind(guild.created_at_ms)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO guild_roles (id, guild_id, name, position, permissions, created_at_ms) \
                 VALUES ($1, $1, '@everyone', 0, $2, $3)",
            )
            .bind(guild.id.as_uuid())
            .bind(bits(guild.everyone_permissions))
            .bind(guild.created_at_ms)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO guild_members (guild_id, account_id, joined_at_ms) VALUES ($1, $2, $3)")
                .bind(guild.id.as_uuid())
                .bind(guild.owner.as_uuid())
                .bind(guild.created_at_ms)
                .execute(&mut *tx)
                .await?;
            for channel in channels {
                if let Some(refusal) = insert_channel!(tx, channel) {
                    return Err(StoreError::Corrupt(format!("a new guild's channel was refused: {refusal:?}")));
                }
            }
            let entry = AuditEntry {
                actor: guild.owner,
                action: AuditAction::GuildCreated,
                target: None,
                detail: guild.name.clone(),
                at_ms: guild.created_at_ms,
            };
            audit!(tx, guild.id, &entry);
            tx.commit().await?;
            Ok(())
        }

        async fn guild(&self, id: GuildId) -> Result<Option<GuildRecord>, StoreError> {
            let row = sqlx::query(&format!("SELECT {GUILD_COLUMNS} FROM guilds g WHERE g.id = $1"))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
            row.map(|row| Ok(decode!(guild row))).transpose()
        }

        async fn guilds_of(&self, account: AccountId) -> Result<Vec<GuildRecord>, StoreError> {
            let rows = sqlx::query(&format!(
                "SELECT {GUILD_COLUMNS} FROM guilds g JOIN guild_members me \
                 ON me.guild_id = g.id AND me.account_id = $1 ORDER BY me.joined_at_ms, g.id"
            ))
            .bind(account.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(|row| Ok(decode!(guild row))).collect()
        }

        async fn update_guild(
            &self,
            id: GuildId,
            name: &str,
            description: &str,
            audit: &AuditEntry,
        ) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(false);
            }
            sqlx::query("UPDATE guilds SET name = $2, description = $3 WHERE id = $1")
                .bind(id.as_uuid())
                .bind(name)
                .bind(description)
                .execute(&mut *tx)
                .await?;
            audit!(tx, id, audit);
            tx.commit().await?;
            Ok(true)
        }

        async fn set_guild_icon(
            &self,
            id: GuildId,
            icon: Option<AvatarId>,
            audit: &AuditEntry,
        ) -> Result<Option<crate::AvatarChange>, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(None);
            }
            let previous: Option<Uuid> = sqlx::query_scalar("SELECT icon_id FROM guilds WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
            let version: i64 = sqlx::query_scalar(
                "UPDATE guilds SET icon_id = $2, icon_version = icon_version + 1 WHERE id = $1 RETURNING icon_version",
            )
            .bind(id.as_uuid())
            .bind(icon.map(|i| i.as_uuid()))
            .fetch_one(&mut *tx)
            .await?;
            audit!(tx, id, audit);
            tx.commit().await?;
            Ok(Some(crate::AvatarChange { previous: previous.map(AvatarId::from_uuid), version }))
        }

        async fn transfer_guild(&self, id: GuildId, to: AccountId, audit: &AuditEntry) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(false);
            }
            let moved = sqlx::query(
                "UPDATE guilds SET owner_id = $2 WHERE id = $1 AND EXISTS \
                 (SELECT 1 FROM guild_members WHERE guild_id = $1 AND account_id = $2)",
            )
            .bind(id.as_uuid())
            .bind(to.as_uuid())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if moved {
                audit!(tx, id, audit);
                tx.commit().await?;
            }
            Ok(moved)
        }

        async fn delete_guild(&self, id: GuildId) -> Result<bool, StoreError> {
            // The channels' conversations go with the guild (ON DELETE CASCADE), and with them
            // their messages, reactions and read marks.
            Ok(sqlx::query("DELETE FROM guilds WHERE id = $1")
                .bind(id.as_uuid())
                .execute(&self.pool)
                .await?
                .rows_affected()
                == 1)
        }

        async fn guild_member(&self, id: GuildId, account: AccountId) -> Result<Option<GuildMemberRecord>, StoreError> {
            let row = sqlx::query(
                "SELECT joined_at_ms, timed_out_until_ms FROM guild_members WHERE guild_id = $1 AND account_id = $2",
            )
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let roles: Vec<Uuid> = sqlx::query_scalar(
                "SELECT role_id FROM guild_member_roles WHERE guild_id = $1 AND account_id = $2 ORDER BY role_id",
            )
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            Ok(Some(GuildMemberRecord {
                account_id: account,
                joined_at_ms: row.try_get("joined_at_ms")?,
                timed_out_until_ms: row.try_get("timed_out_until_ms")?,
                roles: roles.into_iter().map(RoleId::from_uuid).collect(),
            }))
        }

        async fn guild_members_in(&self, id: GuildId, accounts: &[AccountId]) -> Result<Vec<GuildMemberRecord>, StoreError> {
            // A few hundred at a time: far below either database's limit on parameters.
            const CHUNK: usize = 200;
            let mut members = Vec::new();
            for chunk in accounts.chunks(CHUNK) {
                let list = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ");
                let sql = format!(
                    "SELECT account_id, joined_at_ms, timed_out_until_ms FROM guild_members \
                     WHERE guild_id = $1 AND account_id IN ({list})"
                );
                let mut query = sqlx::query(&sql).bind(id.as_uuid());
                for account in chunk {
                    query = query.bind(account.as_uuid());
                }
                for row in query.fetch_all(&self.pool).await? {
                    members.push(GuildMemberRecord {
                        account_id: AccountId::from_uuid(row.try_get::<Uuid, _>("account_id")?),
                        joined_at_ms: row.try_get("joined_at_ms")?,
                        timed_out_until_ms: row.try_get("timed_out_until_ms")?,
                        roles: Vec::new(),
                    });
                }
                let sql = format!(
                    "SELECT account_id, role_id FROM guild_member_roles WHERE guild_id = $1 \
                     AND account_id IN ({list}) ORDER BY account_id, role_id"
                );
                let mut query = sqlx::query_as::<_, (Uuid, Uuid)>(&sql).bind(id.as_uuid());
                for account in chunk {
                    query = query.bind(account.as_uuid());
                }
                let pairs = query.fetch_all(&self.pool).await?;
                members = with_roles(members, &pairs);
            }
            members.sort_by_key(|m| m.account_id);
            Ok(members)
        }

        async fn guild_peers(&self, account: AccountId, max_members: i64) -> Result<Vec<AccountId>, StoreError> {
            let rows: Vec<Uuid> = sqlx::query_scalar(
                "SELECT DISTINCT other.account_id FROM guild_members mine \
                 JOIN guild_members other ON other.guild_id = mine.guild_id AND other.account_id <> mine.account_id \
                 WHERE mine.account_id = $1 \
                 AND (SELECT COUNT(*) FROM guild_members n WHERE n.guild_id = mine.guild_id) <= $2 \
                 AND NOT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = other.account_id)",
            )
            .bind(account.as_uuid())
            .bind(max_members)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(AccountId::from_uuid).collect())
        }

        async fn guild_members(
            &self,
            id: GuildId,
            after: Option<AccountId>,
            limit: u32,
        ) -> Result<Vec<GuildMemberRecord>, StoreError> {
            let rows = sqlx::query(
                "SELECT account_id, joined_at_ms, timed_out_until_ms FROM guild_members \
                 WHERE guild_id = $1 AND ($2 IS NULL OR account_id > $2) ORDER BY account_id LIMIT $3",
            )
            .bind(id.as_uuid())
            .bind(after.map(|a| a.as_uuid()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            let members = rows
                .iter()
                .map(|row| {
                    Ok(GuildMemberRecord {
                        account_id: AccountId::from_uuid(row.try_get::<Uuid, _>("account_id")?),
                        joined_at_ms: row.try_get("joined_at_ms")?,
                        timed_out_until_ms: row.try_get("timed_out_until_ms")?,
                        roles: Vec::new(),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let (Some(first), Some(last)) = (members.first(), members.last()) else { return Ok(members) };
            let role_rows = sqlx::query(
                "SELECT account_id, role_id FROM guild_member_roles WHERE guild_id = $1 \
                 AND account_id >= $2 AND account_id <= $3 ORDER BY account_id, role_id",
            )
            .bind(id.as_uuid())
            .bind(first.account_id.as_uuid())
            .bind(last.account_id.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            let pairs = role_rows
                .iter()
                .map(|row| Ok((row.try_get::<Uuid, _>("account_id")?, row.try_get::<Uuid, _>("role_id")?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(with_roles(members, &pairs))
        }

        async fn join_guild(
            &self,
            code_hash: &[u8; 32],
            account: AccountId,
            now_ms: i64,
        ) -> Result<Result<GuildJoin, GuildJoinRefusal>, StoreError> {
            let Some(invite) = self.invite_by_code(code_hash).await? else {
                return Ok(Err(GuildJoinRefusal::UnknownInvite));
            };
            let id = invite.guild_id;
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(Err(GuildJoinRefusal::UnknownInvite));
            }
            // Read again under the guild's lock: another join may have used it up meanwhile.
            let row = sqlx::query(&format!("SELECT {INVITE_COLUMNS} FROM guild_invites WHERE id = $1"))
                .bind(invite.id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else { return Ok(Err(GuildJoinRefusal::UnknownInvite)) };
            let invite = decode!(invite row);
            let member: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM guild_members WHERE guild_id = $1 AND account_id = $2")
                    .bind(id.as_uuid())
                    .bind(account.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
            if member == 1 {
                return Ok(Ok(GuildJoin::AlreadyMember(id)));
            }
            if let Err(refusal) = invite.usable(now_ms) {
                return Ok(Err(refusal));
            }
            let banned: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM guild_bans WHERE guild_id = $1 AND account_id = $2")
                    .bind(id.as_uuid())
                    .bind(account.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
            if banned == 1 {
                return Ok(Err(GuildJoinRefusal::Banned));
            }
            sqlx::query("INSERT INTO guild_members (guild_id, account_id, joined_at_ms) VALUES ($1, $2, $3)")
                .bind(id.as_uuid())
                .bind(account.as_uuid())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE guild_invites SET uses = uses + 1 WHERE id = $1")
                .bind(invite.id.as_uuid())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Ok(GuildJoin::Joined(id)))
        }

        async fn leave_guild(&self, id: GuildId, account: AccountId) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(false);
            }
            let left = remove_member!(tx, id, account);
            tx.commit().await?;
            Ok(left)
        }

        async fn kick_member(&self, id: GuildId, account: AccountId, audit: &AuditEntry) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) || !remove_member!(tx, id, account) {
                return Ok(false);
            }
            audit!(tx, id, audit);
            tx.commit().await?;
            Ok(true)
        }

        async fn ban_member(
            &self,
            id: GuildId,
            account: AccountId,
            reason: &str,
            audit: &AuditEntry,
        ) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(false);
            }
            let owner: Uuid = sqlx::query_scalar("SELECT owner_id FROM guilds WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
            if owner == account.as_uuid() {
                return Ok(false);
            }
            let banned = sqlx::query(
                "INSERT INTO guild_bans (guild_id, account_id, banned_by, reason, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (guild_id, account_id) DO NOTHING",
            )
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .bind(audit.actor.as_uuid())
            .bind(reason)
            .bind(audit.at_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !banned {
                return Ok(false);
            }
            let _was_member = remove_member!(tx, id, account);
            audit!(tx, id, audit);
            tx.commit().await?;
            Ok(true)
        }

        async fn unban_member(&self, id: GuildId, account: AccountId, audit: &AuditEntry) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(false);
            }
            let lifted = sqlx::query("DELETE FROM guild_bans WHERE guild_id = $1 AND account_id = $2")
                .bind(id.as_uuid())
                .bind(account.as_uuid())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if lifted {
                audit!(tx, id, audit);
                tx.commit().await?;
            }
            Ok(lifted)
        }

        async fn guild_bans(&self, id: GuildId) -> Result<Vec<BanRecord>, StoreError> {
            let rows = sqlx::query(
                "SELECT account_id, banned_by, reason, created_at_ms FROM guild_bans WHERE guild_id = $1 \
                 ORDER BY created_at_ms DESC, account_id",
            )
            .bind(id.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(BanRecord {
                        account_id: AccountId::from_uuid(row.try_get::<Uuid, _>("account_id")?),
                        banned_by: AccountId::from_uuid(row.try_get::<Uuid, _>("banned_by")?),
                        reason: row.try_get("reason")?,
                        created_at_ms: row.try_get("created_at_ms")?,
                    })
                })
                .collect()
        }

        async fn is_banned(&self, id: GuildId, account: AccountId) -> Result<bool, StoreError> {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM guild_bans WHERE guild_id = $1 AND account_id = $2")
                .bind(id.as_uuid())
                .bind(account.as_uuid())
                .fetch_one(&self.pool)
                .await?;
            Ok(n == 1)
        }

        async fn time_out_member(
            &self,
            id: GuildId,
            account: AccountId,
            until_ms: i64,
            audit: &AuditEntry,
        ) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(false);
            }
            let done = sqlx::query(
                "UPDATE guild_members SET timed_out_until_ms = $3 WHERE guild_id = $1 AND account_id = $2",
            )
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .bind(until_ms.max(0))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if done {
                audit!(tx, id, audit);
                tx.commit().await?;
            }
            Ok(done)
        }

        async fn set_member_roles(
            &self,
            id: GuildId,
            account: AccountId,
            roles: &[RoleId],
            audit: &AuditEntry,
        ) -> Result<Result<(), RoleRefusal>, StoreError> {
            let mut roles = roles.to_vec();
            roles.sort_unstable();
            roles.dedup();
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(Err(RoleRefusal::NotFound));
            }
            let member: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM guild_members WHERE guild_id = $1 AND account_id = $2")
                    .bind(id.as_uuid())
                    .bind(account.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
            if member != 1 {
                return Ok(Err(RoleRefusal::NotMember));
            }
            for role in &roles {
                let known: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM guild_roles WHERE id = $1 AND guild_id = $2 AND id <> guild_id",
                )
                .bind(role.as_uuid())
                .bind(id.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
                if known != 1 {
                    return Ok(Err(RoleRefusal::NotFound));
                }
            }
            sqlx::query("DELETE FROM guild_member_roles WHERE guild_id = $1 AND account_id = $2")
                .bind(id.as_uuid())
                .bind(account.as_uuid())
                .execute(&mut *tx)
                .await?;
            for role in &roles {
                sqlx::query("INSERT INTO guild_member_roles (guild_id, account_id, role_id) VALUES ($1, $2, $3)")
                    .bind(id.as_uuid())
                    .bind(account.as_uuid())
                    .bind(role.as_uuid())
                    .execute(&mut *tx)
                    .await?;
            }
            audit!(tx, id, audit);
            tx.commit().await?;
            Ok(Ok(()))
        }

        async fn guild_roles(&self, id: GuildId) -> Result<Vec<GuildRoleRecord>, StoreError> {
            let rows = sqlx::query(
                "SELECT id, name, color, position, permissions FROM guild_roles WHERE guild_id = $1 ORDER BY position",
            )
            .bind(id.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(|row| Ok(decode!(role row))).collect()
        }

        async fn create_role(
            &self,
            id: GuildId,
            role: RoleId,
            name: &str,
            color: u32,
            permissions: u64,
            audit: &AuditEntry,
        ) -> Result<Result<(), RoleRefusal>, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(Err(RoleRefusal::NotFound));
            }
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM guild_roles WHERE guild_id = $1")
                .bind(id.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_GUILD_ROLES {
                return Ok(Err(RoleRefusal::TooMany));
            }
            sqlx::query("UPDATE guild_roles SET position = position + 1 WHERE guild_id = $1 AND position >= 1")
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO guild_roles (id, guild_id, name, color, position, permissions, created_at_ms) \
                 VALUES ($1, $2, $3, $4, 1, $5, $6)",
            )
            .bind(role.as_uuid())
            .bind(id.as_uuid())
            .bind(name)
            .bind(i64::from(color))
            .bind(bits(permissions))
            .bind(audit.at_ms)
            .execute(&mut *tx)
            .await?;
            audit!(tx, id, audit);
            tx.commit().await?;
            Ok(Ok(()))
        }

        async fn update_role(
            &self,
            id: GuildId,
            role: RoleId,
            name: &str,
            color: u32,
            permissions: u64,
            audit: &AuditEntry,
        ) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(false);
            }
            let done = sqlx::query(
                "UPDATE guild_roles SET name = CASE WHEN id = guild_id THEN name ELSE $3 END, color = $4, \
                 permissions = $5 WHERE id = $1 AND guild_id = $2",
            )
            .bind(role.as_uuid())
            .bind(id.as_uuid())
            .bind(name)
            .bind(i64::from(color))
            .bind(bits(permissions))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if done {
                audit!(tx, id, audit);
                tx.commit().await?;
            }
            Ok(done)
        }

        async fn delete_role(&self, id: GuildId, role: RoleId, audit: &AuditEntry) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(false);
            }
            let position: Option<i64> = sqlx::query_scalar(
                "DELETE FROM guild_roles WHERE id = $1 AND guild_id = $2 AND id <> guild_id RETURNING position",
            )
            .bind(role.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(position) = position else { return Ok(false) };
            sqlx::query("UPDATE guild_roles SET position = position - 1 WHERE guild_id = $1 AND position > $2")
                .bind(id.as_uuid())
                .bind(position)
                .execute(&mut *tx)
                .await?;
            audit!(tx, id, audit);
            tx.commit().await?;
            Ok(true)
        }

        async fn arrange_roles(
            &self,
            id: GuildId,
            lowest_first: &[RoleId],
            audit: &AuditEntry,
        ) -> Result<Result<(), RoleRefusal>, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(Err(RoleRefusal::NotFound));
            }
            let mut have: Vec<Uuid> =
                sqlx::query_scalar("SELECT id FROM guild_roles WHERE guild_id = $1 AND id <> guild_id")
                    .bind(id.as_uuid())
                    .fetch_all(&mut *tx)
                    .await?;
            have.sort_unstable();
            let mut wanted: Vec<Uuid> = lowest_first.iter().map(RoleId::as_uuid).collect();
            wanted.sort_unstable();
            if have != wanted {
                return Ok(Err(RoleRefusal::NotAPermutation));
            }
            for (position, role) in (1_i64..).zip(lowest_first) {
                sqlx::query("UPDATE guild_roles SET position = $2 WHERE id = $1")
                    .bind(role.as_uuid())
                    .bind(position)
                    .execute(&mut *tx)
                    .await?;
            }
            audit!(tx, id, audit);
            tx.commit().await?;
            Ok(Ok(()))
        }

        async fn guild_channels(&self, id: GuildId) -> Result<Vec<ChannelRecord>, StoreError> {
            let rows = sqlx::query(&format!(
                "SELECT {CHANNEL_COLUMNS} FROM guild_channels ch LEFT JOIN conversations c ON c.id = ch.id \
                 WHERE ch.guild_id = $1"
            ))
            .bind(id.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            let channels = rows.iter().map(|row| Ok(decode!(channel row))).collect::<Result<Vec<_>, StoreError>>()?;
            let overwrites = sqlx::query(
                "SELECT o.channel_id, o.role_id, o.account_id, o.allow, o.deny FROM guild_overwrites o \
                 JOIN guild_channels ch ON ch.id = o.channel_id WHERE ch.guild_id = $1",
            )
            .bind(id.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            Ok(in_order(with_overwrites(channels, &overwrite_rows!(overwrites))?))
        }

        async fn guild_channel(&self, channel: ChannelId) -> Result<Option<ChannelRecord>, StoreError> {
            let row = sqlx::query(&format!(
                "SELECT {CHANNEL_COLUMNS} FROM guild_channels ch LEFT JOIN conversations c ON c.id = ch.id \
                 WHERE ch.id = $1"
            ))
            .bind(channel.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let overwrites = sqlx::query(
                "SELECT channel_id, role_id, account_id, allow, deny FROM guild_overwrites WHERE channel_id = $1",
            )
            .bind(channel.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            Ok(with_overwrites(vec![decode!(channel row)], &overwrite_rows!(overwrites))?.pop())
        }

        async fn create_channel(
            &self,
            channel: &NewChannel,
            audit: &AuditEntry,
        ) -> Result<Result<(), ChannelRefusal>, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, channel.guild_id) {
                return Ok(Err(ChannelRefusal::NotFound));
            }
            if let Some(refusal) = insert_channel!(tx, channel) {
                return Ok(Err(refusal));
            }
            audit!(tx, channel.guild_id, audit);
            tx.commit().await?;
            Ok(Ok(()))
        }

        async fn update_channel(
            &self,
            channel: ChannelId,
            name: &str,
            topic: &str,
            slow_mode_s: i64,
            audit: &AuditEntry,
        ) -> Result<bool, StoreError> {
            let Some(record) = self.guild_channel(channel).await? else { return Ok(false) };
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, record.guild_id) {
                return Ok(false);
            }
            let done = sqlx::query("UPDATE guild_channels SET name = $2, topic = $3, slow_mode_s = $4 WHERE id = $1")
                .bind(channel.as_uuid())
                .bind(name)
                .bind(topic)
                .bind(slow_mode_s.max(0))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !done {
                return Ok(false);
            }
            sqlx::query("UPDATE conversations SET title = $2 WHERE id = $1")
                .bind(channel.as_uuid())
                .bind(name)
                .execute(&mut *tx)
                .await?;
            audit!(tx, record.guild_id, audit);
            tx.commit().await?;
            Ok(true)
        }

        async fn delete_channel(&self, channel: ChannelId, audit: &AuditEntry) -> Result<bool, StoreError> {
            let Some(record) = self.guild_channel(channel).await? else { return Ok(false) };
            let guild = record.guild_id;
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, guild) {
                return Ok(false);
            }
            if record.kind == GuildChannelKind::Category {
                // Its channels join the top level, after the channels there, in their order.
                let top: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(position) + 1, 0) FROM guild_channels \
                     WHERE guild_id = $1 AND parent_id IS NULL AND kind <> 'category'",
                )
                .bind(guild.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("UPDATE guild_channels SET parent_id = NULL, position = position + $2 WHERE parent_id = $1")
                    .bind(channel.as_uuid())
                    .bind(top)
                    .execute(&mut *tx)
                    .await?;
            }
            let deleted = sqlx::query("DELETE FROM guild_channels WHERE id = $1")
                .bind(channel.as_uuid())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !deleted {
                return Ok(false);
            }
            sqlx::query("DELETE FROM conversations WHERE id = $1 AND kind = 'channel'")
                .bind(channel.as_uuid())
                .execute(&mut *tx)
                .await?;
            audit!(tx, guild, audit);
            tx.commit().await?;
            Ok(true)
        }

        async fn arrange_channels(
            &self,
            id: GuildId,
            layout: &[(ChannelId, Option<ChannelId>)],
            audit: &AuditEntry,
        ) -> Result<Result<(), ChannelRefusal>, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(Err(ChannelRefusal::NotFound));
            }
            let rows = sqlx::query("SELECT id, kind FROM guild_channels WHERE guild_id = $1")
                .bind(id.as_uuid())
                .fetch_all(&mut *tx)
                .await?;
            let mut kinds = std::collections::HashMap::with_capacity(rows.len());
            for row in &rows {
                kinds.insert(
                    ChannelId::from_uuid(row.try_get::<Uuid, _>("id")?),
                    GuildChannelKind::parse(&row.try_get::<String, _>("kind")?)?,
                );
            }
            let mut named: Vec<ChannelId> = layout.iter().map(|(c, _)| *c).collect();
            named.sort_unstable();
            named.dedup();
            if named.len() != layout.len() || named.len() != kinds.len() || !named.iter().all(|c| kinds.contains_key(c)) {
                return Ok(Err(ChannelRefusal::NotAPermutation));
            }
            for (channel, parent) in layout {
                let category = kinds.get(channel) == Some(&GuildChannelKind::Category);
                let parent_ok = match parent {
                    None => true,
                    Some(parent) => !category && kinds.get(parent) == Some(&GuildChannelKind::Category),
                };
                if !parent_ok {
                    return Ok(Err(ChannelRefusal::BadParent));
                }
            }
            // Positions count within each list of siblings (categories; each category's
            // channels; top-level channels).
            let mut next: std::collections::HashMap<(bool, Option<ChannelId>), i64> = std::collections::HashMap::new();
            for (channel, parent) in layout {
                let category = kinds.get(channel) == Some(&GuildChannelKind::Category);
                let slot = next.entry((category, *parent)).or_insert(0);
                sqlx::query("UPDATE guild_channels SET parent_id = $2, position = $3 WHERE id = $1")
                    .bind(channel.as_uuid())
                    .bind(parent.map(|p| p.as_uuid()))
                    .bind(*slot)
                    .execute(&mut *tx)
                    .await?;
                *slot += 1;
            }
            audit!(tx, id, audit);
            tx.commit().await?;
            Ok(Ok(()))
        }

        async fn set_overwrite(
            &self,
            channel: ChannelId,
            overwrite: &OverwriteRecord,
            audit: &AuditEntry,
        ) -> Result<bool, StoreError> {
            let Some(record) = self.guild_channel(channel).await? else { return Ok(false) };
            let guild = record.guild_id;
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, guild) {
                return Ok(false);
            }
            if let OverwriteTarget::Role(role) = overwrite.target {
                let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM guild_roles WHERE id = $1 AND guild_id = $2")
                    .bind(role.as_uuid())
                    .bind(guild.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
                if known != 1 {
                    return Ok(false);
                }
            }
            upsert_overwrite!(tx, channel, overwrite);
            audit!(tx, guild, audit);
            tx.commit().await?;
            Ok(true)
        }

        async fn remove_overwrite(
            &self,
            channel: ChannelId,
            target: OverwriteTarget,
            audit: &AuditEntry,
        ) -> Result<bool, StoreError> {
            let Some(record) = self.guild_channel(channel).await? else { return Ok(false) };
            let guild = record.guild_id;
            let (role, account) = match target {
                OverwriteTarget::Role(role) => (Some(role.as_uuid()), None),
                OverwriteTarget::Member(account) => (None, Some(account.as_uuid())),
            };
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, guild) {
                return Ok(false);
            }
            let removed = sqlx::query(
                "DELETE FROM guild_overwrites WHERE channel_id = $1 \
                 AND role_id IS NOT DISTINCT FROM $2 AND account_id IS NOT DISTINCT FROM $3",
            )
            .bind(channel.as_uuid())
            .bind(role)
            .bind(account)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if removed {
                audit!(tx, guild, audit);
                tx.commit().await?;
            }
            Ok(removed)
        }

        async fn create_invite(&self, invite: &NewInvite, audit: &AuditEntry) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, invite.guild_id) {
                return Ok(false);
            }
            let usable: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM guild_invites WHERE guild_id = $1 AND revoked_at_ms = 0 \
                 AND (expires_at_ms = 0 OR expires_at_ms > $2) AND (max_uses = 0 OR uses < max_uses)",
            )
            .bind(invite.guild_id.as_uuid())
            .bind(invite.created_at_ms)
            .fetch_one(&mut *tx)
            .await?;
            if usize::try_from(usable).unwrap_or(usize::MAX) >= MAX_GUILD_INVITES {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO guild_invites (id, guild_id, code_hash, code_hint, created_by, created_at_ms, \
                 expires_at_ms, max_uses) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(invite.id.as_uuid())
            .bind(invite.guild_id.as_uuid())
            .bind(&invite.code_hash[..])
            .bind(&invite.code_hint)
            .bind(invite.created_by.as_uuid())
            .bind(invite.created_at_ms)
            .bind(invite.expires_at_ms.max(0))
            .bind(invite.max_uses.max(0))
            .execute(&mut *tx)
            .await?;
            audit!(tx, invite.guild_id, audit);
            tx.commit().await?;
            Ok(true)
        }

        async fn invite_by_code(&self, code_hash: &[u8; 32]) -> Result<Option<InviteRecord>, StoreError> {
            let row = sqlx::query(&format!("SELECT {INVITE_COLUMNS} FROM guild_invites WHERE code_hash = $1"))
                .bind(&code_hash[..])
                .fetch_optional(&self.pool)
                .await?;
            row.map(|row| Ok(decode!(invite row))).transpose()
        }

        async fn guild_invites(&self, id: GuildId) -> Result<Vec<InviteRecord>, StoreError> {
            let rows = sqlx::query(&format!(
                "SELECT {INVITE_COLUMNS} FROM guild_invites WHERE guild_id = $1 ORDER BY id DESC"
            ))
            .bind(id.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(|row| Ok(decode!(invite row))).collect()
        }

        async fn revoke_invite(&self, id: GuildId, invite: InviteId, audit: &AuditEntry) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            if !lock_guild!(tx, id) {
                return Ok(false);
            }
            let revoked = sqlx::query(
                "UPDATE guild_invites SET revoked_at_ms = $3 WHERE id = $1 AND guild_id = $2 AND revoked_at_ms = 0",
            )
            .bind(invite.as_uuid())
            .bind(id.as_uuid())
            .bind(audit.at_ms.max(1))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if revoked {
                audit!(tx, id, audit);
                tx.commit().await?;
            }
            Ok(revoked)
        }

        async fn record_audit(&self, id: GuildId, audit: &AuditEntry) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            audit!(tx, id, audit);
            tx.commit().await?;
            Ok(())
        }

        async fn audit_log(
            &self,
            id: GuildId,
            before: Option<AuditId>,
            limit: u32,
        ) -> Result<Vec<AuditRecord>, StoreError> {
            let rows = sqlx::query(
                "SELECT id, actor_id, action, target_id, detail, at_ms FROM guild_audit_log \
                 WHERE guild_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
            )
            .bind(id.as_uuid())
            .bind(before.map(|b| b.as_uuid()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(AuditRecord {
                        id: AuditId::from_uuid(row.try_get::<Uuid, _>("id")?),
                        entry: AuditEntry {
                            actor: AccountId::from_uuid(row.try_get::<Uuid, _>("actor_id")?),
                            action: AuditAction::parse(&row.try_get::<String, _>("action")?)?,
                            target: row.try_get("target_id")?,
                            detail: row.try_get("detail")?,
                            at_ms: row.try_get("at_ms")?,
                        },
                    })
                })
                .collect()
        }

        async fn mark_channel_read(&self, channel: ChannelId, account: AccountId, seq: i64) -> Result<i64, StoreError> {
            let mark: Option<i64> = sqlx::query_scalar(
                "INSERT INTO guild_reads (channel_id, account_id, read_seq) \
                 SELECT c.id, $2, CASE WHEN $3 < 0 THEN 0 WHEN $3 > c.last_seq THEN c.last_seq ELSE $3 END FROM conversations c WHERE c.id = $1 AND c.kind = 'channel' \
                 ON CONFLICT (channel_id, account_id) DO UPDATE SET read_seq = \
                 CASE WHEN excluded.read_seq > guild_reads.read_seq THEN excluded.read_seq ELSE guild_reads.read_seq END \
                 RETURNING read_seq",
            )
            .bind(channel.as_uuid())
            .bind(account.as_uuid())
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
            Ok(mark.unwrap_or(0))
        }

        async fn channel_mentions(&self, id: GuildId, account: AccountId) -> Result<Vec<(ChannelId, i64)>, StoreError> {
            let rows = sqlx::query(
                "SELECT m.conversation_id, COUNT(*) AS n FROM message_mentions m \
                 JOIN conversations c ON c.id = m.conversation_id \
                 LEFT JOIN guild_reads r ON r.channel_id = m.conversation_id AND r.account_id = m.account_id \
                 WHERE c.guild_id = $1 AND m.account_id = $2 AND m.seq > COALESCE(r.read_seq, 0) \
                 GROUP BY m.conversation_id ORDER BY m.conversation_id",
            )
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| Ok((ChannelId::from_uuid(row.try_get::<Uuid, _>("conversation_id")?), row.try_get("n")?)))
                .collect()
        }

        async fn guild_messages_since(
            &self,
            id: GuildId,
            account: AccountId,
            since_ms: i64,
            limit: i64,
        ) -> Result<Vec<(ChannelId, crate::ids::MessageId)>, StoreError> {
            let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
                "SELECT m.conversation_id, m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                 WHERE c.guild_id = $1 AND m.sender_account_id = $2 AND m.sent_at_ms >= $3 \
                 AND m.deleted_at_ms = 0 AND m.system_kind IS NULL ORDER BY m.sent_at_ms, m.id LIMIT $4",
            )
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .bind(since_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(c, m)| (ChannelId::from_uuid(c), crate::ids::MessageId::from_uuid(m)))
                .collect())
        }

        async fn channel_reads(&self, id: GuildId, account: AccountId) -> Result<Vec<(ChannelId, i64)>, StoreError> {
            let rows = sqlx::query(
                "SELECT r.channel_id, r.read_seq FROM guild_reads r JOIN conversations c ON c.id = r.channel_id \
                 WHERE c.guild_id = $1 AND r.account_id = $2 \
                 UNION ALL SELECT m.conversation_id AS channel_id, m.read_seq FROM conversation_members m \
                 JOIN conversations c ON c.id = m.conversation_id WHERE c.guild_id = $1 AND m.account_id = $2 \
                 ORDER BY channel_id",
            )
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| Ok((ChannelId::from_uuid(row.try_get::<Uuid, _>("channel_id")?), row.try_get("read_seq")?)))
                .collect()
        }

        async fn sealed_channels(&self, id: GuildId, account: AccountId) -> Result<Vec<ChannelId>, StoreError> {
            let ids: Vec<Uuid> = sealed_channels!(&self.pool, id, account);
            Ok(ids.into_iter().map(ChannelId::from_uuid).collect())
        }
    }
}

/// Fills in the members' roles from `(account, role)` pairs.
fn with_roles(mut members: Vec<GuildMemberRecord>, pairs: &[(Uuid, Uuid)]) -> Vec<GuildMemberRecord> {
    for (account, role) in pairs {
        let account = AccountId::from_uuid(*account);
        if let Some(member) = members.iter_mut().find(|m| m.account_id == account) {
            member.roles.push(RoleId::from_uuid(*role));
        }
    }
    members
}

/// Fills in the channels' overwrites.
fn with_overwrites(
    mut channels: Vec<ChannelRecord>,
    rows: &[OverwriteRow],
) -> Result<Vec<ChannelRecord>, StoreError> {
    for (channel, role, account, allow, deny) in rows {
        let channel = ChannelId::from_uuid(*channel);
        let target = match (role, account) {
            (Some(role), None) => OverwriteTarget::Role(RoleId::from_uuid(*role)),
            (None, Some(account)) => OverwriteTarget::Member(AccountId::from_uuid(*account)),
            _ => return Err(StoreError::Corrupt("a guild overwrite for no one, or for two".into())),
        };
        let overwrite = OverwriteRecord { target, allow: unbits(*allow), deny: unbits(*deny) };
        if let Some(c) = channels.iter_mut().find(|c| c.id == channel) {
            c.overwrites.push(overwrite);
        }
    }
    for channel in &mut channels {
        channel.overwrites.sort_unstable_by_key(|o| o.target);
    }
    Ok(channels)
}

/// Puts channels in the order the channel list shows them: top-level channels, then each
/// category followed by its channels, each by position.
fn in_order(channels: Vec<ChannelRecord>) -> Vec<ChannelRecord> {
    let by_position = |list: &mut Vec<ChannelRecord>| list.sort_by_key(|c| (c.position, c.id));
    let (mut categories, rest): (Vec<_>, Vec<_>) =
        channels.into_iter().partition(|c| c.kind == GuildChannelKind::Category);
    by_position(&mut categories);
    let (mut top, mut nested): (Vec<_>, Vec<_>) = rest.into_iter().partition(|c| c.parent.is_none());
    by_position(&mut top);
    by_position(&mut nested);
    let mut ordered = top;
    for category in categories {
        let id = category.id;
        ordered.push(category);
        let (mine, others): (Vec<_>, Vec<_>) = nested.into_iter().partition(|c| c.parent == Some(id));
        ordered.extend(mine);
        nested = others;
    }
    ordered
}
