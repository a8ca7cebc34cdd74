//! Avatars (`accounts.avatar_id`/`avatar_version`, `conversations.avatar_id`/`avatar_version`;
//! migration 0008): which avatar blob is current for an account or a group, and a version that
//! goes up with every change. The images live in the blob store (`crate::blobs`, `avatars/<id>`).
//!
//! A change returns the blob it replaced, read and written in one transaction, so of two racing
//! changes each gets the blob the other replaced and no blob is ever left unreferenced by both.

use async_trait::async_trait;
use uuid::Uuid;

use super::{Role, StoreError};
use crate::ids::{AccountId, AvatarId, ConversationId};

/// What an avatar change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvatarChange {
    /// The blob that was current before (delete it now).
    pub previous: Option<AvatarId>,
    /// The new version.
    pub version: i64,
}

/// The outcome of changing a group's avatar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAvatarOutcome {
    /// Changed.
    Changed(AvatarChange),
    /// No such conversation, or `by` is not a member of it.
    NotMember,
    /// A direct conversation (no avatar of its own).
    NotAGroup,
    /// `by` is a plain member (only the owner and admins may).
    NotAllowed,
}

/// Avatars.
#[async_trait]
pub trait AvatarStore: Send + Sync {
    /// Makes `avatar` (or none) the account's avatar and bumps its version; `None` if there is
    /// no such account.
    async fn set_account_avatar(
        &self,
        account: AccountId,
        avatar: Option<AvatarId>,
    ) -> Result<Option<AvatarChange>, StoreError>;
    /// Makes `avatar` (or none) the group's avatar, if `by` is its owner or an admin.
    async fn set_group_avatar(
        &self,
        conversation: ConversationId,
        by: AccountId,
        avatar: Option<AvatarId>,
    ) -> Result<GroupAvatarOutcome, StoreError>;
    /// Whether `a` and `b` are contacts: members of one conversation both have accepted (not a
    /// request), with no block between them.
    async fn are_contacts(&self, a: AccountId, b: AccountId) -> Result<bool, StoreError>;
}

impl_for_backends! {
    impl AvatarStore {
        async fn set_account_avatar(
            &self,
            account: AccountId,
            avatar: Option<AvatarId>,
        ) -> Result<Option<AvatarChange>, StoreError> {
            let mut tx = self.pool.begin().await?;
            // Lock the row first (PostgreSQL; SQLite takes its write lock here).
            sqlx::query("UPDATE accounts SET avatar_version = avatar_version WHERE id = $1")
                .bind(account.as_uuid())
                .execute(&mut *tx)
                .await?;
            let previous: Option<Option<Uuid>> =
                sqlx::query_scalar("SELECT avatar_id FROM accounts WHERE id = $1")
                    .bind(account.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(previous) = previous else { return Ok(None) };
            let version: i64 = sqlx::query_scalar(
                "UPDATE accounts SET avatar_id = $2, avatar_version = avatar_version + 1 WHERE id = $1 \
                 RETURNING avatar_version",
            )
            .bind(account.as_uuid())
            .bind(avatar.map(|a| a.as_uuid()))
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(AvatarChange { previous: previous.map(AvatarId::from_uuid), version }))
        }

        async fn set_group_avatar(
            &self,
            conversation: ConversationId,
            by: AccountId,
            avatar: Option<AvatarId>,
        ) -> Result<GroupAvatarOutcome, StoreError> {
            let mut tx = self.pool.begin().await?;
            // Lock the group's row first, so racing changes take turns (each sees the previous id).
            sqlx::query("UPDATE conversations SET avatar_version = avatar_version WHERE id = $1")
                .bind(conversation.as_uuid())
                .execute(&mut *tx)
                .await?;
            let row: Option<(String, Option<Uuid>, String)> = sqlx::query_as(
                "SELECT c.kind, c.avatar_id, m.role FROM conversations c \
                 JOIN conversation_members m ON m.conversation_id = c.id AND m.account_id = $2 WHERE c.id = $1",
            )
            .bind(conversation.as_uuid())
            .bind(by.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((kind, previous, role)) = row else { return Ok(GroupAvatarOutcome::NotMember) };
            if kind != "group" {
                return Ok(GroupAvatarOutcome::NotAGroup);
            }
            if Role::parse(&role)? == Role::Member {
                return Ok(GroupAvatarOutcome::NotAllowed);
            }
            let version: i64 = sqlx::query_scalar(
                "UPDATE conversations SET avatar_id = $2, avatar_version = avatar_version + 1 WHERE id = $1 \
                 RETURNING avatar_version",
            )
            .bind(conversation.as_uuid())
            .bind(avatar.map(|a| a.as_uuid()))
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(GroupAvatarOutcome::Changed(AvatarChange { previous: previous.map(AvatarId::from_uuid), version }))
        }

        async fn are_contacts(&self, a: AccountId, b: AccountId) -> Result<bool, StoreError> {
            Ok(super::conversations::are_contacts!(&self.pool, a, b))
        }
    }
}
