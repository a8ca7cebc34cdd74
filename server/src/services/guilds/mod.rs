//! Guilds: communities with channels in categories, roles, per-channel overwrites, invites,
//! bans, timeouts and an audit log (`GuildService`, docs/guilds.md). What a member may do is
//! computed once, in [`permissions`]; this module asks it before every change and every read.
//!
//! # Security
//! A guild the caller is not in is `GUILD_NOT_FOUND`, whether it exists or not, and a channel
//! they cannot see is `CHANNEL_NOT_FOUND`, so neither can be probed. Every change is checked
//! against the caller's permissions where it applies, and against the hierarchy: nobody grants
//! or takes away a permission they do not have, edits a role at or above their own highest, or
//! acts on a member at or above them (the owner is above everyone). Invite codes carry 128
//! random bits and are kept only as SHA-256 hashes; looking one up is rate-limited per account.
//! Every change of settings and every moderation is written to the audit log with the change.

pub mod permissions;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use uuid::Uuid;

use self::permissions::{self as rules, Permissions as P};
use super::delivery::Delivery;
use super::names::{free_text, guild_name};
use super::rate_limits::{Limit, RateLimiter};
use super::tokens::{fill_random, hash_token};
use super::{Caller, Error, ErrorReason};
use crate::bus::Notice;
use crate::events::GuildEvent;
use crate::ids::{AccountId, AuditId, ChannelId, GuildId, InviteId, RoleId};
use crate::store::{
    AuditAction, AuditEntry, AuditRecord, BanRecord, ChannelRecord, ChannelRefusal, GuildChannelKind,
    GuildJoin, GuildJoinRefusal, GuildMemberRecord, GuildRecord, GuildRoleRecord, InviteRecord, NewChannel,
    NewGuild, NewInvite, OverwriteRecord, OverwriteTarget, RoleRefusal, Store, now_ms,
};

/// The longest timeout (28 days, as Discord).
pub const MAX_TIMEOUT_S: u32 = 28 * 24 * 3600;
/// The most a ban deletes of what the banned sent (7 days, as Discord).
pub const MAX_BAN_DELETION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest slow mode (6 hours).
pub const MAX_SLOW_MODE_S: u32 = 6 * 3600;
/// The shortest invite lifetime (a minute) and the longest (30 days); 0 is "never expires".
pub const INVITE_LIFETIME_S: std::ops::RangeInclusive<u32> = 60..=30 * 24 * 3600;
/// The most joins one invite may admit (0 is "any number").
pub const MAX_INVITE_USES: u32 = 1_000;
/// Characters of a guild's description and a channel's topic.
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
/// Characters of a moderation reason.
pub const MAX_REASON_CHARS: usize = 512;
/// Members per page, by default and at most.
pub const MEMBER_PAGE: (u32, u32) = (100, 1_000);
/// Members of a private end-to-end encrypted channel, at most (each message's keys go to every
/// device of every member, as in an E2EE group; a smaller cap keeps that quick on a phone).
pub const MAX_CHANNEL_MEMBERS: u32 = 100;
/// Audit entries per page, by default and at most.
pub const AUDIT_PAGE: (u32, u32) = (50, 100);

/// Limits of the guild service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuildSettings {
    /// Guilds one account creates per period.
    pub creations: Limit,
    /// Invite lookups and joins per account and period.
    pub invite_lookups: Limit,
}

impl Default for GuildSettings {
    fn default() -> Self {
        Self {
            creations: Limit::new(10, Duration::from_secs(3600)),
            invite_lookups: Limit::new(30, Duration::from_secs(600)),
        }
    }
}

/// The guild service.
pub struct Guilds {
    pub(super) store: Arc<dyn Store>,
    /// The picture pipeline, for a deleted guild's icon.
    avatars: super::Avatars,
    pub(super) limiter: RateLimiter,
    pub(super) delivery: Delivery,
    /// Who is in the voice channels (and takes out those who lose the guild).
    voice: super::Voice,
    /// Its limits.
    pub settings: GuildSettings,
}

/// A guild as one of its members sees it, with what the rules need.
#[derive(Debug, Clone)]
pub struct GuildView {
    /// The guild.
    pub guild: GuildRecord,
    /// Every role, `@everyone` first, upwards.
    pub roles: Vec<GuildRoleRecord>,
    /// The caller's membership.
    pub me: GuildMemberRecord,
    /// The private end-to-end encrypted channels the caller is in.
    sealed: std::collections::HashSet<ChannelId>,
    everyone: rules::Role,
    others: Vec<rules::Role>,
}

/// A channel as the caller sees it.
#[derive(Debug, Clone)]
pub struct ChannelView {
    /// The channel.
    pub channel: ChannelRecord,
    /// What the caller may do in it.
    pub permissions: P,
    /// How far the caller has read.
    pub read_seq: i64,
    /// Messages after `read_seq` that mention the caller.
    pub mention_count: i64,
    /// Hidden from `@everyone` (an overwrite denies it VIEW_CHANNEL), told to every member who
    /// sees it even when its overwrites are not shown.
    pub private: bool,
    /// Whether the caller may see its overwrites (MANAGE_ROLES or MANAGE_CHANNELS there).
    pub show_overwrites: bool,
    /// A voice channel: who is in it now.
    pub voice: Vec<AccountId>,
}

/// A channel or category to make.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    /// What kind.
    pub kind: GuildChannelKind,
    /// Its name, as typed.
    pub name: String,
    /// Its topic, as typed.
    pub topic: String,
    /// Its category.
    pub parent: Option<ChannelId>,
    /// Hidden from `@everyone`, visible to its maker.
    pub private: bool,
    /// A private end-to-end encrypted text channel, its maker its first member.
    pub e2ee: bool,
}

/// Which members `ListMembers` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemberPage {
    /// After this account (in id order).
    pub after: Option<AccountId>,
    /// How many (0: the default).
    pub limit: u32,
    /// Only those online now.
    pub online_only: bool,
}

/// What `GetGuild` answers.
#[derive(Debug, Clone)]
pub struct GuildDetails {
    /// The guild and the caller's place in it.
    pub view: GuildView,
    /// The channels the caller can see, in order.
    pub channels: Vec<ChannelView>,
    /// What the caller may do in the guild as a whole.
    pub permissions: P,
}

fn guild_not_found() -> Error {
    Error::not_found(ErrorReason::GuildNotFound, "no such guild")
}

pub(crate) fn channel_not_found() -> Error {
    Error::not_found(ErrorReason::ChannelNotFound, "no such channel")
}

fn role_not_found() -> Error {
    Error::not_found(ErrorReason::RoleNotFound, "no such role in this guild")
}

fn member_not_found() -> Error {
    Error::not_found(ErrorReason::MemberNotFound, "no such member of this guild")
}

fn not_allowed(what: &str) -> Error {
    Error::Forbidden {
        reason: ErrorReason::NotAllowed,
        message: format!("your roles do not allow you to {what}"),
    }
}

fn permission_bits(bits: u64, field: &'static str) -> Result<P, Error> {
    P::from_bits(bits).ok_or_else(|| {
        Error::invalid(ErrorReason::PermissionsInvalid, field, "a permission bit this server does not know")
    })
}

fn rule_role(r: &GuildRoleRecord) -> rules::Role {
    rules::Role { id: r.id, position: r.position, permissions: P::from_bits_truncate(r.permissions) }
}

fn rule_member(m: &GuildMemberRecord) -> rules::Member<'_> {
    rules::Member { account: m.account_id, roles: &m.roles, timed_out_until_ms: m.timed_out_until_ms }
}

/// The rules' form of a channel's overwrites.
fn rule_overwrites(channel: &ChannelRecord) -> Vec<rules::Overwrite> {
    channel
        .overwrites
        .iter()
        .map(|o| rules::Overwrite {
            target: match o.target {
                OverwriteTarget::Role(role) => rules::Target::Role(role),
                OverwriteTarget::Member(account) => rules::Target::Member(account),
            },
            allow: P::from_bits_truncate(o.allow),
            deny: P::from_bits_truncate(o.deny),
        })
        .collect()
}

