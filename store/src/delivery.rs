//! What each device has received, for the gateway (`device_cursors`, `account_events`,
//! `devices.event_cursor`, `device_revocations`; see migration 0005).
//!
//! A device follows three kinds of stream, all read from the database, so a reconnect resumes
//! exactly where the device stopped, on any node and after any restart:
//! - each conversation it is in: messages in `change_seq` order (a cursor row per device and
//!   conversation exists exactly while the account is a member);
//! - its account stream: the latest [`AccountEvent`] per key, numbered per account;
//! - its to-device inbox (rows stay until acknowledged).

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::conversations::{MESSAGE_COLUMNS, decode, decode_all};
use super::{MessageRecord, Role, StoreError, ToDeviceRecord};
use crate::ids::{AccountId, ConversationId, DeviceId, MessageId};

/// An event kept in an account's stream (the latest per conversation, subject and kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEvent {
    /// `account` joined `conversation` or changed role (`Some`), or left / was removed (`None`).
    Member {
        /// Where.
        conversation: ConversationId,
        /// Who.
        account: AccountId,
        /// Their role now.
        role: Option<Role>,
        /// The membership is a request `account` has not accepted. Only ever set in the event
        /// `account` itself receives: others are not told whether it accepted.
        request: bool,
    },
    /// `account`'s delivered and read marks in `conversation`.
    Receipt {
        /// Where.
        conversation: ConversationId,
        /// Whose marks.
        account: AccountId,
        /// At least one device has everything up to here.
        delivered_seq: i64,
        /// Read up to here.
        read_seq: i64,
    },
    /// `account`'s devices or device keys changed.
    DeviceList {
        /// Whose.
        account: AccountId,
    },
}

impl AccountEvent {
    /// (kind, conversation, subject, role, delivered_seq, read_seq, request) as stored.
    #[allow(clippy::type_complexity)]
    pub(super) fn columns(&self) -> (&'static str, Uuid, Uuid, Option<&'static str>, i64, i64, bool) {
        match self {
            Self::Member { conversation, account, role, request } => {
                ("member", conversation.as_uuid(), account.as_uuid(), role.map(Role::as_str), 0, 0, *request)
            }
            Self::Receipt { conversation, account, delivered_seq, read_seq } => {
                ("receipt", conversation.as_uuid(), account.as_uuid(), None, *delivered_seq, *read_seq, false)
            }
            Self::DeviceList { account } => ("devices", Uuid::nil(), account.as_uuid(), None, 0, 0, false),
        }
    }
}

/// A conversation a device follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationCursor {
    /// Which.
    pub conversation_id: ConversationId,
    /// Every change up to here is acknowledged by the device.
    pub acked: i64,
    /// The conversation's newest change.
    pub head: i64,
}

/// Where a device stands in all its streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStreams {
    /// One per conversation of the account.
    pub conversations: Vec<ConversationCursor>,
    /// Acknowledged position in the account stream.
    pub account_cursor: i64,
}

/// A device's acknowledgement of events, applied in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceAcks {
    /// Per conversation: the change acknowledged, and the newest message sequence number among
    /// the acknowledged new messages (0: none), which becomes the account's delivered mark.
    pub conversations: Vec<(ConversationId, i64, i64)>,
    /// Position acknowledged in the account stream.
    pub account_position: Option<i64>,
    /// To-device messages acknowledged (deleted from the inbox).
    pub to_device: Vec<MessageId>,
}

impl DeviceAcks {
    /// Whether there is nothing to save.
    pub fn is_empty(&self) -> bool {
        self.conversations.is_empty() && self.account_position.is_none() && self.to_device.is_empty()
    }
}

/// `event` for each of `recipients`.
pub(super) fn to_all(recipients: &[AccountId], event: &AccountEvent) -> Vec<(AccountId, AccountEvent)> {
    recipients.iter().map(|r| (*r, event.clone())).collect()
}

/// The key of an account's advisory lock (PostgreSQL): its id's random low half.
pub(super) fn advisory_key(account: AccountId) -> i64 {
    let bytes = account.as_uuid().into_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..]);
    i64::from_be_bytes(low)
}

