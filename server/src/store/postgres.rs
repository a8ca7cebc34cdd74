//! The PostgreSQL backend (Pro): several `kitsulan` nodes can share one database. Migrations
//! take PostgreSQL's advisory lock, so nodes starting together apply them once.

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{Backend, ConnectOptions, MigrationReport, Store, StoreError, report};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// A PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(super) pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` (opening the first connection to check it works).
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// The pool, for backend-specific tests.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn applied_versions(&self) -> Result<Vec<i64>, StoreError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
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
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
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
    use crate::store::InstanceStore as _;
    use kitsulan_e2e::postgres::TestDatabase;

    #[tokio::test]
    async fn ids_are_native_uuids() -> anyhow::Result<()> {
        let db = TestDatabase::create().await?;
        let store = PostgresStore::connect(db.url(), &ConnectOptions::default()).await?;
        store.migrate().await?;
        store.instance().await?;
        let kind: String =
            sqlx::query_scalar("SELECT pg_typeof(id)::text FROM instance").fetch_one(store.pool()).await?;
        assert_eq!(kind, "uuid");
        store.close().await;
        Ok(())
    }
}
