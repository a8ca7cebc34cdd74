//! Blocks (`blocks`, migration 0011): who has blocked whom. Blocking also takes the blocker out
//! of the direct conversation with the blocked account and out of every request that account
//! made, in the same transaction, so nothing it sends afterwards reaches the blocker there.

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::conversations::{direct_key, leave_conversation};
use super::{AccountEvent, Role, StoreError};
use crate::ids::{AccountId, ConversationId, DeviceId};

/// Blocked accounts.
#[async_trait]
pub trait BlockStore: Send + Sync {
    /// `blocker` blocks `blocked` (blocking again changes nothing) and leaves the direct
    /// conversation with it and every conversation `blocked` added it to that it has not
    /// accepted. Returns the conversations it left.
    async fn block(
        &self,
        blocker: AccountId,
        blocked: AccountId,
        now_ms: i64,
    ) -> Result<Vec<ConversationId>, StoreError>;
    /// Lifts a block; `false` if there was none.
    async fn unblock(&self, blocker: AccountId, blocked: AccountId) -> Result<bool, StoreError>;
    /// The accounts `blocker` has blocked and when, most recent first.
    async fn blocked_by(&self, blocker: AccountId) -> Result<Vec<(AccountId, i64)>, StoreError>;
    /// Whether `blocker` has blocked `blocked`.
    async fn has_blocked(&self, blocker: AccountId, blocked: AccountId) -> Result<bool, StoreError>;
    /// The accounts that have blocked `account`.
    async fn blockers_of(&self, account: AccountId) -> Result<Vec<AccountId>, StoreError>;
    /// The devices of the accounts that have blocked `account`.
    async fn blocking_devices(&self, account: AccountId) -> Result<Vec<DeviceId>, StoreError>;
}

impl_for_backends! {
    impl BlockStore {
        async fn block(
            &self,
            blocker: AccountId,
            blocked: AccountId,
            now_ms: i64,
        ) -> Result<Vec<ConversationId>, StoreError> {
            let mut tx = self.pool.begin().await?;
            crate::delivery::lock_memberships!(tx, vec![blocker]);
            sqlx::query(
                "INSERT INTO blocks (blocker_id, blocked_id, created_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
            )
            .bind(blocker.as_uuid())
            .bind(blocked.as_uuid())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            let ids: Vec<Uuid> = sqlx::query_scalar(
                "SELECT c.id FROM conversations c JOIN conversation_members m \
                 ON m.conversation_id = c.id AND m.account_id = $1 \
                 WHERE c.direct_key IN ($3, $4) OR (m.request = TRUE AND m.added_by = $2) ORDER BY c.id",
            )
            .bind(blocker.as_uuid())
            .bind(blocked.as_uuid())
            .bind(direct_key((blocker, blocked), true))
            .bind(direct_key((blocker, blocked), false))
            .fetch_all(&mut *tx)
            .await?;
            let mut left = Vec::with_capacity(ids.len());
            for id in ids.into_iter().map(ConversationId::from_uuid) {
                if leave_conversation!(tx, id, blocker).is_some() {
                    left.push(id);
                }
            }
            tx.commit().await?;
            Ok(left)
        }

        async fn unblock(&self, blocker: AccountId, blocked: AccountId) -> Result<bool, StoreError> {
            let done = sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
                .bind(blocker.as_uuid())
                .bind(blocked.as_uuid())
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn blocked_by(&self, blocker: AccountId) -> Result<Vec<(AccountId, i64)>, StoreError> {
            let rows: Vec<(Uuid, i64)> = sqlx::query_as(
                "SELECT blocked_id, created_at_ms FROM blocks WHERE blocker_id = $1 \
                 ORDER BY created_at_ms DESC, blocked_id",
            )
            .bind(blocker.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(|(id, at)| (AccountId::from_uuid(id), at)).collect())
        }

        async fn has_blocked(&self, blocker: AccountId, blocked: AccountId) -> Result<bool, StoreError> {
            let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
                .bind(blocker.as_uuid())
                .bind(blocked.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
            Ok(found.is_some())
        }

        async fn blockers_of(&self, account: AccountId) -> Result<Vec<AccountId>, StoreError> {
            let ids: Vec<Uuid> = sqlx::query_scalar("SELECT blocker_id FROM blocks WHERE blocked_id = $1 ORDER BY blocker_id")
                .bind(account.as_uuid())
                .fetch_all(&self.pool)
                .await?;
            Ok(ids.into_iter().map(AccountId::from_uuid).collect())
        }

        async fn blocking_devices(&self, account: AccountId) -> Result<Vec<DeviceId>, StoreError> {
            let ids: Vec<Uuid> = sqlx::query_scalar(
                "SELECT d.id FROM devices d JOIN blocks b ON b.blocker_id = d.account_id WHERE b.blocked_id = $1",
            )
            .bind(account.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            Ok(ids.into_iter().map(DeviceId::from_uuid).collect())
        }
    }
}
