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
