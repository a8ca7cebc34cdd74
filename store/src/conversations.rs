//! Conversations, members and messages (`conversations`, `conversation_members`, `messages`).
//! Messages are numbered per conversation without gaps: the number is taken from the
//! conversation row in the same transaction that stores the message. Every change a device must
//! hear about (a new, edited or deleted message) takes the next `change_seq` the same way, and
//! membership changes keep the delivery cursors and the account stream in step (`delivery.rs`),
//! all in the transaction that makes the change.
//!
//! Consent before contact (migration 0011): a member added by someone who is not their contact
//! (see [`ConversationStore::open_direct`]) joins with `request` set until they accept; an
//! account that blocked the one adding it is not added at all (`blocks.rs`).

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::StoreError;
use super::delivery::{AccountEvent, Receipt};
use crate::ids::{AccountId, AttachmentId, AvatarId, ConversationId, DeviceId, MessageId};

/// Direct (two people), group, or a guild's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationKind {
    /// Two accounts, one conversation per pair.
    Direct,
    /// A titled group with roles.
    Group,
    /// A guild's channel (`guilds.rs`): who is in it comes from the guild's roles, not from
    /// member rows (but for a private E2EE channel's).
    Channel,
}

/// A member's role (groups; both members of a direct conversation are `Member`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Made the group (or inherited it); may do everything.
    Owner,
    /// May add and remove members.
    Admin,
    /// Takes part.
    Member,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    pub(super) fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            other => Err(StoreError::Corrupt(format!("member role {other:?}"))),
        }
    }
}

/// A conversation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    /// Its id.
    pub id: ConversationId,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Whether it is end-to-end encrypted (else a cloud conversation, whose messages the server
    /// keeps as Content).
    pub e2ee: bool,
    /// Groups only.
    pub title: Option<String>,
    /// Newest message's sequence number.
    pub last_seq: i64,
    /// Newest change's number (messages sent, edited or deleted).
    pub last_change: i64,
    /// Last message or creation (ms).
    pub last_activity_at_ms: i64,
    /// Creation (ms).
    pub created_at_ms: i64,
    /// Groups: the current avatar's blob (`avatars/<id>`), if one is set.
    pub avatar_id: Option<AvatarId>,
    /// Goes up with every avatar change (set or removed); 0: never had one.
    pub avatar_version: i64,
    /// The disappearing-message timer in seconds (0: off).
    pub message_timer_s: i64,
}

/// A member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// Who.
    pub account_id: AccountId,
    /// Their role.
    pub role: Role,
    /// When they joined (ms).
    pub joined_at_ms: i64,
    /// Read up to here.
    pub read_seq: i64,
    /// Received (by at least one device) up to here.
    pub delivered_seq: i64,
    /// A request this member has not accepted yet.
    pub request: bool,
    /// Who added this member (`None`: they started the conversation).
    pub added_by: Option<AccountId>,
}

/// Which of an account's conversations to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationFilter {
    /// All of them.
    All,
    /// Those the account has accepted (or started).
    Accepted,
    /// Requests it has not accepted yet.
    Requests,
}

/// What adding members did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    /// These accounts were added (others were members already, or blocked the one adding).
    Added(Vec<AccountId>),
    /// The group would have more than the largest number of members; nothing was added.
    Full,
    /// A private E2EE channel: this account is not a member of its guild; nothing was added.
    NotInGuild(AccountId),
    /// Not a private E2EE channel (any more: it may have been deleted); nothing was added.
    NotAChannel,
}

/// What accepting a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// Accepted now: the other members are told the member's marks.
    Accepted,
    /// The membership was not a request (accepted before, or started by the member).
    NotRequest,
    /// Not a member.
    NotMember,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Chosen by the sender.
    pub id: MessageId,
    /// Where.
    pub conversation_id: ConversationId,
    /// Its number in the conversation (1, 2, …).
    pub seq: i64,
    /// Who sent it.
    pub sender_account_id: AccountId,
    /// From which device.
    pub sender_device_id: DeviceId,
    /// The ciphertext; `None` once deleted.
    pub ciphertext: Option<Vec<u8>>,
    /// Megolm session id (opaque).
    pub session_id: Vec<u8>,
    /// The message it answers.
    pub reply_to: Option<MessageId>,
    /// When it was stored (ms).
    pub sent_at_ms: i64,
    /// Last edit (0: none).
    pub edited_at_ms: i64,
    /// Deletion (0: not deleted).
    pub deleted_at_ms: i64,
    /// The conversation's change number of its latest state (sending, editing, deleting).
    pub change_seq: i64,
    /// Set on a system entry the server wrote (see [`SystemEntry`]); `None` on a message a
    /// device sent.
    pub system: Option<SystemEntry>,
    /// Cloud conversations: the Content protobuf; `None` in E2EE ones and once deleted.
    pub content: Option<Vec<u8>>,
    /// When it disappears (0: never).
    pub expires_at_ms: i64,
    /// When it was pinned (0: not pinned).
    pub pinned_at_ms: i64,
    /// Who pinned it.
    pub pinned_by: Option<AccountId>,
    /// Cloud conversations: its reactions, most used first.
    pub reactions: Vec<ReactionGroup>,
    /// The last change of its reactions or pin (0: none), which devices hear of as an edit.
    pub updated_at_ms: i64,
}

/// One emoji's reactions to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionGroup {
    /// The emoji.
    pub emoji: String,
    /// How many reacted with it.
    pub count: i64,
    /// Who, earliest first (at most [`ReactionGroup::MAX_NAMED`]).
    pub accounts: Vec<AccountId>,
}

impl ReactionGroup {
    /// The most accounts a group names.
    pub const MAX_NAMED: usize = 50;

