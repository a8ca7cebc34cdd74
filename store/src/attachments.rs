//! Attachments (`attachments`, `attachment_downloads`; migration 0007): which encrypted blobs
//! exist, whose they are, in which conversation, whether their upload was checked, which
//! message carries them, when they go, and who downloaded them. The blobs themselves live in the
//! blob store (`crate::blobs`); this table never holds a file name or type.
//!
//! Linking to a message happens inside [`super::ConversationStore::send_message`] (one
//! transaction with the message), and deleting a message makes its attachments due at once
//! (`expires_at_ms = now`), so housekeeping deletes their blobs and rows like expired ones.

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::StoreError;
use crate::ids::{AccountId, AttachmentId, ConversationId, DeviceId, MessageId};

/// An attachment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRecord {
    /// Its id (the blob's key too).
    pub id: AttachmentId,
    /// Where it may be sent and who may download it (the members).
    pub conversation_id: ConversationId,
    /// Who uploads it.
    pub uploader: (AccountId, DeviceId),
    /// Bytes of ciphertext.
    pub size: i64,
    /// When it was reserved (ms).
    pub created_at_ms: i64,
    /// When its upload was checked (0: not yet).
    pub uploaded_at_ms: i64,
    /// The message carrying it, once linked.
    pub message_id: Option<MessageId>,
    /// When it goes (0: with its message).
    pub expires_at_ms: i64,
}

impl AttachmentRecord {
    /// Whether it is past its expiry at `now_ms` (its blob may still be waiting for
    /// housekeeping).
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms != 0 && self.expires_at_ms <= now_ms
    }
}

/// An attachment to reserve.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    /// Its id.
    pub id: AttachmentId,
    /// Where.
    pub conversation_id: ConversationId,
    /// Who.
    pub uploader: (AccountId, DeviceId),
    /// Bytes of ciphertext.
    pub size: i64,
    /// When it goes (0: with its message).
    pub expires_at_ms: i64,
    /// Now (ms).
    pub now_ms: i64,
}

/// What reserving an attachment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateAttachmentOutcome {
    /// Reserved.
    Created(AttachmentRecord),
    /// The uploader is not a member of the conversation (or it does not exist).
    NotMember,
    /// The uploader's attachments would exceed the quota; `used` bytes are taken.
    QuotaExceeded {
        /// Bytes the uploader's attachments take now (uploaded or not).
        used: i64,
    },
}

