//! Conversations and their messages: who may see, post, manage members, edit and delete.
//!
//! # Security
//! Every operation starts by checking that the caller is a member; a conversation the caller
//! is not in answers exactly like one that does not exist (`CONVERSATION_NOT_FOUND`), so
//! membership cannot be probed. In e2ee mode the server stores ciphertext only, and deleting a
//! message removes it.
//!
//! Consent before contact: whoever opens a direct conversation with a stranger, or adds one to
//! a group, makes a *request* (the stranger's membership has `request` set) that the stranger
//! accepts (explicitly, or by sending a message), declines (leaves) or blocks. A request sends
//! no receipts and shows no presence or avatar either way (`store::delivery`, `avatars`), and
//! does not ring for calls (`calls`). A blocked account is not told: its requests simply do not
//! arrive, and its messages, calls and to-device messages do not reach the blocker. Groups are
//! capped in size and in how many one account creates per period, so a flood of requests costs.

use std::sync::Arc;

use super::guilds::permissions::Permissions as P;
use super::guilds::{
    ChannelAccess, MAX_CHANNEL_MEMBERS, channel_access, channel_not_found, outranks, tell_channel_change,
};
use super::rate_limits::{Limit, RateLimiter};
use super::{Caller, Delivery, Error, ErrorReason};
use crate::bus::Notice;
use crate::ids::{AccountId, AttachmentId, ChannelId, ConversationId, MessageId};
use crate::store::{
    AcceptOutcome, AddOutcome, AuditAction, AuditEntry, CloudBody, ConversationFilter, ConversationKind,
    ConversationRecord, MemberRecord, MessageRecord, NewMessage, Role, SendOutcome, Store, now_ms,
};

/// Largest message ciphertext.
pub const MAX_CIPHERTEXT: usize = 64 * 1024;
/// Largest Megolm session id.
pub const MAX_SESSION_ID: usize = 128;
/// Largest history page.
pub const MAX_PAGE: u32 = 100;
/// Largest page of `ListConversations`.
pub const MAX_CONVERSATION_PAGE: u32 = 100;
/// A `ListConversations` page when the client names no size.
pub const DEFAULT_CONVERSATION_PAGE: u32 = 50;

/// Caps on groups (from the settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationSettings {
    /// Members one group holds at most, its owner included (`KITSULAN_GROUP_MAX_MEMBERS`).
    pub max_group_members: u32,
    /// Groups one account creates per period (`KITSULAN_RATE_LIMIT_GROUP_CREATIONS`).
    pub group_creations: Limit,
    /// Messages older than this lose their content in every conversation
    /// (`KITSULAN_RETENTION_DAYS`; `None`: kept).
    pub retention: Option<std::time::Duration>,
}

impl Default for ConversationSettings {
    fn default() -> Self {
        Self {
            max_group_members: 256,
            group_creations: Limit::new(10, std::time::Duration::from_secs(3600)),
            retention: None,
        }
    }
}
/// Attachments one message carries, at most.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;

/// What a message carries: ciphertext for an E2EE conversation, Content for a cloud one.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Megolm ciphertext and its session id.
    Ciphertext {
        /// The ciphertext.
        ciphertext: Vec<u8>,
        /// The Megolm session id.
        session_id: Vec<u8>,
    },
    /// A cloud message (read and checked by the transport: see [`CloudDraft`]).
    Cloud(CloudDraft),
}

/// A cloud message's Content as the transport read it.
#[derive(Debug, Clone)]
pub struct CloudDraft {
    /// The Content, encoded.
    pub content: Vec<u8>,
    /// Its words (text, file name), for search.
    pub text: String,
    /// The accounts it mentions.
    pub mentions: Vec<AccountId>,
    /// The message it says it answers (must be the draft's `reply_to`).
    pub reply_to: Option<MessageId>,
}

/// A message to send, as the sending device chose it.
#[derive(Debug, Clone)]
pub struct Draft {
    /// UUIDv7 chosen by the device.
    pub message_id: MessageId,
    /// What it carries.
    pub payload: Payload,
    /// The message answered.
    pub reply_to: Option<MessageId>,
    /// Attachments it carries.
    pub attachments: Vec<AttachmentId>,
}

/// A conversation with what the caller sees of it.
#[derive(Debug, Clone)]
pub struct ConversationView {
    /// The conversation.
    pub conversation: ConversationRecord,
    /// Its members (the marks of those who have not accepted it are hidden, but the caller's).
    pub members: Vec<MemberRecord>,
    /// Messages from others the caller has not read.
    pub unread_count: i64,
    /// The caller's membership is a request it has not accepted.
    pub request: bool,
    /// Cloud conversations: unread messages that mention the caller.
    pub mention_count: i64,
    /// Who added the caller (`None`: the caller started it).
    pub requested_by: Option<AccountId>,
}

/// Conversations and messages.
#[derive(Clone)]
pub struct Conversations {
    pub(super) store: Arc<dyn Store>,
    /// Where sends wait for the next group commit.
    pub(super) sends: super::group_commit::SendQueue,
    pub(super) delivery: Delivery,
    pub(super) limiter: RateLimiter,
    /// Caps on groups.
    pub settings: ConversationSettings,
    /// Wakes members' closed apps when a message arrives.
    pub push: super::Push,
}