    /// The stored summary: a line per emoji, "emoji TAB count TAB ids separated by spaces" (an
    /// emoji holds no whitespace).
    pub fn encode_all(groups: &[Self]) -> Option<String> {
        (!groups.is_empty()).then(|| {
            groups
                .iter()
                .map(|g| {
                    let ids: Vec<String> = g.accounts.iter().map(ToString::to_string).collect();
                    format!("{}\t{}\t{}", g.emoji, g.count, ids.join(" "))
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    /// Reads what [`ReactionGroup::encode_all`] wrote.
    pub fn decode_all(stored: Option<&str>) -> Result<Vec<Self>, StoreError> {
        let Some(stored) = stored else { return Ok(Vec::new()) };
        let corrupt = || StoreError::Corrupt(format!("reaction summary {stored:?}"));
        stored
            .lines()
            .map(|line| {
                let mut parts = line.split('\t');
                let (Some(emoji), Some(count), Some(ids)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(corrupt());
                };
                let accounts = ids
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(|id| id.parse::<Uuid>().map(AccountId::from_uuid).map_err(|_| corrupt()))
                    .collect::<Result<_, _>>()?;
                Ok(Self { emoji: emoji.to_owned(), count: count.parse().map_err(|_| corrupt())?, accounts })
            })
            .collect()
    }
}

/// What a cloud message says, as the server keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudBody {
    /// The Content protobuf, as the client sent it.
    pub content: Vec<u8>,
    /// Its words, for search (text, file name).
    pub search_text: String,
    /// The members it mentions.
    pub mentions: Vec<AccountId>,
}

/// A line the server writes into a group's history when the group changes (migration 0013):
/// a row of `messages` with its own seq, no ciphertext, the actor as sender and the nil device.
/// It never counts as unread and cannot be edited or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemEntry {
    /// The actor added this account.
    MemberAdded(AccountId),
    /// The actor removed this account.
    MemberRemoved(AccountId),
    /// The actor left (or declined the request).
    MemberLeft,
    /// This account now has this role (given by the owner, or the group passed to it when its
    /// owner, the actor, left).
    RoleChanged(AccountId, Role),
    /// The actor renamed the group to this.
    TitleChanged(String),
    /// The actor set the disappearing-message timer to this many seconds (0: off).
    TimerChanged(i64),
}

impl SystemEntry {
    /// The stored kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MemberAdded(_) => "member_added",
            Self::MemberRemoved(_) => "member_removed",
            Self::MemberLeft => "member_left",
            Self::RoleChanged(..) => "role_changed",
            Self::TitleChanged(_) => "title_changed",
            Self::TimerChanged(_) => "timer_changed",
        }
    }

    /// Whom it is about.
    pub fn target(&self) -> Option<AccountId> {
        match self {
            Self::MemberAdded(a) | Self::MemberRemoved(a) | Self::RoleChanged(a, _) => Some(*a),
            Self::MemberLeft | Self::TitleChanged(_) | Self::TimerChanged(_) => None,
        }
    }

    /// A role change's role.
    pub fn role(&self) -> Option<Role> {
        match self {
            Self::RoleChanged(_, role) => Some(*role),
            _ => None,
        }
    }

    /// A title change's title.
    pub fn title(&self) -> Option<&str> {
        match self {
            Self::TitleChanged(title) => Some(title),
            _ => None,
        }
    }

    /// A timer change's seconds.
    pub fn timer(&self) -> Option<i64> {
        match self {
            Self::TimerChanged(seconds) => Some(*seconds),
            _ => None,
        }
    }

    /// Rebuilds an entry from its stored parts (`None` when `kind` is `None`).
    pub fn from_parts(
        kind: Option<&str>,
        target: Option<AccountId>,
        role: Option<&str>,
        title: Option<String>,
        timer: Option<i64>,
    ) -> Result<Option<Self>, StoreError> {
        let Some(kind) = kind else { return Ok(None) };
        let corrupt = || StoreError::Corrupt(format!("system entry {kind:?} without its details"));
        Ok(Some(match kind {
            "member_added" => Self::MemberAdded(target.ok_or_else(corrupt)?),
            "member_removed" => Self::MemberRemoved(target.ok_or_else(corrupt)?),
            "member_left" => Self::MemberLeft,
            "role_changed" => {
                Self::RoleChanged(target.ok_or_else(corrupt)?, Role::parse(role.ok_or_else(corrupt)?)?)
            }
            "title_changed" => Self::TitleChanged(title.ok_or_else(corrupt)?),
            "timer_changed" => Self::TimerChanged(timer.ok_or_else(corrupt)?),
            other => return Err(StoreError::Corrupt(format!("system entry kind {other:?}"))),
        }))
    }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Chosen by the sender.
    pub id: MessageId,
    /// Where.
    pub conversation_id: ConversationId,
    /// Who.
    pub sender: (AccountId, DeviceId),
    /// Ciphertext.
    pub ciphertext: Vec<u8>,
    /// Megolm session id.
    pub session_id: Vec<u8>,
    /// Answered message.
    pub reply_to: Option<MessageId>,
    /// Attachments it carries (linked in the same transaction).
    pub attachments: Vec<AttachmentId>,
    /// Cloud conversations: what it says (then `ciphertext` and `session_id` are empty).
    pub cloud: Option<CloudBody>,
    /// Now (ms).
    pub now_ms: i64,
}

/// What storing a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Stored with the next sequence number.
    Stored(MessageRecord),
    /// The same message was stored before (a retried send): nothing new.
    Duplicate(MessageRecord),
    /// The id belongs to a different message of this conversation.
    IdTaken,
    /// The sender is not a member (or the conversation is gone).
    NotMember,
    /// This attachment cannot go with the message (not the sender's, not uploaded, in another
    /// conversation, linked to another message, expired or absent); nothing was stored.
    AttachmentRefused(AttachmentId),
}

