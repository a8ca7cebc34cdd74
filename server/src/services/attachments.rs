//! Attachments: encrypted blobs in conversations (docs/attachments.md). The server hands out
//! short-lived upload and download URLs for the blob store, checks uploads, enforces the
//! per-file limit and the per-account quota, tells the uploader who downloaded, and deletes
//! blobs (then rows) whose TTL passed, whose message was deleted, or that were never sent.
//! Housekeeping also deletes stray blobs: files or objects with no row at all.
//!
//! # Security
//! Only members of the conversation reserve, download or report attachments in it; only the
//! uploader sees downloads or deletes. Someone who is not a member learns nothing, not even
//! whether an id exists (ATTACHMENT_NOT_FOUND). The server never sees a key, file name or type:
//! those travel inside the E2EE message. Sizes come from the client and are checked against the
//! stored blob before an attachment counts as uploaded. A signed upload URL stores something
//! only while its attachment is live and not yet uploaded ([`Attachments::upload_gate`]), so a
//! URL kept after its attachment was deleted or expired cannot fill the disk past the quota;
//! S3 takes presigned uploads without asking us, so there the stray sweep removes what such a
//! URL stored ([`Attachments::sweep_strays`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::guilds::permissions::Permissions;
use super::{Caller, Delivery, Error, ErrorReason};
use crate::blobs::{BlobError, BlobKey, BlobKind, BlobStore, SignedRequest};
use crate::bus::Notice;
pub use crate::events::{AttachmentChange, AttachmentEvent};
use crate::ids::{AccountId, AttachmentId, ChannelId, ConversationId};
use crate::store::{AttachmentRecord, CreateAttachmentOutcome, NewAttachment, Store, now_ms};

/// The longest TTL a sender may choose.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 86_400);
/// Attachments handled per housekeeping query.
const SWEEP_BATCH: i64 = 100;
/// Blob ids looked up per query in the stray sweep.
const STRAY_BATCH: usize = 500;

/// Limits and timings (from the settings).
#[derive(Debug, Clone)]
pub struct AttachmentSettings {
    /// Largest blob, in bytes.
    pub max_bytes: u64,
    /// Bytes of attachments one account may have stored (uploaded or reserved).
    pub quota_bytes: u64,
    /// How long upload URLs (and avatar download URLs) work.
    pub url_ttl: Duration,
    /// How long attachment download URLs work: short, so one handed to someone removed from the
    /// conversation soon stops working (nothing can revoke a signed or presigned URL).
    pub download_url_ttl: Duration,
    /// How long an attachment may stay without a message before it is deleted.
    pub orphan_grace: Duration,
    /// How old a blob with no attachment row must be before housekeeping deletes it (and how
    /// often blobs are listed for that).
    pub stray_grace: Duration,
    /// Largest avatar upload (before it is resized), in bytes.
    pub avatar_max_bytes: u64,
}

/// Whether a signed upload URL may store its blob now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadGate {
    /// The attachment is live and waiting for its blob of this size.
    Open,
    /// No such attachment any more (deleted, swept) or it has expired.
    Gone,
    /// Its upload was completed already; a blob is never replaced.
    Uploaded,
}

/// Attachments.
#[derive(Clone)]
pub struct Attachments {
    pub(super) store: Arc<dyn Store>,
    pub(super) delivery: Delivery,
    pub(super) blobs: Arc<dyn BlobStore>,
    pub(super) settings: AttachmentSettings,
}

fn not_found() -> Error {
    Error::not_found(ErrorReason::AttachmentNotFound, "no such attachment")
}

fn expired() -> Error {
    Error::precondition(ErrorReason::AttachmentExpired, "this attachment has expired or was deleted")
}

fn storage(e: BlobError) -> Error {
    Error::StorageUnavailable(e.to_string())
}

impl Attachments {
    /// The settings in force.
    pub fn settings(&self) -> &AttachmentSettings {
        &self.settings
    }