/// How the caller is in a conversation.
#[derive(Debug, Clone)]
pub(super) enum Standing {
    /// By a member row: a direct conversation or a group.
    Member(MemberRecord),
    /// By the roles of a guild: a cloud channel the caller can see.
    Channel(ChannelAccess),
    /// By a member row in a private E2EE channel, with what the guild's roles let them do there.
    Sealed(ChannelAccess),
}

impl Standing {
    /// The caller's group role (`Member` in a channel: roles there are the guild's).
    pub(super) fn role(&self) -> Role {
        match self {
            Self::Member(member) => member.role,
            Self::Channel(_) | Self::Sealed(..) => Role::Member,
        }
    }

    /// Whether the caller's membership is a request not yet accepted.
    fn request(&self) -> bool {
        matches!(self, Self::Member(member) if member.request)
    }

    /// In a channel, what the guild's roles let the caller do there.
    pub(super) fn access(&self) -> Option<&ChannelAccess> {
        match self {
            Self::Member(_) => None,
            Self::Channel(access) | Self::Sealed(access) => Some(access),
        }
    }

    /// In a channel: fails unless the caller has `needed` there (`what` says what for).
    pub(super) fn require(&self, needed: P, what: &str) -> Result<(), Error> {
        match self.access() {
            Some(access) if !access.permissions.contains(needed) => {
                Err(not_allowed(&format!("your roles do not allow you to {what} in this channel")))
            }
            _ => Ok(()),
        }
    }

    /// In a channel: whether the caller has `permission` there (a member row: `false`).
    pub(super) fn channel_allows(&self, permission: P) -> bool {
        self.access().is_some_and(|access| access.permissions.contains(permission))
    }
}

fn not_found() -> Error {
    Error::not_found(ErrorReason::ConversationNotFound, "no such conversation")
}

/// Wakes the streams of conversation `id`'s members (the store wrote their membership events),
/// and of `also` (someone who just left it, whose sessions stop following it).
pub(super) async fn announce_members(
    store: &dyn Store,
    delivery: &Delivery,
    id: ConversationId,
    also: Option<AccountId>,
) -> Result<(), Error> {
    let mut accounts: Vec<AccountId> = store.members(id).await?.into_iter().map(|m| m.account_id).collect();
    accounts.extend(also);
    if let Some(account) = also {
        delivery.publish(Notice::Left { conversation: id, account }).await;
    }
    delivery.publish(Notice::Accounts(accounts)).await;
    Ok(())
}

/// The caller's role in a group they may manage (owner or admin), or why not.
fn group_manager(conversation: &ConversationRecord, me: &Standing) -> Result<Role, Error> {
    if conversation.kind != ConversationKind::Group {
        return Err(Error::precondition(ErrorReason::NotAGroup, "only groups have members to manage"));
    }
    let role = me.role();
    if role == Role::Member {
        return Err(not_allowed("only the group's owner and admins may do that"));
    }
    Ok(role)
}

fn not_allowed(message: &str) -> Error {
    Error::Forbidden { reason: ErrorReason::NotAllowed, message: message.to_owned() }
}

fn title(raw: &str) -> Result<String, Error> {
    // The same rules as display names: a title cannot hide or reorder text.
    super::names::GroupTitle::parse(raw).map(|title| title.as_str().to_owned())
}

impl Conversations {
    /// How the caller is in the conversation, or `CONVERSATION_NOT_FOUND`: not a member, or a
    /// channel they cannot see (so neither can be told from a conversation that is not there).
    pub(super) async fn membership(
        &self,
        caller: &Caller,
        id: ConversationId,
    ) -> Result<(ConversationRecord, Standing), Error> {
        if let Some(member) = self.store.member(id, caller.account_id).await? {
            let conversation = self.store.conversation(id).await?.ok_or_else(not_found)?;
            if conversation.kind == ConversationKind::Channel {
                // A private E2EE channel: its guild's roles still say what one may do in it.
                let channel = ChannelId::from_uuid(id.as_uuid());
                let access =
                    channel_access(&*self.store, caller.account_id, channel).await?.ok_or_else(not_found)?;
                return Ok((conversation, Standing::Sealed(access)));
            }
            return Ok((conversation, Standing::Member(member)));
        }
        let conversation = self.store.conversation(id).await?.ok_or_else(not_found)?;
        if conversation.kind != ConversationKind::Channel || conversation.e2ee {
            return Err(not_found());
        }
        let channel = ChannelId::from_uuid(id.as_uuid());
        let access = channel_access(&*self.store, caller.account_id, channel).await?.ok_or_else(not_found)?;
        Ok((conversation, Standing::Channel(access)))
    }

    pub(super) async fn view(
        &self,
        caller: &Caller,
        conversation: ConversationRecord,
    ) -> Result<ConversationView, Error> {
        if conversation.kind == ConversationKind::Channel && !conversation.e2ee {
            return self.channel_view(caller, conversation).await;
        }
        let mut members = self.store.members(conversation.id).await?;
        let unread_count = self.store.unread_count(conversation.id, caller.account_id).await?;
        let (request, requested_by) = members
            .iter()
            .find(|m| m.account_id == caller.account_id)
            .map_or((false, None), |me| (me.request, me.added_by));
        // A request sends no receipts: its marks stay with its own account.
        for member in members.iter_mut().filter(|m| m.request && m.account_id != caller.account_id) {
            member.read_seq = 0;
            member.delivered_seq = 0;
        }
        let mention_count = if conversation.e2ee {
            0
        } else {
            self.store.mention_count(conversation.id, caller.account_id).await?
        };
        Ok(ConversationView { conversation, members, unread_count, request, requested_by, mention_count })
    }

