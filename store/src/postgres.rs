//! The PostgreSQL backend (Pro): several `kitsulan` nodes can share one database. Migrations
//! take PostgreSQL's advisory lock, so nodes starting together apply them once.

use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{Backend, ConnectOptions, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// A PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(super) pool: PgPool,
}

impl PostgresStore {
    pub(super) const BACKEND: Backend = Backend::Postgres;
    pub(super) const MIGRATOR: &'static sqlx::migrate::Migrator = &MIGRATOR;
    /// Whether sqlx's migrations table exists yet.
    pub(super) const HAS_MIGRATIONS_TABLE: &'static str =
        "SELECT to_regclass('_sqlx_migrations') IS NOT NULL";

    /// Connects to the database at `url` (opening the first connection to check it works).
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// Runs the migrations this binary has that the database lacks (under sqlx's advisory lock).
    pub(super) async fn run_migrator(&self) -> Result<(), StoreError> {
        Ok(MIGRATOR.run(&self.pool).await?)
    }

    /// The pool, for backend-specific tests.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InstanceStore as _, Store as _};
    use kitsulan_testkit::postgres::TestDatabase;

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