/// PostgreSQL: serialises the transactions that change which devices follow which conversations
/// of an account (making and deleting devices, joining and leaving), so neither misses the
/// other's rows. Taken first in those transactions, before any row lock; several accounts in id
/// order. SQLite runs one writer at a time anyway.
macro_rules! lock_memberships {
    ($tx:expr, $accounts:expr) => {
        if Self::BACKEND == $crate::Backend::Postgres {
            let mut accounts: Vec<AccountId> = $accounts;
            accounts.sort_unstable();
            accounts.dedup();
            for account in accounts {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind($crate::delivery::advisory_key(account))
                    .execute(&mut *$tx)
                    .await?;
            }
        }
    };
}
pub(super) use lock_memberships;

/// A member's marks after a change, and the accounts told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Where.
    pub conversation_id: ConversationId,
    /// Whose marks.
    pub account_id: AccountId,
    /// Delivered mark.
    pub delivered_seq: i64,
    /// Read mark.
    pub read_seq: i64,
    /// Accounts whose streams get the receipt (empty when nothing moved).
    pub notified: Vec<AccountId>,
}

impl Receipt {
    /// The receipt event for each notified account.
    pub(super) fn events(&self) -> Vec<(AccountId, AccountEvent)> {
        let event = AccountEvent::Receipt {
            conversation: self.conversation_id,
            account: self.account_id,
            delivered_seq: self.delivered_seq,
            read_seq: self.read_seq,
        };
        to_all(&self.notified, &event)
    }
}

/// Appends events to account streams inside a transaction: `(recipient, event)` pairs, written
/// in one pass in account order. Every transaction locks account rows this way, last and in
/// one order, so concurrent ones (PostgreSQL) never wait on each other in a cycle.
macro_rules! push_events {
    ($tx:expr, $pairs:expr) => {{
        let mut pairs: Vec<($crate::ids::AccountId, $crate::AccountEvent)> = $pairs;
        pairs.sort_by_key(|(recipient, _)| *recipient);
        for (recipient, event) in &pairs {
            let (kind, conversation, subject, role, delivered, read, request) = event.columns();
            let position: Option<i64> = sqlx::query_scalar(
                "UPDATE accounts SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq",
            )
            .bind(recipient.as_uuid())
            .fetch_optional(&mut *$tx)
            .await?;
            let Some(position) = position else { continue };
            sqlx::query(
                "INSERT INTO account_events (account_id, kind, conversation_id, subject_id, position, role, \
                 delivered_seq, read_seq, request) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (account_id, kind, conversation_id, subject_id) DO UPDATE SET \
                 position = excluded.position, role = excluded.role, delivered_seq = excluded.delivered_seq, \
                 read_seq = excluded.read_seq, request = excluded.request",
            )
            .bind(recipient.as_uuid())
            .bind(kind)
            .bind(conversation)
            .bind(subject)
            .bind(position)
            .bind(role)
            .bind(delivered)
            .bind(read)
            .bind(request)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}
pub(super) use push_events;

/// Moves a member's delivered and read marks up (never down, and delivered never below read)
/// inside a transaction. Evaluates to `Option<Receipt>` (`None`: not a member) naming the
/// senders of the messages newly delivered or read and, when the read mark moved, the reader
/// (for their other devices); the caller pushes [`Receipt::events`]. A member whose membership
/// is still a request tells no sender: a request sends no receipts.
macro_rules! advance_marks {
    ($tx:expr, $conversation:expr, $account:expr, $delivered:expr, $read:expr) => {{
        let conversation: ConversationId = $conversation;
        let account: AccountId = $account;
        // A write first: it locks the member row (PostgreSQL) or the database (SQLite) at once.
        let marks: Option<(i64, i64, bool)> = sqlx::query_as(
            "UPDATE conversation_members SET delivered_seq = delivered_seq \
             WHERE conversation_id = $1 AND account_id = $2 RETURNING delivered_seq, read_seq, request",
        )
        .bind(conversation.as_uuid())
        .bind(account.as_uuid())
        .fetch_optional(&mut *$tx)
        .await?;
        match marks {
            None => None,
            Some((old_delivered, old_read, request)) => {
                let read_seq: i64 = old_read.max($read);
                let delivered_seq: i64 = old_delivered.max($delivered).max(read_seq);
                let mut notified: Vec<AccountId> = Vec::new();
                if read_seq != old_read || delivered_seq != old_delivered {
                    sqlx::query(
                        "UPDATE conversation_members SET delivered_seq = $3, read_seq = $4 \
                         WHERE conversation_id = $1 AND account_id = $2",
                    )
                    .bind(conversation.as_uuid())
                    .bind(account.as_uuid())
                    .bind(delivered_seq)
                    .bind(read_seq)
                    .execute(&mut *$tx)
                    .await?;
                    let senders: Vec<Uuid> = if request {
                        Vec::new()
                    } else {
                        sqlx::query_scalar(
                            "SELECT DISTINCT sender_account_id FROM messages WHERE conversation_id = $1 \
                             AND sender_account_id <> $2 AND system_kind IS NULL \
                             AND ((seq > $3 AND seq <= $4) OR (seq > $5 AND seq <= $6))",
                        )
                        .bind(conversation.as_uuid())
                        .bind(account.as_uuid())
                        .bind(old_read)
                        .bind(read_seq)
                        .bind(old_delivered)
                        .bind(delivered_seq)
                        .fetch_all(&mut *$tx)
                        .await?
                    };
                    notified = senders.into_iter().map(AccountId::from_uuid).collect();
                    if read_seq > old_read {
                        notified.push(account);
                    }
                    notified.sort_unstable();
                }
                Some(Receipt {
                    conversation_id: conversation,
                    account_id: account,
                    delivered_seq,
                    read_seq,
                    notified,
                })
            }
        }
    }};
}
pub(super) use advance_marks;

/// The accounts sharing a conversation with `account` (requests included: their devices need
/// each other's keys), and itself, sorted.
macro_rules! peers_of {
    ($executor:expr, $account:expr) => {{
        let account: AccountId = $account;
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT m2.account_id FROM conversation_members m1 \
             JOIN conversation_members m2 ON m2.conversation_id = m1.conversation_id WHERE m1.account_id = $1",
        )
        .bind(account.as_uuid())
        .fetch_all($executor)
        .await?;
        let mut ids: Vec<AccountId> = ids.into_iter().map(AccountId::from_uuid).collect();
        ids.push(account);
        ids.sort_unstable();
        ids.dedup();
        ids
    }};
}
pub(super) use peers_of;

/// The contacts of `account` (accounts sharing a conversation that both have accepted, with no
/// block either way), and itself, sorted. Presence and avatars reach these only.
macro_rules! contacts_of {
    ($executor:expr, $account:expr) => {{
        let account: AccountId = $account;
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT m2.account_id FROM conversation_members m1 \
             JOIN conversation_members m2 ON m2.conversation_id = m1.conversation_id \
             WHERE m1.account_id = $1 AND m1.request = FALSE AND m2.request = FALSE \
             AND NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = $1 AND b.blocked_id = m2.account_id) \
             OR (b.blocker_id = m2.account_id AND b.blocked_id = $1))",
        )
        .bind(account.as_uuid())
        .fetch_all($executor)
        .await?;
        let mut ids: Vec<AccountId> = ids.into_iter().map(AccountId::from_uuid).collect();
        ids.push(account);
        ids.sort_unstable();
        ids.dedup();
        ids
    }};
}

