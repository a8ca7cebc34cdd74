//! The store conformance suite: every test here runs twice, on a fresh SQLite file and on a
//! fresh PostgreSQL database (`store::conformance::sqlite::*` and `…::postgres::*` in the test
//! output). PostgreSQL is required: without it these tests fail, they are never skipped.
//! Every new store trait adds its tests to the `conformance!` list at the bottom.

use std::sync::Arc;

use kitsulan_e2e::postgres::TestDatabase;

use super::{ConnectOptions, Store, connect};
use crate::config::DatabaseUrl;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Sqlite,
    Postgres,
}

/// A store on a database of its own (migrated unless asked otherwise), dropped with it.
struct Fresh {
    kind: Kind,
    store: Arc<dyn Store>,
    url: DatabaseUrl,
    _keep: Keep,
}

enum Keep {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] TestDatabase),
}

impl Fresh {
    async fn new(kind: Kind) -> anyhow::Result<Self> {
        let db = Self::unmigrated(kind).await?;
        db.store.migrate().await?;
        Ok(db)
    }

    async fn unmigrated(kind: Kind) -> anyhow::Result<Self> {
        let (url, keep) = match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir()?;
                (DatabaseUrl::Sqlite(dir.path().join("kitsulan.db")), Keep::Sqlite(dir))
            }
            Kind::Postgres => {
                let db = TestDatabase::create().await?;
                (DatabaseUrl::Postgres(db.url().to_owned()), Keep::Postgres(db))
            }
        };
        let store = connect(&url, &ConnectOptions::default()).await?;
        Ok(Self { kind, store, url, _keep: keep })
    }

    /// A second, independent connection pool to the same database, as another process has.
    async fn reopen(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(connect(&self.url, &ConnectOptions::default()).await?)
    }
}

async fn migrations_are_idempotent(db: &Fresh) -> anyhow::Result<()> {
    let again = db.store.migrate().await?;
    assert!(again.applied.is_empty(), "second run applied {:?}", again.applied);
    assert!(again.total >= 1);
    Ok(())
}

async fn fresh_database_reports_every_migration(db: &Fresh) -> anyhow::Result<()> {
    let empty = Fresh::unmigrated(db.kind).await?;
    let first = empty.store.migrate().await?;
    assert_eq!(first.applied.len(), first.total);
    assert!(first.applied.iter().any(|m| m.starts_with("0001 ")), "{:?}", first.applied);
    Ok(())
}

async fn ping_answers(db: &Fresh) -> anyhow::Result<()> {
    db.store.ping().await?;
    Ok(())
}

async fn instance_is_created_once(db: &Fresh) -> anyhow::Result<()> {
    let first = db.store.instance().await?;
    let second = db.store.instance().await?;
    assert_eq!(first, second);
    assert!(first.created_at_ms > 1_700_000_000_000, "{first:?}");
    Ok(())
}

async fn instance_survives_reconnect(db: &Fresh) -> anyhow::Result<()> {
    let before = db.store.instance().await?;
    db.store.close().await;
    let other = db.reopen().await?;
    assert_eq!(other.instance().await?, before);
    Ok(())
}

async fn concurrent_instance_creation_agrees(db: &Fresh) -> anyhow::Result<()> {
    // Two "processes" (pools) and many tasks race to create the identity: one wins, all agree.
    let other = db.reopen().await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let store = if i % 2 == 0 { db.store.clone() } else { other.clone() };
        tasks.spawn(async move { store.instance().await });
    }
    let mut seen = Vec::new();
    while let Some(result) = tasks.join_next().await {
        seen.push(result??);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    Ok(())
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    super::$test(&super::Fresh::new(super::Kind::Sqlite).await?).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    super::$test(&super::Fresh::new(super::Kind::Postgres).await?).await
                }
            )*
        }
    };
}

conformance!(
    migrations_are_idempotent,
    fresh_database_reports_every_migration,
    ping_answers,
    instance_is_created_once,
    instance_survives_reconnect,
    concurrent_instance_creation_agrees,
);