impl GuildView {
    fn new(
        guild: GuildRecord,
        roles: Vec<GuildRoleRecord>,
        me: GuildMemberRecord,
        sealed: Vec<ChannelId>,
    ) -> Result<Self, Error> {
        let everyone = roles
            .iter()
            .find(|r| r.id == guild.id.everyone())
            .map(rule_role)
            .ok_or_else(|| Error::Internal(format!("guild {} has no @everyone role", guild.id)))?;
        let others = roles.iter().filter(|r| r.id != guild.id.everyone()).map(rule_role).collect();
        Ok(Self { guild, roles, me, sealed: sealed.into_iter().collect(), everyone, others })
    }

    fn rules(&self) -> rules::Guild<'_> {
        rules::Guild { owner: self.guild.owner, everyone: &self.everyone, roles: &self.others }
    }

    /// What the caller may do in the guild as a whole.
    pub fn in_guild(&self, now: i64) -> P {
        rules::in_guild(&self.rules(), &rule_member(&self.me), now)
    }

    /// What the caller may do in `channel`.
    pub fn in_channel(&self, channel: &ChannelRecord, now: i64) -> P {
        let overwrites = rule_overwrites(channel);
        let kind = match channel.kind {
            GuildChannelKind::Voice => rules::ChannelKind::Voice,
            _ => rules::ChannelKind::Text,
        };
        let sight = match (channel.e2ee, self.sealed.contains(&channel.id)) {
            (false, _) => rules::Sight::Roles,
            (true, true) => rules::Sight::Member,
            (true, false) => rules::Sight::Outsider,
        };
        rules::in_channel(
            &self.rules(),
            &rule_member(&self.me),
            &rules::Channel { kind, overwrites: &overwrites, sight },
            now,
        )
    }

    fn require(&self, needed: P, what: &str, now: i64) -> Result<P, Error> {
        let has = self.in_guild(now);
        if has.contains(needed) { Ok(has) } else { Err(not_allowed(what)) }
    }

    fn role(&self, id: RoleId) -> Result<&GuildRoleRecord, Error> {
        self.roles.iter().find(|r| r.id == id).ok_or_else(role_not_found)
    }

    /// The position of the caller's highest role (the owner: above every role).
    fn my_top(&self) -> u32 {
        self.rules().top_position(&rule_member(&self.me))
    }

    fn top_of(&self, member: &GuildMemberRecord) -> u32 {
        self.rules().top_position(&rule_member(member))
    }

    fn is_owner(&self) -> bool {
        self.me.account_id == self.guild.owner
    }
}

/// What an account may do in a channel it can see.
#[derive(Debug, Clone)]
pub struct ChannelAccess {
    /// The channel.
    pub channel: ChannelRecord,
    /// What the account may do in it now.
    pub permissions: P,
}

/// What `account` may do in channel `id`; `None` when it cannot see it (not a member of its
/// guild, no VIEW_CHANNEL there, or no such channel): callers answer that like "no such
/// conversation".
pub(in crate::services) async fn channel_access(
    store: &dyn Store,
    account: AccountId,
    id: ChannelId,
) -> Result<Option<ChannelAccess>, Error> {
    let Some(channel) = store.guild_channel(id).await? else { return Ok(None) };
    let Some(view) = member_view_with(store, channel.guild_id, account, channel.e2ee).await? else {
        return Ok(None);
    };
    let permissions = view.in_channel(&channel, now_ms());
    Ok(permissions.contains(P::VIEW_CHANNEL).then_some(ChannelAccess { channel, permissions }))
}

/// The cloud channels of guild `id` that `account` can see, with what it may do in each (empty
/// when it is not a member): those its sessions follow. Private E2EE channels are left out:
/// their members' devices follow them as a group's, by their member rows.
pub(in crate::services) async fn visible_channels(
    store: &dyn Store,
    account: AccountId,
    id: GuildId,
) -> Result<Vec<ChannelAccess>, Error> {
    let Some(view) = member_view_with(store, id, account, false).await? else { return Ok(Vec::new()) };
    let now = now_ms();
    Ok(store
        .guild_channels(id)
        .await?
        .into_iter()
        .filter(|c| c.kind != GuildChannelKind::Category && !c.e2ee)
        .filter_map(|channel| {
            let permissions = view.in_channel(&channel, now);
            permissions.contains(P::VIEW_CHANNEL).then_some(ChannelAccess { channel, permissions })
        })
        .collect())
}

/// What `account` may do in guild `id` as a whole; `None` when it is not a member.
pub(in crate::services) async fn guild_permissions(
    store: &dyn Store,
    account: AccountId,
    id: GuildId,
) -> Result<Option<P>, Error> {
    Ok(member_view(store, id, account).await?.map(|view| view.in_guild(now_ms())))
}

/// Every member of guild `id`.
async fn member_ids(store: &dyn Store, id: GuildId) -> Result<Vec<AccountId>, Error> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.guild_members(id, after, MEMBER_PAGE.1).await?;
        let full = page.len() == MEMBER_PAGE.1 as usize;
        all.extend(page.iter().map(|m| m.account_id));
        after = all.last().copied();
        if !full {
            return Ok(all);
        }
    }
}

/// Sends `event` to the apps of `accounts` (none: nothing is sent).
async fn tell(delivery: &Delivery, event: GuildEvent, accounts: Vec<AccountId>) {
    if !accounts.is_empty() {
        delivery.publish(Notice::Guild { event: Arc::new(event), accounts }).await;
    }
}

/// A guild event that names no channels to follow.
fn guild_event(guild: GuildId, removed: bool, members_only: bool) -> GuildEvent {
    GuildEvent { guild, removed, members_only, follow: Vec::new() }
}

/// Tells the apps of `accounts` that what they may see of guild `id` changed (they were let
/// into a private E2EE channel or taken out of one), so they read it again.
pub(in crate::services) async fn tell_channel_change(
    delivery: &Delivery,
    id: GuildId,
    accounts: Vec<AccountId>,
) {
    tell(delivery, guild_event(id, false, false), accounts).await;
}

/// Whether `actor` stands above `target` in guild `id`: its owner, or with a highest role
/// above theirs (the order moderation follows). `false` when `actor` is not a member; `true`
/// when `target` is not (nothing of theirs to protect there).
pub(in crate::services) async fn outranks(
    store: &dyn Store,
    id: GuildId,
    actor: AccountId,
    target: AccountId,
) -> Result<bool, Error> {
    let Some(view) = member_view_with(store, id, actor, false).await? else { return Ok(false) };
    let Some(target) = store.guild_member(id, target).await? else { return Ok(true) };
    Ok(view.top_of(&target) < view.my_top())
}

/// Tells the apps of guild `id`'s members that its details changed (not who may see what).
pub(in crate::services) async fn tell_members(
    store: &dyn Store,
    delivery: &Delivery,
    id: GuildId,
) -> Result<(), Error> {
    tell(delivery, guild_event(id, false, true), member_ids(store, id).await?).await;
    Ok(())
}

/// Guild `id` as `account` sees it, or `None` when it is not a member.
async fn member_view(store: &dyn Store, id: GuildId, account: AccountId) -> Result<Option<GuildView>, Error> {
    member_view_with(store, id, account, true).await
}

/// [`member_view`]; without `sealed`, leaving out which private E2EE channels `account` is in
/// (one read less on the path of every cloud channel message, which does not need it).
async fn member_view_with(
    store: &dyn Store,
    id: GuildId,
    account: AccountId,
    sealed: bool,
) -> Result<Option<GuildView>, Error> {
    let Some(me) = store.guild_member(id, account).await? else { return Ok(None) };
    let Some(guild) = store.guild(id).await? else { return Ok(None) };
    let roles = store.guild_roles(id).await?;
    let sealed = if sealed { store.sealed_channels(id, account).await? } else { Vec::new() };
    GuildView::new(guild, roles, me, sealed).map(Some)
}

/// Whether changing `old` into `new` touches only permissions in `has`: nobody gives or takes
/// away a permission they do not have.
fn only_changes_within(has: P, old: P, new: P) -> bool {
    let changed = P::from_bits_truncate(old.bits() ^ new.bits());
    rules::can_grant(has, changed)
}

/// Whether an overwrite hides the channel from `@everyone`.
fn is_private(channel: &ChannelRecord) -> bool {
    let everyone = OverwriteTarget::Role(channel.guild_id.everyone());
    channel.overwrites.iter().any(|o| o.target == everyone && o.deny & P::VIEW_CHANNEL.bits() != 0)
}

fn audit(
    caller: &Caller,
    action: AuditAction,
    target: Option<Uuid>,
    detail: impl Into<String>,
) -> AuditEntry {
    AuditEntry { actor: caller.account_id, action, target, detail: detail.into(), at_ms: now_ms() }
}

