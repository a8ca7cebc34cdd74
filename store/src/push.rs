//! Web Push subscriptions (`push_subscriptions`, migration 0015): one per device, where the
//! server sends a content-free "new message" while the device's app is closed. A subscription
//! goes with its device (the foreign key's cascade: sign-out, revocation) and when the push
//! service answers that it is gone.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;
use crate::ids::{AccountId, ConversationId, DeviceId};

/// A device's push subscription, as the browser gave it (checked by the service first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscription {
    /// The push service's URL to POST to (https).
    pub endpoint: String,
    /// The browser's P-256 public key, uncompressed (65 bytes).
    pub p256dh: Vec<u8>,
    /// The browser's 16-byte authentication secret.
    pub auth: Vec<u8>,
}

/// Push subscriptions.
#[async_trait]
pub trait PushStore: Send + Sync {
    /// Sets the subscription of `device` (replacing any it had).
    async fn set_push_subscription(
        &self,
        device: DeviceId,
        subscription: &PushSubscription,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// The subscription of `device`, if it has one.
    async fn push_subscription(&self, device: DeviceId) -> Result<Option<PushSubscription>, StoreError>;
    /// Deletes the subscription of `device`; with `endpoint`, only while it is still that one
    /// (a push service's "gone" must not delete a newer subscription). `false` if none was deleted.
    async fn delete_push_subscription(
        &self,
        device: DeviceId,
        endpoint: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// The devices with a subscription of the members of `conversation` who have accepted it
    /// (a pending request never wakes anyone), except those of `except` (the sender).
    async fn push_devices(
        &self,
        conversation: ConversationId,
        except: AccountId,
    ) -> Result<Vec<(AccountId, DeviceId)>, StoreError>;
}

impl_for_backends! {
    impl PushStore {
        async fn set_push_subscription(
            &self,
            device: DeviceId,
            subscription: &PushSubscription,
            now_ms: i64,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO push_subscriptions (device_id, endpoint, p256dh, auth, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id) DO UPDATE SET \
                 endpoint = excluded.endpoint, p256dh = excluded.p256dh, auth = excluded.auth, \
                 created_at_ms = excluded.created_at_ms",
            )
            .bind(device.as_uuid())
            .bind(&subscription.endpoint)
            .bind(&subscription.p256dh)
            .bind(&subscription.auth)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn push_subscription(&self, device: DeviceId) -> Result<Option<PushSubscription>, StoreError> {
            let row: Option<(String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
                "SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE device_id = $1",
            )
            .bind(device.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.map(|(endpoint, p256dh, auth)| PushSubscription { endpoint, p256dh, auth }))
        }

        async fn delete_push_subscription(
            &self,
            device: DeviceId,
            endpoint: Option<&str>,
        ) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "DELETE FROM push_subscriptions WHERE device_id = $1 AND ($2 IS NULL OR endpoint = $2)",
            )
            .bind(device.as_uuid())
            .bind(endpoint)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn push_devices(
            &self,
            conversation: ConversationId,
            except: AccountId,
        ) -> Result<Vec<(AccountId, DeviceId)>, StoreError> {
            let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
                "SELECT d.account_id, d.id FROM push_subscriptions p \
                 JOIN devices d ON d.id = p.device_id \
                 JOIN conversation_members m ON m.account_id = d.account_id AND m.conversation_id = $1 \
                 WHERE m.account_id <> $2 AND m.request = FALSE ORDER BY d.id",
            )
            .bind(conversation.as_uuid())
            .bind(except.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(|(a, d)| (AccountId::from_uuid(a), DeviceId::from_uuid(d))).collect())
        }
    }
}