    /// A cloud channel as the caller sees it: no member rows (its guild's roles say who is in
    /// it; `ListMembers` lists them), its unread and mention counts from the caller's read mark.
    async fn channel_view(
        &self,
        caller: &Caller,
        conversation: ConversationRecord,
    ) -> Result<ConversationView, Error> {
        let channel = ChannelId::from_uuid(conversation.id.as_uuid());
        let guild = self.store.guild_channel(channel).await?.ok_or_else(not_found)?.guild_id;
        let of_channel = |marks: Vec<(ChannelId, i64)>| {
            marks.into_iter().find(|(c, _)| *c == channel).map_or(0, |(_, n)| n)
        };
        let read_seq = of_channel(self.store.channel_reads(guild, caller.account_id).await?);
        let mention_count = of_channel(self.store.channel_mentions(guild, caller.account_id).await?);
        Ok(ConversationView {
            unread_count: (conversation.last_seq - read_seq).max(0),
            conversation,
            members: Vec::new(),
            request: false,
            requested_by: None,
            mention_count,
        })
    }

    /// Wakes the streams of every member (the store wrote their membership events), and of
    /// `also` (someone who just left).
    async fn announce_members(&self, id: ConversationId, also: Option<AccountId>) -> Result<(), Error> {
        announce_members(&*self.store, &self.delivery, id, also).await
    }

    async fn existing_accounts(&self, accounts: &[AccountId]) -> Result<(), Error> {
        for account in accounts {
            if self.store.account(*account).await?.is_none() {
                return Err(Error::not_found(ErrorReason::AccountNotFound, format!("no account {account}")));
            }
        }
        Ok(())
    }

    /// The direct conversation with `other` (made on first use).
    pub async fn open_direct(
        &self,
        caller: &Caller,
        other: AccountId,
        e2ee: bool,
    ) -> Result<(ConversationView, bool), Error> {
        if other == caller.account_id {
            return Err(Error::invalid(
                ErrorReason::CannotMessageSelf,
                "account_id",
                "a direct conversation needs someone else",
            ));
        }
        self.existing_accounts(&[other]).await?;
        self.not_blocked_by_caller(caller, other).await?;
        let (id, created) = self
            .store
            .open_direct_in(ConversationId::generate(), (caller.account_id, other), e2ee, now_ms())
            .await?;
        // Also when it existed: either side may have come back to it.
        self.announce_members(id, None).await?;
        let conversation = self.store.conversation(id).await?.ok_or_else(not_found)?;
        Ok((self.view(caller, conversation).await?, created))
    }

    /// A new group with the caller as owner.
    pub async fn create_group(
        &self,
        caller: &Caller,
        raw_title: &str,
        members: &[AccountId],
        e2ee: bool,
    ) -> Result<ConversationView, Error> {
        let title = title(raw_title)?;
        let max = self.settings.max_group_members as usize;
        let too_many = || {
            Error::limit(
                ErrorReason::TooManyMembers,
                format!("a group has at most {max} members, its owner included"),
            )
        };
        if members.len() > max {
            return Err(too_many());
        }
        let mut others: Vec<AccountId> =
            members.iter().copied().filter(|m| *m != caller.account_id).collect();
        others.sort_unstable();
        others.dedup();
        if others.len() + 1 > max {
            return Err(too_many());
        }
        self.existing_accounts(&others).await?;
        // Counted only for a group that would be made: a refused one costs nothing.
        self.limiter
            .take(&self.settings.group_creations, &format!("group-create:{}", caller.account_id))
            .await?;
        let id = ConversationId::generate();
        self.store.create_group_in(id, &title, caller.account_id, &others, e2ee, now_ms()).await?;
        self.announce_members(id, None).await?;
        let conversation = self.store.conversation(id).await?.ok_or_else(not_found)?;
        tracing::info!(conversation = %id, owner = %caller.account_id, members = others.len() + 1, "group created");
        self.view(caller, conversation).await
    }

    /// A page of the caller's conversations, most recently active first, and the token of the
    /// next page (`None` on the last).
    pub async fn list(
        &self,
        caller: &Caller,
        filter: ConversationFilter,
        limit: u32,
        page_token: &str,
    ) -> Result<(Vec<ConversationView>, Option<String>), Error> {
        let limit = match limit {
            0 => DEFAULT_CONVERSATION_PAGE,
            n if n <= MAX_CONVERSATION_PAGE => n,
            _ => {
                return Err(Error::invalid(
                    ErrorReason::LimitInvalid,
                    "limit",
                    format!("pages are 1 to {MAX_CONVERSATION_PAGE} conversations"),
                ));
            }
        };
        let after = if page_token.is_empty() { None } else { Some(parse_page_token(page_token)?) };
        let mut page =
            self.store.conversations_of(caller.account_id, filter, after, i64::from(limit) + 1).await?;
        let more = page.len() > limit as usize;
        page.truncate(limit as usize);
        let next = match page.last() {
            Some(last) if more => Some(format!("{}.{}", last.last_activity_at_ms, last.id)),
            _ => None,
        };
        let mut views = Vec::with_capacity(page.len());
        for conversation in page {
            views.push(self.view(caller, conversation).await?);
        }
        Ok((views, next))
    }