    /// Reserves an attachment of `size` bytes in `conversation` and returns where to upload it.
    pub async fn create_upload(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        size: u64,
        ttl: Duration,
    ) -> Result<(AttachmentRecord, SignedRequest), Error> {
        if size == 0 {
            return Err(Error::invalid(
                ErrorReason::SizeInvalid,
                "size",
                "an attachment has at least one byte",
            ));
        }
        if size > self.settings.max_bytes {
            return Err(Error::limit(
                ErrorReason::AttachmentTooLarge,
                format!("an attachment is at most {} bytes on this server", self.settings.max_bytes),
            ));
        }
        if ttl > MAX_TTL {
            return Err(Error::invalid(ErrorReason::TtlInvalid, "ttl_seconds", "a TTL is at most 30 days"));
        }
        if self.store.member(conversation, caller.account_id).await?.is_none() {
            // A channel: only who may post files there reserves one (the store checks guild
            // membership again as it reserves).
            let channel = ChannelId::from_uuid(conversation.as_uuid());
            let access = super::guilds::channel_access(&*self.store, caller.account_id, channel)
                .await?
                .ok_or_else(|| Error::not_found(ErrorReason::ConversationNotFound, "no such conversation"))?;
            let needed = Permissions::SEND_MESSAGES.union(Permissions::ATTACH_FILES);
            if !access.permissions.contains(needed) {
                return Err(Error::Forbidden {
                    reason: ErrorReason::NotAllowed,
                    message: "your roles do not allow you to attach files in this channel".into(),
                });
            }
        }
        let now = now_ms();
        let expires_at_ms = if ttl.is_zero() {
            0
        } else {
            now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
        };
        let new = NewAttachment {
            id: AttachmentId::generate(),
            conversation_id: conversation,
            uploader: (caller.account_id, caller.device_id),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            expires_at_ms,
            now_ms: now,
        };
        let quota = i64::try_from(self.settings.quota_bytes).unwrap_or(i64::MAX);
        let record = match self.store.create_attachment(&new, quota).await? {
            CreateAttachmentOutcome::Created(record) => record,
            CreateAttachmentOutcome::NotMember => {
                return Err(Error::not_found(ErrorReason::ConversationNotFound, "no such conversation"));
            }
            CreateAttachmentOutcome::QuotaExceeded { used } => {
                return Err(Error::limit(
                    ErrorReason::QuotaExceeded,
                    format!(
                        "your attachments would take more than {} bytes ({used} in use); delete some or wait \
                         for them to expire",
                        self.settings.quota_bytes
                    ),
                ));
            }
        };
        let upload = match self
            .blobs
            .upload_request(&BlobKey::attachment(record.id), size, self.settings.url_ttl)
            .await
        {
            Ok(upload) => upload,
            Err(e) => {
                // Give the quota back: nothing can be uploaded.
                let _ = self.store.delete_attachment(record.id).await;
                return Err(storage(e));
            }
        };
        Ok((record, upload))
    }

    /// The caller's own attachment.
    async fn own(&self, caller: &Caller, id: AttachmentId) -> Result<AttachmentRecord, Error> {
        let record = self.store.attachment(id).await?.ok_or_else(not_found)?;
        if record.uploader.0 != caller.account_id {
            return Err(if self.is_member(record.conversation_id, caller.account_id).await? {
                Error::Forbidden {
                    reason: ErrorReason::NotAllowed,
                    message: "only the uploader may do this".into(),
                }
            } else {
                not_found()
            });
        }
        Ok(record)
    }

    /// Whether `account` is in the conversation: a member, or able to see the channel.
    async fn is_member(&self, conversation: ConversationId, account: AccountId) -> Result<bool, Error> {
        if self.store.member(conversation, account).await?.is_some() {
            return Ok(true);
        }
        let channel = ChannelId::from_uuid(conversation.as_uuid());
        Ok(super::guilds::channel_access(&*self.store, account, channel).await?.is_some())
    }

    /// An attachment in a conversation the caller is a member of.
    async fn visible(&self, caller: &Caller, id: AttachmentId) -> Result<AttachmentRecord, Error> {
        let record = self.store.attachment(id).await?.ok_or_else(not_found)?;
        if !self.is_member(record.conversation_id, caller.account_id).await? {
            return Err(not_found());
        }
        Ok(record)
    }

