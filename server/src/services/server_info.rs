//! What a client may learn about this server before signing in.

use crate::ids::InstanceId;
use crate::store::Backend;

/// Where files (attachments, avatars) are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// Files on local disk in the data dir (Lite).
    Local,
    /// An S3-compatible object store (Pro).
    S3,
}

/// Facts about this server, fixed at start-up.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The name the admin gave the server.
    pub name: String,
    /// The version of this binary.
    pub version: &'static str,
    /// This installation's id.
    pub instance_id: InstanceId,
    /// The active database.
    pub database: Backend,
    /// The active file storage.
    pub storage: StorageBackend,
    /// The attachment TTLs clients offer, in seconds.
    pub attachment_ttl_choices: Vec<u32>,
    /// The SHA-256 of the local CA's certificate (DER), lowercase hex, when HTTPS uses the
    /// server's own local CA; `None` otherwise.
    pub local_ca_sha256: Option<String>,
    /// Days messages are kept before their content is deleted (`None`: until deleted).
    pub retention_days: Option<u32>,
    /// Whether a deleted account's messages are deleted (`false`: kept without its name).
    pub delete_messages_with_account: bool,
}