/// Attachments.
#[async_trait]
pub trait AttachmentStore: Send + Sync {
    /// Reserves an attachment for a member of its conversation, unless the uploader's
    /// attachments (uploaded or not) plus this one would exceed `quota` bytes. Concurrent
    /// reservations of one uploader take turns, so the quota holds.
    async fn create_attachment(
        &self,
        attachment: &NewAttachment,
        quota: i64,
    ) -> Result<CreateAttachmentOutcome, StoreError>;
    /// One attachment.
    async fn attachment(&self, id: AttachmentId) -> Result<Option<AttachmentRecord>, StoreError>;
    /// Marks an attachment uploaded (its blob was checked); keeps the first time when called
    /// again. `None` if it does not exist.
    async fn mark_uploaded(
        &self,
        id: AttachmentId,
        now_ms: i64,
    ) -> Result<Option<AttachmentRecord>, StoreError>;
    /// Records that `account` downloaded the attachment (the first time counts); `false` if it
    /// was recorded before or the attachment is gone.
    async fn record_download(
        &self,
        id: AttachmentId,
        account: AccountId,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Who downloaded an attachment, earliest first.
    async fn downloads(&self, id: AttachmentId) -> Result<Vec<(AccountId, i64)>, StoreError>;
    /// Makes an attachment due now (unless it is due earlier); `false` if it does not exist.
    async fn expire_attachment(&self, id: AttachmentId, now_ms: i64) -> Result<bool, StoreError>;
    /// Claims up to `limit` attachments to delete: past their expiry at `now_ms`, or never
    /// linked to a message and reserved before `unlinked_before_ms`. Claimed ones count as
    /// expired from then on (`expires_at_ms <= now_ms`), so no message can link them while their
    /// blob is being deleted. Oldest first.
    async fn due_attachments(
        &self,
        now_ms: i64,
        unlinked_before_ms: i64,
        limit: i64,
    ) -> Result<Vec<AttachmentRecord>, StoreError>;
    /// Deletes an attachment's row (after its blob) and its downloads; `false` if gone.
    async fn delete_attachment(&self, id: AttachmentId) -> Result<bool, StoreError>;
    /// Bytes an account's attachments take (uploaded or not).
    async fn attachment_usage(&self, account: AccountId) -> Result<i64, StoreError>;
    /// Which of `ids` have a row (in any state); the stray-blob sweep deletes the blobs of the
    /// others. At most a few hundred ids per call.
    async fn existing_attachments(&self, ids: &[AttachmentId]) -> Result<Vec<AttachmentId>, StoreError>;
}

pub(super) const ATTACHMENT_COLUMNS: &str = "id, conversation_id, uploader_account_id, uploader_device_id, size, \
                                             created_at_ms, uploaded_at_ms, message_id, expires_at_ms";

macro_rules! decode_attachment {
    ($row:expr) => {{
        let row = $row;
        AttachmentRecord {
            id: AttachmentId::from_uuid(row.try_get::<Uuid, _>("id")?),
            conversation_id: ConversationId::from_uuid(row.try_get::<Uuid, _>("conversation_id")?),
            uploader: (
                AccountId::from_uuid(row.try_get::<Uuid, _>("uploader_account_id")?),
                DeviceId::from_uuid(row.try_get::<Uuid, _>("uploader_device_id")?),
            ),
            size: row.try_get("size")?,
            created_at_ms: row.try_get("created_at_ms")?,
            uploaded_at_ms: row.try_get("uploaded_at_ms")?,
            message_id: row.try_get::<Option<Uuid>, _>("message_id")?.map(MessageId::from_uuid),
            expires_at_ms: row.try_get("expires_at_ms")?,
        }
    }};
}

/// Links `$ids` to message `$message` inside a transaction (the sender's own, uploaded, in
/// `$conversation`, not linked elsewhere, not expired). Evaluates to the first id that could
/// not be linked, if any; the caller rolls back then.
macro_rules! link_attachments {
    ($tx:expr, $ids:expr, $message:expr, $conversation:expr, $sender:expr, $now:expr) => {{
        let mut refused: Option<$crate::ids::AttachmentId> = None;
        for id in $ids {
            let linked = sqlx::query(
                "UPDATE attachments SET message_id = $1 WHERE id = $2 AND conversation_id = $3 \
                 AND uploader_account_id = $4 AND uploaded_at_ms > 0 AND message_id IS NULL \
                 AND (expires_at_ms = 0 OR expires_at_ms > $5)",
            )
            .bind($message.as_uuid())
            .bind(id.as_uuid())
            .bind($conversation.as_uuid())
            .bind($sender.as_uuid())
            .bind($now)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
            if linked != 1 {
                refused = Some(*id);
                break;
            }
        }
        refused
    }};
}
pub(super) use link_attachments;

/// Makes the attachments of a deleted message due at `$now`, inside a transaction. A message id
/// is unique within its conversation only, hence both.
macro_rules! expire_attachments_of {
    ($tx:expr, $conversation:expr, $message:expr, $now:expr) => {{
        sqlx::query(
            "UPDATE attachments SET expires_at_ms = $2 WHERE message_id = $1 AND conversation_id = $3 \
             AND (expires_at_ms = 0 OR expires_at_ms > $2)",
        )
        .bind($message.as_uuid())
        .bind($now)
        .bind($conversation.as_uuid())
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(super) use expire_attachments_of;

impl_for_backends! {
    impl AttachmentStore {
        async fn create_attachment(
            &self,
            a: &NewAttachment,
            quota: i64,
        ) -> Result<CreateAttachmentOutcome, StoreError> {
            let mut tx = self.pool.begin().await?;
            // Lock the uploader's account row first: reservations of one account take turns, so
            // the sum below is not raced (PostgreSQL; SQLite has one writer anyway).
            sqlx::query("UPDATE accounts SET event_seq = event_seq WHERE id = $1")
                .bind(a.uploader.0.as_uuid())
                .execute(&mut *tx)
                .await?;
            // A member, or (in a cloud channel) a member of its guild: what their roles allow
            // there is the server's to check, as for sends.
            let member: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM conversations c WHERE c.id = $1 \
                 AND (EXISTS (SELECT 1 FROM conversation_members WHERE conversation_id = $1 AND account_id = $2) \
                      OR (c.kind = 'channel' AND c.mode = 'cloud' AND EXISTS (SELECT 1 FROM guild_members g \
                          WHERE g.guild_id = c.guild_id AND g.account_id = $2)))",
            )
            .bind(a.conversation_id.as_uuid())
            .bind(a.uploader.0.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            if member.is_none() {
                return Ok(CreateAttachmentOutcome::NotMember);
            }
            let used: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM attachments WHERE uploader_account_id = $1",
            )
            .bind(a.uploader.0.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
            if used.saturating_add(a.size) > quota {
                return Ok(CreateAttachmentOutcome::QuotaExceeded { used });
            }
            let row = sqlx::query(&format!(
                "INSERT INTO attachments (id, conversation_id, uploader_account_id, uploader_device_id, size, \
                 created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ATTACHMENT_COLUMNS}"
            ))
            .bind(a.id.as_uuid())
            .bind(a.conversation_id.as_uuid())
            .bind(a.uploader.0.as_uuid())
            .bind(a.uploader.1.as_uuid())
            .bind(a.size)
            .bind(a.now_ms)
            .bind(a.expires_at_ms)
            .fetch_one(&mut *tx)
            .await?;
            let created = decode_attachment!(row);
            tx.commit().await?;
            Ok(CreateAttachmentOutcome::Created(created))
        }

        async fn attachment(&self, id: AttachmentId) -> Result<Option<AttachmentRecord>, StoreError> {
            let row = sqlx::query(&format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE id = $1"))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
            Ok(match row {
                Some(row) => Some(decode_attachment!(row)),
                None => None,
            })
        }

        async fn mark_uploaded(&self, id: AttachmentId, now_ms: i64) -> Result<Option<AttachmentRecord>, StoreError> {
            let row = sqlx::query(&format!(
                "UPDATE attachments SET uploaded_at_ms = CASE WHEN uploaded_at_ms = 0 THEN $2 ELSE uploaded_at_ms END \
                 WHERE id = $1 RETURNING {ATTACHMENT_COLUMNS}"
            ))
            .bind(id.as_uuid())
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
            Ok(match row {
                Some(row) => Some(decode_attachment!(row)),
                None => None,
            })
        }

        async fn record_download(&self, id: AttachmentId, account: AccountId, now_ms: i64) -> Result<bool, StoreError> {
            let inserted = sqlx::query(
                "INSERT INTO attachment_downloads (attachment_id, account_id, downloaded_at_ms) \
                 SELECT id, $2, $3 FROM attachments WHERE id = $1 ON CONFLICT DO NOTHING",
            )
            .bind(id.as_uuid())
            .bind(account.as_uuid())
            .bind(now_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
            Ok(inserted == 1)
        }

        async fn downloads(&self, id: AttachmentId) -> Result<Vec<(AccountId, i64)>, StoreError> {
            let rows: Vec<(Uuid, i64)> = sqlx::query_as(
                "SELECT account_id, downloaded_at_ms FROM attachment_downloads WHERE attachment_id = $1 \
                 ORDER BY downloaded_at_ms, account_id",
            )
            .bind(id.as_uuid())
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(|(account, at)| (AccountId::from_uuid(account), at)).collect())
        }

        async fn expire_attachment(&self, id: AttachmentId, now_ms: i64) -> Result<bool, StoreError> {
            let found: Option<i64> = sqlx::query_scalar(
                "UPDATE attachments SET expires_at_ms = CASE WHEN expires_at_ms = 0 OR expires_at_ms > $2 \
                 THEN $2 ELSE expires_at_ms END WHERE id = $1 RETURNING expires_at_ms",
            )
            .bind(id.as_uuid())
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
            Ok(found.is_some())
        }

        async fn due_attachments(
            &self,
            now_ms: i64,
            unlinked_before_ms: i64,
            limit: i64,
        ) -> Result<Vec<AttachmentRecord>, StoreError> {
            const DUE: &str = "((expires_at_ms > 0 AND expires_at_ms <= $1) OR (message_id IS NULL AND created_at_ms < $2))";
            let rows = sqlx::query(&format!(
                "UPDATE attachments SET expires_at_ms = CASE WHEN expires_at_ms > 0 AND expires_at_ms <= $1 \
                 THEN expires_at_ms ELSE $1 END \
                 WHERE id IN (SELECT id FROM attachments WHERE {DUE} ORDER BY created_at_ms, id LIMIT $3) AND {DUE} \
                 RETURNING {ATTACHMENT_COLUMNS}"
            ))
            .bind(now_ms)
            .bind(unlinked_before_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            let mut due = Vec::with_capacity(rows.len());
            for row in rows {
                due.push(decode_attachment!(row));
            }
            due.sort_by_key(|a| (a.created_at_ms, a.id));
            Ok(due)
        }

        async fn delete_attachment(&self, id: AttachmentId) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM attachment_downloads WHERE attachment_id = $1")
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query("DELETE FROM attachments WHERE id = $1")
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(deleted == 1)
        }

        async fn attachment_usage(&self, account: AccountId) -> Result<i64, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM attachments WHERE uploader_account_id = $1",
            )
            .bind(account.as_uuid())
            .fetch_one(&self.pool)
            .await?)
        }

        async fn existing_attachments(&self, ids: &[AttachmentId]) -> Result<Vec<AttachmentId>, StoreError> {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            // One placeholder per id ($1, $2, …): both databases take that, and a few hundred
            // stay far below either's limit on bound values.
            let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT id FROM attachments WHERE id IN ({})", placeholders.join(", "));
            let mut query = sqlx::query_scalar::<_, Uuid>(&sql);
            for id in ids {
                query = query.bind(id.as_uuid());
            }
            Ok(query.fetch_all(&self.pool).await?.into_iter().map(AttachmentId::from_uuid).collect())
        }
    }
}