/// Conversations and messages.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Creates the direct conversation of a pair unless it exists; returns its id and whether
    /// it was made now. `pair.0` (the caller) joins it if not a member, accepted; `pair.1`
    /// joins if not a member and has not blocked `pair.0`, as a request unless the two are
    /// contacts (they share a conversation both have accepted, and neither blocked the other).
    async fn open_direct(
        &self,
        id: ConversationId,
        pair: (AccountId, AccountId),
        now_ms: i64,
    ) -> Result<(ConversationId, bool), StoreError> {
        self.open_direct_in(id, pair, true, now_ms).await
    }
    /// [`ConversationStore::open_direct`] for the E2EE (`e2ee`) or the cloud conversation of
    /// the pair: a pair may have one of each.
    async fn open_direct_in(
        &self,
        id: ConversationId,
        pair: (AccountId, AccountId),
        e2ee: bool,
        now_ms: i64,
    ) -> Result<(ConversationId, bool), StoreError>;
    /// Creates a group with `owner` and `members` (each a request unless a contact of the
    /// owner; those who blocked the owner are left out).
    async fn create_group(
        &self,
        id: ConversationId,
        title: &str,
        owner: AccountId,
        members: &[AccountId],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.create_group_in(id, title, owner, members, true, now_ms).await
    }
    /// [`ConversationStore::create_group`], end-to-end encrypted (`e2ee`) or cloud.
    async fn create_group_in(
        &self,
        id: ConversationId,
        title: &str,
        owner: AccountId,
        members: &[AccountId],
        e2ee: bool,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// One conversation.
    async fn conversation(&self, id: ConversationId) -> Result<Option<ConversationRecord>, StoreError>;
    /// Its members, oldest first.
    async fn members(&self, id: ConversationId) -> Result<Vec<MemberRecord>, StoreError>;
    /// One member, if `account` is one.
    async fn member(
        &self,
        id: ConversationId,
        account: AccountId,
    ) -> Result<Option<MemberRecord>, StoreError>;
    /// Up to `limit` of the account's conversations, most recently active first, starting
    /// after `after` (the last activity and id of the previous page's last one).
    async fn conversations_of(
        &self,
        account: AccountId,
        filter: ConversationFilter,
        after: Option<(i64, ConversationId)>,
        limit: i64,
    ) -> Result<Vec<ConversationRecord>, StoreError>;
    /// `by` adds members (existing ones are left as they are; each new one is a request unless
    /// a contact of `by`; those who blocked `by` are left out), unless the conversation would
    /// then have more than `max_members`.
    async fn add_members(
        &self,
        id: ConversationId,
        by: AccountId,
        accounts: &[AccountId],
        max_members: i64,
        now_ms: i64,
    ) -> Result<AddOutcome, StoreError> {
        Ok(self.add_members_by(id, by, accounts, max_members, now_ms, false).await?.0)
    }
    /// [`ConversationStore::add_members`]; with `entries`, also writes the system entries in
    /// the same transaction (`by` added each new member) and returns them, oldest first.
    async fn add_members_by(
        &self,
        id: ConversationId,
        by: AccountId,
        accounts: &[AccountId],
        max_members: i64,
        now_ms: i64,
        entries: bool,
    ) -> Result<(AddOutcome, Vec<MessageRecord>), StoreError>;
    /// Adds members of a private E2EE channel's guild to the channel, as `by`, in one
    /// transaction: all of them (as plain members, never requests: joining the guild was their
    /// consent) or, if one is not a member of the guild or they would make more than
    /// `max_members`, none. Each added gets a system entry by `by`.
    async fn add_channel_members(
        &self,
        id: ConversationId,
        by: AccountId,
        accounts: &[AccountId],
        max_members: i64,
        now_ms: i64,
    ) -> Result<(AddOutcome, Vec<MessageRecord>), StoreError>;
    /// Accepts `account`'s request in a conversation: it hears of it on its other devices, and
    /// the other members get its read and delivered marks.
    async fn accept_request(
        &self,
        id: ConversationId,
        account: AccountId,
    ) -> Result<AcceptOutcome, StoreError>;
    /// Removes a member; if it was the owner, the longest-standing admin (else member) becomes
    /// owner. `false` if not a member. Writes no system entry (see
    /// [`ConversationStore::remove_member_by`]).
    async fn remove_member(&self, id: ConversationId, account: AccountId) -> Result<bool, StoreError> {
        Ok(self.remove_member_by(id, account, None, 0).await?.is_some())
    }
    /// Removes a member as [`ConversationStore::remove_member`] does; with `by`, in the same
    /// transaction, writes the system entries: `by` removed it (or left, when `by` is the
    /// member), and the group passed to its new owner. `None` if not a member, else the entries.
    async fn remove_member_by(
        &self,
        id: ConversationId,
        account: AccountId,
        by: Option<AccountId>,
        now_ms: i64,
    ) -> Result<Option<Vec<MessageRecord>>, StoreError>;
    /// Changes a member's role. `false` if not a member. Writes no system entry.
    async fn set_role(&self, id: ConversationId, account: AccountId, role: Role) -> Result<bool, StoreError> {
        Ok(self.set_role_by(id, account, role, None, 0).await?.is_some())
    }
    /// Changes a member's role; with `by`, and if the role is new, writes the system entry in
    /// the same transaction. `None` if not a member, else the entries.
    async fn set_role_by(
        &self,
        id: ConversationId,
        account: AccountId,
        role: Role,
        by: Option<AccountId>,
        now_ms: i64,
    ) -> Result<Option<Vec<MessageRecord>>, StoreError>;
    /// Renames a group and writes the system entry in the same transaction. `None` if the
    /// conversation is absent or the title is the same.
    async fn rename_group(
        &self,
        id: ConversationId,
        by: AccountId,
        title: &str,
        now_ms: i64,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// Stores a message (see [`SendOutcome`]).
    async fn send_message(&self, message: &NewMessage) -> Result<SendOutcome, StoreError> {
        let mut outcomes = self.send_messages(std::slice::from_ref(message)).await?;
        outcomes.pop().unwrap_or_else(|| Err(StoreError::Corrupt("a send without an outcome".into())))
    }
    /// [`ConversationStore::send_message`] for several messages in one transaction (group
    /// commit: one fsync for all). Each message gets its own outcome, as if sent alone: a
    /// refusal or an error undoes that message only (a savepoint). `Err` when the transaction
    /// as a whole failed: then none was stored.
    async fn send_messages(
        &self,
        batch: &[NewMessage],
    ) -> Result<Vec<Result<SendOutcome, StoreError>>, StoreError>;
    /// One message of a conversation.
    async fn message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// Replaces a live message's ciphertext. `None` if it is deleted or absent.
    async fn edit_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
        ciphertext: &[u8],
        session_id: &[u8],
        now_ms: i64,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// Deletes a message's ciphertext (keeps its place in the sequence). `None` if absent or
    /// deleted before.
    async fn delete_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
        now_ms: i64,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// Up to `limit` messages after (`forward`) or before `cursor`, in that direction's order.
    /// A backward cursor of 0 means "from the newest".
    async fn list_messages(
        &self,
        conversation: ConversationId,
        cursor: i64,
        forward: bool,
        limit: i64,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// Moves the member's read mark to `seq` (never backwards; the caller refuses marks past
    /// the newest message) and tells the members whose messages it covers, and the reader's own
    /// devices. `None` if not a member.
    async fn mark_read(
        &self,
        conversation: ConversationId,
        account: AccountId,
        seq: i64,
    ) -> Result<Option<Receipt>, StoreError>;
    /// Messages from others after the member's read mark that are not deleted.
    async fn unread_count(&self, conversation: ConversationId, account: AccountId)
    -> Result<i64, StoreError>;
}

const CONVERSATION_COLUMNS: &str = "id, kind, mode, title, last_seq, last_change, last_activity_at_ms, created_at_ms, avatar_id, avatar_version, message_timer_s";
pub(super) const MESSAGE_COLUMNS: &str = "id, conversation_id, seq, sender_account_id, sender_device_id, \
                               ciphertext, session_id, reply_to, sent_at_ms, edited_at_ms, deleted_at_ms, change_seq, \
                               system_kind, system_target, system_role, system_title, system_timer, \
                               content, expires_at_ms, pinned_at_ms, pinned_by, reactions, updated_at_ms";
const MEMBER_COLUMNS: &str = "account_id, role, joined_at_ms, read_seq, delivered_seq, request, added_by";

/// Decoders shared by both backends (rows differ in type, the columns do not).
macro_rules! decode {
    (conversation $row:expr) => {{
        let row = $row;
        ConversationRecord {
            id: ConversationId::from_uuid(row.try_get::<Uuid, _>("id")?),
            kind: match row.try_get::<String, _>("kind")?.as_str() {
                "direct" => ConversationKind::Direct,
                "group" => ConversationKind::Group,
                "channel" => ConversationKind::Channel,
                other => return Err(StoreError::Corrupt(format!("conversation kind {other:?}"))),
            },
            e2ee: row.try_get::<String, _>("mode")? == "e2ee",
            title: row.try_get("title")?,
            last_seq: row.try_get("last_seq")?,
            last_change: row.try_get("last_change")?,
            last_activity_at_ms: row.try_get("last_activity_at_ms")?,
            created_at_ms: row.try_get("created_at_ms")?,
            avatar_id: row.try_get::<Option<Uuid>, _>("avatar_id")?.map(AvatarId::from_uuid),
            avatar_version: row.try_get("avatar_version")?,
            message_timer_s: row.try_get("message_timer_s")?,
        }
    }};
    (member $row:expr) => {{
        let row = $row;
        MemberRecord {
            account_id: AccountId::from_uuid(row.try_get::<Uuid, _>("account_id")?),
            role: Role::parse(&row.try_get::<String, _>("role")?)?,
            joined_at_ms: row.try_get("joined_at_ms")?,
            read_seq: row.try_get("read_seq")?,
            delivered_seq: row.try_get("delivered_seq")?,
            request: row.try_get("request")?,
            added_by: row.try_get::<Option<Uuid>, _>("added_by")?.map(AccountId::from_uuid),
        }
    }};
    (message $row:expr) => {{
        let row = $row;
        MessageRecord {
            id: MessageId::from_uuid(row.try_get::<Uuid, _>("id")?),
            conversation_id: ConversationId::from_uuid(row.try_get::<Uuid, _>("conversation_id")?),
            seq: row.try_get("seq")?,
            sender_account_id: AccountId::from_uuid(row.try_get::<Uuid, _>("sender_account_id")?),
            sender_device_id: DeviceId::from_uuid(row.try_get::<Uuid, _>("sender_device_id")?),
            ciphertext: row.try_get("ciphertext")?,
            session_id: row.try_get("session_id")?,
            reply_to: row.try_get::<Option<Uuid>, _>("reply_to")?.map(MessageId::from_uuid),
            sent_at_ms: row.try_get("sent_at_ms")?,
            edited_at_ms: row.try_get("edited_at_ms")?,
            deleted_at_ms: row.try_get("deleted_at_ms")?,
            change_seq: row.try_get("change_seq")?,
            system: crate::conversations::SystemEntry::from_parts(
                row.try_get::<Option<String>, _>("system_kind")?.as_deref(),
                row.try_get::<Option<Uuid>, _>("system_target")?.map(AccountId::from_uuid),
                row.try_get::<Option<String>, _>("system_role")?.as_deref(),
                row.try_get("system_title")?,
                row.try_get("system_timer")?,
            )?,
            content: row.try_get("content")?,
            expires_at_ms: row.try_get("expires_at_ms")?,
            pinned_at_ms: row.try_get("pinned_at_ms")?,
            pinned_by: row.try_get::<Option<Uuid>, _>("pinned_by")?.map(AccountId::from_uuid),
            reactions: crate::conversations::ReactionGroup::decode_all(
                row.try_get::<Option<String>, _>("reactions")?.as_deref(),
            )?,
            updated_at_ms: row.try_get("updated_at_ms")?,
        }
    }};
}

pub(super) use decode;

/// Decodes an optional row with [`decode!`].
macro_rules! decode_opt {
    ($kind:ident $row:expr) => {
        match $row {
            Some(row) => Some(decode!($kind row)),
            None => None,
        }
    };
}

/// Decodes every row of a query with [`decode!`].
macro_rules! decode_all {
    ($kind:ident $rows:expr) => {{
        let rows = $rows;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(decode!($kind row));
        }
        out
    }};
}

pub(super) use decode_all;

/// One account joining a conversation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Joining {
    pub(super) account: AccountId,
    pub(super) role: Role,
    /// Joins as a request (not a contact of `added_by`).
    pub(super) request: bool,
    pub(super) added_by: Option<AccountId>,
}