    /// Checks the uploaded blob (exists, exactly the declared size) and marks the attachment
    /// uploaded. A blob of the wrong size is deleted, so the upload can be made again.
    pub async fn complete_upload(
        &self,
        caller: &Caller,
        id: AttachmentId,
    ) -> Result<AttachmentRecord, Error> {
        let record = self.own(caller, id).await?;
        if record.expired(now_ms()) {
            return Err(expired());
        }
        if record.uploaded_at_ms != 0 {
            return Ok(record);
        }
        let key = BlobKey::attachment(id);
        let want = u64::try_from(record.size).unwrap_or_default();
        match self.blobs.size(&key).await.map_err(storage)? {
            Some(size) if size == want => {}
            Some(size) => {
                self.blobs.delete(&key).await.map_err(storage)?;
                return Err(Error::precondition(
                    ErrorReason::UploadIncomplete,
                    format!("the uploaded blob has {size} bytes, not the {want} declared; upload it again"),
                ));
            }
            None => {
                return Err(Error::precondition(
                    ErrorReason::UploadIncomplete,
                    "nothing was uploaded for this attachment yet",
                ));
            }
        }
        self.store.mark_uploaded(id, now_ms()).await?.ok_or_else(not_found)
    }

    /// Whether an upload URL (already checked: signed for `id` and `size`, not expired) may
    /// store its blob now: only while the attachment is live and not yet uploaded.
    pub async fn upload_gate(&self, id: AttachmentId, size: u64) -> Result<UploadGate, Error> {
        let Some(record) = self.store.attachment(id).await? else {
            return Ok(UploadGate::Gone);
        };
        if record.expired(now_ms()) || u64::try_from(record.size).ok() != Some(size) {
            return Ok(UploadGate::Gone);
        }
        if record.uploaded_at_ms != 0 {
            return Ok(UploadGate::Uploaded);
        }
        Ok(UploadGate::Open)
    }

    /// A download URL for a member, once the attachment is uploaded and until it expires.
    pub async fn download_url(
        &self,
        caller: &Caller,
        id: AttachmentId,
    ) -> Result<(AttachmentRecord, SignedRequest), Error> {
        let record = self.visible(caller, id).await?;
        if record.expired(now_ms()) {
            return Err(expired());
        }
        if record.uploaded_at_ms == 0 {
            return Err(Error::precondition(
                ErrorReason::AttachmentNotUploaded,
                "this attachment has not been uploaded yet",
            ));
        }
        let download = self
            .blobs
            .download_request(&BlobKey::attachment(id), self.settings.download_url_ttl)
            .await
            .map_err(storage)?;
        Ok((record, download))
    }

    /// Records the caller's download and tells the uploader's devices.
    pub async fn report_downloaded(&self, caller: &Caller, id: AttachmentId) -> Result<(), Error> {
        let record = self.visible(caller, id).await?;
        if record.uploaded_at_ms == 0 {
            return Err(Error::precondition(
                ErrorReason::AttachmentNotUploaded,
                "this attachment has not been uploaded yet",
            ));
        }
        if record.uploader.0 == caller.account_id {
            // The uploader's own devices: nothing to tell anyone.
            return Ok(());
        }
        let now = now_ms();
        if self.store.record_download(id, caller.account_id, now).await? {
            let event = AttachmentEvent {
                attachment: id,
                conversation: record.conversation_id,
                change: AttachmentChange::Downloaded,
                account: Some(caller.account_id),
                at_ms: now,
            };
            self.publish(event, false, vec![record.uploader.0]).await;
        }
        Ok(())
    }

    /// Who downloaded the caller's attachment.
    pub async fn downloads(&self, caller: &Caller, id: AttachmentId) -> Result<Vec<(AccountId, i64)>, Error> {
        self.own(caller, id).await?;
        Ok(self.store.downloads(id).await?)
    }

    /// The uploader deletes an attachment: due now, and gone (blob, then row) at once.
    pub async fn delete(&self, caller: &Caller, id: AttachmentId) -> Result<(), Error> {
        self.own(caller, id).await?;
        self.store.expire_attachment(id, now_ms()).await?;
        self.sweep().await?;
        Ok(())
    }

