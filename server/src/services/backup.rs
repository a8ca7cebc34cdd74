//! Key backup (KeyBackupService): a person's E2EE keys, kept on the server encrypted under a
//! backup key it never sees (the recovery key, or a key derived from a passphrase). The server
//! only stores and hands back opaque blobs, within the limits of backup.proto; the formats are in
//! crypto/FORMAT.md ("Key backup"), how it works for people and admins in docs/e2ee.md ("Backup
//! and recovery").
//!
//! # Security
//! - Every call acts on the caller's own account only: another account's version is
//!   `BACKUP_NOT_FOUND`, whether it exists or not, for reads, puts and deletes alike.
//! - Every size and count is checked before the store is touched; a refused call changes
//!   nothing. Each version holds at most [`MAX_SESSIONS_PER_VERSION`] session keys, counted in
//!   the same transaction as the put, so racing puts cannot go past it.
//! - New versions are rate-limited per account ([`Limits::backup_versions`]), and an account
//!   keeps at most [`MAX_VERSIONS`] (counted in the same transaction as the create, so racing
//!   creates cannot go past it): with each version's session-key limit, that bounds what one
//!   account stores. Only the current version takes puts, so older versions cannot grow.
//!
//! [`Limits::backup_versions`]: super::rate_limits::Limits::backup_versions

use std::collections::HashSet;
use std::sync::Arc;

use super::rate_limits::{Limit, RateLimiter};
use super::{Caller, Error, ErrorReason};
use crate::ids::BackupVersionId;
use crate::store::{
    BackupPage, BackupSessionRecord, BackupVersionRecord, CreateVersionOutcome, DeleteVersionOutcome,
    PutSessionsOutcome, Store, now_ms,
};

/// The most bytes of `auth_data`.
pub const MAX_AUTH_DATA_BYTES: usize = 1024;
/// The most bytes of `identity`.
pub const MAX_IDENTITY_BYTES: usize = 1024;
/// The most bytes of one session key's `data`.
pub const MAX_SESSION_BYTES: usize = 4 * 1024;
/// The most bytes of a session id.
pub const MAX_SESSION_ID_BYTES: usize = 128;
/// Session keys in one put.
pub const MAX_SESSIONS_PER_PUT: usize = 100;
/// Session keys one version holds.
pub const MAX_SESSIONS_PER_VERSION: i64 = 200_000;
/// Versions an account keeps: the current one and older ones a rotation has not deleted yet.
pub const MAX_VERSIONS: i64 = 3;
/// Session keys in one page (also what a page of 0 means).
pub const MAX_PAGE: u32 = 500;

/// Key backups.
#[derive(Clone)]
pub struct Backups {
    pub(super) store: Arc<dyn Store>,
    pub(super) limiter: RateLimiter,
    /// New versions per account.
    pub(super) versions: Limit,
}

fn not_found() -> Error {
    Error::not_found(ErrorReason::BackupNotFound, "no such backup")
}

fn blob(value: &[u8], max: usize, reason: ErrorReason, field: &'static str) -> Result<(), Error> {
    if value.is_empty() || value.len() > max {
        return Err(Error::invalid(reason, field, format!("{field} must be 1 to {max} bytes")));
    }
    Ok(())
}

