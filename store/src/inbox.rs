//! To-device inboxes (`to_device_messages`): opaque ciphertext for one device, kept until that
//! device acknowledges it (or it expires), in the order it arrived, within a quota per inbox,
//! per sender and for strangers together (see [`InboxQuota`]).

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::StoreError;
use crate::ids::{AccountId, DeviceId, MessageId};

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewToDevice {
    /// Chosen by the sender (idempotency).
    pub message_id: MessageId,
    /// The recipient device.
    pub recipient: DeviceId,
    /// Opaque bytes.
    pub ciphertext: Vec<u8>,
}

/// A queued message.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ToDeviceRecord {
    /// Its place in the inbox order.
    pub seq: i64,
    /// Chosen by the sender.
    #[sqlx(try_from = "Uuid")]
    pub message_id: MessageId,
    /// Who sent it.
    #[sqlx(try_from = "Uuid")]
    pub sender_account_id: AccountId,
    /// From which device.
    #[sqlx(try_from = "Uuid")]
    pub sender_device_id: DeviceId,
    /// Opaque bytes.
    pub ciphertext: Vec<u8>,
    /// When it arrived (ms).
    pub sent_at_ms: i64,
}

/// What may wait in one device's inbox (the limits `send_to_devices` enforces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxQuota {
    /// Messages, from everyone.
    pub messages: i64,
    /// Bytes of ciphertext, from everyone.
    pub bytes: i64,
    /// Messages from one sender account.
    pub per_sender: i64,
    /// Messages from strangers together: senders that, when they sent, neither owned the device
    /// nor shared a conversation with its owner.
    pub stranger_messages: i64,
    /// Bytes of ciphertext from strangers together.
    pub stranger_bytes: i64,
}

/// Why a batch was refused (nothing of it was stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRefusal {
    /// A recipient device does not exist.
    UnknownDevice(DeviceId),
    /// The sender would have more than [`InboxQuota::per_sender`] messages waiting there.
    TooManyPending(DeviceId),
    /// The sender is a stranger to the recipient and strangers' messages would exceed their
    /// part of the inbox.
    StrangerInboxFull(DeviceId),
    /// A recipient's inbox would hold more messages or bytes than the quota.
    InboxFull(DeviceId),
}

/// `$1` a device, `$2` an account: one row, `true` when the account owns the device or is a
/// contact of its owner (both accepted a conversation they share, and neither blocked the
/// other: the same rule as `are_contacts!`), `false` for a stranger; no row for an unknown
/// device. A pending message request does not make a contact, or a stranger could open one
/// and then use the contacts' room in an inbox.
pub(super) const IS_CONTACT_OF_DEVICE: &str = "SELECT (d.account_id = $2 OR (EXISTS (\
    SELECT 1 FROM conversation_members mine JOIN conversation_members theirs \
    ON theirs.conversation_id = mine.conversation_id \
    WHERE mine.account_id = d.account_id AND theirs.account_id = $2 \
    AND mine.request = FALSE AND theirs.request = FALSE) \
    AND NOT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = d.account_id AND blocked_id = $2) \
    OR (blocker_id = $2 AND blocked_id = d.account_id)))) AS contact \
    FROM devices d WHERE d.id = $1";

/// To-device inboxes.
#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Queues a batch from `sender`, all or nothing, within `quota` for each recipient. A
    /// message id already queued for that recipient is skipped (a retried send). Racing sends
    /// to one device are serialized, so they cannot overshoot the quota together.
    async fn send_to_devices(
        &self,
        sender: (AccountId, DeviceId),
        messages: &[NewToDevice],
        now_ms: i64,
        expires_at_ms: i64,
        quota: &InboxQuota,
    ) -> Result<Result<(), SendRefusal>, StoreError>;
    /// Up to `limit` waiting messages of `device`, oldest first.
    async fn fetch_to_device(&self, device: DeviceId, limit: i64) -> Result<Vec<ToDeviceRecord>, StoreError>;
    /// Deletes the given messages from `device`'s inbox. Returns how many were there.
    async fn ack_to_device(&self, device: DeviceId, ids: &[MessageId]) -> Result<u64, StoreError>;
    /// Deletes expired messages. Returns how many.
    async fn prune_to_device(&self, now_ms: i64) -> Result<u64, StoreError>;
}

