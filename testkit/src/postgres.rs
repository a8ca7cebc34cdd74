//! Fresh PostgreSQL databases for tests: each test gets a database of its own, dropped when it
//! is done. The server to create them on is `KITSULAN_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). There is no silent skip: if PostgreSQL is not
//! there, the test fails and says how to fix it.

use anyhow::Context as _;
use sqlx::{Connection as _, Executor as _, PgConnection};

/// The server tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("KITSULAN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A new, empty database; dropped (with its connections) when this value is.
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates `kitsulan_test_<uuid>` on the test server.
    pub async fn create() -> anyhow::Result<Self> {
        let admin_url = admin_url();
        let mut conn = PgConnection::connect(&admin_url).await.with_context(|| {
            format!(
                "PostgreSQL is required for the tests and is not reachable at {} \
                 (set KITSULAN_TEST_POSTGRES_URL, or start it: see README)",
                redact(&admin_url)
            )
        })?;
        let name = format!("kitsulan_test_{}", uuid::Uuid::now_v7().simple());
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await?;
        conn.close().await.ok();
        let url = with_database(&admin_url, &name);
        Ok(Self { name, url, admin_url })
    }

    /// The connection URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside an async runtime, so do the blocking work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await?;
                conn.execute(sql.as_str()).await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{authority}/{name}{query}")
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if url[s + 3..at].contains(':') => {
            let user_end = s + 3 + url[s + 3..at].find(':').unwrap_or(0);
            format!("{}:***{}", &url[..user_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        let cases = [
            ("postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/x"),
            ("postgres://u:p@h/db?sslmode=disable", "postgres://u:p@h/x?sslmode=disable"),
            ("postgres://h:5432", "postgres://h:5432/x"),
        ];
        for (url, want) in cases {
            assert_eq!(with_database(url, "x"), want);
        }
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }
}
