//! Blob storage: where attachment ciphertext (and avatars) live, apart from the database. Two
//! implementations of one trait, chosen by `KITSULAN_BLOBS`:
//! - [`DiskBlobs`] (Lite, the default): files under `<data dir>/blobs/`, uploaded and
//!   downloaded through HMAC-signed `/v1/blobs/…` URLs that this binary serves, streamed to and
//!   from disk;
//! - [`S3Blobs`] (Pro): any S3 API (AWS, Garage, MinIO, s3s) through presigned URLs, so the
//!   bytes go between the client and S3 and never through this server.
//!
//! Services hand out [`SignedRequest`]s and check, size and delete blobs through [`BlobStore`];
//! the transport serves the Lite URLs with [`DiskBlobs`]'s streaming methods.

mod disk;
mod s3;

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::ids::{AttachmentId, AvatarId};

pub use disk::{DiskBlobs, PutError, SignatureError};
pub use s3::{S3Blobs, S3Settings};

/// Where a blob lives in the store: `<kind>/<uuid>`. Made only from typed ids, so a key never
/// holds anything a client chose.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BlobKey {
    kind: BlobKind,
    id: uuid::Uuid,
}

/// What a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// Attachment ciphertext.
    Attachment,
    /// An avatar: a PNG the server made itself (resized, no metadata), not encrypted.
    Avatar,
}

impl BlobKind {
    /// The key's first segment (and the directory on disk).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attachment => "attachments",
            Self::Avatar => "avatars",
        }
    }

    /// The kind a key's first segment names.
    pub fn parse(segment: &str) -> Option<Self> {
        match segment {
            "attachments" => Some(Self::Attachment),
            "avatars" => Some(Self::Avatar),
            _ => None,
        }
    }
}

impl BlobKey {
    /// An attachment's blob.
    pub fn attachment(id: AttachmentId) -> Self {
        Self { kind: BlobKind::Attachment, id: id.as_uuid() }
    }

    /// An avatar's blob.
    pub fn avatar(id: AvatarId) -> Self {
        Self { kind: BlobKind::Avatar, id: id.as_uuid() }
    }

    /// A key from its two URL segments, if they name one.
    pub fn parse(kind: &str, id: &str) -> Option<Self> {
        let kind = BlobKind::parse(kind)?;
        let id = uuid::Uuid::try_parse(id).ok().filter(|u| u.get_version_num() == 7)?;
        Some(Self { kind, id })
    }

    /// What it is.
    pub fn kind(&self) -> BlobKind {
        self.kind
    }

    /// The attachment it belongs to, if it is an attachment's blob.
    pub fn attachment_id(&self) -> Option<AttachmentId> {
        (self.kind == BlobKind::Attachment).then(|| AttachmentId::from_uuid(self.id))
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.id.hyphenated())
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobKey({self})")
    }
}

/// One HTTP request a client makes to move a blob: a presigned or HMAC-signed URL, its method
/// and the headers that must go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// Absolute (S3) or relative to this server (`/v1/blobs/…`).
    pub url: String,
    /// `PUT` or `GET`.
    pub method: &'static str,
    /// Headers to send (e.g. `content-length`, which is signed).
    pub headers: Vec<(String, String)>,
    /// When the URL stops working (ms since the Unix epoch).
    pub expires_at_ms: i64,
}

/// Why the blob store failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The store could not be reached or refused the operation (I/O error, S3 down or
    /// misconfigured). Usually temporary; the cause is for logs.
    #[error("blob storage unavailable: {0}")]
    Unavailable(String),
}

/// A blob store.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// A short name for logs and ServerInfo (`disk`, `s3`).
    fn name(&self) -> &'static str;
    /// A request that uploads exactly `size` bytes to `key`, valid for `ttl`.
    async fn upload_request(
        &self,
        key: &BlobKey,
        size: u64,
        ttl: Duration,
    ) -> Result<SignedRequest, BlobError>;
    /// A request that downloads `key`, valid for `ttl`.
    async fn download_request(&self, key: &BlobKey, ttl: Duration) -> Result<SignedRequest, BlobError>;
    /// Stores a small blob the server made itself (an avatar), with its media type. Never
    /// replaces a stored blob (keys are fresh ids).
    async fn put_bytes(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        content_type: &'static str,
    ) -> Result<(), BlobError>;
    /// The size of the stored blob, or `None` if there is none.
    async fn size(&self, key: &BlobKey) -> Result<Option<u64>, BlobError>;
    /// Deletes a blob; deleting one that is not there is not an error.
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;
    /// Every stored blob of `kind` last written before `modified_before` (for the stray sweep).
    /// Names that are not our keys are left out (and alone).
    async fn list_older(
        &self,
        kind: BlobKind,
        modified_before: SystemTime,
    ) -> Result<Vec<BlobKey>, BlobError>;
}

/// The blob storage of a process that serves no files (the admin CLI): every operation fails
/// with [`BlobError::Unavailable`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBlobs;

#[async_trait]
impl BlobStore for NoBlobs {
    fn name(&self) -> &'static str {
        "none"
    }

    async fn upload_request(&self, _: &BlobKey, _: u64, _: Duration) -> Result<SignedRequest, BlobError> {
        Err(BlobError::Unavailable("this process has no blob storage".into()))
    }

    async fn download_request(&self, _: &BlobKey, _: Duration) -> Result<SignedRequest, BlobError> {
        Err(BlobError::Unavailable("this process has no blob storage".into()))
    }

    async fn put_bytes(&self, _: &BlobKey, _: Vec<u8>, _: &'static str) -> Result<(), BlobError> {
        Err(BlobError::Unavailable("this process has no blob storage".into()))
    }

    async fn size(&self, _: &BlobKey) -> Result<Option<u64>, BlobError> {
        Err(BlobError::Unavailable("this process has no blob storage".into()))
    }

    async fn delete(&self, _: &BlobKey) -> Result<(), BlobError> {
        Err(BlobError::Unavailable("this process has no blob storage".into()))
    }

    async fn list_older(&self, _: BlobKind, _: SystemTime) -> Result<Vec<BlobKey>, BlobError> {
        Err(BlobError::Unavailable("this process has no blob storage".into()))
    }
}

/// Milliseconds since the Unix epoch `ttl` from now.
fn expiry_ms(ttl: Duration) -> i64 {
    crate::store::now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}
