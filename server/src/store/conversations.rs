//! Conversations, members and messages (`conversations`, `conversation_members`, `messages`).
//! Messages are numbered per conversation without gaps: the number is taken from the
//! conversation row in the same transaction that stores the message.

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::StoreError;
use crate::ids::{AccountId, ConversationId, DeviceId, MessageId};

/// Direct (two people) or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationKind {
    /// Two accounts, one conversation per pair.
    Direct,
    /// A titled group with roles.
    Group,
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

    fn parse(s: &str) -> Result<Self, StoreError> {
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
    /// Whether it is end-to-end encrypted (`true`; cloud mode comes later).
    pub e2ee: bool,
    /// Groups only.
    pub title: Option<String>,
    /// Newest message's sequence number.
    pub last_seq: i64,
    /// Last message or creation (ms).
    pub last_activity_at_ms: i64,
    /// Creation (ms).
    pub created_at_ms: i64,
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
    /// The id belongs to a different message.
    IdTaken,
    /// The sender is not a member (or the conversation is gone).
    NotMember,
}

/// Conversations and messages.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Creates the direct conversation of a pair unless it exists; returns its id and whether
    /// it was made now.
    async fn open_direct(
        &self,
        id: ConversationId,
        pair: (AccountId, AccountId),
        now_ms: i64,
    ) -> Result<(ConversationId, bool), StoreError>;
    /// Creates a group with `owner` and `members`.
    async fn create_group(
        &self,
        id: ConversationId,
        title: &str,
        owner: AccountId,
        members: &[AccountId],
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
    /// The account's conversations, most recently active first.
    async fn conversations_of(&self, account: AccountId) -> Result<Vec<ConversationRecord>, StoreError>;
    /// Adds members (existing ones are left as they are).
    async fn add_members(
        &self,
        id: ConversationId,
        accounts: &[AccountId],
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Removes a member; if it was the owner, the longest-standing admin (else member) becomes
    /// owner. `false` if not a member.
    async fn remove_member(&self, id: ConversationId, account: AccountId) -> Result<bool, StoreError>;
    /// Changes a member's role. `false` if not a member.
    async fn set_role(&self, id: ConversationId, account: AccountId, role: Role) -> Result<bool, StoreError>;
    /// Stores a message (see [`SendOutcome`]).
    async fn send_message(&self, message: &NewMessage) -> Result<SendOutcome, StoreError>;
    /// One message of a conversation.
    async fn message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// Replaces a live message's ciphertext. `false` if it is deleted or absent.
    async fn edit_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
        ciphertext: &[u8],
        session_id: &[u8],
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Deletes a message's ciphertext (keeps its place in the sequence).
    async fn delete_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Up to `limit` messages after (`forward`) or before `cursor`, in that direction's order.
    /// A backward cursor of 0 means "from the newest".
    async fn list_messages(
        &self,
        conversation: ConversationId,
        cursor: i64,
        forward: bool,
        limit: i64,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// Moves the member's read mark to `seq` (never backwards, never past the newest).
    /// Returns the mark.
    async fn mark_read(
        &self,
        conversation: ConversationId,
        account: AccountId,
        seq: i64,
    ) -> Result<i64, StoreError>;
    /// Messages from others after the member's read mark that are not deleted.
    async fn unread_count(&self, conversation: ConversationId, account: AccountId)
    -> Result<i64, StoreError>;
}

const CONVERSATION_COLUMNS: &str = "id, kind, mode, title, last_seq, last_activity_at_ms, created_at_ms";
const MESSAGE_COLUMNS: &str = "id, conversation_id, seq, sender_account_id, sender_device_id, ciphertext, \
                               session_id, reply_to, sent_at_ms, edited_at_ms, deleted_at_ms";

/// Decoders shared by both backends (rows differ in type, the columns do not).
macro_rules! decode {
    (conversation $row:expr) => {{
        let row = $row;
        ConversationRecord {
            id: ConversationId::from_uuid(row.try_get::<Uuid, _>("id")?),
            kind: match row.try_get::<String, _>("kind")?.as_str() {
                "direct" => ConversationKind::Direct,
                "group" => ConversationKind::Group,
                other => return Err(StoreError::Corrupt(format!("conversation kind {other:?}"))),
            },
            e2ee: row.try_get::<String, _>("mode")? == "e2ee",
            title: row.try_get("title")?,
            last_seq: row.try_get("last_seq")?,
            last_activity_at_ms: row.try_get("last_activity_at_ms")?,
            created_at_ms: row.try_get("created_at_ms")?,
        }
    }};
    (member $row:expr) => {{
        let row = $row;
        MemberRecord {
            account_id: AccountId::from_uuid(row.try_get::<Uuid, _>("account_id")?),
            role: Role::parse(&row.try_get::<String, _>("role")?)?,
            joined_at_ms: row.try_get("joined_at_ms")?,
            read_seq: row.try_get("read_seq")?,
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
        }
    }};
}

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

fn direct_key(pair: (AccountId, AccountId)) -> Vec<u8> {
    let (a, b) = if pair.0 <= pair.1 { pair } else { (pair.1, pair.0) };
    [a.as_uuid().as_bytes().as_slice(), b.as_uuid().as_bytes().as_slice()].concat()
}

impl_for_backends! {
    impl ConversationStore {
        async fn open_direct(
            &self,
            id: ConversationId,
            pair: (AccountId, AccountId),
            now_ms: i64,
        ) -> Result<(ConversationId, bool), StoreError> {
            let key = direct_key(pair);
            let mut tx = self.pool.begin().await?;
            let created = sqlx::query(
                "INSERT INTO conversations (id, kind, mode, direct_key, created_by, created_at_ms, last_activity_at_ms) \
                 VALUES ($1, 'direct', 'e2ee', $2, $3, $4, $4) ON CONFLICT (direct_key) DO NOTHING",
            )
            .bind(id.as_uuid())
            .bind(&key)
            .bind(pair.0.as_uuid())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if created {
                for account in [pair.0, pair.1] {
                    sqlx::query(
                        "INSERT INTO conversation_members (conversation_id, account_id, role, joined_at_ms) \
                         VALUES ($1, $2, 'member', $3)",
                    )
                    .bind(id.as_uuid())
                    .bind(account.as_uuid())
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                return Ok((id, true));
            }
            let existing: Uuid = sqlx::query_scalar("SELECT id FROM conversations WHERE direct_key = $1")
                .bind(&key)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok((ConversationId::from_uuid(existing), false))
        }

        async fn create_group(
            &self,
            id: ConversationId,
            title: &str,
            owner: AccountId,
            members: &[AccountId],
            now_ms: i64,
        ) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO conversations (id, kind, mode, title, created_by, created_at_ms, last_activity_at_ms) \
                 VALUES ($1, 'group', 'e2ee', $2, $3, $4, $4)",
            )
            .bind(id.as_uuid())
            .bind(title)
            .bind(owner.as_uuid())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            for (account, role) in std::iter::once((owner, Role::Owner)).chain(members.iter().map(|m| (*m, Role::Member))) {
                sqlx::query(
                    "INSERT INTO conversation_members (conversation_id, account_id, role, joined_at_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (conversation_id, account_id) DO NOTHING",
                )
                .bind(id.as_uuid())
                .bind(account.as_uuid())
                .bind(role.as_str())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
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
            let rows = sqlx::query(
                "SELECT account_id, role, joined_at_ms, read_seq FROM conversation_members \
                 WHERE conversation_id = $1 ORDER BY joined_at_ms, account_id",
            )
            .bind(id.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            Ok(decode_all!(member rows))
        }

        async fn member(&self, id: ConversationId, account: AccountId) -> Result<Option<MemberRecord>, StoreError> {
            let row = sqlx::query(
                "SELECT account_id, role, joined_at_ms, read_seq FROM conversation_members \
                 WHERE conversation_id = $1 AND account_id = $2",
            )
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
            Ok(decode_opt!(member row))
        }

        async fn conversations_of(&self, account: AccountId) -> Result<Vec<ConversationRecord>, StoreError> {
            let rows = sqlx::query(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id IN \
                 (SELECT conversation_id FROM conversation_members WHERE account_id = $1) \
                 ORDER BY last_activity_at_ms DESC, id DESC"
            ))
            .bind(account.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            Ok(decode_all!(conversation rows))
        }

        async fn add_members(&self, id: ConversationId, accounts: &[AccountId], now_ms: i64) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            for account in accounts {
                sqlx::query(
                    "INSERT INTO conversation_members (conversation_id, account_id, role, joined_at_ms) \
                     VALUES ($1, $2, 'member', $3) ON CONFLICT (conversation_id, account_id) DO NOTHING",
                )
                .bind(id.as_uuid())
                .bind(account.as_uuid())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        }

        async fn remove_member(&self, id: ConversationId, account: AccountId) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            let removed = sqlx::query(
                "DELETE FROM conversation_members WHERE conversation_id = $1 AND account_id = $2 RETURNING role",
            )
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = removed else { return Ok(false) };
            if Role::parse(&row.try_get::<String, _>("role")?)? == Role::Owner {
                // Hand the group on: the longest-standing admin, else the longest-standing member.
                sqlx::query(
                    "UPDATE conversation_members SET role = 'owner' WHERE conversation_id = $1 AND account_id = \
                     (SELECT account_id FROM conversation_members WHERE conversation_id = $1 \
                      ORDER BY CASE role WHEN 'admin' THEN 0 ELSE 1 END, joined_at_ms, account_id LIMIT 1)",
                )
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(true)
        }

        async fn set_role(&self, id: ConversationId, account: AccountId, role: Role) -> Result<bool, StoreError> {
            let done = sqlx::query("UPDATE conversation_members SET role = $3 WHERE conversation_id = $1 AND account_id = $2")
                .bind(id.as_uuid())
                .bind(account.as_uuid())
                .bind(role.as_str())
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn send_message(&self, m: &NewMessage) -> Result<SendOutcome, StoreError> {
            let mut tx = self.pool.begin().await?;
            // Take the next number first (a write, so SQLite locks at once); only members may.
            let seq: Option<i64> = sqlx::query_scalar(
                "UPDATE conversations SET last_seq = last_seq + 1, last_activity_at_ms = $3 WHERE id = $1 \
                 AND EXISTS (SELECT 1 FROM conversation_members WHERE conversation_id = $1 AND account_id = $2) \
                 RETURNING last_seq",
            )
            .bind(m.conversation_id.as_uuid())
            .bind(m.sender.0.as_uuid())
            .bind(m.now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(seq) = seq else { return Ok(SendOutcome::NotMember) };
            let existing = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"))
                .bind(m.id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = existing {
                let existing = decode!(message row);
                // Undo the number we took: the retried message keeps its first one.
                tx.rollback().await?;
                let same = existing.conversation_id == m.conversation_id
                    && existing.sender_account_id == m.sender.0
                    && existing.ciphertext.as_deref() == Some(m.ciphertext.as_slice())
                    && existing.session_id == m.session_id
                    && existing.reply_to == m.reply_to;
                return Ok(if same { SendOutcome::Duplicate(existing) } else { SendOutcome::IdTaken });
            }
            let row = sqlx::query(&format!(
                "INSERT INTO messages (conversation_id, seq, id, sender_account_id, sender_device_id, ciphertext, \
                 session_id, reply_to, sent_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {MESSAGE_COLUMNS}"
            ))
            .bind(m.conversation_id.as_uuid())
            .bind(seq)
            .bind(m.id.as_uuid())
            .bind(m.sender.0.as_uuid())
            .bind(m.sender.1.as_uuid())
            .bind(&m.ciphertext)
            .bind(&m.session_id)
            .bind(m.reply_to.map(|r| r.as_uuid()))
            .bind(m.now_ms)
            .fetch_one(&mut *tx)
            .await?;
            let stored = decode!(message row);
            tx.commit().await?;
            Ok(SendOutcome::Stored(stored))
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
        ) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE messages SET ciphertext = $3, session_id = $4, edited_at_ms = $5 \
                 WHERE id = $1 AND conversation_id = $2 AND deleted_at_ms = 0",
            )
            .bind(id.as_uuid())
            .bind(conversation.as_uuid())
            .bind(ciphertext)
            .bind(session_id)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn delete_message(&self, conversation: ConversationId, id: MessageId, now_ms: i64) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE messages SET ciphertext = NULL, deleted_at_ms = $3 \
                 WHERE id = $1 AND conversation_id = $2 AND deleted_at_ms = 0",
            )
            .bind(id.as_uuid())
            .bind(conversation.as_uuid())
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            Ok(())
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

        async fn mark_read(&self, conversation: ConversationId, account: AccountId, seq: i64) -> Result<i64, StoreError> {
            let read: Option<i64> = sqlx::query_scalar(
                "UPDATE conversation_members SET read_seq = CASE \
                 WHEN read_seq >= $3 THEN read_seq \
                 ELSE (CASE WHEN $3 > (SELECT last_seq FROM conversations WHERE id = $1) \
                       THEN (SELECT last_seq FROM conversations WHERE id = $1) ELSE $3 END) END \
                 WHERE conversation_id = $1 AND account_id = $2 RETURNING read_seq",
            )
            .bind(conversation.as_uuid())
            .bind(account.as_uuid())
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
            read.ok_or(StoreError::Corrupt("read mark of a non-member".into()))
        }

        async fn unread_count(&self, conversation: ConversationId, account: AccountId) -> Result<i64, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND sender_account_id <> $2 \
                 AND deleted_at_ms = 0 AND seq > \
                 (SELECT read_seq FROM conversation_members WHERE conversation_id = $1 AND account_id = $2)",
            )
            .bind(conversation.as_uuid())
            .bind(account.as_uuid())
            .fetch_one(&self.pool)
            .await?)
        }
    }
}