fn channel_refusal(refusal: ChannelRefusal) -> Error {
    match refusal {
        ChannelRefusal::NotFound => channel_not_found(),
        ChannelRefusal::BadParent => Error::invalid(
            ErrorReason::ChannelParentInvalid,
            "parent_id",
            "a channel's category must be a category of this guild, and a category has none",
        ),
        ChannelRefusal::TooMany => Error::limit(
            ErrorReason::TooManyChannels,
            format!("a guild has at most {} channels and categories", crate::store::MAX_GUILD_CHANNELS),
        ),
        ChannelRefusal::NotAPermutation => Error::invalid(
            ErrorReason::LayoutInvalid,
            "layout",
            "name every channel and category of the guild exactly once",
        ),
    }
}

fn role_refusal(refusal: RoleRefusal) -> Error {
    match refusal {
        RoleRefusal::NotFound => role_not_found(),
        RoleRefusal::NotMember => member_not_found(),
        RoleRefusal::TooMany => Error::limit(
            ErrorReason::TooManyRoles,
            format!("a guild has at most {} roles", crate::store::MAX_GUILD_ROLES),
        ),
        RoleRefusal::NotAPermutation => Error::invalid(
            ErrorReason::LayoutInvalid,
            "role_ids",
            "name every role but @everyone exactly once",
        ),
    }
}