impl_for_backends! {
    impl InboxStore {
        async fn send_to_devices(
            &self,
            sender: (AccountId, DeviceId),
            messages: &[NewToDevice],
            now_ms: i64,
            expires_at_ms: i64,
            quota: &InboxQuota,
        ) -> Result<Result<(), SendRefusal>, StoreError> {
            let mut tx = self.pool.begin().await?;
            let mut recipients: Vec<DeviceId> = messages.iter().map(|m| m.recipient).collect();
            recipients.sort_unstable();
            recipients.dedup();
            for recipient in recipients {
                // A write first: it locks the recipient's row (PostgreSQL) or the database
                // (SQLite) until commit, so racing sends to this device count one after the
                // other. Sorted recipients keep the locks in one order.
                let locked = sqlx::query("UPDATE devices SET last_seen_at_ms = last_seen_at_ms WHERE id = $1")
                    .bind(recipient.as_uuid())
                    .execute(&mut *tx)
                    .await?;
                if locked.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(Err(SendRefusal::UnknownDevice(recipient)));
                }
                let contact: bool = sqlx::query_scalar(IS_CONTACT_OF_DEVICE)
                    .bind(recipient.as_uuid())
                    .bind(sender.0.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
                for message in messages.iter().filter(|m| m.recipient == recipient) {
                    sqlx::query(
                        "INSERT INTO to_device_messages (recipient_device_id, message_id, sender_account_id, \
                         sender_device_id, ciphertext, sent_at_ms, expires_at_ms, from_stranger) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (recipient_device_id, message_id) DO NOTHING",
                    )
                    .bind(recipient.as_uuid())
                    .bind(message.message_id.as_uuid())
                    .bind(sender.0.as_uuid())
                    .bind(sender.1.as_uuid())
                    .bind(&message.ciphertext)
                    .bind(now_ms)
                    .bind(expires_at_ms)
                    .bind(!contact)
                    .execute(&mut *tx)
                    .await?;
                }
                let held = sqlx::query(
                    "SELECT COUNT(*) AS messages, COALESCE(SUM(LENGTH(ciphertext)), 0) AS bytes, \
                     COALESCE(SUM(CASE WHEN sender_account_id = $2 THEN 1 ELSE 0 END), 0) AS from_sender, \
                     COALESCE(SUM(CASE WHEN from_stranger THEN 1 ELSE 0 END), 0) AS stranger_messages, \
                     COALESCE(SUM(CASE WHEN from_stranger THEN LENGTH(ciphertext) ELSE 0 END), 0) AS stranger_bytes \
                     FROM to_device_messages WHERE recipient_device_id = $1",
                )
                .bind(recipient.as_uuid())
                .bind(sender.0.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
                let count = |column: &str| -> Result<i64, StoreError> { Ok(held.try_get::<i64, _>(column)?) };
                let refusal = if count("from_sender")? > quota.per_sender {
                    Some(SendRefusal::TooManyPending(recipient))
                } else if !contact
                    && (count("stranger_messages")? > quota.stranger_messages
                        || count("stranger_bytes")? > quota.stranger_bytes)
                {
                    Some(SendRefusal::StrangerInboxFull(recipient))
                } else if count("messages")? > quota.messages || count("bytes")? > quota.bytes {
                    Some(SendRefusal::InboxFull(recipient))
                } else {
                    None
                };
                if let Some(refusal) = refusal {
                    tx.rollback().await?;
                    return Ok(Err(refusal));
                }
            }
            tx.commit().await?;
            Ok(Ok(()))
        }

        async fn fetch_to_device(&self, device: DeviceId, limit: i64) -> Result<Vec<ToDeviceRecord>, StoreError> {
            Ok(sqlx::query_as(
                "SELECT seq, message_id, sender_account_id, sender_device_id, ciphertext, sent_at_ms \
                 FROM to_device_messages WHERE recipient_device_id = $1 ORDER BY seq LIMIT $2",
            )
            .bind(device.as_uuid())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn ack_to_device(&self, device: DeviceId, ids: &[MessageId]) -> Result<u64, StoreError> {
            let mut tx = self.pool.begin().await?;
            let mut deleted = 0;
            for id in ids {
                deleted += sqlx::query(
                    "DELETE FROM to_device_messages WHERE recipient_device_id = $1 AND message_id = $2",
                )
                .bind(device.as_uuid())
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(deleted)
        }

        async fn prune_to_device(&self, now_ms: i64) -> Result<u64, StoreError> {
            let done = sqlx::query("DELETE FROM to_device_messages WHERE expires_at_ms <= $1")
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        }
    }
}