    /// One conversation the caller is in.
    pub async fn get(&self, caller: &Caller, id: ConversationId) -> Result<ConversationView, Error> {
        let (conversation, _) = self.membership(caller, id).await?;
        self.view(caller, conversation).await
    }

    async fn managed_group(
        &self,
        caller: &Caller,
        id: ConversationId,
    ) -> Result<(ConversationRecord, Role), Error> {
        let (conversation, me) = self.membership(caller, id).await?;
        let role = group_manager(&conversation, &me)?;
        Ok((conversation, role))
    }

    /// Adds members to a group (owner or admin), or guild members to a private E2EE channel (a
    /// member of it with MANAGE_CHANNELS there).
    pub async fn add_members(
        &self,
        caller: &Caller,
        id: ConversationId,
        accounts: &[AccountId],
    ) -> Result<ConversationView, Error> {
        let (conversation, me) = self.membership(caller, id).await?;
        if let Standing::Sealed(access) = &me {
            return self.add_to_channel(caller, conversation, access, accounts).await;
        }
        let max = self.settings.max_group_members;
        if accounts.len() > max as usize {
            return Err(Error::limit(
                ErrorReason::TooManyMembers,
                format!("a group has at most {max} members"),
            ));
        }
        group_manager(&conversation, &me)?;
        self.existing_accounts(accounts).await?;
        let (outcome, entries) = self
            .store
            .add_members_by(id, caller.account_id, accounts, i64::from(max), now_ms(), true)
            .await?;
        match outcome {
            AddOutcome::Added(_) => {}
            AddOutcome::Full => {
                return Err(Error::limit(
                    ErrorReason::GroupFull,
                    format!("a group has at most {max} members"),
                ));
            }
            AddOutcome::NotInGuild(_) | AddOutcome::NotAChannel => {
                return Err(Error::Internal(format!("group {id} was treated as a guild's channel")));
            }
        }
        self.announce_members(id, None).await?;
        self.publish_all(entries).await;
        self.view(caller, conversation).await
    }

    /// Guild members into a private E2EE channel, for [`Conversations::add_members`]: all of
    /// them, or none if one is not in the guild or they would make it more than
    /// [`MAX_CHANNEL_MEMBERS`]. Their apps hear that the guild changed and show the channel.
    async fn add_to_channel(
        &self,
        caller: &Caller,
        conversation: ConversationRecord,
        access: &ChannelAccess,
        accounts: &[AccountId],
    ) -> Result<ConversationView, Error> {
        if !access.permissions.contains(P::MANAGE_CHANNELS) {
            return Err(not_allowed("add members to this channel (it takes MANAGE_CHANNELS in it)"));
        }
        let max = MAX_CHANNEL_MEMBERS.min(self.settings.max_group_members);
        let full = || {
            Error::limit(
                ErrorReason::GroupFull,
                format!("a private encrypted channel has at most {max} members"),
            )
        };
        if accounts.len() > max as usize {
            return Err(full());
        }
        let id = conversation.id;
        let (outcome, entries) =
            self.store.add_channel_members(id, caller.account_id, accounts, i64::from(max), now_ms()).await?;
        let added = match outcome {
            AddOutcome::Added(added) => added,
            AddOutcome::Full => return Err(full()),
            AddOutcome::NotInGuild(account) => {
                return Err(Error::not_found(
                    ErrorReason::MemberNotFound,
                    format!("{account} is not a member of this channel's guild"),
                ));
            }
            // Deleted between the check above and the add.
            AddOutcome::NotAChannel => return Err(channel_not_found()),
        };
        self.announce_members(id, None).await?;
        self.publish_all(entries).await;
        tell_channel_change(&self.delivery, access.channel.guild_id, added).await;
        self.view(caller, conversation).await
    }

    /// Removes a member: from a group, its owner or an admin (an admin cannot remove the owner
    /// or another admin); from a private E2EE channel, a member of it with MANAGE_CHANNELS there
    /// who stands above the one removed in the guild.
    pub async fn remove_member(
        &self,
        caller: &Caller,
        id: ConversationId,
        account: AccountId,
    ) -> Result<ConversationView, Error> {
        let (conversation, standing) = self.membership(caller, id).await?;
        if let Standing::Sealed(access) = &standing {
            if !access.permissions.contains(P::MANAGE_CHANNELS) {
                return Err(not_allowed("remove members from this channel (it takes MANAGE_CHANNELS in it)"));
            }
            if account != caller.account_id
                && !outranks(&*self.store, access.channel.guild_id, caller.account_id, account).await?
            {
                return Err(not_allowed("remove someone whose highest role is at or above yours"));
            }
        }
        let me = match &standing {
            Standing::Sealed(..) => Role::Admin,
            _ => group_manager(&conversation, &standing)?,
        };
        let target =
            self.store.member(id, account).await?.ok_or_else(|| {
                Error::not_found(ErrorReason::MemberNotFound, "that account is not a member")
            })?;
        if account == caller.account_id {
            return Err(Error::invalid(
                ErrorReason::UseLeave,
                "account_id",
                "use LeaveConversation to leave",
            ));
        }
        if me == Role::Admin && target.role != Role::Member {
            return Err(not_allowed("an admin cannot remove the owner or another admin"));
        }
        if let Some(entries) =
            self.store.remove_member_by(id, account, Some(caller.account_id), now_ms()).await?
        {
            self.announce_members(id, Some(account)).await?;
            self.publish_all(entries).await;
            if let Some(access) = standing.access() {
                tell_channel_change(&self.delivery, access.channel.guild_id, vec![account]).await;
            }
        }
        tracing::info!(conversation = %id, removed = %account, by = %caller.account_id, "member removed");
        self.view(caller, conversation).await
    }