    async fn publish(&self, event: AttachmentEvent, conversation: bool, accounts: Vec<AccountId>) {
        self.delivery.publish(Notice::Attachment { event: Arc::new(event), conversation, accounts }).await;
    }

    /// Deletes every attachment that is due (past its TTL, of a deleted message, deleted by
    /// its uploader, or never sent within the grace period): blob first, then row, then tells
    /// the members. A blob that cannot be deleted keeps its row for the next sweep. Returns how
    /// many went.
    pub async fn sweep(&self) -> Result<u64, Error> {
        let mut removed = 0;
        loop {
            let now = now_ms();
            let grace = i64::try_from(self.settings.orphan_grace.as_millis()).unwrap_or(i64::MAX);
            let due = self.store.due_attachments(now, now.saturating_sub(grace), SWEEP_BATCH).await?;
            let full = due.len() as i64 == SWEEP_BATCH;
            let mut progress = false;
            for record in due {
                if let Err(e) = self.blobs.delete(&BlobKey::attachment(record.id)).await {
                    tracing::warn!(error = %e, attachment = %record.id, "cannot delete a blob; trying again later");
                    continue;
                }
                if !self.store.delete_attachment(record.id).await? {
                    continue;
                }
                removed += 1;
                progress = true;
                let event = AttachmentEvent {
                    attachment: record.id,
                    conversation: record.conversation_id,
                    change: AttachmentChange::Expired,
                    account: None,
                    at_ms: now,
                };
                // Members saw it only if a message carried it; otherwise only the uploader.
                if record.message_id.is_some() {
                    self.publish(event, true, Vec::new()).await;
                } else {
                    self.publish(event, false, vec![record.uploader.0]).await;
                }
            }
            if !full || !progress {
                return Ok(removed);
            }
        }
    }

    /// Deletes stray attachment blobs: stored more than [`AttachmentSettings::stray_grace`] ago
    /// and with no attachment row. Such a blob comes from an upload that raced the deletion of
    /// its attachment, a presigned S3 URL used after its attachment went, or a crash between
    /// deleting a blob and its row; no row means nothing can ever download or delete it. The
    /// grace keeps clear of anything just written. Returns how many went.
    ///
    /// Lists every attachment blob older than the grace (one directory read, or one S3 list
    /// request per 1,000 objects), so it runs once per grace period, not every sweep.
    pub async fn sweep_strays(&self) -> Result<u64, Error> {
        let before =
            SystemTime::now().checked_sub(self.settings.stray_grace).unwrap_or(SystemTime::UNIX_EPOCH);
        let listed = self.blobs.list_older(BlobKind::Attachment, before).await.map_err(storage)?;
        let mut removed = 0;
        for batch in listed.chunks(STRAY_BATCH) {
            let ids: Vec<AttachmentId> = batch.iter().filter_map(BlobKey::attachment_id).collect();
            let known: HashSet<AttachmentId> =
                self.store.existing_attachments(&ids).await?.into_iter().collect();
            for id in ids.into_iter().filter(|id| !known.contains(id)) {
                match self.blobs.delete(&BlobKey::attachment(id)).await {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        tracing::warn!(error = %e, attachment = %id, "cannot delete a stray blob; trying again later")
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Runs [`Attachments::sweep`] every `every`, and [`Attachments::sweep_strays`] once per
    /// stray grace period (at the first tick, then whenever the grace has passed).
    pub async fn housekeeping(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut strays_swept: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            match self.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(attachments = n, "deleted expired and unsent attachments"),
                Err(e) => tracing::warn!(error = %e, "attachment housekeeping failed"),
            }
            if strays_swept.is_none_or(|at| at.elapsed() >= self.settings.stray_grace) {
                strays_swept = Some(tokio::time::Instant::now());
                match self.sweep_strays().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(blobs = n, "deleted stray attachment blobs (no attachment row)"),
                    Err(e) => tracing::warn!(error = %e, "stray blob housekeeping failed"),
                }
            }
        }
    }
}
