//! Key backups (`backup_versions`, `backup_sessions` and `accounts.backup_version`; migration
//! 0014): the opaque blobs of KeyBackupService, encrypted on the person's devices under a key
//! the server never sees. The service checks sizes and counts before anything reaches the store.
//!
//! Every write first updates the account's row (`accounts.backup_version`, the current version),
//! so one account's backup writes take turns on both databases: a put checks that its version is
//! the current one under that lock, and a new version cannot slip in between the check and the
//! put's rows. Session ids are stored as their UTF-8 bytes, so pages run in byte order on SQLite
//! and PostgreSQL alike, whatever the database's collation.

use async_trait::async_trait;
use sqlx::Row as _;
use uuid::Uuid;

use super::StoreError;
use crate::ids::{AccountId, BackupVersionId};

/// A backup version as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupVersionRecord {
    /// Its id.
    pub version: BackupVersionId,
    /// Opaque: what a device needs to check a recovery key or derive it from a passphrase.
    pub auth_data: Vec<u8>,
    /// Opaque: the account key, encrypted.
    pub identity: Vec<u8>,
    /// How many session keys it holds.
    pub session_count: i64,
    /// When it was created (ms).
    pub created_at_ms: i64,
}

/// One backed-up session key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSessionRecord {
    /// The Megolm session id.
    pub session_id: String,
    /// Opaque: the session key, encrypted.
    pub data: Vec<u8>,
}

/// What creating a version did, or why it changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateVersionOutcome {
    /// Stored, and now the account's current version.
    Created(BackupVersionRecord),
    /// There is no such account.
    NoAccount,
    /// The account already keeps its limit of versions: nothing was stored.
    TooManyVersions,
}

/// What a put did, or why it changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutSessionsOutcome {
    /// Stored (new ids added, known ids replaced); the version now holds this many.
    Stored {
        /// Session keys the version holds.
        session_count: i64,
    },
    /// The account has no such version.
    NotFound,
    /// The version exists but is not the account's current one.
    Stale,
    /// The new ids would take the version past its limit: nothing was stored.
    Full,
}

/// What deleting a version did, or why it changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteVersionOutcome {
    /// Deleted with its session keys (and the account has no current version if it was it).
    Deleted,
    /// The account has no such version.
    NotFound,
    /// It is the current version and `delete_current` was not asked for: nothing changed.
    Current,
}

/// A page of a version's session keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPage {
    /// In session-id (byte) order.
    pub sessions: Vec<BackupSessionRecord>,
    /// Whether more follow the last one.
    pub more: bool,
}

/// Key backups.
#[async_trait]
pub trait BackupStore: Send + Sync {
    /// The account's current version, if it has one.
    async fn current_backup(&self, account: AccountId) -> Result<Option<BackupVersionRecord>, StoreError>;
    /// Stores a new version and makes it the account's current one (older versions stay), if
    /// the account keeps fewer than `max_versions` (counted under the account's row lock, so
    /// racing creates cannot go past it).
    async fn create_backup_version(
        &self,
        account: AccountId,
        version: BackupVersionId,
        auth_data: &[u8],
        identity: &[u8],
        now_ms: i64,
        max_versions: i64,
    ) -> Result<CreateVersionOutcome, StoreError>;
    /// Adds or replaces session keys in `version`, all or nothing, if it is the account's
    /// current version and the new ids keep it within `max_sessions`.
    async fn put_backup_sessions(
        &self,
        account: AccountId,
        version: BackupVersionId,
        sessions: &[BackupSessionRecord],
        max_sessions: i64,
    ) -> Result<PutSessionsOutcome, StoreError>;
    /// Up to `limit` session keys of the account's `version` with ids after `after` (byte
    /// order); `None` if the account has no such version.
    async fn backup_sessions(
        &self,
        account: AccountId,
        version: BackupVersionId,
        after: &str,
        limit: u32,
    ) -> Result<Option<BackupPage>, StoreError>;
    /// Deletes one of the account's versions with its session keys: any but the current one,
    /// and with `delete_current` the current one, which deletes all the account's versions
    /// (backup turned off: older ones a device lost track of go too).
    async fn delete_backup_version(
        &self,
        account: AccountId,
        version: BackupVersionId,
        delete_current: bool,
    ) -> Result<DeleteVersionOutcome, StoreError>;
}