    /// Makes a member an admin or a member again (owner only).
    pub async fn set_role(
        &self,
        caller: &Caller,
        id: ConversationId,
        account: AccountId,
        role: Role,
    ) -> Result<ConversationView, Error> {
        let (conversation, me) = self.managed_group(caller, id).await?;
        if me != Role::Owner {
            return Err(not_allowed("only the group's owner may change roles"));
        }
        if role == Role::Owner || account == caller.account_id {
            return Err(Error::invalid(
                ErrorReason::RoleInvalid,
                "role",
                "roles can be set to admin or member, for others",
            ));
        }
        let Some(entries) =
            self.store.set_role_by(id, account, role, Some(caller.account_id), now_ms()).await?
        else {
            return Err(Error::not_found(ErrorReason::MemberNotFound, "that account is not a member"));
        };
        self.announce_members(id, None).await?;
        self.publish_all(entries).await;
        self.view(caller, conversation).await
    }

    /// Renames a group (owner or admin). The history gets a system entry every member receives;
    /// the same title again changes nothing.
    pub async fn rename(
        &self,
        caller: &Caller,
        id: ConversationId,
        raw_title: &str,
    ) -> Result<ConversationView, Error> {
        let (_, _) = self.managed_group(caller, id).await?;
        let title = title(raw_title)?;
        if let Some(entry) = self.store.rename_group(id, caller.account_id, &title, now_ms()).await? {
            self.published(entry).await;
            tracing::info!(conversation = %id, by = %caller.account_id, "group renamed");
        }
        let conversation = self.store.conversation(id).await?.ok_or_else(not_found)?;
        self.view(caller, conversation).await
    }

    /// Leaves a group or a private E2EE channel.
    pub async fn leave(&self, caller: &Caller, id: ConversationId) -> Result<(), Error> {
        let (conversation, me) = self.membership(caller, id).await?;
        match &me {
            Standing::Member(_) if conversation.kind == ConversationKind::Group => {}
            Standing::Sealed(..) => {}
            Standing::Channel(_) => {
                return Err(Error::precondition(
                    ErrorReason::NotAGroup,
                    "a channel is left by leaving its guild (or lost with its permissions)",
                ));
            }
            Standing::Member(_) => {
                return Err(Error::precondition(
                    ErrorReason::NotAGroup,
                    "a direct conversation cannot be left",
                ));
            }
        }
        let by = Some(caller.account_id);
        if let Some(entries) = self.store.remove_member_by(id, caller.account_id, by, now_ms()).await? {
            self.announce_members(id, Some(caller.account_id)).await?;
            self.publish_all(entries).await;
            if let Some(access) = me.access() {
                tell_channel_change(&self.delivery, access.channel.guild_id, vec![caller.account_id]).await;
            }
        }
        Ok(())
    }

    /// Stores a message; a retried send returns the first copy.
    pub async fn send(
        &self,
        caller: &Caller,
        id: ConversationId,
        draft: Draft,
    ) -> Result<MessageRecord, Error> {
        let Draft { message_id, payload, reply_to, attachments } = draft;
        if let Payload::Ciphertext { ciphertext, session_id } = &payload {
            check_ciphertext(ciphertext, session_id)?;
        }
        if attachments.len() > MAX_ATTACHMENTS_PER_MESSAGE {
            return Err(Error::invalid(
                ErrorReason::TooManyAttachments,
                "attachment_ids",
                format!("a message carries at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments"),
            ));
        }
        let mut unique = attachments.clone();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() != attachments.len() {
            return Err(Error::invalid(
                ErrorReason::IdInvalid,
                "attachment_ids",
                "an attachment is named twice",
            ));
        }
        let (conversation, me) = self.membership(caller, id).await?;
        me.require(P::SEND_MESSAGES, "send messages")?;
        if !attachments.is_empty() {
            me.require(P::ATTACH_FILES, "attach files")?;
        }
        let (ciphertext, session_id, cloud) = match payload {
            Payload::Ciphertext { ciphertext, session_id } if conversation.e2ee => {
                (ciphertext, session_id, None)
            }
            Payload::Cloud(draft) if !conversation.e2ee => {
                if draft.reply_to != reply_to {
                    return Err(content_invalid("the content's reply names another message than reply_to"));
                }
                (Vec::new(), Vec::new(), Some(self.cloud_body(id, &me, draft).await?))
            }
            payload => return Err(wrong_mode(conversation.e2ee, &payload)),
        };
        if me.request() {
            // Answering a request accepts it (as replying does in WhatsApp).
            self.accept_membership(id, caller.account_id).await?;
        }
        if let Some(reply) = reply_to
            && self.store.message(id, reply).await?.is_none()
        {
            return Err(Error::not_found(
                ErrorReason::ReplyNotFound,
                "the message replied to is not in this conversation",
            ));
        }
        let slow = match me.access() {
            Some(access) => match self.slow_mode(caller, access, message_id).await? {
                // A channel's sockets had it live when it was stored (after a crash in between,
                // every socket is new and reads it with the history).
                SlowMode::Retried(earlier) if matches!(me, Standing::Channel(_)) => return Ok(*earlier),
                // Members' devices follow a private channel as a group's: publish again, as a
                // retried send to a group does below.
                SlowMode::Retried(earlier) => return Ok(self.published(*earlier).await),
                slow => slow,
            },
            None => SlowMode::Off,
        };
        let message = NewMessage {
            id: message_id,
            conversation_id: id,
            sender: (caller.account_id, caller.device_id),
            ciphertext,
            session_id,
            reply_to,
            attachments,
            cloud,
            now_ms: now_ms(),
        };
        let outcome = self.sends.submit(message).await?;
        if let (SlowMode::Counted { limit, key }, false) = (&slow, matches!(outcome, SendOutcome::Stored(_)))
        {
            // Only a message stored counts against slow mode.
            self.limiter.give_back(limit, key).await?;
        }
        match outcome {
            SendOutcome::Stored(stored) => {
                self.push.message_sent(id, caller.account_id);
                Ok(self.published(stored).await)
            }
            // A retried send publishes again: the first attempt may have died before it could
            // (streams drop what a device has; a channel's live sockets would get it twice).
            SendOutcome::Duplicate(stored) if matches!(me, Standing::Channel(_)) => Ok(stored),
            SendOutcome::Duplicate(stored) => Ok(self.published(stored).await),
            SendOutcome::IdTaken => Err(Error::Conflict {
                reason: ErrorReason::MessageIdTaken,
                message: "another message in this conversation has this id; pick a new one".into(),
            }),
            SendOutcome::NotMember => Err(not_found()),
            SendOutcome::AttachmentRefused(attachment) => Err(Error::precondition(
                ErrorReason::AttachmentNotLinkable,
                format!(
                    "attachment {attachment} cannot go with this message: it must be yours, uploaded \
                     (CompleteUpload), in this conversation, not expired and not sent with another message"
                ),
            )),
        }
    }

