//! Storage behind the services: small traits per area, combined into [`Store`], with one SQLite
//! and one PostgreSQL implementation, the typed [`ids`] and the migrations (`migrations/`).
//! Services only see these traits and plain records; sqlx stays inside this crate.
//!
//! The SQL of each area is written once (`impl_for_backends!`): both databases take `$1`
//! placeholders, `ON CONFLICT` and `RETURNING`, so one statement serves both, and every trait is
//! proven on both by the conformance suite (`conformance_suite!`, one file per trait under
//! `src/conformance/`), which runs each test on a fresh SQLite file and a fresh PostgreSQL
//! database.

/// Implements a store trait once for both backends (the body uses `self.pool`).
macro_rules! impl_for_backends {
    (impl $trait:ident { $($body:tt)* }) => {
        #[async_trait::async_trait]
        impl $trait for $crate::SqliteStore { $($body)* }
        #[async_trait::async_trait]
        impl $trait for $crate::PostgresStore { $($body)* }
    };
}

mod accounts;
mod attachments;
mod avatars;
mod backups;
mod blocks;
mod calls;
mod cloud;
mod codes;
mod conversations;
mod database_url;
mod deletion;
mod delivery;
mod devices;
mod guilds;
mod inbox;
mod instance;
mod keys;
mod pairings;
mod postgres;
mod push;
mod rate_limits;
mod snapshot;
mod sqlite;

pub mod ids;
pub mod search;

#[cfg(feature = "conformance")]
#[doc(hidden)]
pub mod conformance;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use accounts::{AccountRecord, AccountStore, NewAccount};
pub use attachments::{AttachmentRecord, AttachmentStore, CreateAttachmentOutcome, NewAttachment};
pub use avatars::{AvatarChange, AvatarStore, GroupAvatarOutcome};
pub use backups::{
    BackupPage, BackupSessionRecord, BackupStore, BackupVersionRecord, CreateVersionOutcome,
    DeleteVersionOutcome, PutSessionsOutcome,
};
pub use blocks::BlockStore;
pub use calls::{CallRecord, CallStore, JoinOutcome, NewCall, StartOutcome};
pub use cloud::{MessageExtrasStore, PinOutcome, ReactOutcome, ReactionChange, SearchQuery};
pub use codes::{CodePurpose, CodeRecord, CodeStore, NewCode};
pub use conversations::{
    AcceptOutcome, AddOutcome, CloudBody, ConversationFilter, ConversationKind, ConversationRecord,
    ConversationStore, MemberRecord, MessageRecord, NewMessage, ReactionGroup, Role, SendOutcome,
    SystemEntry,
};
pub use database_url::DatabaseUrl;
pub use deletion::{AccountDeletion, AccountDeletionStore};
pub use delivery::{AccountEvent, ConversationCursor, DeliveryStore, DeviceAcks, DeviceStreams, Receipt};
pub use devices::{AuthenticatedDevice, DeviceRecord, DeviceStore, NewDevice, RefreshOutcome, SessionTokens};
pub use guilds::{
    AuditAction, AuditEntry, AuditRecord, BanRecord, ChannelRecord, ChannelRefusal, GuildChannelKind,
    GuildJoin, GuildJoinRefusal, GuildMemberRecord, GuildRecord, GuildRoleRecord, GuildStore, InviteRecord,
    MAX_GUILD_CHANNELS, MAX_GUILD_INVITES, MAX_GUILD_ROLES, NewChannel, NewGuild, NewInvite, OverwriteRecord,
    OverwriteTarget, RoleRefusal,
};
pub use inbox::{InboxQuota, InboxStore, NewToDevice, SendRefusal, ToDeviceRecord};
pub use instance::{Instance, InstanceStore};
pub use keys::{
    AccountKeyOutcome, AccountKeysRecord, ClaimedKeyRecord, DeviceKeysRecord, KeyStore, KeyUpload,
    KeyUploadOutcome, SignedKeyRecord,
};
pub use pairings::{NewPairing, PairingConflict, PairingRecord, PairingStatus, PairingStore};
pub use postgres::PostgresStore;
pub use push::{PushStore, PushSubscription};
pub use rate_limits::RateLimitStore;
pub use snapshot::{copy_sqlite, inspect_sqlite, known_schema_version};
pub use sqlite::SqliteStore;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file (Lite).
    Sqlite,
    /// PostgreSQL server (Pro).
    Postgres,
}

impl Backend {
    /// A short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// A uniqueness rule a write would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Another account has this username.
    Username,
    /// Another account has verified this email address.
    Email,
}