/// A [`BackupVersionRecord`] from a row with the columns of `VERSION_COLUMNS`.
macro_rules! version_record {
    ($row:expr) => {
        BackupVersionRecord {
            version: BackupVersionId::from_uuid($row.try_get::<Uuid, _>("version")?),
            auth_data: $row.try_get("auth_data")?,
            identity: $row.try_get("identity")?,
            session_count: $row.try_get("session_count")?,
            created_at_ms: $row.try_get("created_at_ms")?,
        }
    };
}

fn session_id(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|_| StoreError::Corrupt("a backed-up session id is not UTF-8".into()))
}

impl_for_backends! {
    impl BackupStore {
        async fn current_backup(&self, account: AccountId) -> Result<Option<BackupVersionRecord>, StoreError> {
            let row = sqlx::query(
                "SELECT v.version, v.auth_data, v.identity, v.session_count, v.created_at_ms \
                 FROM accounts a JOIN backup_versions v ON v.account_id = a.id AND v.version = a.backup_version \
                 WHERE a.id = $1",
            )
            .bind(account.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
            Ok(match row {
                Some(row) => Some(version_record!(row)),
                None => None,
            })
        }

        async fn create_backup_version(
            &self,
            account: AccountId,
            version: BackupVersionId,
            auth_data: &[u8],
            identity: &[u8],
            now_ms: i64,
            max_versions: i64,
        ) -> Result<CreateVersionOutcome, StoreError> {
            let mut tx = self.pool.begin().await?;
            // Takes the account's row first, so racing creates count the versions one after
            // another: each count sees the versions of the creates committed before it.
            let made_current = sqlx::query("UPDATE accounts SET backup_version = $2 WHERE id = $1")
                .bind(account.as_uuid())
                .bind(version.as_uuid())
                .execute(&mut *tx)
                .await?;
            if made_current.rows_affected() != 1 {
                return Ok(CreateVersionOutcome::NoAccount);
            }
            let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM backup_versions WHERE account_id = $1")
                .bind(account.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
            if kept >= max_versions {
                tx.rollback().await?;
                return Ok(CreateVersionOutcome::TooManyVersions);
            }
            sqlx::query(
                "INSERT INTO backup_versions (version, account_id, auth_data, identity, session_count, created_at_ms) \
                 VALUES ($1, $2, $3, $4, 0, $5)",
            )
            .bind(version.as_uuid())
            .bind(account.as_uuid())
            .bind(auth_data)
            .bind(identity)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(CreateVersionOutcome::Created(BackupVersionRecord {
                version,
                auth_data: auth_data.to_vec(),
                identity: identity.to_vec(),
                session_count: 0,
                created_at_ms: now_ms,
            }))
        }

        async fn put_backup_sessions(
            &self,
            account: AccountId,
            version: BackupVersionId,
            sessions: &[BackupSessionRecord],
            max_sessions: i64,
        ) -> Result<PutSessionsOutcome, StoreError> {
            let mut tx = self.pool.begin().await?;
            // Takes the account's row (its backup writes take turns) if `version` is current.
            let current = sqlx::query(
                "UPDATE accounts SET backup_version = backup_version WHERE id = $1 AND backup_version = $2",
            )
            .bind(account.as_uuid())
            .bind(version.as_uuid())
            .execute(&mut *tx)
            .await?;
            if current.rows_affected() != 1 {
                let exists: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM backup_versions WHERE account_id = $1 AND version = $2)",
                )
                .bind(account.as_uuid())
                .bind(version.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
                return Ok(if exists { PutSessionsOutcome::Stale } else { PutSessionsOutcome::NotFound });
            }
            let mut added: i64 = 0;
            for session in sessions {
                let replaced = sqlx::query(
                    "UPDATE backup_sessions SET data = $4 WHERE account_id = $1 AND version = $2 AND session_id = $3",
                )
                .bind(account.as_uuid())
                .bind(version.as_uuid())
                .bind(session.session_id.as_bytes())
                .bind(&session.data)
                .execute(&mut *tx)
                .await?;
                if replaced.rows_affected() == 0 {
                    sqlx::query(
                        "INSERT INTO backup_sessions (account_id, version, session_id, data) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(account.as_uuid())
                    .bind(version.as_uuid())
                    .bind(session.session_id.as_bytes())
                    .bind(&session.data)
                    .execute(&mut *tx)
                    .await?;
                    added += 1;
                }
            }
            let session_count: i64 = sqlx::query_scalar(
                "UPDATE backup_versions SET session_count = session_count + $3 \
                 WHERE account_id = $1 AND version = $2 RETURNING session_count",
            )
            .bind(account.as_uuid())
            .bind(version.as_uuid())
            .bind(added)
            .fetch_one(&mut *tx)
            .await?;
            // Replacing is allowed at the limit (even above it, had the limit been lowered).
            if added > 0 && session_count > max_sessions {
                tx.rollback().await?;
                return Ok(PutSessionsOutcome::Full);
            }
            tx.commit().await?;
            Ok(PutSessionsOutcome::Stored { session_count })
        }

        async fn backup_sessions(
            &self,
            account: AccountId,
            version: BackupVersionId,
            after: &str,
            limit: u32,
        ) -> Result<Option<BackupPage>, StoreError> {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM backup_versions WHERE account_id = $1 AND version = $2)",
            )
            .bind(account.as_uuid())
            .bind(version.as_uuid())
            .fetch_one(&self.pool)
            .await?;
            if !exists {
                return Ok(None);
            }
            let rows = sqlx::query(
                "SELECT session_id, data FROM backup_sessions \
                 WHERE account_id = $1 AND version = $2 AND session_id > $3 ORDER BY session_id LIMIT $4",
            )
            .bind(account.as_uuid())
            .bind(version.as_uuid())
            .bind(after.as_bytes())
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
            let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
            let sessions = rows
                .iter()
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .map(|row| {
                    Ok(BackupSessionRecord {
                        session_id: session_id(row.try_get("session_id")?)?,
                        data: row.try_get("data")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(Some(BackupPage { sessions, more }))
        }

        async fn delete_backup_version(
            &self,
            account: AccountId,
            version: BackupVersionId,
            delete_current: bool,
        ) -> Result<DeleteVersionOutcome, StoreError> {
            let mut tx = self.pool.begin().await?;
            // Takes the account's row first, as every backup write does.
            let current: Option<Option<Uuid>> = sqlx::query_scalar(
                "UPDATE accounts SET backup_version = backup_version WHERE id = $1 RETURNING backup_version",
            )
            .bind(account.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(current) = current else {
                return Ok(DeleteVersionOutcome::NotFound);
            };
            // Session keys go with their version (ON DELETE CASCADE).
            if current == Some(version.as_uuid()) {
                if !delete_current {
                    return Ok(DeleteVersionOutcome::Current);
                }
                sqlx::query("UPDATE accounts SET backup_version = NULL WHERE id = $1")
                    .bind(account.as_uuid())
                    .execute(&mut *tx)
                    .await?;
                // Backup turned off: every version goes, older ones a device lost track of too
                // (there is no call that lists them), so the account is never stuck at its limit.
                sqlx::query("DELETE FROM backup_versions WHERE account_id = $1")
                    .bind(account.as_uuid())
                    .execute(&mut *tx)
                    .await?;
            } else {
                let deleted = sqlx::query("DELETE FROM backup_versions WHERE account_id = $1 AND version = $2")
                    .bind(account.as_uuid())
                    .bind(version.as_uuid())
                    .execute(&mut *tx)
                    .await?;
                if deleted.rows_affected() != 1 {
                    return Ok(DeleteVersionOutcome::NotFound);
                }
            }
            tx.commit().await?;
            Ok(DeleteVersionOutcome::Deleted)
        }
    }
}