fn session_id(id: &str, field: &'static str) -> Result<(), Error> {
    if id.len() > MAX_SESSION_ID_BYTES {
        return Err(Error::invalid(
            ErrorReason::SessionIdInvalid,
            field,
            format!("a session id is at most {MAX_SESSION_ID_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Checks one put's session keys: 1 to [`MAX_SESSIONS_PER_PUT`], each with a non-empty id of
/// at most [`MAX_SESSION_ID_BYTES`] named once, and 1 to [`MAX_SESSION_BYTES`] of data.
fn check_sessions(sessions: &[BackupSessionRecord]) -> Result<(), Error> {
    if sessions.is_empty() || sessions.len() > MAX_SESSIONS_PER_PUT {
        return Err(Error::invalid(
            ErrorReason::BackupBatchInvalid,
            "sessions",
            format!("put 1 to {MAX_SESSIONS_PER_PUT} session keys at a time"),
        ));
    }
    let mut seen = HashSet::with_capacity(sessions.len());
    for session in sessions {
        if session.session_id.is_empty() {
            return Err(Error::invalid(
                ErrorReason::SessionIdInvalid,
                "sessions.session_id",
                "a session id is empty",
            ));
        }
        session_id(&session.session_id, "sessions.session_id")?;
        if !seen.insert(session.session_id.as_str()) {
            return Err(Error::invalid(
                ErrorReason::SessionIdInvalid,
                "sessions.session_id",
                "a session id is named twice",
            ));
        }
        blob(&session.data, MAX_SESSION_BYTES, ErrorReason::BackupSessionInvalid, "sessions.data")?;
    }
    Ok(())
}

/// A page size as asked (0: the most).
fn page_size(limit: u32) -> Result<u32, Error> {
    match limit {
        0 => Ok(MAX_PAGE),
        n if n <= MAX_PAGE => Ok(n),
        _ => Err(Error::invalid(ErrorReason::LimitInvalid, "limit", format!("a page is at most {MAX_PAGE}"))),
    }
}

impl Backups {
    /// The caller's current version.
    pub async fn current(&self, caller: &Caller) -> Result<BackupVersionRecord, Error> {
        self.store.current_backup(caller.account_id).await?.ok_or_else(not_found)
    }

    /// Starts a new version, the caller's current one from now on.
    pub async fn create_version(
        &self,
        caller: &Caller,
        auth_data: &[u8],
        identity: &[u8],
    ) -> Result<BackupVersionRecord, Error> {
        blob(auth_data, MAX_AUTH_DATA_BYTES, ErrorReason::BackupAuthDataInvalid, "auth_data")?;
        blob(identity, MAX_IDENTITY_BYTES, ErrorReason::BackupIdentityInvalid, "identity")?;
        // Counted only for a version that would be made: a refused one costs nothing.
        let budget = format!("backup-versions:{}", caller.account_id);
        self.limiter.take(&self.versions, &budget).await?;
        let version = BackupVersionId::generate();
        let created = match self
            .store
            .create_backup_version(caller.account_id, version, auth_data, identity, now_ms(), MAX_VERSIONS)
            .await?
        {
            CreateVersionOutcome::Created(created) => created,
            CreateVersionOutcome::TooManyVersions => {
                self.limiter.give_back(&self.versions, &budget).await?;
                return Err(Error::limit(
                    ErrorReason::BackupTooManyVersions,
                    format!(
                        "an account keeps at most {MAX_VERSIONS} backup versions: delete an older one, \
                         or turn backup off to start again"
                    ),
                ));
            }
            CreateVersionOutcome::NoAccount => {
                return Err(Error::Internal(format!(
                    "account {} of a valid session is gone",
                    caller.account_id
                )));
            }
        };
        tracing::info!(account = %caller.account_id, device = %caller.device_id, %version, "key backup version created");
        Ok(created)
    }

    /// Adds or replaces session keys in the caller's current version; returns how many it holds.
    pub async fn put_sessions(
        &self,
        caller: &Caller,
        version: BackupVersionId,
        sessions: &[BackupSessionRecord],
    ) -> Result<u64, Error> {
        check_sessions(sessions)?;
        match self
            .store
            .put_backup_sessions(caller.account_id, version, sessions, MAX_SESSIONS_PER_VERSION)
            .await?
        {
            PutSessionsOutcome::Stored { session_count } => {
                Ok(u64::try_from(session_count).unwrap_or_default())
            }
            PutSessionsOutcome::NotFound => Err(not_found()),
            PutSessionsOutcome::Stale => Err(Error::precondition(
                ErrorReason::BackupVersionStale,
                "this backup version is no longer the current one: another device changed the recovery key",
            )),
            PutSessionsOutcome::Full => Err(Error::limit(
                ErrorReason::BackupFull,
                format!("a backup version holds at most {MAX_SESSIONS_PER_VERSION} session keys"),
            )),
        }
    }

    /// A page of a version's session keys, after `after` in session-id order.
    pub async fn list_sessions(
        &self,
        caller: &Caller,
        version: BackupVersionId,
        after: &str,
        limit: u32,
    ) -> Result<BackupPage, Error> {
        let limit = page_size(limit)?;
        session_id(after, "after_session_id")?;
        self.store.backup_sessions(caller.account_id, version, after, limit).await?.ok_or_else(not_found)
    }

    /// Deletes a version that is not the current one, or the current one with `delete_current`.
    pub async fn delete_version(
        &self,
        caller: &Caller,
        version: BackupVersionId,
        delete_current: bool,
    ) -> Result<(), Error> {
        match self.store.delete_backup_version(caller.account_id, version, delete_current).await? {
            DeleteVersionOutcome::Deleted => {
                tracing::info!(account = %caller.account_id, device = %caller.device_id, %version, "key backup version deleted");
                Ok(())
            }
            DeleteVersionOutcome::NotFound => Err(not_found()),
            DeleteVersionOutcome::Current => Err(Error::precondition(
                ErrorReason::BackupVersionCurrent,
                "this is the current backup version: set delete_current to turn backup off",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, bytes: usize) -> BackupSessionRecord {
        BackupSessionRecord { session_id: id.to_owned(), data: vec![1; bytes] }
    }

    fn refused(result: Result<(), Error>) -> (ErrorReason, &'static str) {
        match result {
            Err(Error::InvalidArgument { reason, field, .. }) => (reason, field),
            other => panic!("expected a refused field, got {other:?}"),
        }
    }

    #[test]
    fn blobs_are_one_byte_to_their_limit() {
        let check = |bytes: usize| {
            blob(&vec![7; bytes], MAX_AUTH_DATA_BYTES, ErrorReason::BackupAuthDataInvalid, "auth_data")
        };
        assert!(check(1).is_ok());
        assert!(check(MAX_AUTH_DATA_BYTES).is_ok());
        for bad in [0, MAX_AUTH_DATA_BYTES + 1] {
            assert_eq!(refused(check(bad)), (ErrorReason::BackupAuthDataInvalid, "auth_data"), "{bad} bytes");
        }
    }

    #[test]
    fn a_put_is_checked_whole() {
        let fine: Vec<_> =
            (0..MAX_SESSIONS_PER_PUT).map(|i| session(&format!("s{i}"), MAX_SESSION_BYTES)).collect();
        assert!(check_sessions(&fine).is_ok());
        let longest = "x".repeat(MAX_SESSION_ID_BYTES);
        assert!(check_sessions(&[session(&longest, 1)]).is_ok());

        let mut too_many = fine.clone();
        too_many.push(session("one more", 1));
        assert_eq!(refused(check_sessions(&too_many)), (ErrorReason::BackupBatchInvalid, "sessions"));
        assert_eq!(refused(check_sessions(&[])), (ErrorReason::BackupBatchInvalid, "sessions"));
        let cases = [
            (vec![session("", 1)], ErrorReason::SessionIdInvalid, "sessions.session_id"),
            (vec![session(&"é".repeat(65), 1)], ErrorReason::SessionIdInvalid, "sessions.session_id"),
            (vec![session("a", 1), session("a", 2)], ErrorReason::SessionIdInvalid, "sessions.session_id"),
            (vec![session("a", 1), session("b", 0)], ErrorReason::BackupSessionInvalid, "sessions.data"),
            (vec![session("a", MAX_SESSION_BYTES + 1)], ErrorReason::BackupSessionInvalid, "sessions.data"),
        ];
        for (sessions, reason, field) in cases {
            assert_eq!(refused(check_sessions(&sessions)), (reason, field), "{:?}", sessions.len());
        }
    }

    #[test]
    fn pages_are_one_to_five_hundred_and_zero_means_the_most() {
        assert_eq!(page_size(0).ok(), Some(MAX_PAGE));
        assert_eq!(page_size(1).ok(), Some(1));
        assert_eq!(page_size(MAX_PAGE).ok(), Some(MAX_PAGE));
        assert!(matches!(
            page_size(MAX_PAGE + 1),
            Err(Error::InvalidArgument { reason: ErrorReason::LimitInvalid, .. })
        ));
    }
}
