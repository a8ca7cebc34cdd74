//! The SQLite backend (Lite): one file in the data dir, WAL journal so readers never block the
//! writer and `kitsulan admin` can work while `serve` runs, foreign keys on, full fsync on
//! commit so an acknowledged write survives a crash or power cut, and `secure_delete` so what is
//! deleted is overwritten in the database file.

use std::path::Path;
use std::str::FromStr as _;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{Backend, ConnectOptions, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// A SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
}

impl SqliteStore {
    pub(super) const BACKEND: Backend = Backend::Sqlite;
    pub(super) const MIGRATOR: &'static sqlx::migrate::Migrator = &MIGRATOR;
    /// Whether sqlx's migrations table exists yet.
    pub(super) const HAS_MIGRATIONS_TABLE: &'static str =
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')";

    /// Opens (creating if needed) the database file and its parent directory.
    pub async fn open(path: &Path, options: &ConnectOptions) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        }
        private_files(path).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let connect = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Deleted rows (message ciphertext, keys) are overwritten, not left in free pages.
            .pragma("secure_delete", "ON")
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(Self { pool })
    }

    /// Runs the migrations this binary has that the database lacks, as SQLite's documentation
    /// says a table is rebuilt: with foreign keys off (so dropping a table that others refer
    /// to, to make it again with other constraints, deletes nothing through `ON DELETE
    /// CASCADE`), then checked with `foreign_key_check` before the connection turns them back
    /// on. Each migration is still one transaction (sqlx's); the pragma cannot change inside one.
    pub(super) async fn run_migrator(&self) -> Result<(), StoreError> {
        use sqlx::Connection as _;
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await?;
        let ran = MIGRATOR.run_direct(&mut *conn).await.map_err(StoreError::from);
        let checked = match ran {
            Ok(()) => match sqlx::query("PRAGMA foreign_key_check").fetch_all(&mut *conn).await {
                Ok(broken) if broken.is_empty() => Ok(()),
                Ok(broken) => Err(StoreError::Corrupt(format!(
                    "{} rows refer to rows that do not exist after the migrations",
                    broken.len()
                ))),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        };
        if sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await.is_err() {
            // Never hand a connection without foreign keys back to the pool.
            let _closed = conn.detach().close().await;
        }
        checked
    }

    /// The pool, for backend-specific tests.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Makes the database file readable by this user only (0600) before SQLite opens it: SQLite
/// gives its `-wal` and `-shm` files the mode of the database file. Files an earlier version
/// made readable by others are tightened.
fn private_files(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let name = Path::new(&name);
            if name.exists() {
                // Takes the group and other bits off, as the server does for its data dir.
                let mode = std::fs::metadata(name)?.permissions().mode();
                if mode & 0o077 != 0 {
                    std::fs::set_permissions(name, std::fs::Permissions::from_mode(mode & 0o600))?;
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InstanceStore as _, Store as _};

    #[tokio::test]
    async fn ids_are_16_byte_blobs_and_the_journal_is_wal() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(&dir.path().join("k.db"), &ConnectOptions::default()).await?;
        store.migrate().await?;
        store.instance().await?;
        let (kind, len): (String, i64) =
            sqlx::query_as("SELECT typeof(id), length(id) FROM instance").fetch_one(store.pool()).await?;
        assert_eq!((kind.as_str(), len), ("blob", 16));
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(store.pool()).await?;
        assert_eq!(mode, "wal");
        Ok(())
    }

    /// Migration 0017 rebuilds `conversations`, which every member, message and reaction
    /// refers to with ON DELETE CASCADE: an upgraded database keeps all of them.
    #[tokio::test]
    async fn rebuilding_conversations_keeps_what_refers_to_them() -> anyhow::Result<()> {
        use crate::ids::{AccountId, ConversationId};
        use crate::{AccountStore as _, ConversationStore as _, NewAccount, now_ms};
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(&dir.path().join("k.db"), &ConnectOptions::default()).await?;
        let before = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(
                MIGRATOR.iter().filter(|m| m.version < 17).cloned().collect(),
            ),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        before.run(store.pool()).await?;
        let mut people = Vec::new();
        for name in ["ann", "bob"] {
            let account = NewAccount {
                id: AccountId::generate(),
                username: name.to_owned(),
                display_name: name.to_owned(),
                email: None,
                password_hash: "$argon2id$test".to_owned(),
                created_at_ms: now_ms(),
            };
            store.create_account_without_device(&account).await?;
            people.push(account.id);
        }
        let group = ConversationId::generate();
        store.create_group_in(group, "old friends", people[0], &people[1..], true, now_ms()).await?;
        sqlx::query(
            "INSERT INTO messages (conversation_id, seq, id, sender_account_id, sender_device_id, ciphertext, \
             session_id, sent_at_ms) VALUES ($1, 1, $2, $3, $4, x'00', x'00', 1)",
        )
        .bind(group.as_uuid())
        .bind(uuid::Uuid::now_v7())
        .bind(people[0].as_uuid())
        .bind(uuid::Uuid::now_v7())
        .execute(store.pool())
        .await?;
        let pool = store.pool().clone();
        let counts = || async {
            let mut counts = Vec::new();
            for table in ["conversation_members", "messages", "device_cursors"] {
                let n: i64 =
                    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&pool).await?;
                counts.push(n);
            }
            Ok::<_, sqlx::Error>(counts)
        };
        let kept = counts().await?;

        let report = store.migrate().await?;
        assert!(report.applied.iter().any(|m| m.starts_with("0017 ")), "{:?}", report.applied);
        assert_eq!(counts().await?, kept);
        assert_eq!(kept[..2], [2, 1]);
        assert_eq!(store.members(group).await?.len(), 2);
        assert_eq!(store.conversation(group).await?.and_then(|c| c.title).as_deref(), Some("old friends"));
        // The constraints hold again, on every connection of the pool.
        for _ in 0..3 {
            let on: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(store.pool()).await?;
            assert_eq!(on, 1);
        }
        Ok(())
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_files_are_private() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("k.db");
        // An older file others could read is tightened too.
        std::fs::write(&path, b"")?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        let store = SqliteStore::open(&path, &ConnectOptions::default()).await?;
        store.migrate().await?;
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.path().join(format!("k.db{suffix}"));
            let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
        Ok(())
    }
}
