//! Copies of the database for `kitsulan admin backup` and what `restore` checks in one.
//!
//! A SQLite copy is made with `VACUUM INTO` on a connection of its own: it runs in one read
//! transaction, so under WAL the server's writers go on while it runs, and the copy holds every
//! transaction committed before it began and none after (a consistent snapshot, not a file copy
//! that could catch a page half-way through a checkpoint). The copy is a standalone database
//! file (no `-wal` to go with it), compacted. SQLite's online backup API would also be
//! consistent, but sqlx does not expose it, and with a writer that keeps writing it starts over
//! whenever a page it has copied changes.

use std::path::Path;
use std::str::FromStr as _;

use sqlx::ConnectOptions as _;
use sqlx::sqlite::SqliteConnectOptions;

use super::{Backend, PostgresStore, SqliteStore, StoreError};

/// The newest schema version (migration number) this binary knows for `backend`.
pub fn known_schema_version(backend: Backend) -> i64 {
    let migrator = match backend {
        Backend::Sqlite => SqliteStore::MIGRATOR,
        Backend::Postgres => PostgresStore::MIGRATOR,
    };
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Writes a consistent copy of the SQLite database at `source` to `dest`, a file that must not
/// exist yet, while other processes (the server) keep reading and writing it. Does not create
/// `source`: a missing database is an error.
pub async fn copy_sqlite(source: &Path, dest: &Path) -> Result<(), StoreError> {
    if !source.is_file() {
        return Err(StoreError::Unavailable(format!("no SQLite database at {}", source.display()).into()));
    }
    let dest = dest
        .to_str()
        .ok_or_else(|| StoreError::Unavailable(format!("{} is not UTF-8", dest.display()).into()))?;
    let mut connection = SqliteConnectOptions::from_str("sqlite:")?
        .filename(source)
        .create_if_missing(false)
        // The server's setting; a read needs no write lock, but a checkpoint may briefly hold one.
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await?;
    sqlx::query("VACUUM INTO ?").bind(dest).execute(&mut connection).await?;
    sqlx::Connection::close(connection).await?;
    Ok(())
}

/// What a SQLite file holds, checked without changing it: `PRAGMA quick_check` and the newest
/// migration applied (0 when none).
pub async fn inspect_sqlite(path: &Path) -> Result<i64, StoreError> {
    let mut connection = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(false)
        .read_only(true)
        // A backup's copy is not in use by anyone: no locks, no -wal or -shm files made beside it.
        .immutable(true)
        .connect()
        .await?;
    let check: Vec<String> = sqlx::query_scalar("PRAGMA quick_check").fetch_all(&mut connection).await?;
    if check != ["ok"] {
        return Err(StoreError::Corrupt(format!("quick_check: {}", check.join("; "))));
    }
    let exists: bool =
        sqlx::query_scalar(SqliteStore::HAS_MIGRATIONS_TABLE).fetch_one(&mut connection).await?;
    let version: Option<i64> = if exists {
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut connection)
            .await?
    } else {
        None
    };
    sqlx::Connection::close(connection).await?;
    Ok(version.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConnectOptions, Store as _};

    #[tokio::test]
    async fn a_copy_is_consistent_while_a_writer_writes() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("k.db");
        let store = SqliteStore::open(&path, &ConnectOptions::default()).await?;
        store.migrate().await?;
        sqlx::query("CREATE TABLE t (n INTEGER PRIMARY KEY, pad BLOB)").execute(&store.pool).await?;
        // A writer that inserts 1, 2, 3 … one transaction each while copies are made.
        let pool = store.pool.clone();
        let writer = tokio::spawn(async move {
            for n in 1..=400_i64 {
                sqlx::query("INSERT INTO t (n, pad) VALUES (?, zeroblob(2000))")
                    .bind(n)
                    .execute(&pool)
                    .await?;
            }
            Ok::<_, sqlx::Error>(())
        });
        let mut copies = Vec::new();
        for i in 0..5 {
            let copy = dir.path().join(format!("copy{i}.db"));
            copy_sqlite(&path, &copy).await?;
            copies.push(copy);
        }
        writer.await??;
        for copy in &copies {
            assert_eq!(inspect_sqlite(copy).await?, known_schema_version(Backend::Sqlite));
            let copied = SqliteStore::open(copy, &ConnectOptions::default()).await?;
            // Every row up to the highest one: no gap, as each insert was its own transaction.
            let (count, max): (i64, Option<i64>) =
                sqlx::query_as("SELECT COUNT(*), MAX(n) FROM t").fetch_one(&copied.pool).await?;
            assert_eq!(count, max.unwrap_or(0), "{}", copy.display());
            copied.close().await;
        }
        // Copying never makes a database where there was none, nor writes over a file.
        assert!(copy_sqlite(&dir.path().join("none.db"), &dir.path().join("x.db")).await.is_err());
        assert!(!dir.path().join("none.db").exists());
        assert!(copy_sqlite(&path, &copies[0]).await.is_err(), "the destination exists");
        Ok(())
    }

    #[tokio::test]
    async fn a_damaged_or_foreign_file_is_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("k.db");
        let store = SqliteStore::open(&path, &ConnectOptions::default()).await?;
        store.migrate().await?;
        store.close().await;
        let copy = dir.path().join("copy.db");
        copy_sqlite(&path, &copy).await?;
        let mut bytes = std::fs::read(&copy)?;
        let middle = bytes.len() / 2;
        for b in &mut bytes[middle..middle + 4096] {
            *b ^= 0x5a;
        }
        std::fs::write(&copy, &bytes)?;
        assert!(inspect_sqlite(&copy).await.is_err());
        let text = dir.path().join("text.db");
        std::fs::write(&text, b"not a database at all, just some text that is long enough")?;
        assert!(inspect_sqlite(&text).await.is_err());
        Ok(())
    }
}
