//! To-device inboxes (`to_device_messages`): opaque ciphertext for one device, kept until that
//! device acknowledges it (or it expires), in the order it arrived.

use async_trait::async_trait;
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

/// Why a batch was refused (nothing of it was stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRefusal {
    /// A recipient device does not exist.
    UnknownDevice(DeviceId),
    /// A recipient's inbox would hold more than the limit.
    InboxFull(DeviceId),
}

/// To-device inboxes.
#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Queues a batch from `sender`, all or nothing. A message id already queued for that
    /// recipient is skipped (a retried send).
    async fn send_to_devices(
        &self,
        sender: (AccountId, DeviceId),
        messages: &[NewToDevice],
        now_ms: i64,
        expires_at_ms: i64,
        max_inbox: i64,
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
            max_inbox: i64,
        ) -> Result<Result<(), SendRefusal>, StoreError> {
            let mut tx = self.pool.begin().await?;
            let mut recipients: Vec<DeviceId> = messages.iter().map(|m| m.recipient).collect();
            recipients.sort_unstable();
            recipients.dedup();
            for message in messages {
                sqlx::query(
                    "INSERT INTO to_device_messages (recipient_device_id, message_id, sender_account_id, \
                     sender_device_id, ciphertext, sent_at_ms, expires_at_ms) \
                     SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM devices WHERE id = $1) \
                     ON CONFLICT (recipient_device_id, message_id) DO NOTHING",
                )
                .bind(message.recipient.as_uuid())
                .bind(message.message_id.as_uuid())
                .bind(sender.0.as_uuid())
                .bind(sender.1.as_uuid())
                .bind(&message.ciphertext)
                .bind(now_ms)
                .bind(expires_at_ms)
                .execute(&mut *tx)
                .await?;
            }
            for recipient in recipients {
                let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1)")
                    .bind(recipient.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
                if !exists {
                    tx.rollback().await?;
                    return Ok(Err(SendRefusal::UnknownDevice(recipient)));
                }
                let held: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM to_device_messages WHERE recipient_device_id = $1")
                        .bind(recipient.as_uuid())
                        .fetch_one(&mut *tx)
                        .await?;
                if held > max_inbox {
                    tx.rollback().await?;
                    return Ok(Err(SendRefusal::InboxFull(recipient)));
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