/// Adds `accounts` ([`Joining`]) to a conversation inside a transaction: each new member's
/// devices get a delivery cursor at the conversation's current change, and the new member hears
/// of it (and, with `announce`, so do the others). Evaluates to the accounts actually added.
macro_rules! join_members {
    ($tx:expr, $id:expr, $accounts:expr, $now_ms:expr, $announce:expr) => {{
        let joining: &[Joining] = $accounts;
        crate::delivery::lock_memberships!($tx, joining.iter().map(|j| j.account).collect());
        let mut added: Vec<Joining> = Vec::new();
        for j in joining {
            let account = &j.account;
            let inserted = sqlx::query(
                "INSERT INTO conversation_members (conversation_id, account_id, role, joined_at_ms, request, added_by) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (conversation_id, account_id) DO NOTHING",
            )
            .bind($id.as_uuid())
            .bind(account.as_uuid())
            .bind(j.role.as_str())
            .bind($now_ms)
            .bind(j.request)
            .bind(j.added_by.map(|a| a.as_uuid()))
            .execute(&mut *$tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                sqlx::query(
                    "INSERT INTO device_cursors (device_id, conversation_id, change_seq) \
                     SELECT d.id, $1, (SELECT last_change FROM conversations WHERE id = $1) \
                     FROM devices d WHERE d.account_id = $2",
                )
                .bind($id.as_uuid())
                .bind(account.as_uuid())
                .execute(&mut *$tx)
                .await?;
                added.push(*j);
            }
        }
        let everyone: Vec<AccountId> = if $announce { member_ids!($tx, $id) } else { Vec::new() };
        let mut events: Vec<(AccountId, AccountEvent)> = Vec::new();
        for j in &added {
            let recipients: &[AccountId] = if $announce { &everyone } else { std::slice::from_ref(&j.account) };
            for recipient in recipients {
                // Whether it is a request is the joiner's own business.
                let request = j.request && *recipient == j.account;
                let event =
                    AccountEvent::Member { conversation: $id, account: j.account, role: Some(j.role), request };
                events.push((*recipient, event));
            }
        }
        crate::delivery::push_events!($tx, events);
        added.into_iter().map(|j| j.account).collect::<Vec<AccountId>>()
    }};
}

pub(super) use join_members;

/// Admits `$joining` to conversation `$id` (inside transaction `$tx`, which it ends) unless
/// they would make it more than `$max` members; with `$entries`, writes a system entry by `$by`
/// for each. Returns from the enclosing function with [`AddOutcome`] and the entries.
macro_rules! admit {
    ($tx:expr, $id:expr, $by:expr, $joining:expr, $max:expr, $now_ms:expr, $entries:expr) => {{
        let joining: &[Joining] = $joining;
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM conversation_members WHERE conversation_id = $1")
                .bind($id.as_uuid())
                .fetch_one(&mut *$tx)
                .await?;
        if count + joining.len() as i64 > $max {
            $tx.rollback().await?;
            return Ok((AddOutcome::Full, Vec::new()));
        }
        let added = join_members!($tx, $id, joining, $now_ms, true);
        // After joining, so the new members receive their own line too.
        let mut entries = Vec::with_capacity(added.len());
        for account in added.iter().filter(|_| $entries) {
            entries.push(system_entry!($tx, $id, $by, SystemEntry::MemberAdded(*account), $now_ms));
        }
        $tx.commit().await?;
        Ok((AddOutcome::Added(added), entries))
    }};
}

