//! The PostgreSQL backend (Pro): several `kitsulan` nodes can share one database. Migrations
//! take PostgreSQL's advisory lock, so nodes starting together apply them once.

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

use super::{
    Backend, ConnectOptions, Instance, InstanceStore, MigrationReport, Store, StoreError, now_ms, report,
};
use crate::ids::InstanceId;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// A PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
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
impl InstanceStore for PostgresStore {
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