/// What went wrong in the store. Callers decide from the variant; the source is for logs only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write would break a uniqueness rule; nothing was written.
    #[error("conflict: {0:?} already taken")]
    Conflict(Conflict),
    /// The database could not be reached or did not answer (connection refused, pool timeout,
    /// I/O error). Usually temporary.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Applying the migrations failed, or the database holds migrations this binary does not
    /// know (it is newer than the binary).
    #[error("database migration failed: {0}")]
    Migration(#[source] BoxError),
    /// The database answered with something this code does not expect: a bug or a tampered
    /// database.
    #[error("unexpected database state: {0}")]
    Corrupt(String),
}

/// The boxed cause of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::TypeNotFound { .. }
            | sqlx::Error::RowNotFound => Self::Corrupt(e.to_string()),
            other => Self::Unavailable(Box::new(other)),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Migration(Box::new(e))
    }
}

/// Maps a unique-constraint violation to the [`Conflict`] it means, going by the column or
/// constraint name that SQLite ("UNIQUE constraint failed: accounts.username") and PostgreSQL
/// ("accounts_username_unique") report.
fn conflict_or(e: sqlx::Error, rules: &[(&str, Conflict)]) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        let text = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
        if let Some((_, conflict)) = rules.iter().find(|(name, _)| text.contains(name)) {
            return StoreError::Conflict(*conflict);
        }
    }
    e.into()
}

/// The result of applying migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this call, oldest first (`version description`).
    pub applied: Vec<String>,
    /// How many migrations the database has in all, after this call.
    pub total: usize,
}

/// All storage of a KitsuLAN server.
#[async_trait]
pub trait Store:
    InstanceStore
    + AccountStore
    + DeviceStore
    + CodeStore
    + RateLimitStore
    + KeyStore
    + InboxStore
    + PairingStore
    + ConversationStore
    + MessageExtrasStore
    + AccountDeletionStore
    + DeliveryStore
    + CallStore
    + AttachmentStore
    + AvatarStore
    + BlockStore
    + BackupStore
    + PushStore
    + GuildStore
    + Send
    + Sync
    + 'static
{
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Checks that the database answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Applies any migrations this binary has that the database lacks.
    async fn migrate(&self) -> Result<MigrationReport, StoreError>;

    /// Closes all connections, waiting for those in use to be returned.
    async fn close(&self);
}

/// Tuning that applies to both backends.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The most connections the pool opens.
    pub max_connections: u32,
    /// How long a caller waits for a free connection (or a new one) before giving up.
    pub acquire_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self { max_connections: 10, acquire_timeout: Duration::from_secs(10) }
    }
}

/// Opens the database the URL names. Does not apply migrations.
pub async fn connect(url: &DatabaseUrl, options: &ConnectOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        DatabaseUrl::Sqlite(path) => Arc::new(SqliteStore::open(path, options).await?),
        DatabaseUrl::Postgres(url) => Arc::new(PostgresStore::connect(url, options).await?),
    })
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Lists the migrations recorded in `_sqlx_migrations` before and after running `migrator`,
/// so `kitsulan migrate` can say what it did. Shared by both backends.
fn report(migrator: &sqlx::migrate::Migrator, before: &[i64], after: &[i64]) -> MigrationReport {
    let applied = migrator
        .iter()
        .filter(|m| after.contains(&m.version) && !before.contains(&m.version))
        .map(|m| format!("{:04} {}", m.version, m.description))
        .collect();
    MigrationReport { applied, total: after.len() }
}

// The parts of `Store` both backends share; each names its `BACKEND`, `MIGRATOR` and how to
// tell whether the migrations table exists.
impl_for_backends! {
    impl Store {
        fn backend(&self) -> Backend {
            Self::BACKEND
        }

        async fn ping(&self) -> Result<(), StoreError> {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        }

        async fn migrate(&self) -> Result<MigrationReport, StoreError> {
            let applied = || async {
                let exists: bool = sqlx::query_scalar(Self::HAS_MIGRATIONS_TABLE).fetch_one(&self.pool).await?;
                if !exists {
                    return Ok::<Vec<i64>, StoreError>(Vec::new());
                }
                Ok(sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                    .fetch_all(&self.pool)
                    .await?)
            };
            let before = applied().await?;
            self.run_migrator().await?;
            let after = applied().await?;
            Ok(report(Self::MIGRATOR, &before, &after))
        }

        async fn close(&self) {
            self.pool.close().await;
        }
    }
}