/// A new invite code: 128 random bits, base64url (22 characters).
fn new_invite_code() -> String {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The hash an invite code is kept and looked up by; `None` for text that cannot be a code
/// (then no lookup is made at all).
fn invite_hash(code: &str) -> Option<[u8; 32]> {
    let code = code.trim();
    let plausible =
        code.len() == 22 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then(|| hash_token(code))
}

fn invite_refusal(refusal: GuildJoinRefusal) -> Error {
    match refusal {
        GuildJoinRefusal::UnknownInvite => {
            Error::not_found(ErrorReason::InviteNotFound, "this invite does not exist or was revoked")
        }
        GuildJoinRefusal::Expired => {
            Error::precondition(ErrorReason::InviteExpired, "this invite has expired")
        }
        GuildJoinRefusal::UsedUp => {
            Error::precondition(ErrorReason::InviteUsedUp, "this invite has been used as often as it may")
        }
        GuildJoinRefusal::Banned => Error::Forbidden {
            reason: ErrorReason::Banned,
            message: "you are banned from this guild".to_owned(),
        },
    }
}

impl Guilds {
    /// A guild service over `store`, telling devices of changes through `delivery`.
    pub fn new(
        store: Arc<dyn Store>,
        delivery: Delivery,
        avatars: super::Avatars,
        voice: super::Voice,
        settings: GuildSettings,
    ) -> Self {
        Self { limiter: RateLimiter::new(store.clone()), store, avatars, delivery, voice, settings }
    }

    /// Tells the devices of `removed` that they are no longer in the guild, and those of its
    /// members that it changed (live only: a device that was away reads it again). `access`:
    /// what members may see may have changed (roles, channels, overwrites), so their sessions
    /// work out again which channels they follow; without it only the guild's details or who
    /// is in it changed.
    async fn announce(&self, id: GuildId, removed: &[AccountId], access: bool) -> Result<(), Error> {
        if access {
            // Someone who may no longer connect (or see) leaves its voice channels now.
            self.voice.recheck(id).await;
        }
        tell(&self.delivery, guild_event(id, true, false), removed.to_vec()).await;
        let members = member_ids(&*self.store, id).await?;
        tell(&self.delivery, guild_event(id, false, !access), members).await;
        Ok(())
    }

    /// Wakes the members of the private E2EE channels `account` was taken out of with its
    /// place in the guild, and its own apps, so they hear it at once (the members' apps then
    /// rotate those channels' keys).
    async fn wake_sealed(&self, channels: Vec<ChannelId>, account: AccountId) -> Result<(), Error> {
        for channel in channels {
            let id = channel.conversation();
            super::conversations::announce_members(&*self.store, &self.delivery, id, Some(account)).await?;
        }
        Ok(())
    }

    /// The guild as the caller sees it, or `GUILD_NOT_FOUND` if they are not a member.
    pub async fn view(&self, caller: &Caller, id: GuildId) -> Result<GuildView, Error> {
        member_view(&*self.store, id, caller.account_id).await?.ok_or_else(guild_not_found)
    }

    /// A channel the caller can see, with their guild, or `CHANNEL_NOT_FOUND`.
    async fn channel(&self, caller: &Caller, id: ChannelId) -> Result<(GuildView, ChannelRecord, P), Error> {
        let channel = self.store.guild_channel(id).await?.ok_or_else(channel_not_found)?;
        let view = match self.view(caller, channel.guild_id).await {
            Err(Error::NotFound { .. }) => return Err(channel_not_found()),
            other => other?,
        };
        let has = view.in_channel(&channel, now_ms());
        if !has.contains(P::VIEW_CHANNEL) {
            return Err(channel_not_found());
        }
        Ok((view, channel, has))
    }

    /// Makes a guild owned by the caller, with the channels a guild starts with.
    pub async fn create(&self, caller: &Caller, name: &str, description: &str) -> Result<GuildRecord, Error> {
        let name = guild_name(name, "name", "guild name")?;
        let description = free_text(description, MAX_DESCRIPTION_CHARS, "description", "description")?;
        self.limiter.take(&self.settings.creations, &format!("guild-create:{}", caller.account_id)).await?;
        let id = GuildId::generate();
        let now = now_ms();
        let channel = |kind, parent, name: &str| NewChannel {
            id: ChannelId::generate(),
            guild_id: id,
            kind,
            e2ee: false,
            parent,
            name: name.to_owned(),
            topic: String::new(),
            overwrites: Vec::new(),
            created_by: caller.account_id,
            created_at_ms: now,
        };
        let text = channel(GuildChannelKind::Category, None, "Text channels");
        let general = channel(GuildChannelKind::Text, Some(text.id), "general");
        let voice = channel(GuildChannelKind::Category, None, "Voice channels");
        let lobby = channel(GuildChannelKind::Voice, Some(voice.id), "Lobby");
        let new = NewGuild {
            id,
            name,
            description,
            owner: caller.account_id,
            everyone_permissions: P::EVERYONE_DEFAULT.bits(),
            created_at_ms: now,
        };
        self.store.create_guild(&new, &[text, general, voice, lobby]).await?;
        tracing::info!(guild = %id, owner = %caller.account_id, "guild created");
        self.store.guild(id).await?.ok_or_else(guild_not_found)
    }

    /// The caller's guilds.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<GuildRecord>, Error> {
        Ok(self.store.guilds_of(caller.account_id).await?)
    }

    /// The guild with the channels the caller can see.
    pub async fn details(&self, caller: &Caller, id: GuildId) -> Result<GuildDetails, Error> {
        let view = self.view(caller, id).await?;
        let now = now_ms();
        let reads: std::collections::HashMap<ChannelId, i64> =
            self.store.channel_reads(id, caller.account_id).await?.into_iter().collect();
        let mentions: std::collections::HashMap<ChannelId, i64> =
            self.store.channel_mentions(id, caller.account_id).await?.into_iter().collect();
        // The store lists channels in the list's order; keep that order and the visible ones.
        let all = self.store.guild_channels(id).await?;
        let shown = shown(&view, &all, now);
        // Who is in its voice channels: one look at the rooms for the whole guild.
        let mut occupants = self.voice.occupants(id).await;
        let mut channels: Vec<ChannelView> = Vec::with_capacity(all.len());
        for (channel, permissions) in all.into_iter().zip(shown) {
            let Some(permissions) = permissions else { continue };
            let show_overwrites =
                permissions.contains(P::MANAGE_ROLES) || permissions.contains(P::MANAGE_CHANNELS);
            let private = is_private(&channel);
            let mut channel = channel;
            if !show_overwrites {
                channel.overwrites.clear();
            }
            let voice = if channel.kind == GuildChannelKind::Voice && permissions.contains(P::VIEW_CHANNEL) {
                occupants.remove(&channel.id.conversation()).unwrap_or_default()
            } else {
                Vec::new()
            };
            channels.push(ChannelView {
                read_seq: reads.get(&channel.id).copied().unwrap_or(0),
                mention_count: mentions.get(&channel.id).copied().unwrap_or(0),
                private,
                channel,
                permissions,
                show_overwrites,
                voice,
            });
        }
        let permissions = view.in_guild(now);
        Ok(GuildDetails { view, channels, permissions })
    }

    /// Renames the guild and changes its description (MANAGE_GUILD).
    pub async fn update(
        &self,
        caller: &Caller,
        id: GuildId,
        name: &str,
        description: &str,
    ) -> Result<GuildRecord, Error> {
        let name = guild_name(name, "name", "guild name")?;
        let description = free_text(description, MAX_DESCRIPTION_CHARS, "description", "description")?;
        let view = self.view(caller, id).await?;
        view.require(P::MANAGE_GUILD, "change this guild", now_ms())?;
        let detail = if view.guild.name == name {
            "description changed".to_owned()
        } else {
            format!("{} → {name}", view.guild.name)
        };
        let entry = audit(caller, AuditAction::GuildUpdated, None, detail);
        if !self.store.update_guild(id, &name, &description, &entry).await? {
            return Err(guild_not_found());
        }
        self.announce(id, &[], false).await?;
        self.store.guild(id).await?.ok_or_else(guild_not_found)
    }

    /// Deletes the guild (its owner, who typed its name).
    pub async fn delete(&self, caller: &Caller, id: GuildId, confirm_name: &str) -> Result<(), Error> {
        let view = self.view(caller, id).await?;
        if !view.is_owner() {
            return Err(not_allowed("delete this guild (only its owner can)"));
        }
        if confirm_name != view.guild.name {
            return Err(Error::invalid(
                ErrorReason::ConfirmationMismatch,
                "confirm_name",
                "type the guild's name exactly to delete it",
            ));
        }
        let members = member_ids(&*self.store, id).await?;
        self.store.delete_guild(id).await?;
        self.voice.evict(id, None, None).await;
        self.avatars.forget_guild_icon(view.guild.icon_id).await;
        tracing::info!(guild = %id, owner = %caller.account_id, "guild deleted");
        self.announce(id, &members, false).await?;
        Ok(())
    }

    /// The caller leaves (not the owner).
    pub async fn leave(&self, caller: &Caller, id: GuildId) -> Result<(), Error> {
        let view = self.view(caller, id).await?;
        if view.is_owner() {
            return Err(Error::precondition(
                ErrorReason::OwnerCannotLeave,
                "make someone else the owner before you leave",
            ));
        }
        let sealed = self.store.sealed_channels(id, caller.account_id).await?;
        if self.store.leave_guild(id, caller.account_id).await? {
            self.announce(id, &[caller.account_id], false).await?;
            self.wake_sealed(sealed, caller.account_id).await?;
            self.voice.evict(id, Some(caller.account_id), None).await;
        }
        Ok(())
    }

    /// Makes `to` the owner (the owner only).
    pub async fn transfer(&self, caller: &Caller, id: GuildId, to: AccountId) -> Result<(), Error> {
        let view = self.view(caller, id).await?;
        if !view.is_owner() {
            return Err(not_allowed("transfer this guild (only its owner can)"));
        }
        if to == caller.account_id {
            return Ok(());
        }
        let entry = audit(caller, AuditAction::OwnershipTransferred, Some(to.as_uuid()), "");
        if !self.store.transfer_guild(id, to, &entry).await? {
            return Err(member_not_found());
        }
        self.announce(id, &[], true).await
    }

    /// Makes a channel or category (MANAGE_CHANNELS, and MANAGE_CHANNELS in its category).
    /// A private channel denies `@everyone` VIEW_CHANNEL and gives it to its maker; an
    /// announcement channel denies `@everyone` SEND_MESSAGES.
    pub async fn create_channel(
        &self,
        caller: &Caller,
        id: GuildId,
        spec: ChannelSpec,
    ) -> Result<ChannelView, Error> {
        let ChannelSpec { kind, name, topic, parent, private, e2ee } = spec;
        if e2ee && kind != GuildChannelKind::Text {
            return Err(Error::invalid(
                ErrorReason::ChannelKindInvalid,
                "e2ee",
                "only a text channel can be end-to-end encrypted",
            ));
        }
        // Only its members see an E2EE channel; the overwrites say so to everyone else too.
        let private = private || e2ee;
        let name = guild_name(&name, "name", "channel name")?;
        let topic = free_text(&topic, MAX_DESCRIPTION_CHARS, "topic", "topic")?;
        let view = self.view(caller, id).await?;
        let now = now_ms();
        view.require(P::MANAGE_CHANNELS, "manage channels", now)?;
        if let Some(parent) = parent {
            let category = self.store.guild_channel(parent).await?.filter(|c| c.guild_id == id);
            if let Some(category) = category
                && !view.in_channel(&category, now).contains(P::MANAGE_CHANNELS)
            {
                return Err(not_allowed("manage channels in that category"));
            }
        }
        let everyone = OverwriteTarget::Role(id.everyone());
        let mut overwrites = Vec::new();
        if private {
            overwrites.push(OverwriteRecord { target: everyone, allow: 0, deny: P::VIEW_CHANNEL.bits() });
            overwrites.push(OverwriteRecord {
                target: OverwriteTarget::Member(caller.account_id),
                allow: P::VIEW_CHANNEL.bits(),
                deny: 0,
            });
        }
        if kind == GuildChannelKind::Announcement {
            match overwrites.iter_mut().find(|o| o.target == everyone) {
                Some(o) => o.deny |= P::SEND_MESSAGES.bits(),
                None => overwrites.push(OverwriteRecord {
                    target: everyone,
                    allow: 0,
                    deny: P::SEND_MESSAGES.bits(),
                }),
            }
        }
        let new = NewChannel {
            id: ChannelId::generate(),
            guild_id: id,
            kind,
            e2ee,
            parent,
            name: name.clone(),
            topic,
            overwrites,
            created_by: caller.account_id,
            created_at_ms: now,
        };
        let entry = audit(caller, AuditAction::ChannelCreated, Some(new.id.as_uuid()), name);
        self.store.create_channel(&new, &entry).await?.map_err(channel_refusal)?;
        self.announce(id, &[], true).await?;
        if e2ee {
            // Its maker's apps follow it as a group's member: wake them to hear of it.
            super::conversations::announce_members(&*self.store, &self.delivery, new.id.conversation(), None)
                .await?;
            tracing::info!(guild = %id, channel = %new.id, by = %caller.account_id, "private E2EE channel created");
        }
        let channel = self.store.guild_channel(new.id).await?.ok_or_else(channel_not_found)?;
        let view = self.view(caller, id).await?;
        Ok(managed(&view, channel))
    }

    /// Changes a channel's name, topic and slow mode (MANAGE_CHANNELS in it).
    pub async fn update_channel(
        &self,
        caller: &Caller,
        id: ChannelId,
        name: &str,
        topic: &str,
        slow_mode_s: u32,
    ) -> Result<ChannelView, Error> {
        let name = guild_name(name, "name", "channel name")?;
        let topic = free_text(topic, MAX_DESCRIPTION_CHARS, "topic", "topic")?;
        if slow_mode_s > MAX_SLOW_MODE_S {
            return Err(Error::invalid(
                ErrorReason::DurationInvalid,
                "slow_mode_s",
                format!("slow mode is 0 to {MAX_SLOW_MODE_S} seconds"),
            ));
        }
        let (view, channel, has) = self.channel(caller, id).await?;
        if !has.contains(P::MANAGE_CHANNELS) {
            return Err(not_allowed("manage this channel"));
        }
        let detail = if channel.name == name { name.clone() } else { format!("{} → {name}", channel.name) };
        let entry = audit(caller, AuditAction::ChannelUpdated, Some(id.as_uuid()), detail);
        if !self.store.update_channel(id, &name, &topic, i64::from(slow_mode_s), &entry).await? {
            return Err(channel_not_found());
        }
        self.announce(channel.guild_id, &[], false).await?;
        let channel = self.store.guild_channel(id).await?.ok_or_else(channel_not_found)?;
        Ok(managed(&view, channel))
    }

    /// Deletes a channel or category (MANAGE_CHANNELS in it).
    pub async fn delete_channel(&self, caller: &Caller, id: ChannelId) -> Result<(), Error> {
        let (_, channel, has) = self.channel(caller, id).await?;
        if !has.contains(P::MANAGE_CHANNELS) {
            return Err(not_allowed("manage this channel"));
        }
        let entry = audit(caller, AuditAction::ChannelDeleted, Some(id.as_uuid()), channel.name);
        if !self.store.delete_channel(id, &entry).await? {
            return Err(channel_not_found());
        }
        self.voice.evict(channel.guild_id, None, Some(id.conversation())).await;
        self.announce(channel.guild_id, &[], true).await
    }

    /// Puts the guild's channels in the order and categories of `layout` (MANAGE_CHANNELS): the
    /// channels and categories the caller sees, each once; those they cannot see keep their
    /// category and stay after what preceded them (see [`with_hidden`]).
    pub async fn arrange_channels(
        &self,
        caller: &Caller,
        id: GuildId,
        layout: &[(ChannelId, Option<ChannelId>)],
    ) -> Result<(), Error> {
        let view = self.view(caller, id).await?;
        let now = now_ms();
        view.require(P::MANAGE_CHANNELS, "manage channels", now)?;
        let all = self.store.guild_channels(id).await?;
        let shown = shown(&view, &all, now);
        let hidden: Vec<&ChannelRecord> =
            all.iter().zip(&shown).filter(|(_, shown)| shown.is_none()).map(|(c, _)| c).collect();
        let layout = with_hidden(&all, &hidden, layout).map_err(channel_refusal)?;
        let entry = audit(caller, AuditAction::ChannelsArranged, None, "");
        self.store.arrange_channels(id, &layout, &entry).await?.map_err(channel_refusal)?;
        self.announce(id, &[], false).await
    }

    /// Whether the caller may set or remove an overwrite for `target` in `channel`, where they
    /// have `has`.
    fn check_overwrite_target(view: &GuildView, has: P, target: OverwriteTarget) -> Result<(), Error> {
        if !has.contains(P::MANAGE_ROLES) || !has.contains(P::MANAGE_CHANNELS) {
            return Err(not_allowed("change this channel's permissions"));
        }
        if let OverwriteTarget::Role(role) = target {
            let role = view.role(role)?;
            if role.position >= view.my_top() {
                return Err(not_allowed("change permissions for a role at or above your highest"));
            }
        }
        Ok(())
    }

    /// Sets a channel's overwrite (MANAGE_ROLES and MANAGE_CHANNELS in it; only permissions
    /// the caller has there).
    pub async fn set_overwrite(
        &self,
        caller: &Caller,
        id: ChannelId,
        overwrite: OverwriteRecord,
    ) -> Result<(), Error> {
        let allow = permission_bits(overwrite.allow, "overwrite.allow")?;
        let deny = permission_bits(overwrite.deny, "overwrite.deny")?;
        let (view, channel, has) = self.channel(caller, id).await?;
        Self::check_overwrite_target(&view, has, overwrite.target)?;
        if let OverwriteTarget::Member(account) = overwrite.target
            && self.store.guild_member(view.guild.id, account).await?.is_none()
        {
            return Err(member_not_found());
        }
        let old = channel.overwrites.iter().find(|o| o.target == overwrite.target);
        let (old_allow, old_deny) = old
            .map_or((P::NONE, P::NONE), |o| (P::from_bits_truncate(o.allow), P::from_bits_truncate(o.deny)));
        if !only_changes_within(has, old_allow, allow) || !only_changes_within(has, old_deny, deny) {
            return Err(not_allowed("give or take a permission you do not have here"));
        }
        let entry = audit(
            caller,
            AuditAction::OverwriteSet,
            Some(id.as_uuid()),
            overwrite_detail(&view, overwrite.target),
        );
        let record = OverwriteRecord { allow: allow.bits(), deny: deny.bits(), ..overwrite };
        if !self.store.set_overwrite(id, &record, &entry).await? {
            return Err(role_not_found());
        }
        self.announce(view.guild.id, &[], true).await
    }

    /// Removes a channel's overwrite (as [`Guilds::set_overwrite`]).
    pub async fn remove_overwrite(
        &self,
        caller: &Caller,
        id: ChannelId,
        target: OverwriteTarget,
    ) -> Result<(), Error> {
        let (view, channel, has) = self.channel(caller, id).await?;
        Self::check_overwrite_target(&view, has, target)?;
        let Some(old) = channel.overwrites.iter().find(|o| o.target == target) else { return Ok(()) };
        let (allow, deny) = (P::from_bits_truncate(old.allow), P::from_bits_truncate(old.deny));
        if !only_changes_within(has, allow, P::NONE) || !only_changes_within(has, deny, P::NONE) {
            return Err(not_allowed("give or take a permission you do not have here"));
        }
        let entry =
            audit(caller, AuditAction::OverwriteRemoved, Some(id.as_uuid()), overwrite_detail(&view, target));
        if self.store.remove_overwrite(id, target, &entry).await? {
            self.announce(view.guild.id, &[], true).await?;
        }
        Ok(())
    }

    /// Makes a role just above `@everyone` (MANAGE_ROLES; only permissions the caller has).
    pub async fn create_role(
        &self,
        caller: &Caller,
        id: GuildId,
        name: &str,
        color: u32,
        permissions: u64,
    ) -> Result<GuildRoleRecord, Error> {
        let name = guild_name(name, "name", "role name")?;
        let wanted = permission_bits(permissions, "permissions")?;
        let color = color & 0x00ff_ffff;
        let view = self.view(caller, id).await?;
        let has = view.require(P::MANAGE_ROLES, "manage roles", now_ms())?;
        if !rules::can_grant(has, wanted) {
            return Err(not_allowed("give a permission you do not have"));
        }
        let role = RoleId::generate();
        let entry = audit(caller, AuditAction::RoleCreated, Some(role.as_uuid()), name.clone());
        self.store.create_role(id, role, &name, color, wanted.bits(), &entry).await?.map_err(role_refusal)?;
        self.announce(id, &[], false).await?;
        self.store.guild_roles(id).await?.into_iter().find(|r| r.id == role).ok_or_else(role_not_found)
    }

    /// Changes a role below the caller's highest (MANAGE_ROLES; only permissions the caller
    /// has).
    pub async fn update_role(
        &self,
        caller: &Caller,
        id: GuildId,
        role: RoleId,
        name: &str,
        color: u32,
        permissions: u64,
    ) -> Result<(), Error> {
        let wanted = permission_bits(permissions, "permissions")?;
        let view = self.view(caller, id).await?;
        let record = view.role(role)?.clone();
        let name =
            if role == id.everyone() { record.name.clone() } else { guild_name(name, "name", "role name")? };
        let now = now_ms();
        let has = view.in_guild(now);
        if !rules::can_edit_role(&view.rules(), &rule_member(&view.me), &rule_role(&record), now) {
            return Err(not_allowed(
                "edit this role (it is at or above your highest, or you cannot manage roles)",
            ));
        }
        if !only_changes_within(has, P::from_bits_truncate(record.permissions), wanted) {
            return Err(not_allowed("give or take a permission you do not have"));
        }
        let detail = if record.name == name { name.clone() } else { format!("{} → {name}", record.name) };
        let entry = audit(caller, AuditAction::RoleUpdated, Some(role.as_uuid()), detail);
        if !self.store.update_role(id, role, &name, color & 0x00ff_ffff, wanted.bits(), &entry).await? {
            return Err(role_not_found());
        }
        self.announce(id, &[], true).await
    }

    /// Deletes a role below the caller's highest (MANAGE_ROLES).
    pub async fn delete_role(&self, caller: &Caller, id: GuildId, role: RoleId) -> Result<(), Error> {
        if role == id.everyone() {
            return Err(role_not_found());
        }
        let view = self.view(caller, id).await?;
        let record = view.role(role)?.clone();
        if !rules::can_edit_role(&view.rules(), &rule_member(&view.me), &rule_role(&record), now_ms()) {
            return Err(not_allowed(
                "delete this role (it is at or above your highest, or you cannot manage roles)",
            ));
        }
        let entry = audit(caller, AuditAction::RoleDeleted, Some(role.as_uuid()), record.name);
        if !self.store.delete_role(id, role, &entry).await? {
            return Err(role_not_found());
        }
        self.announce(id, &[], true).await
    }

    /// Puts the roles in this order, lowest first (MANAGE_ROLES); roles at or above the
    /// caller's highest must keep their places.
    pub async fn arrange_roles(
        &self,
        caller: &Caller,
        id: GuildId,
        lowest_first: &[RoleId],
    ) -> Result<(), Error> {
        let view = self.view(caller, id).await?;
        view.require(P::MANAGE_ROLES, "manage roles", now_ms())?;
        let top = view.my_top();
        for (position, role) in (1_u32..).zip(lowest_first) {
            let Some(record) = view.roles.iter().find(|r| r.id == *role) else { continue };
            if (record.position >= top || position >= top) && record.position != position {
                return Err(Error::invalid(
                    ErrorReason::LayoutInvalid,
                    "role_ids",
                    "roles at or above your highest keep their places, and none moves up to them",
                ));
            }
        }
        let entry = audit(caller, AuditAction::RolesArranged, None, "");
        self.store.arrange_roles(id, lowest_first, &entry).await?.map_err(role_refusal)?;
        self.announce(id, &[], false).await
    }

    /// Gives a member exactly `roles` (MANAGE_ROLES; the roles added or taken must be below the
    /// caller's highest, and so must the member unless it is the caller).
    pub async fn set_member_roles(
        &self,
        caller: &Caller,
        id: GuildId,
        account: AccountId,
        roles: &[RoleId],
    ) -> Result<(), Error> {
        let view = self.view(caller, id).await?;
        view.require(P::MANAGE_ROLES, "manage roles", now_ms())?;
        let target = self.store.guild_member(id, account).await?.ok_or_else(member_not_found)?;
        let top = view.my_top();
        if account != caller.account_id && view.top_of(&target) >= top {
            return Err(not_allowed("change the roles of a member at or above you"));
        }
        let mut wanted = roles.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        for role in &wanted {
            if *role == id.everyone() {
                return Err(role_not_found());
            }
            view.role(*role)?;
        }
        let changed = wanted
            .iter()
            .filter(|r| !target.roles.contains(r))
            .chain(target.roles.iter().filter(|r| !wanted.contains(r)));
        for role in changed {
            if view.role(*role).is_ok_and(|r| r.position >= top) {
                return Err(not_allowed("give or take a role at or above your highest"));
            }
        }
        let names: Vec<&str> =
            wanted.iter().filter_map(|r| view.role(*r).ok()).map(|r| r.name.as_str()).collect();
        let entry = audit(caller, AuditAction::MemberRolesChanged, Some(account.as_uuid()), names.join(", "));
        self.store.set_member_roles(id, account, &wanted, &entry).await?.map_err(role_refusal)?;
        self.announce(id, &[], true).await
    }

    /// A page of members.
    pub async fn members(
        &self,
        caller: &Caller,
        id: GuildId,
        page: MemberPage,
    ) -> Result<Vec<(GuildMemberRecord, bool)>, Error> {
        let limit = page_size(page.limit, MEMBER_PAGE, "members")?;
        self.view(caller, id).await?;
        let hub = self.delivery.hub();
        let members = if page.online_only {
            // Who is online is known here (the hub), not to the database: take the online
            // accounts after `after` and keep the members among them, a page at a time.
            let mut found = Vec::new();
            let online: Vec<AccountId> = hub
                .online_accounts()
                .into_iter()
                .filter(|a| page.after.is_none_or(|after| *a > after))
                .collect();
            for chunk in online.chunks(limit as usize) {
                found.extend(self.store.guild_members_in(id, chunk).await?);
                if found.len() >= limit as usize {
                    break;
                }
            }
            found.truncate(limit as usize);
            found
        } else {
            self.store.guild_members(id, page.after, limit).await?
        };
        Ok(members
            .into_iter()
            .map(|m| {
                let online = hub.is_online(m.account_id);
                (m, online)
            })
            .collect())
    }

    /// The member `account` as the rules see them (not a member: no roles, no timeout).
    async fn target(&self, id: GuildId, account: AccountId) -> Result<(GuildMemberRecord, bool), Error> {
        Ok(match self.store.guild_member(id, account).await? {
            Some(member) => (member, true),
            None => (
                GuildMemberRecord {
                    account_id: account,
                    joined_at_ms: 0,
                    timed_out_until_ms: 0,
                    roles: Vec::new(),
                },
                false,
            ),
        })
    }

    fn check_moderation(
        view: &GuildView,
        target: &GuildMemberRecord,
        needed: P,
        what: &str,
    ) -> Result<(), Error> {
        if rules::can_moderate(&view.rules(), &rule_member(&view.me), &rule_member(target), needed, now_ms())
        {
            Ok(())
        } else {
            Err(not_allowed(what))
        }
    }

    /// Removes a member (KICK_MEMBERS, and they are below the caller).
    pub async fn kick(
        &self,
        caller: &Caller,
        id: GuildId,
        account: AccountId,
        reason: &str,
    ) -> Result<(), Error> {
        let reason = free_text(reason, MAX_REASON_CHARS, "reason", "reason")?;
        let view = self.view(caller, id).await?;
        let (target, member) = self.target(id, account).await?;
        if !member {
            return Err(member_not_found());
        }
        Self::check_moderation(&view, &target, P::KICK_MEMBERS, "remove this member")?;
        let entry = audit(caller, AuditAction::MemberKicked, Some(account.as_uuid()), reason);
        let sealed = self.store.sealed_channels(id, account).await?;
        if !self.store.kick_member(id, account, &entry).await? {
            return Err(member_not_found());
        }
        tracing::info!(guild = %id, by = %caller.account_id, member = %account, "member kicked");
        self.announce(id, &[account], false).await?;
        self.voice.evict(id, Some(account), None).await;
        self.wake_sealed(sealed, account).await
    }

    /// Bans an account (BAN_MEMBERS, and a member is below the caller), and deletes what it
    /// sent in the guild's channels in the last `delete_messages` (at most
    /// [`MAX_BAN_DELETION`]). Banning again changes nothing but that deletion.
    pub async fn ban(
        &self,
        caller: &Caller,
        id: GuildId,
        account: AccountId,
        reason: &str,
        delete_messages: Duration,
    ) -> Result<(), Error> {
        let reason = free_text(reason, MAX_REASON_CHARS, "reason", "reason")?;
        if delete_messages > MAX_BAN_DELETION {
            return Err(Error::invalid(
                ErrorReason::DurationInvalid,
                "delete_messages_s",
                "a ban deletes at most the last 7 days of messages",
            ));
        }
        let view = self.view(caller, id).await?;
        let (target, member) = self.target(id, account).await?;
        if !member && self.store.account(account).await?.is_none() {
            return Err(Error::not_found(ErrorReason::AccountNotFound, "no such account"));
        }
        Self::check_moderation(&view, &target, P::BAN_MEMBERS, "ban this member")?;
        let entry = audit(caller, AuditAction::MemberBanned, Some(account.as_uuid()), reason.clone());
        let sealed = self.store.sealed_channels(id, account).await?;
        if self.store.ban_member(id, account, &reason, &entry).await? {
            tracing::info!(guild = %id, by = %caller.account_id, member = %account, "member banned");
            if member {
                self.announce(id, &[account], false).await?;
                self.wake_sealed(sealed, account).await?;
                self.voice.evict(id, Some(account), None).await;
            }
        }
        if !delete_messages.is_zero() {
            self.delete_recent(caller, id, account, delete_messages).await?;
        }
        Ok(())
    }

    /// Deletes what `account` sent in the guild's channels in the last `window`, each
    /// deletion told to the channel's readers, with one audit entry for them all.
    async fn delete_recent(
        &self,
        caller: &Caller,
        id: GuildId,
        account: AccountId,
        window: Duration,
    ) -> Result<(), Error> {
        const BATCH: i64 = 500;
        let since = now_ms().saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        let mut deleted = 0usize;
        loop {
            let batch = self.store.guild_messages_since(id, account, since, BATCH).await?;
            for (channel, message) in &batch {
                if let Some(tombstone) =
                    self.store.delete_message(channel.conversation(), *message, now_ms()).await?
                {
                    self.delivery.publish(Notice::Message(Arc::new(tombstone))).await;
                    deleted += 1;
                }
            }
            if (batch.len() as i64) < BATCH {
                break;
            }
        }
        if deleted > 0 {
            let detail =
                format!("{deleted} messages of {account} from the last {} hours", window.as_secs() / 3600);
            let entry = audit(caller, AuditAction::MessageDeleted, Some(account.as_uuid()), detail);
            self.store.record_audit(id, &entry).await?;
            tracing::info!(guild = %id, by = %caller.account_id, member = %account, deleted, "banned member's messages deleted");
        }
        Ok(())
    }

    /// Lifts a ban (BAN_MEMBERS).
    pub async fn unban(&self, caller: &Caller, id: GuildId, account: AccountId) -> Result<(), Error> {
        let view = self.view(caller, id).await?;
        view.require(P::BAN_MEMBERS, "lift bans", now_ms())?;
        let entry = audit(caller, AuditAction::MemberUnbanned, Some(account.as_uuid()), "");
        self.store.unban_member(id, account, &entry).await?;
        Ok(())
    }

    /// The bans (BAN_MEMBERS).
    pub async fn bans(&self, caller: &Caller, id: GuildId) -> Result<Vec<BanRecord>, Error> {
        let view = self.view(caller, id).await?;
        view.require(P::BAN_MEMBERS, "see the bans", now_ms())?;
        Ok(self.store.guild_bans(id).await?)
    }

    /// Puts a member in a timeout for `duration_s` (0: out of it) (TIMEOUT_MEMBERS, and they are
    /// below the caller and not an administrator). Returns when it ends.
    pub async fn time_out(
        &self,
        caller: &Caller,
        id: GuildId,
        account: AccountId,
        duration_s: u32,
        reason: &str,
    ) -> Result<i64, Error> {
        if duration_s > MAX_TIMEOUT_S {
            return Err(Error::invalid(
                ErrorReason::DurationInvalid,
                "duration_s",
                format!("a timeout is at most {MAX_TIMEOUT_S} seconds (28 days)"),
            ));
        }
        let reason = free_text(reason, MAX_REASON_CHARS, "reason", "reason")?;
        let view = self.view(caller, id).await?;
        let (target, member) = self.target(id, account).await?;
        if !member {
            return Err(member_not_found());
        }
        Self::check_moderation(&view, &target, P::TIMEOUT_MEMBERS, "put this member in a timeout")?;
        let until = if duration_s == 0 { 0 } else { now_ms() + i64::from(duration_s) * 1000 };
        let detail = if duration_s == 0 { "ended".to_owned() } else { format!("{duration_s} s: {reason}") };
        let entry = audit(caller, AuditAction::MemberTimedOut, Some(account.as_uuid()), detail);
        if !self.store.time_out_member(id, account, until, &entry).await? {
            return Err(member_not_found());
        }
        self.announce(id, &[], true).await?;
        Ok(until)
    }

    /// Makes an invite (CREATE_INVITES); returns it with its code, which is not kept.
    pub async fn create_invite(
        &self,
        caller: &Caller,
        id: GuildId,
        expires_in_s: u32,
        max_uses: u32,
    ) -> Result<(InviteRecord, String), Error> {
        if expires_in_s != 0 && !INVITE_LIFETIME_S.contains(&expires_in_s) {
            return Err(Error::invalid(
                ErrorReason::DurationInvalid,
                "expires_in_s",
                format!(
                    "an invite lasts {} to {} seconds, or 0 for ever",
                    INVITE_LIFETIME_S.start(),
                    INVITE_LIFETIME_S.end()
                ),
            ));
        }
        if max_uses > MAX_INVITE_USES {
            return Err(Error::invalid(
                ErrorReason::LimitInvalid,
                "max_uses",
                format!("an invite admits at most {MAX_INVITE_USES} people, or 0 for any number"),
            ));
        }
        let view = self.view(caller, id).await?;
        view.require(P::CREATE_INVITES, "make invites", now_ms())?;
        let code = new_invite_code();
        let now = now_ms();
        let invite = NewInvite {
            id: InviteId::generate(),
            guild_id: id,
            code_hash: hash_token(&code),
            code_hint: code.chars().take(4).collect(),
            created_by: caller.account_id,
            created_at_ms: now,
            expires_at_ms: if expires_in_s == 0 { 0 } else { now + i64::from(expires_in_s) * 1000 },
            max_uses: i64::from(max_uses),
        };
        let entry =
            audit(caller, AuditAction::InviteCreated, Some(invite.id.as_uuid()), invite.code_hint.clone());
        if !self.store.create_invite(&invite, &entry).await? {
            return Err(Error::limit(
                ErrorReason::TooManyInvites,
                format!(
                    "a guild has at most {} usable invites; revoke some",
                    crate::store::MAX_GUILD_INVITES
                ),
            ));
        }
        let record = self
            .store
            .invite_by_code(&invite.code_hash)
            .await?
            .ok_or_else(|| Error::Internal("an invite just made is missing".to_owned()))?;
        Ok((record, code))
    }

    /// The guild's invites (MANAGE_GUILD).
    pub async fn invites(&self, caller: &Caller, id: GuildId) -> Result<Vec<InviteRecord>, Error> {
        let view = self.view(caller, id).await?;
        view.require(P::MANAGE_GUILD, "see this guild's invites", now_ms())?;
        Ok(self.store.guild_invites(id).await?)
    }

    /// Revokes an invite (MANAGE_GUILD, or its maker).
    pub async fn revoke_invite(&self, caller: &Caller, id: GuildId, invite: InviteId) -> Result<(), Error> {
        let view = self.view(caller, id).await?;
        let record = self.store.guild_invites(id).await?.into_iter().find(|i| i.id == invite);
        let Some(record) = record else {
            return Err(Error::not_found(ErrorReason::InviteNotFound, "no such invite in this guild"));
        };
        if record.created_by != caller.account_id && !view.in_guild(now_ms()).contains(P::MANAGE_GUILD) {
            return Err(not_allowed("revoke others' invites"));
        }
        let entry = audit(caller, AuditAction::InviteRevoked, Some(invite.as_uuid()), record.code_hint);
        self.store.revoke_invite(id, invite, &entry).await?;
        Ok(())
    }

    /// Counts one invite lookup against the caller's limit.
    async fn take_lookup(&self, caller: &Caller) -> Result<(), Error> {
        self.limiter.take(&self.settings.invite_lookups, &format!("guild-invite:{}", caller.account_id)).await
    }

    /// What an invite leads to, and whether the caller is a member already.
    pub async fn invite_preview(
        &self,
        caller: &Caller,
        code: &str,
    ) -> Result<(GuildRecord, InviteRecord, bool), Error> {
        self.take_lookup(caller).await?;
        let invite = match invite_hash(code) {
            Some(hash) => self.store.invite_by_code(&hash).await?,
            None => None,
        };
        let invite = invite.ok_or_else(|| invite_refusal(GuildJoinRefusal::UnknownInvite))?;
        let member = self.store.guild_member(invite.guild_id, caller.account_id).await?.is_some();
        if !member {
            invite.usable(now_ms()).map_err(invite_refusal)?;
        }
        let guild = self
            .store
            .guild(invite.guild_id)
            .await?
            .ok_or_else(|| invite_refusal(GuildJoinRefusal::UnknownInvite))?;
        Ok((guild, invite, member))
    }

    /// Joins the guild of an invite; `true` when the caller joined now (not a member before).
    pub async fn join(&self, caller: &Caller, code: &str) -> Result<(GuildRecord, bool), Error> {
        self.take_lookup(caller).await?;
        let hash = invite_hash(code).ok_or_else(|| invite_refusal(GuildJoinRefusal::UnknownInvite))?;
        let (id, joined) = match self.store.join_guild(&hash, caller.account_id, now_ms()).await? {
            Ok(GuildJoin::Joined(id)) => (id, true),
            Ok(GuildJoin::AlreadyMember(id)) => (id, false),
            Err(refusal) => return Err(invite_refusal(refusal)),
        };
        if joined {
            tracing::info!(guild = %id, member = %caller.account_id, "member joined by invite");
            // The newcomer's sessions start following the guild's channels; the others only
            // hear that someone joined (what they may see did not change).
            let follow = visible_channels(&*self.store, caller.account_id, id)
                .await?
                .into_iter()
                .map(|c| c.channel.id.conversation())
                .collect();
            let event = GuildEvent { follow, ..guild_event(id, false, false) };
            tell(&self.delivery, event, vec![caller.account_id]).await;
            let mut others = member_ids(&*self.store, id).await?;
            others.retain(|a| *a != caller.account_id);
            tell(&self.delivery, guild_event(id, false, true), others).await;
        }
        Ok((self.store.guild(id).await?.ok_or_else(guild_not_found)?, joined))
    }

    /// A page of the audit log (VIEW_AUDIT_LOG).
    pub async fn audit_log(
        &self,
        caller: &Caller,
        id: GuildId,
        before: Option<AuditId>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, Error> {
        let limit = page_size(limit, AUDIT_PAGE, "entries")?;
        let view = self.view(caller, id).await?;
        view.require(P::VIEW_AUDIT_LOG, "read the audit log", now_ms())?;
        Ok(self.store.audit_log(id, before, limit).await?)
    }
}

/// A page size asked for: 0 is `default`, more than `max` is refused.
fn page_size(limit: u32, (default, max): (u32, u32), what: &str) -> Result<u32, Error> {
    match limit {
        0 => Ok(default),
        n if n <= max => Ok(n),
        _ => Err(Error::invalid(ErrorReason::LimitInvalid, "limit", format!("pages are 1 to {max} {what}"))),
    }
}

/// A channel the caller just made or changed, as they see it (they manage it, so with its
/// overwrites).
/// Which of `all` (a guild's channels and categories) the caller sees in its list, with what
/// they may do in each: `None` for one they cannot see. A category they cannot see still shows
/// when a channel in it is visible (it holds them in the list), with nothing of its own.
fn shown(view: &GuildView, all: &[ChannelRecord], now: i64) -> Vec<Option<P>> {
    let permissions: Vec<P> = all.iter().map(|c| view.in_channel(c, now)).collect();
    let holding: std::collections::HashSet<ChannelId> = all
        .iter()
        .zip(&permissions)
        .filter(|(_, p)| p.contains(P::VIEW_CHANNEL))
        .filter_map(|(c, _)| c.parent)
        .collect();
    all.iter()
        .zip(permissions)
        .map(|(channel, permissions)| {
            if permissions.contains(P::VIEW_CHANNEL) {
                Some(permissions)
            } else {
                holding.contains(&channel.id).then_some(P::NONE)
            }
        })
        .collect()
}

/// The whole layout of a guild from `layout`, the part its caller sees (each shown channel and
/// category once; naming a hidden one is refused as naming one that is not there): each of
/// `hidden` keeps its category and goes right after the entry that preceded it in the stored
/// order `all` (or first, if none did), so a rearrangement by someone who cannot see a private
/// channel neither fails nor moves it far.
fn with_hidden(
    all: &[ChannelRecord],
    hidden: &[&ChannelRecord],
    layout: &[(ChannelId, Option<ChannelId>)],
) -> Result<Vec<(ChannelId, Option<ChannelId>)>, ChannelRefusal> {
    if hidden.is_empty() {
        return Ok(layout.to_vec());
    }
    if layout.iter().any(|(id, parent)| hidden.iter().any(|h| h.id == *id || Some(h.id) == *parent)) {
        return Err(ChannelRefusal::NotAPermutation);
    }
    let mut merged = layout.to_vec();
    for (index, channel) in all.iter().enumerate() {
        if !hidden.iter().any(|h| h.id == channel.id) {
            continue;
        }
        let before = all[..index].iter().rev().find_map(|c| merged.iter().position(|(id, _)| *id == c.id));
        let at = before.map_or(0, |i| i + 1);
        merged.insert(at, (channel.id, channel.parent));
    }
    Ok(merged)
}

fn managed(view: &GuildView, channel: ChannelRecord) -> ChannelView {
    let permissions = view.in_channel(&channel, now_ms());
    ChannelView {
        private: is_private(&channel),
        channel,
        permissions,
        read_seq: 0,
        mention_count: 0,
        show_overwrites: true,
        voice: Vec::new(),
    }
}

/// Who an overwrite is for, for the audit log.
fn overwrite_detail(view: &GuildView, target: OverwriteTarget) -> String {
    match target {
        OverwriteTarget::Role(role) => view.role(role).map(|r| r.name.clone()).unwrap_or_default(),
        OverwriteTarget::Member(account) => account.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_codes_are_128_bits_and_only_plausible_text_is_looked_up() {
        let code = new_invite_code();
        assert_eq!(code.len(), 22);
        assert_eq!(invite_hash(&code), Some(hash_token(&code)));
        assert_eq!(invite_hash(&format!(" {code}\n")), Some(hash_token(&code)), "pasted with spaces");
        assert_ne!(new_invite_code(), code);
        for bad in ["", "short", &"a".repeat(23), "aaaaaaaaaaaaaaaaaaaa' OR 1=1", "ааааааааааааааааааааа"]
        {
            assert_eq!(invite_hash(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_permissions_one_has_may_change() {
        let has = P::VIEW_CHANNEL | P::SEND_MESSAGES;
        assert!(only_changes_within(has, P::NONE, P::SEND_MESSAGES));
        assert!(
            only_changes_within(has, P::KICK_MEMBERS, P::KICK_MEMBERS | P::VIEW_CHANNEL),
            "kept as it was"
        );
        assert!(!only_changes_within(has, P::NONE, P::KICK_MEMBERS), "given");
        assert!(!only_changes_within(has, P::KICK_MEMBERS, P::NONE), "taken away");
    }

    fn record(n: u128, kind: GuildChannelKind, parent: Option<ChannelId>) -> ChannelRecord {
        ChannelRecord {
            id: ChannelId::from_uuid(Uuid::from_u128(n)),
            guild_id: GuildId::from_uuid(Uuid::from_u128(0)),
            kind,
            e2ee: false,
            parent,
            position: 0,
            name: format!("c{n}"),
            topic: String::new(),
            slow_mode_s: 0,
            overwrites: Vec::new(),
            last_seq: 0,
        }
    }

    #[test]
    fn a_layout_keeps_what_its_maker_cannot_see_in_place() {
        use GuildChannelKind::{Category, Text};
        // Stored: #top, [secret top], Cat A {#a1, [#secret a], #a2}, [Hidden cat {[#h1]}], Cat B {#b1}.
        let top = record(1, Text, None);
        let secret_top = record(2, Text, None);
        let cat_a = record(10, Category, None);
        let a1 = record(11, Text, Some(cat_a.id));
        let secret_a = record(12, Text, Some(cat_a.id));
        let a2 = record(13, Text, Some(cat_a.id));
        let hidden_cat = record(20, Category, None);
        let h1 = record(21, Text, Some(hidden_cat.id));
        let cat_b = record(30, Category, None);
        let b1 = record(31, Text, Some(cat_b.id));
        let all = [&top, &secret_top, &cat_a, &a1, &secret_a, &a2, &hidden_cat, &h1, &cat_b, &b1]
            .map(ChannelRecord::clone)
            .to_vec();
        let hidden = [&secret_top, &secret_a, &hidden_cat, &h1];
        // The caller swaps the categories, moves #a2 first in A and #top into B.
        let layout = vec![
            (cat_b.id, None),
            (b1.id, Some(cat_b.id)),
            (top.id, Some(cat_b.id)),
            (cat_a.id, None),
            (a2.id, Some(cat_a.id)),
            (a1.id, Some(cat_a.id)),
        ];
        let merged = with_hidden(&all, &hidden, &layout).unwrap_or_default();
        // What the store makes of it: each category's channels in order, the categories in
        // order, the top-level channels in order.
        let name =
            |id: &ChannelId| all.iter().find(|c| c.id == *id).map(|c| c.name.clone()).unwrap_or_default();
        let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (id, parent) in &merged {
            let is_category = all.iter().any(|c| c.id == *id && c.kind == Category);
            let group = match parent {
                Some(parent) => name(parent),
                None if is_category => "categories".to_owned(),
                None => "top".to_owned(),
            };
            groups.entry(group).or_default().push(name(id));
        }
        let expected: std::collections::BTreeMap<String, Vec<String>> = [
            ("categories", vec!["c30", "c10", "c20"]),
            ("top", vec!["c2"]),
            ("c30", vec!["c31", "c1"]),
            ("c10", vec!["c13", "c11", "c12"]),
            ("c20", vec!["c21"]),
        ]
        .into_iter()
        .map(|(group, names)| (group.to_owned(), names.into_iter().map(str::to_owned).collect()))
        .collect();
        assert_eq!(groups, expected);
        assert_eq!(merged.len(), all.len());
        // Naming a channel one cannot see is refused, as one that is not there.
        let probing = [layout.clone(), vec![(secret_a.id, Some(cat_a.id))]].concat();
        assert_eq!(with_hidden(&all, &hidden, &probing), Err(ChannelRefusal::NotAPermutation));
        // With nothing hidden the layout is taken as it is.
        assert_eq!(with_hidden(&all, &[], &layout), Ok(layout));
    }
}