/// Tells `account` and everyone sharing a conversation with it that its devices changed,
/// inside a transaction.
macro_rules! announce_devices {
    ($tx:expr, $account:expr) => {{
        let account: AccountId = $account;
        let recipients = $crate::delivery::peers_of!(&mut *$tx, account);
        let event = $crate::AccountEvent::DeviceList { account };
        $crate::delivery::push_events!($tx, $crate::delivery::to_all(&recipients, &event));
    }};
}
pub(super) use announce_devices;

/// Delivery state of devices.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Where `device` stands; `None` if the device is gone.
    async fn device_streams(&self, device: DeviceId) -> Result<Option<DeviceStreams>, StoreError>;
    /// The device's acknowledged change in one conversation; `None` unless its account is a
    /// member.
    async fn conversation_cursor(
        &self,
        device: DeviceId,
        conversation: ConversationId,
    ) -> Result<Option<i64>, StoreError>;
    /// Up to `limit` messages of `conversation` changed after `after`, in change order; none
    /// unless `device`'s account is a member.
    async fn message_changes(
        &self,
        device: DeviceId,
        conversation: ConversationId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// Up to `limit` events of `account`'s stream after `after`, with their positions.
    async fn account_events(
        &self,
        account: AccountId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, AccountEvent)>, StoreError>;
    /// Up to `limit` to-device messages of `device` that arrived after `after` (the inbox
    /// order, [`ToDeviceRecord::seq`]).
    async fn to_device_after(
        &self,
        device: DeviceId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ToDeviceRecord>, StoreError>;
    /// Applies a device's acknowledgements; returns the receipts that moved.
    async fn commit_acks(
        &self,
        device: DeviceId,
        account: AccountId,
        acks: &DeviceAcks,
    ) -> Result<Vec<Receipt>, StoreError> {
        let mut receipts = self.commit_acks_of(&[(device, account, acks.clone())]).await?;
        Ok(receipts.pop().unwrap_or_default())
    }
    /// [`DeliveryStore::commit_acks`] for several devices in one transaction (group commit);
    /// the receipts that moved, per device in the order given.
    async fn commit_acks_of(
        &self,
        batch: &[(DeviceId, AccountId, DeviceAcks)],
    ) -> Result<Vec<Vec<Receipt>>, StoreError>;
    /// The contacts of `account` (sharing a conversation both have accepted, no block either
    /// way), and itself.
    async fn contacts(&self, account: AccountId) -> Result<Vec<AccountId>, StoreError>;
    /// The accounts sharing any conversation with `account` (requests included), and itself.
    async fn peers(&self, account: AccountId) -> Result<Vec<AccountId>, StoreError>;
    /// Tells `account`'s peers its device keys changed; returns who was told.
    async fn device_list_changed(&self, account: AccountId) -> Result<Vec<AccountId>, StoreError>;
    /// Devices signed out, revoked or disabled at or after `since_ms`.
    async fn revocations_since(&self, since_ms: i64) -> Result<Vec<DeviceId>, StoreError>;
    /// Forgets revocations before `before_ms`. Returns how many.
    async fn prune_revocations(&self, before_ms: i64) -> Result<u64, StoreError>;
}

impl_for_backends! {
    impl DeliveryStore {
        async fn device_streams(&self, device: DeviceId) -> Result<Option<DeviceStreams>, StoreError> {
            let account_cursor: Option<i64> = sqlx::query_scalar("SELECT event_cursor FROM devices WHERE id = $1")
                .bind(device.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
            let Some(account_cursor) = account_cursor else { return Ok(None) };
            let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(
                "SELECT dc.conversation_id, dc.change_seq, c.last_change FROM device_cursors dc \
                 JOIN conversations c ON c.id = dc.conversation_id WHERE dc.device_id = $1",
            )
            .bind(device.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            let conversations = rows
                .into_iter()
                .map(|(id, acked, head)| ConversationCursor { conversation_id: ConversationId::from_uuid(id), acked, head })
                .collect();
            Ok(Some(DeviceStreams { conversations, account_cursor }))
        }

        async fn conversation_cursor(&self, device: DeviceId, conversation: ConversationId) -> Result<Option<i64>, StoreError> {
            Ok(sqlx::query_scalar("SELECT change_seq FROM device_cursors WHERE device_id = $1 AND conversation_id = $2")
                .bind(device.as_uuid())
                .bind(conversation.as_uuid())
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn message_changes(
            &self,
            device: DeviceId,
            conversation: ConversationId,
            after: i64,
            limit: i64,
        ) -> Result<Vec<MessageRecord>, StoreError> {
            let rows = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND change_seq > $2 \
                 AND EXISTS (SELECT 1 FROM device_cursors WHERE device_id = $3 AND conversation_id = $1) \
                 ORDER BY change_seq LIMIT $4"
            ))
            .bind(conversation.as_uuid())
            .bind(after)
            .bind(device.as_uuid())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            Ok(decode_all!(message rows))
        }

        async fn account_events(&self, account: AccountId, after: i64, limit: i64) -> Result<Vec<(i64, AccountEvent)>, StoreError> {
            let rows = sqlx::query(
                "SELECT position, kind, conversation_id, subject_id, role, delivered_seq, read_seq, request FROM account_events \
                 WHERE account_id = $1 AND position > $2 ORDER BY position LIMIT $3",
            )
            .bind(account.as_uuid())
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            let mut events = Vec::with_capacity(rows.len());
            for row in rows {
                let conversation = ConversationId::from_uuid(row.try_get::<Uuid, _>("conversation_id")?);
                let subject = AccountId::from_uuid(row.try_get::<Uuid, _>("subject_id")?);
                let event = match row.try_get::<String, _>("kind")?.as_str() {
                    "member" => AccountEvent::Member {
                        conversation,
                        account: subject,
                        role: row.try_get::<Option<String>, _>("role")?.as_deref().map(Role::parse).transpose()?,
                        request: row.try_get("request")?,
                    },
                    "receipt" => AccountEvent::Receipt {
                        conversation,
                        account: subject,
                        delivered_seq: row.try_get("delivered_seq")?,
                        read_seq: row.try_get("read_seq")?,
                    },
                    "devices" => AccountEvent::DeviceList { account: subject },
                    other => return Err(StoreError::Corrupt(format!("account event kind {other:?}"))),
                };
                events.push((row.try_get("position")?, event));
            }
            Ok(events)
        }

        async fn to_device_after(&self, device: DeviceId, after: i64, limit: i64) -> Result<Vec<ToDeviceRecord>, StoreError> {
            Ok(sqlx::query_as(
                "SELECT seq, message_id, sender_account_id, sender_device_id, ciphertext, sent_at_ms \
                 FROM to_device_messages WHERE recipient_device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(device.as_uuid())
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn commit_acks_of(&self, batch: &[(DeviceId, AccountId, DeviceAcks)]) -> Result<Vec<Vec<Receipt>>, StoreError> {
            // Rows are locked in the order every other transaction uses: member rows (by
            // conversation), then device rows, then account rows (push_events sorts them).
            let mut conversations: Vec<(ConversationId, AccountId, DeviceId, i64, i64, usize)> = batch
                .iter()
                .enumerate()
                .flat_map(|(i, (device, account, acks))| {
                    acks.conversations.iter().map(move |(c, change, seq)| (*c, *account, *device, *change, *seq, i))
                })
                .collect();
            conversations.sort_unstable();
            let mut receipts: Vec<Vec<Receipt>> = vec![Vec::new(); batch.len()];
            let mut tx = self.pool.begin().await?;
            for (conversation, account, device, change, message_seq, i) in conversations {
                sqlx::query(
                    "UPDATE device_cursors SET change_seq = $3 \
                     WHERE device_id = $1 AND conversation_id = $2 AND change_seq < $3",
                )
                .bind(device.as_uuid())
                .bind(conversation.as_uuid())
                .bind(change)
                .execute(&mut *tx)
                .await?;
                if message_seq > 0
                    && let Some(receipt) = advance_marks!(tx, conversation, account, message_seq, 0)
                    && !receipt.notified.is_empty()
                {
                    receipts[i].push(receipt);
                }
            }
            let mut positions: Vec<(DeviceId, i64)> =
                batch.iter().filter_map(|(device, _, acks)| Some((*device, acks.account_position?))).collect();
            positions.sort_unstable();
            for (device, position) in positions {
                sqlx::query("UPDATE devices SET event_cursor = $2 WHERE id = $1 AND event_cursor < $2")
                    .bind(device.as_uuid())
                    .bind(position)
                    .execute(&mut *tx)
                    .await?;
            }
            push_events!(tx, receipts.iter().flatten().flat_map(Receipt::events).collect());
            for (device, _, acks) in batch {
                for id in &acks.to_device {
                    sqlx::query("DELETE FROM to_device_messages WHERE recipient_device_id = $1 AND message_id = $2")
                        .bind(device.as_uuid())
                        .bind(id.as_uuid())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(receipts)
        }

        async fn contacts(&self, account: AccountId) -> Result<Vec<AccountId>, StoreError> {
            Ok(contacts_of!(&self.pool, account))
        }

        async fn peers(&self, account: AccountId) -> Result<Vec<AccountId>, StoreError> {
            Ok(peers_of!(&self.pool, account))
        }

        async fn device_list_changed(&self, account: AccountId) -> Result<Vec<AccountId>, StoreError> {
            let mut tx = self.pool.begin().await?;
            // Lock the account's own row first (SQLite: take the write lock before reading).
            sqlx::query("UPDATE accounts SET event_seq = event_seq WHERE id = $1")
                .bind(account.as_uuid())
                .execute(&mut *tx)
                .await?;
            let recipients = peers_of!(&mut *tx, account);
            push_events!(tx, to_all(&recipients, &AccountEvent::DeviceList { account }));
            tx.commit().await?;
            Ok(recipients)
        }

        async fn revocations_since(&self, since_ms: i64) -> Result<Vec<DeviceId>, StoreError> {
            let ids: Vec<Uuid> = sqlx::query_scalar("SELECT DISTINCT device_id FROM device_revocations WHERE at_ms >= $1")
                .bind(since_ms)
                .fetch_all(&self.pool)
                .await?;
            Ok(ids.into_iter().map(DeviceId::from_uuid).collect())
        }

        async fn prune_revocations(&self, before_ms: i64) -> Result<u64, StoreError> {
            let done = sqlx::query("DELETE FROM device_revocations WHERE at_ms < $1")
                .bind(before_ms)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        }
    }
}