    async fn own_message(
        &self,
        caller: &Caller,
        id: ConversationId,
        message: MessageId,
    ) -> Result<(Standing, MessageRecord), Error> {
        let (_, me) = self.membership(caller, id).await?;
        let record = self.store.message(id, message).await?.ok_or_else(|| {
            Error::not_found(ErrorReason::MessageNotFound, "no such message in this conversation")
        })?;
        Ok((me, record))
    }

    /// Replaces a message's ciphertext or cloud content (its sender only).
    pub async fn edit(
        &self,
        caller: &Caller,
        id: ConversationId,
        message: MessageId,
        payload: Payload,
    ) -> Result<MessageRecord, Error> {
        if let Payload::Ciphertext { ciphertext, session_id } = &payload {
            check_ciphertext(ciphertext, session_id)?;
        }
        let (conversation, _) = self.membership(caller, id).await?;
        if conversation.e2ee != matches!(payload, Payload::Ciphertext { .. }) {
            return Err(wrong_mode(conversation.e2ee, &payload));
        }
        let (_, record) = self.own_message(caller, id, message).await?;
        if record.system.is_some() {
            return Err(not_allowed("a system entry cannot be edited"));
        }
        if record.sender_account_id != caller.account_id {
            return Err(not_allowed("only its sender may edit a message"));
        }
        if record.deleted_at_ms != 0 {
            return Err(Error::precondition(
                ErrorReason::MessageDeleted,
                "a deleted message cannot be edited",
            ));
        }
        let edited = match payload {
            Payload::Ciphertext { ciphertext, session_id } => {
                self.store.edit_message(id, message, &ciphertext, &session_id, now_ms()).await?
            }
            Payload::Cloud(draft) => {
                let (_, me) = self.membership(caller, id).await?;
                let body = self.cloud_body(id, &me, draft).await?;
                self.store.edit_cloud_message(id, message, &body, now_ms()).await?
            }
        };
        match edited {
            Some(edited) => Ok(self.published(edited).await),
            None => {
                Err(Error::precondition(ErrorReason::MessageDeleted, "a deleted message cannot be edited"))
            }
        }
    }

    /// Deletes a message's ciphertext (its sender, or a group's owner or admin).
    pub async fn delete(
        &self,
        caller: &Caller,
        id: ConversationId,
        message: MessageId,
    ) -> Result<MessageRecord, Error> {
        let (me, record) = self.own_message(caller, id, message).await?;
        if record.system.is_some() {
            return Err(not_allowed("a system entry cannot be deleted"));
        }
        let someone_elses = record.sender_account_id != caller.account_id;
        if someone_elses && me.role() == Role::Member && !me.channel_allows(P::MANAGE_MESSAGES) {
            return Err(not_allowed(
                "only its sender, a group's owner or admin, or a channel's moderator may delete a message",
            ));
        }
        match self.store.delete_message(id, message, now_ms()).await? {
            Some(deleted) => {
                if let Some(access) = me.access()
                    && someone_elses
                {
                    // A moderator's deletion goes in the guild's audit log.
                    let entry = AuditEntry {
                        actor: caller.account_id,
                        action: AuditAction::MessageDeleted,
                        target: Some(message.as_uuid()),
                        detail: format!("in #{}, sent by {}", access.channel.name, record.sender_account_id),
                        at_ms: now_ms(),
                    };
                    self.store.record_audit(access.channel.guild_id, &entry).await?;
                }
                Ok(self.published(deleted).await)
            }
            // Deleted before: deleting again changes nothing.
            None => Ok(record),
        }
    }