/// Whether `$a` and `$b` are contacts: members of one conversation both have accepted, with no
/// block between them.
macro_rules! are_contacts {
    ($executor:expr, $a:expr, $b:expr) => {{
        let (a, b): (AccountId, AccountId) = ($a, $b);
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM conversation_members x JOIN conversation_members y ON y.conversation_id = x.conversation_id \
             WHERE x.account_id = $1 AND y.account_id = $2 AND x.request = FALSE AND y.request = FALSE \
             AND NOT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) \
             OR (blocker_id = $2 AND blocked_id = $1)) LIMIT 1",
        )
        .bind(a.as_uuid())
        .bind(b.as_uuid())
        .fetch_optional($executor)
        .await?;
        found.is_some()
    }};
}
pub(super) use are_contacts;

/// Whether `$blocker` has blocked `$blocked`.
macro_rules! has_blocked {
    ($executor:expr, $blocker:expr, $blocked:expr) => {{
        let (blocker, blocked): (AccountId, AccountId) = ($blocker, $blocked);
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
                .bind(blocker.as_uuid())
                .bind(blocked.as_uuid())
                .fetch_optional($executor)
                .await?;
        found.is_some()
    }};
}

/// How the accounts `$by` adds join (inside a transaction): left out if they blocked `$by`,
/// else as plain members, requests unless contacts of `$by`. Evaluates to `Vec<Joining>`.
macro_rules! joining_by {
    ($tx:expr, $by:expr, $accounts:expr) => {{
        let by: AccountId = $by;
        let mut joining: Vec<Joining> = Vec::new();
        for account in $accounts {
            let account: AccountId = *account;
            if account == by || has_blocked!(&mut *$tx, account, by) {
                continue;
            }
            let request = !are_contacts!(&mut *$tx, by, account);
            joining.push(Joining { account, role: Role::Member, request, added_by: Some(by) });
        }
        joining
    }};
}

/// Takes `$account` out of a conversation inside a transaction: its devices stop following it,
/// the others hear it left, and if it was the owner the longest-standing admin (else member)
/// becomes owner. Evaluates to `None` if it was not a member, else to the new owner if there is one.
macro_rules! leave_conversation {
    ($tx:expr, $id:expr, $account:expr) => {{
        let (id, account): (ConversationId, AccountId) = ($id, $account);
        let removed = sqlx::query(
            "DELETE FROM conversation_members WHERE conversation_id = $1 AND account_id = $2 RETURNING role",
        )
        .bind(id.as_uuid())
        .bind(account.as_uuid())
        .fetch_optional(&mut *$tx)
        .await?;
        match removed {
            None => None,
            Some(row) => {
                // Its devices stop following the conversation at once.
                sqlx::query(
                    "DELETE FROM device_cursors WHERE conversation_id = $1 \
                     AND device_id IN (SELECT id FROM devices WHERE account_id = $2)",
                )
                .bind(id.as_uuid())
                .bind(account.as_uuid())
                .execute(&mut *$tx)
                .await?;
                let mut recipients = crate::conversations::member_ids!($tx, id);
                let new_owner: Option<(Uuid, bool)> =
                    if Role::parse(&row.try_get::<String, _>("role")?)? == Role::Owner {
                        // Hand the group on: the longest-standing admin, else the longest-standing
                        // member (one who accepted it before one who has not).
                        sqlx::query_as(
                            "UPDATE conversation_members SET role = 'owner' \
                             WHERE conversation_id = $1 AND account_id = \
                             (SELECT account_id FROM conversation_members WHERE conversation_id = $1 \
                              ORDER BY CASE role WHEN 'admin' THEN 0 ELSE 1 END, request, joined_at_ms, account_id LIMIT 1) \
                             RETURNING account_id, request",
                        )
                        .bind(id.as_uuid())
                        .fetch_optional(&mut *$tx)
                        .await?
                    } else {
                        None
                    };
                let mut events = Vec::new();
                let mut handed_to: Option<AccountId> = None;
                if let Some((owner, request)) = new_owner {
                    let owner = AccountId::from_uuid(owner);
                    handed_to = Some(owner);
                    for recipient in &recipients {
                        // Whether it is a request is the new owner's own business.
                        let request = request && *recipient == owner;
                        let event =
                            AccountEvent::Member { conversation: id, account: owner, role: Some(Role::Owner), request };
                        events.push((*recipient, event));
                    }
                }
                recipients.push(account);
                let event = AccountEvent::Member { conversation: id, account, role: None, request: false };
                events.extend(crate::delivery::to_all(&recipients, &event));
                crate::delivery::push_events!($tx, events);
                Some(handed_to)
            }
        }
    }};
}
pub(super) use leave_conversation;

/// Writes a system entry into a conversation's history inside a transaction: it takes the next
/// seq and change number like a message (and counts as activity). Evaluates to the stored
/// [`MessageRecord`].
macro_rules! system_entry {
    ($tx:expr, $id:expr, $actor:expr, $entry:expr, $now_ms:expr) => {{
        let (id, actor, entry, now_ms): (ConversationId, AccountId, SystemEntry, i64) = ($id, $actor, $entry, $now_ms);
        let (seq, change): (i64, i64) = sqlx::query_as(
            "UPDATE conversations SET last_seq = last_seq + 1, last_change = last_change + 1, \
             last_activity_at_ms = $2 WHERE id = $1 RETURNING last_seq, last_change",
        )
        .bind(id.as_uuid())
        .bind(now_ms)
        .fetch_one(&mut *$tx)
        .await?;
        let row = sqlx::query(&format!(
            "INSERT INTO messages (conversation_id, seq, id, sender_account_id, sender_device_id, ciphertext, \
             session_id, sent_at_ms, change_seq, system_kind, system_target, system_role, system_title, system_timer) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {MESSAGE_COLUMNS}"
        ))
        .bind(id.as_uuid())
        .bind(seq)
        .bind(MessageId::generate().as_uuid())
        .bind(actor.as_uuid())
        .bind(Uuid::nil())
        .bind(Vec::<u8>::new())
        .bind(now_ms)
        .bind(change)
        .bind(entry.kind())
        .bind(entry.target().map(|t| t.as_uuid()))
        .bind(entry.role().map(Role::as_str))
        .bind(entry.title())
        .bind(entry.timer())
        .fetch_one(&mut *$tx)
        .await?;
        decode!(message row)
    }};
}
pub(super) use system_entry;

/// The conversation's member ids, sorted (the order rows are locked in).
macro_rules! member_ids {
    ($tx:expr, $id:expr) => {{
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT account_id FROM conversation_members WHERE conversation_id = $1 ORDER BY account_id",
        )
        .bind($id.as_uuid())
        .fetch_all(&mut *$tx)
        .await?;
        ids.into_iter().map(AccountId::from_uuid).collect::<Vec<AccountId>>()
    }};
}
pub(super) use member_ids;

/// Takes the conversation's next change number (locking its row until the transaction ends).
macro_rules! next_change {
    ($tx:expr, $id:expr) => {
        sqlx::query_scalar::<_, i64>(
            "UPDATE conversations SET last_change = last_change + 1 WHERE id = $1 RETURNING last_change",
        )
        .bind($id.as_uuid())
        .fetch_optional(&mut *$tx)
        .await?
    };
}
pub(super) use next_change;

