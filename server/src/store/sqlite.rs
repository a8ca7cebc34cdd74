//! The SQLite backend (Lite): one file in the data dir, WAL journal so readers never block the
//! writer and `kitsulan admin` can work while `serve` runs, foreign keys on, and full fsync on
//! commit so an acknowledged write survives a crash or power cut.

use std::path::Path;
use std::str::FromStr as _;

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;

use super::{
    Backend, ConnectOptions, Instance, InstanceStore, MigrationReport, Store, StoreError, now_ms, report,
};
use crate::ids::InstanceId;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// A SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its parent directory.
    pub async fn open(path: &Path, options: &ConnectOptions) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        }
        let connect = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
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

    async fn applied_versions(&self) -> Result<Vec<i64>, StoreError> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_one(&self.pool)
        .await?;
        if !exists {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&self.pool)
            .await?)
    }
}

#[async_trait]
impl InstanceStore for SqliteStore {
    async fn instance(&self) -> Result<Instance, StoreError> {
        sqlx::query("INSERT INTO instance (singleton, id, created_at_ms) VALUES (1, $1, $2) ON CONFLICT (singleton) DO NOTHING")
            .bind(InstanceId::generate().as_uuid())
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT id, created_at_ms FROM instance WHERE singleton = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(Instance {
            id: InstanceId::from_uuid(row.try_get::<Uuid, _>("id")?),
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let before = self.applied_versions().await?;
        MIGRATOR.run(&self.pool).await?;
        let after = self.applied_versions().await?;
        Ok(report(&MIGRATOR, &before, &after))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