    /// A page of history and whether more exist in that direction.
    pub async fn history(
        &self,
        caller: &Caller,
        id: ConversationId,
        cursor: i64,
        forward: bool,
        limit: u32,
    ) -> Result<(Vec<MessageRecord>, bool), Error> {
        let limit = match limit {
            0 => 50,
            n if n <= MAX_PAGE => n,
            _ => {
                return Err(Error::invalid(
                    ErrorReason::LimitInvalid,
                    "limit",
                    format!("pages are 1 to {MAX_PAGE} messages"),
                ));
            }
        };
        self.membership(caller, id).await?;
        let mut page = self.store.list_messages(id, cursor, forward, i64::from(limit) + 1).await?;
        let more = page.len() > limit as usize;
        page.truncate(limit as usize);
        Ok((page, more))
    }

    /// Marks messages read up to `seq`; returns the read mark and the unread count.
    pub async fn mark_read(
        &self,
        caller: &Caller,
        id: ConversationId,
        seq: i64,
    ) -> Result<(i64, i64), Error> {
        let (conversation, me) = self.membership(caller, id).await?;
        if seq > conversation.last_seq {
            return Err(Error::invalid(
                ErrorReason::SeqInFuture,
                "seq",
                format!("the newest message is number {}", conversation.last_seq),
            ));
        }
        if let Standing::Channel(_) = me {
            // A channel keeps one read mark per member, and sends no receipts.
            let channel = ChannelId::from_uuid(id.as_uuid());
            let mark = self.store.mark_channel_read(channel, caller.account_id, seq).await?;
            return Ok((mark, (conversation.last_seq - mark).max(0)));
        }
        let receipt = self.store.mark_read(id, caller.account_id, seq).await?.ok_or_else(not_found)?;
        if !receipt.notified.is_empty() {
            self.delivery.publish(Notice::Accounts(receipt.notified)).await;
        }
        let unread = self.store.unread_count(id, caller.account_id).await?;
        Ok((receipt.read_seq, unread))
    }
}

impl Conversations {
    async fn not_blocked_by_caller(&self, caller: &Caller, other: AccountId) -> Result<(), Error> {
        if self.store.has_blocked(caller.account_id, other).await? {
            return Err(Error::precondition(
                ErrorReason::AccountBlocked,
                "you have blocked this account; unblock it first",
            ));
        }
        Ok(())
    }

    async fn accept_membership(&self, id: ConversationId, account: AccountId) -> Result<bool, Error> {
        match self.store.accept_request(id, account).await? {
            AcceptOutcome::Accepted => {
                self.announce_members(id, None).await?;
                tracing::info!(conversation = %id, %account, "request accepted");
                Ok(true)
            }
            AcceptOutcome::NotRequest => Ok(false),
            AcceptOutcome::NotMember => Err(not_found()),
        }
    }

    /// Accepts the caller's request in a conversation: it becomes a normal one.
    pub async fn accept_request(
        &self,
        caller: &Caller,
        id: ConversationId,
    ) -> Result<ConversationView, Error> {
        let (conversation, me) = self.membership(caller, id).await?;
        if !me.request() || !self.accept_membership(id, caller.account_id).await? {
            return Err(not_a_request());
        }
        self.view(caller, conversation).await
    }

    /// Declines the caller's request: the caller leaves the conversation (its history stays
    /// with the others).
    pub async fn decline_request(&self, caller: &Caller, id: ConversationId) -> Result<(), Error> {
        let (conversation, me) = self.membership(caller, id).await?;
        if !me.request() {
            return Err(not_a_request());
        }
        // A group shows that the request was declined ("Dave left"); a direct conversation
        // has nobody else to tell.
        let by = (conversation.kind == ConversationKind::Group).then_some(caller.account_id);
        if let Some(entries) = self.store.remove_member_by(id, caller.account_id, by, now_ms()).await? {
            self.announce_members(id, Some(caller.account_id)).await?;
            self.publish_all(entries).await;
        }
        tracing::info!(conversation = %id, account = %caller.account_id, "request declined");
        Ok(())
    }

    /// Blocks an account: the caller leaves the direct conversation with it and its requests,
    /// and nothing more from it reaches the caller. Blocking again changes nothing.
    pub async fn block(&self, caller: &Caller, account: AccountId) -> Result<(), Error> {
        if account == caller.account_id {
            return Err(Error::invalid(
                ErrorReason::CannotBlockSelf,
                "account_id",
                "you cannot block yourself",
            ));
        }
        self.existing_accounts(&[account]).await?;
        let left = self.store.block(caller.account_id, account, now_ms()).await?;
        for id in left {
            self.announce_members(id, Some(caller.account_id)).await?;
        }
        tracing::info!(blocker = %caller.account_id, blocked = %account, "account blocked");
        Ok(())
    }

    /// Lifts a block (nothing happens if there was none).
    pub async fn unblock(&self, caller: &Caller, account: AccountId) -> Result<(), Error> {
        self.store.unblock(caller.account_id, account).await?;
        Ok(())
    }

    /// The accounts the caller blocked and when (ms), most recent first.
    pub async fn blocked(&self, caller: &Caller) -> Result<Vec<(AccountId, i64)>, Error> {
        Ok(self.store.blocked_by(caller.account_id).await?)
    }
}

/// What slow mode made of a send.
enum SlowMode {
    /// Not on here, or not for the caller.
    Off,
    /// Counted against `key`; given back if the message is not stored.
    Counted { limit: Limit, key: String },
    /// Too soon, but the message is one the caller already sent: a retry, answered with it.
    Retried(Box<MessageRecord>),
}