/// What makes a pair's direct conversation one of a kind: both ids, smaller first, and for the
/// cloud one a byte more (so a pair has one E2EE and one cloud conversation at most).
pub(super) fn direct_key(pair: (AccountId, AccountId), e2ee: bool) -> Vec<u8> {
    let (a, b) = if pair.0 <= pair.1 { pair } else { (pair.1, pair.0) };
    let cloud: &[u8] = if e2ee { &[] } else { b"c" };
    [a.as_uuid().as_bytes().as_slice(), b.as_uuid().as_bytes().as_slice(), cloud].concat()
}

fn mode(e2ee: bool) -> &'static str {
    if e2ee { "e2ee" } else { "cloud" }
}

impl_for_backends! {
    impl ConversationStore {
        async fn open_direct_in(
            &self,
            id: ConversationId,
            pair: (AccountId, AccountId),
            e2ee: bool,
            now_ms: i64,
        ) -> Result<(ConversationId, bool), StoreError> {
            let key = direct_key(pair, e2ee);
            let (caller, other) = pair;
            let mut tx = self.pool.begin().await?;
            let created = sqlx::query(
                "INSERT INTO conversations (id, kind, mode, direct_key, created_by, created_at_ms, last_activity_at_ms) \
                 VALUES ($1, 'direct', $5, $2, $3, $4, $4) ON CONFLICT (direct_key) DO NOTHING",
            )
            .bind(id.as_uuid())
            .bind(&key)
            .bind(pair.0.as_uuid())
            .bind(now_ms)
            .bind(mode(e2ee))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let id = if created {
                id
            } else {
                let existing: Uuid = sqlx::query_scalar("SELECT id FROM conversations WHERE direct_key = $1")
                    .bind(&key)
                    .fetch_one(&mut *tx)
                    .await?;
                ConversationId::from_uuid(existing)
            };
            // Either may have declined (or blocked) it before: the caller comes back by opening
            // it, the other as a request again unless it blocked the caller.
            let mut joining = vec![Joining { account: caller, role: Role::Member, request: false, added_by: None }];
            joining.extend(joining_by!(tx, caller, std::slice::from_ref(&other)));
            let _joined = join_members!(tx, id, &joining, now_ms, true);
            tx.commit().await?;
            Ok((id, created))
        }

        async fn create_group_in(
            &self,
            id: ConversationId,
            title: &str,
            owner: AccountId,
            members: &[AccountId],
            e2ee: bool,
            now_ms: i64,
        ) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO conversations (id, kind, mode, title, created_by, created_at_ms, last_activity_at_ms) \
                 VALUES ($1, 'group', $5, $2, $3, $4, $4)",
            )
            .bind(id.as_uuid())
            .bind(title)
            .bind(owner.as_uuid())
            .bind(now_ms)
            .bind(mode(e2ee))
            .execute(&mut *tx)
            .await?;
            let mut everyone = vec![Joining { account: owner, role: Role::Owner, request: false, added_by: None }];
            everyone.extend(joining_by!(tx, owner, members));
            // Each member hears that they were added; the member list comes with the conversation.
            let _joined = join_members!(tx, id, &everyone, now_ms, false);
            tx.commit().await?;
            Ok(())
        }

        async fn conversation(&self, id: ConversationId) -> Result<Option<ConversationRecord>, StoreError> {
            let row = sqlx::query(&format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
            Ok(decode_opt!(conversation row))
        }

        async fn members(&self, id: ConversationId) -> Result<Vec<MemberRecord>, StoreError> {
            let rows = sqlx::query(&format!(
                "SELECT {MEMBER_COLUMNS} FROM conversation_members \
                 WHERE conversation_id = $1 ORDER BY joined_at_ms, account_id"
            ))
            .bind(id.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            Ok(decode_all!(member rows))
        }

        async fn member(&self, id: ConversationId, account: AccountId) -> Result<Option<MemberRecord>, StoreError> {
            let row = sqlx::query(&format!(
                "SELECT {MEMBER_COLUMNS} FROM conversation_members WHERE conversation_id = $1 AND account_id = $2"
            ))
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
            Ok(decode_opt!(member row))
        }

        async fn conversations_of(
            &self,
            account: AccountId,
            filter: ConversationFilter,
            after: Option<(i64, ConversationId)>,
            limit: i64,
        ) -> Result<Vec<ConversationRecord>, StoreError> {
            let which = match filter {
                ConversationFilter::All => "",
                ConversationFilter::Accepted => "AND request = FALSE",
                ConversationFilter::Requests => "AND request = TRUE",
            };
            let (before_ms, before_id) = match after {
                Some((ms, id)) => (ms, id.as_uuid()),
                None => (i64::MAX, Uuid::max()),
            };
            let rows = sqlx::query(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id IN \
                 (SELECT conversation_id FROM conversation_members WHERE account_id = $1 {which}) \
                 AND (last_activity_at_ms < $2 OR (last_activity_at_ms = $2 AND id < $3)) \
                 ORDER BY last_activity_at_ms DESC, id DESC LIMIT $4"
            ))
            .bind(account.as_uuid())
            .bind(before_ms)
            .bind(before_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            Ok(decode_all!(conversation rows))
        }

        async fn add_members_by(
            &self,
            id: ConversationId,
            by: AccountId,
            accounts: &[AccountId],
            max_members: i64,
            now_ms: i64,
            write_entries: bool,
        ) -> Result<(AddOutcome, Vec<MessageRecord>), StoreError> {
            let mut tx = self.pool.begin().await?;
            crate::delivery::lock_memberships!(tx, accounts.to_vec());
            // Lock the conversation's row: adds to one group take turns, so each counts the
            // members the one before added.
            sqlx::query("UPDATE conversations SET last_change = last_change WHERE id = $1")
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?;
            let mut fresh: Vec<AccountId> = Vec::new();
            for account in accounts {
                let member: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM conversation_members WHERE conversation_id = $1 AND account_id = $2",
                )
                .bind(id.as_uuid())
                .bind(account.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
                if member.is_none() && !fresh.contains(account) {
                    fresh.push(*account);
                }
            }
            let joining = joining_by!(tx, by, &fresh);
            admit!(tx, id, by, &joining, max_members, now_ms, write_entries)
        }

        async fn add_channel_members(
            &self,
            id: ConversationId,
            by: AccountId,
            accounts: &[AccountId],
            max_members: i64,
            now_ms: i64,
        ) -> Result<(AddOutcome, Vec<MessageRecord>), StoreError> {
            let mut tx = self.pool.begin().await?;
            // The guild's row first, as kicks and bans take it: one that removes someone from
            // the guild cannot pass an add of them here, so nobody outside it stays in. A write
            // first, too, so SQLite takes its write lock at once: a read that later upgrades
            // to a write fails with "database is locked" when another writer came in between.
            let guild: Option<Uuid> = sqlx::query_scalar(
                "UPDATE guilds SET created_at_ms = created_at_ms WHERE id = \
                 (SELECT guild_id FROM conversations WHERE id = $1 AND kind = 'channel' AND mode = 'e2ee') \
                 RETURNING id",
            )
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(guild) = guild else { return Ok((AddOutcome::NotAChannel, Vec::new())) };
            crate::delivery::lock_memberships!(tx, accounts.to_vec());
            let mut joining: Vec<Joining> = Vec::new();
            for account in accounts {
                let in_guild: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM guild_members WHERE guild_id = $1 AND account_id = $2")
                        .bind(guild)
                        .bind(account.as_uuid())
                        .fetch_optional(&mut *tx)
                        .await?;
                if in_guild.is_none() {
                    tx.rollback().await?;
                    return Ok((AddOutcome::NotInGuild(*account), Vec::new()));
                }
                if joining.iter().all(|j| j.account != *account) {
                    joining.push(Joining { account: *account, role: Role::Member, request: false, added_by: Some(by) });
                }
            }
            // Those in it already are neither counted twice nor added again.
            let members = member_ids!(tx, id);
            joining.retain(|j| !members.contains(&j.account));
            admit!(tx, id, by, &joining, max_members, now_ms, true)
        }

        async fn accept_request(&self, id: ConversationId, account: AccountId) -> Result<AcceptOutcome, StoreError> {
            let mut tx = self.pool.begin().await?;
            let row: Option<(String, i64, i64, bool)> = sqlx::query_as(
                "UPDATE conversation_members SET request = request WHERE conversation_id = $1 AND account_id = $2 \
                 RETURNING role, delivered_seq, read_seq, request",
            )
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((role, delivered_seq, read_seq, request)) = row else { return Ok(AcceptOutcome::NotMember) };
            if !request {
                tx.rollback().await?;
                return Ok(AcceptOutcome::NotRequest);
            }
            sqlx::query("UPDATE conversation_members SET request = FALSE WHERE conversation_id = $1 AND account_id = $2")
                .bind(id.as_uuid())
                .bind(account.as_uuid())
                .execute(&mut *tx)
                .await?;
            let role = Role::parse(&role)?;
            // Its other devices move the conversation out of the requests; the others now get
            // the receipts a request held back.
            let mut events = vec![(account, AccountEvent::Member { conversation: id, account, role: Some(role), request: false })];
            if read_seq > 0 || delivered_seq > 0 {
                let others: Vec<AccountId> = member_ids!(tx, id).into_iter().filter(|m| *m != account).collect();
                let receipt = AccountEvent::Receipt { conversation: id, account, delivered_seq, read_seq };
                events.extend(crate::delivery::to_all(&others, &receipt));
            }
            crate::delivery::push_events!(tx, events);
            tx.commit().await?;
            Ok(AcceptOutcome::Accepted)
        }

        async fn remove_member_by(
            &self,
            id: ConversationId,
            account: AccountId,
            by: Option<AccountId>,
            now_ms: i64,
        ) -> Result<Option<Vec<MessageRecord>>, StoreError> {
            let mut tx = self.pool.begin().await?;
            crate::delivery::lock_memberships!(tx, vec![account]);
            let Some(new_owner) = leave_conversation!(tx, id, account) else { return Ok(None) };
            let mut entries = Vec::new();
            if let Some(by) = by {
                let entry = if by == account { SystemEntry::MemberLeft } else { SystemEntry::MemberRemoved(account) };
                entries.push(system_entry!(tx, id, by, entry, now_ms));
                if let Some(owner) = new_owner {
                    entries.push(system_entry!(tx, id, by, SystemEntry::RoleChanged(owner, Role::Owner), now_ms));
                }
            }
            tx.commit().await?;
            Ok(Some(entries))
        }

        async fn set_role_by(
            &self,
            id: ConversationId,
            account: AccountId,
            role: Role,
            by: Option<AccountId>,
            now_ms: i64,
        ) -> Result<Option<Vec<MessageRecord>>, StoreError> {
            let mut tx = self.pool.begin().await?;
            // A write first (it changes nothing), as everywhere here: it takes SQLite's write
            // lock at the start, waiting its turn, where a read first would fail with "database
            // is locked" once another writer committed in between; it also returns the old role.
            let before: Option<String> = sqlx::query_scalar(
                "UPDATE conversation_members SET role = role WHERE conversation_id = $1 AND account_id = $2 RETURNING role",
            )
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(before) = before else { return Ok(None) };
            let request: Option<bool> = sqlx::query_scalar(
                "UPDATE conversation_members SET role = $3 WHERE conversation_id = $1 AND account_id = $2 RETURNING request",
            )
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .bind(role.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(request) = request else { return Ok(None) };
            let mut entries = Vec::new();
            if let Some(by) = by
                && Role::parse(&before)? != role
            {
                entries.push(system_entry!(tx, id, by, SystemEntry::RoleChanged(account, role), now_ms));
            }
            let recipients = member_ids!(tx, id);
            let events = recipients
                .iter()
                .map(|r| {
                    let request = request && *r == account;
                    (*r, AccountEvent::Member { conversation: id, account, role: Some(role), request })
                })
                .collect();
            crate::delivery::push_events!(tx, events);
            tx.commit().await?;
            Ok(Some(entries))
        }

        async fn rename_group(
            &self,
            id: ConversationId,
            by: AccountId,
            title: &str,
            now_ms: i64,
        ) -> Result<Option<MessageRecord>, StoreError> {
            let mut tx = self.pool.begin().await?;
            let renamed = sqlx::query(
                "UPDATE conversations SET title = $2 WHERE id = $1 AND kind = 'group' AND (title IS NULL OR title <> $2)",
            )
            .bind(id.as_uuid())
            .bind(title)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if renamed == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            let entry = system_entry!(tx, id, by, SystemEntry::TitleChanged(title.to_owned()), now_ms);
            tx.commit().await?;
            Ok(Some(entry))
        }

        async fn send_messages(&self, batch: &[NewMessage]) -> Result<Vec<Result<SendOutcome, StoreError>>, StoreError> {
            let mut tx = self.pool.begin().await?;
            let mut outcomes = Vec::with_capacity(batch.len());
            for m in batch {
                let mut one = sqlx::Connection::begin(&mut *tx).await?;
                // (outcome, keep): a refusal keeps nothing of this message.
                let result: Result<(SendOutcome, bool), StoreError> = async {
                    // Take the next number first (a write, so SQLite locks at once); only members may
                    // (of a cloud channel: the guild's members; what their roles allow there is the
                    // server's to check).
                    let numbers: Option<(i64, i64, i64)> = sqlx::query_as(
                        "UPDATE conversations SET last_seq = last_seq + 1, last_change = last_change + 1, \
                         last_activity_at_ms = $3 WHERE id = $1 \
                         AND (EXISTS (SELECT 1 FROM conversation_members WHERE conversation_id = $1 AND account_id = $2) \
                              OR (mode = 'cloud' AND EXISTS (SELECT 1 FROM guild_members g \
                                  WHERE g.guild_id = conversations.guild_id AND g.account_id = $2))) \
                         RETURNING last_seq, last_change, message_timer_s",
                    )
                    .bind(m.conversation_id.as_uuid())
                    .bind(m.sender.0.as_uuid())
                    .bind(m.now_ms)
                    .fetch_optional(&mut *one)
                    .await?;
                    let Some((seq, change, timer_s)) = numbers else { return Ok((SendOutcome::NotMember, false)) };
                    let expires_at_ms = if timer_s > 0 { m.now_ms.saturating_add(timer_s.saturating_mul(1000)) } else { 0 };
                    // One statement stores it or finds its id taken (ids are unique per
                    // conversation): no lookup first, whose plan a connection may have cached
                    // while the table was empty and then walk a whole conversation per send.
                    let inserted = sqlx::query(&format!(
                        "INSERT INTO messages (conversation_id, seq, id, sender_account_id, sender_device_id, ciphertext, \
                         session_id, reply_to, sent_at_ms, change_seq, content, search_text, expires_at_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                         ON CONFLICT (conversation_id, id) DO NOTHING RETURNING {MESSAGE_COLUMNS}"
                    ))
                    .bind(m.conversation_id.as_uuid())
                    .bind(seq)
                    .bind(m.id.as_uuid())
                    .bind(m.sender.0.as_uuid())
                    .bind(m.sender.1.as_uuid())
                    .bind(m.cloud.is_none().then_some(&m.ciphertext))
                    .bind(&m.session_id)
                    .bind(m.reply_to.map(|r| r.as_uuid()))
                    .bind(m.now_ms)
                    .bind(change)
                    .bind(m.cloud.as_ref().map(|c| &c.content))
                    .bind(m.cloud.as_ref().map(|c| &c.search_text))
                    .bind(expires_at_ms)
                    .fetch_optional(&mut *one)
                    .await?;
                    let Some(row) = inserted else {
                        // Taken: the same message again (a retry) or another one; either way the
                        // number taken above is given back.
                        let row = sqlx::query(&format!(
                            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND id = $2"
                        ))
                        .bind(m.conversation_id.as_uuid())
                        .bind(m.id.as_uuid())
                        .fetch_one(&mut *one)
                        .await?;
                        let existing = decode!(message row);
                        // One taken by someone else tells the sender nothing about it.
                        let same = existing.sender_account_id == m.sender.0
                            && match &m.cloud {
                                None => existing.ciphertext.as_deref() == Some(m.ciphertext.as_slice()),
                                Some(cloud) => existing.content.as_deref() == Some(cloud.content.as_slice()),
                            }
                            && existing.session_id == m.session_id
                            && existing.reply_to == m.reply_to;
                        return Ok((if same { SendOutcome::Duplicate(existing) } else { SendOutcome::IdTaken }, false));
                    };
                    let stored = decode!(message row);
                    if let Some(cloud) = &m.cloud {
                        crate::cloud::index_cloud_body!(one, Self::BACKEND, m.conversation_id, seq, cloud);
                    }
                    let refused = super::attachments::link_attachments!(
                        one, &m.attachments, m.id, m.conversation_id, m.sender.0, m.now_ms
                    );
                    if let Some(id) = refused {
                        return Ok((SendOutcome::AttachmentRefused(id), false));
                    }
                    Ok((SendOutcome::Stored(stored), true))
                }
                .await;
                match result {
                    Ok((outcome, true)) => {
                        one.commit().await?;
                        outcomes.push(Ok(outcome));
                    }
                    Ok((outcome, false)) => {
                        one.rollback().await?;
                        outcomes.push(Ok(outcome));
                    }
                    Err(e) => {
                        one.rollback().await?;
                        outcomes.push(Err(e));
                    }
                }
            }
            tx.commit().await?;
            Ok(outcomes)
        }

        async fn message(&self, conversation: ConversationId, id: MessageId) -> Result<Option<MessageRecord>, StoreError> {
            let row = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND conversation_id = $2"))
                .bind(id.as_uuid())
                .bind(conversation.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
            Ok(decode_opt!(message row))
        }

        async fn edit_message(
            &self,
            conversation: ConversationId,
            id: MessageId,
            ciphertext: &[u8],
            session_id: &[u8],
            now_ms: i64,
        ) -> Result<Option<MessageRecord>, StoreError> {
            let mut tx = self.pool.begin().await?;
            let Some(change) = next_change!(tx, conversation) else { return Ok(None) };
            let row = sqlx::query(&format!(
                "UPDATE messages SET ciphertext = $3, session_id = $4, edited_at_ms = $5, change_seq = $6 \
                 WHERE id = $1 AND conversation_id = $2 AND deleted_at_ms = 0 AND system_kind IS NULL \
                 RETURNING {MESSAGE_COLUMNS}"
            ))
            .bind(id.as_uuid())
            .bind(conversation.as_uuid())
            .bind(ciphertext)
            .bind(session_id)
            .bind(now_ms)
            .bind(change)
            .fetch_optional(&mut *tx)
            .await?;
            let edited = decode_opt!(message row);
            // Nothing changed: give the change number back.
            if edited.is_some() { tx.commit().await? } else { tx.rollback().await? }
            Ok(edited)
        }

        async fn delete_message(
            &self,
            conversation: ConversationId,
            id: MessageId,
            now_ms: i64,
        ) -> Result<Option<MessageRecord>, StoreError> {
            let mut tx = self.pool.begin().await?;
            let Some(change) = next_change!(tx, conversation) else { return Ok(None) };
            let deleted = crate::cloud::clear_message!(tx, Self::BACKEND, conversation, id, change, now_ms);
            if deleted.is_some() { tx.commit().await? } else { tx.rollback().await? }
            Ok(deleted)
        }

        async fn list_messages(
            &self,
            conversation: ConversationId,
            cursor: i64,
            forward: bool,
            limit: i64,
        ) -> Result<Vec<MessageRecord>, StoreError> {
            let sql = if forward {
                format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            } else {
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq < $2 \
                     ORDER BY seq DESC LIMIT $3"
                )
            };
            let cursor = if !forward && cursor <= 0 { i64::MAX } else { cursor };
            let rows = sqlx::query(&sql)
                .bind(conversation.as_uuid())
                .bind(cursor)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
            Ok(decode_all!(message rows))
        }

        async fn mark_read(
            &self,
            conversation: ConversationId,
            account: AccountId,
            seq: i64,
        ) -> Result<Option<Receipt>, StoreError> {
            let mut tx = self.pool.begin().await?;
            let receipt = crate::delivery::advance_marks!(tx, conversation, account, seq, seq);
            if let Some(receipt) = &receipt {
                crate::delivery::push_events!(tx, receipt.events());
            }
            tx.commit().await?;
            Ok(receipt)
        }

        async fn unread_count(&self, conversation: ConversationId, account: AccountId) -> Result<i64, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND sender_account_id <> $2 \
                 AND deleted_at_ms = 0 AND system_kind IS NULL AND seq > \
                 (SELECT read_seq FROM conversation_members WHERE conversation_id = $1 AND account_id = $2)",
            )
            .bind(conversation.as_uuid())
            .bind(account.as_uuid())
            .fetch_one(&self.pool)
            .await?)
        }
    }
}