impl Conversations {
    /// Slow mode: in a channel that has it, a member sends one message per `slow_mode_s`
    /// (who may manage the channel or its messages is exempt, as in Discord). Too soon is
    /// `RATE_LIMITED` with the time left, except for a retry of a message already stored.
    async fn slow_mode(
        &self,
        caller: &Caller,
        access: &ChannelAccess,
        message_id: MessageId,
    ) -> Result<SlowMode, Error> {
        let Ok(seconds) = u64::try_from(access.channel.slow_mode_s) else { return Ok(SlowMode::Off) };
        let exempt = access.permissions.contains(P::MANAGE_MESSAGES)
            || access.permissions.contains(P::MANAGE_CHANNELS);
        if seconds == 0 || exempt {
            return Ok(SlowMode::Off);
        }
        let limit = Limit::new(1, std::time::Duration::from_secs(seconds));
        let key = format!("slow-mode:{}:{}", access.channel.id, caller.account_id);
        if self.limiter.try_take(&limit, &key).await? {
            return Ok(SlowMode::Counted { limit, key });
        }
        let conversation = access.channel.id.conversation();
        match self.store.message(conversation, message_id).await? {
            Some(earlier) if earlier.sender_account_id == caller.account_id => {
                Ok(SlowMode::Retried(Box::new(earlier)))
            }
            _ => {
                // Refused with the time left (a full period only if it just ran out).
                self.limiter.check(&limit, &key).await?;
                Err(Error::RateLimited { retry_after: limit.period })
            }
        }
    }
}

fn not_a_request() -> Error {
    Error::precondition(ErrorReason::NotARequest, "this conversation is not a request waiting for you")
}

fn parse_page_token(token: &str) -> Result<(i64, ConversationId), Error> {
    let invalid = || {
        Error::invalid(
            ErrorReason::PageTokenInvalid,
            "page_token",
            "use the next_page_token of the page before",
        )
    };
    let (ms, id) = token.split_once('.').ok_or_else(invalid)?;
    Ok((ms.parse().map_err(|_| invalid())?, id.parse().map_err(|_| invalid())?))
}

impl Conversations {
    /// Tells every node a message changed, and hands it back.
    pub(super) async fn published(&self, message: MessageRecord) -> MessageRecord {
        let message = Arc::new(message);
        self.delivery.publish(Notice::Message(message.clone())).await;
        Arc::unwrap_or_clone(message)
    }

    /// Publishes system entries in their order.
    async fn publish_all(&self, entries: Vec<MessageRecord>) {
        for entry in entries {
            self.published(entry).await;
        }
    }
}

/// `WRONG_MODE`: a payload of the other kind than the conversation.
fn wrong_mode(e2ee: bool, payload: &Payload) -> Error {
    let message = match (e2ee, payload) {
        (true, Payload::Cloud(_)) => {
            "this conversation is end-to-end encrypted: send ciphertext, never plaintext content"
        }
        _ => "this is a cloud conversation: send content, not ciphertext",
    };
    Error::invalid(ErrorReason::WrongMode, if e2ee { "content" } else { "ciphertext" }, message)
}

/// `CONTENT_INVALID` with what is wrong.
pub(super) fn content_invalid(message: impl Into<String>) -> Error {
    Error::invalid(ErrorReason::ContentInvalid, "content", message)
}

impl Conversations {
    /// What the store keeps of a cloud draft, once every account it mentions is a member.
    async fn cloud_body(
        &self,
        id: ConversationId,
        me: &Standing,
        draft: CloudDraft,
    ) -> Result<CloudBody, Error> {
        match me {
            Standing::Member(_) | Standing::Sealed(..) if !draft.mentions.is_empty() => {
                let members: Vec<AccountId> =
                    self.store.members(id).await?.into_iter().map(|m| m.account_id).collect();
                if let Some(stranger) = draft.mentions.iter().find(|m| !members.contains(m)) {
                    return Err(content_invalid(format!("{stranger} is not a member of this conversation")));
                }
            }
            Standing::Channel(access) => {
                for account in &draft.mentions {
                    if self.store.guild_member(access.channel.guild_id, *account).await?.is_none() {
                        return Err(content_invalid(format!("{account} is not a member of this guild")));
                    }
                }
            }
            Standing::Member(_) | Standing::Sealed(..) => {}
        }
        let mut mentions = draft.mentions;
        mentions.sort_unstable();
        mentions.dedup();
        Ok(CloudBody { content: draft.content, search_text: draft.text, mentions })
    }
}

fn check_ciphertext(ciphertext: &[u8], session_id: &[u8]) -> Result<(), Error> {
    if ciphertext.is_empty() {
        return Err(Error::invalid(ErrorReason::MessageEmpty, "ciphertext", "a message cannot be empty"));
    }
    if ciphertext.len() > MAX_CIPHERTEXT {
        return Err(Error::invalid(
            ErrorReason::MessageTooLarge,
            "ciphertext",
            format!("a message is at most {} KiB", MAX_CIPHERTEXT / 1024),
        ));
    }
    if session_id.len() > MAX_SESSION_ID {
        return Err(Error::invalid(
            ErrorReason::SessionIdInvalid,
            "session_id",
            format!("a session id is at most {MAX_SESSION_ID} bytes"),
        ));
    }
    Ok(())
}
