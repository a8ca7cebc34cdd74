//! Proof that the server holds no plaintext and no private key: search everything it stored
//! for given byte strings.
//!
//! [`scan_for_plaintexts`] reads every byte of the server's data dir (the SQLite database with
//! its `-wal` and `-shm` files, and any other file) and, for a PostgreSQL server, a full data
//! dump of its database (`pg_dump --data-only`, or when `pg_dump` is not installed, every
//! column of every row of every table in the `public` schema). Raw files include deleted rows
//! and free pages, so this is the check for "never stored". [`scan_database_rows`] looks only
//! at the live rows (SQLite or PostgreSQL), the check for "deleted". [`scan_for_plaintexts_with`]
//! reads other places too (an S3 server's directory).
//!
//! Each needle is searched raw and in the encodings a server might store it in: hex (both
//! cases), and standard and URL-safe base64 at each of the three byte alignments (so a needle
//! in the middle of a larger base64 text is found too). Needles must be at least 8 bytes, so a
//! match is never chance.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context as _, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use sqlx::{Connection as _, Row as _};

use crate::TestServer;

/// The shortest needle accepted.
pub const MIN_NEEDLE: usize = 8;

/// Where a needle was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Index of the needle in the list searched for.
    pub needle: usize,
    /// The needle's label (its text, shortened, for [`scan_for_plaintexts`]).
    pub label: String,
    /// The file (relative to the data dir), `pg_dump`, or `table.column`.
    pub place: String,
    /// Byte offset in that file or dump (row number for [`scan_database_rows`]).
    pub offset: usize,
    /// How it was encoded there: `raw`, `hex`, `HEX`, `base64`, `base64url`.
    pub encoding: &'static str,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({}) in {} at {}", self.label, self.encoding, self.place, self.offset)
    }
}

/// The patterns for one needle: (encoding, bytes).
fn encodings(needle: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let hex: String = needle.iter().map(|b| format!("{b:02x}")).collect();
    let mut out =
        vec![("raw", needle.to_vec()), ("HEX", hex.to_uppercase().into_bytes()), ("hex", hex.into_bytes())];
    for (name, engine) in [("base64", STANDARD_NO_PAD), ("base64url", URL_SAFE_NO_PAD)] {
        for shift in 0..3usize {
            let mut shifted = vec![0u8; shift];
            shifted.extend_from_slice(needle);
            let text = engine.encode(&shifted);
            // Characters that depend only on the needle's bytes: skip those mixing in the
            // prefix, stop before those mixing in whatever follows.
            let start = (shift * 8).div_ceil(6);
            let end = (shifted.len() * 8) / 6;
            if end > start {
                out.push((name, text.as_bytes()[start..end].to_vec()));
            }
        }
    }
    out
}

/// One searched form of a needle: (needle index, encoding, bytes).
type Pattern = (usize, &'static str, Vec<u8>);

/// A multi-pattern search keyed on each pattern's first 4 bytes.
struct Patterns {
    by_prefix: HashMap<[u8; 4], Vec<Pattern>>,
    labels: Vec<String>,
}

impl Patterns {
    fn new(needles: &[(String, Vec<u8>)]) -> anyhow::Result<Self> {
        let mut by_prefix: HashMap<[u8; 4], Vec<_>> = HashMap::new();
        for (i, (label, needle)) in needles.iter().enumerate() {
            ensure!(needle.len() >= MIN_NEEDLE, "needle {label:?} is shorter than {MIN_NEEDLE} bytes");
            for (encoding, pattern) in encodings(needle) {
                let prefix = [pattern[0], pattern[1], pattern[2], pattern[3]];
                by_prefix.entry(prefix).or_default().push((i, encoding, pattern));
            }
        }
        Ok(Self { by_prefix, labels: needles.iter().map(|(l, _)| l.clone()).collect() })
    }

    fn search(&self, haystack: &[u8], place: &str, findings: &mut Vec<Finding>) {
        if haystack.len() < 4 {
            return;
        }
        for at in 0..=haystack.len() - 4 {
            let prefix = [haystack[at], haystack[at + 1], haystack[at + 2], haystack[at + 3]];
            let Some(candidates) = self.by_prefix.get(&prefix) else { continue };
            for (needle, encoding, pattern) in candidates {
                if haystack[at..].starts_with(pattern) {
                    let seen = findings.iter().any(|f| f.needle == *needle && f.place == place);
                    if !seen {
                        findings.push(Finding {
                            needle: *needle,
                            label: self.labels[*needle].clone(),
                            place: place.to_owned(),
                            offset: at,
                            encoding,
                        });
                    }
                }
            }
        }
    }
}

fn label_plaintexts(needles: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
    needles
        .iter()
        .map(|n| {
            let text = String::from_utf8_lossy(n);
            let label: String = text.chars().take(40).collect();
            (label, n.to_vec())
        })
        .collect()
}

/// Every place in the server's data dir and database (dump) where one of `needles` appears.
pub async fn scan_for_plaintexts(server: &TestServer, needles: &[&[u8]]) -> anyhow::Result<Vec<Finding>> {
    scan_labelled(server, &label_plaintexts(needles)).await
}

/// [`scan_for_plaintexts`] plus every file under `extra` (e.g. the S3 server's directory, where
/// a Pro server's blobs live; a Lite server's `blobs/` is in its data dir already).
pub async fn scan_for_plaintexts_with(
    server: &TestServer,
    extra: &[&Path],
    needles: &[&[u8]],
) -> anyhow::Result<Vec<Finding>> {
    let labelled = label_plaintexts(needles);
    let mut findings = scan_labelled(server, &labelled).await?;
    let patterns = Patterns::new(&labelled)?;
    for dir in extra {
        let mut files = Vec::new();
        collect_files(dir, &mut files)?;
        ensure!(!files.is_empty(), "nothing stored under {}: the scan would prove nothing", dir.display());
        for file in files {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            patterns.search(&bytes, &file.display().to_string(), &mut findings);
        }
    }
    Ok(findings)
}

/// [`scan_for_plaintexts`] for labelled secrets (e.g. [`crate::e2ee::E2eeDevice::secrets`]).
pub async fn scan_for_secrets(
    server: &TestServer,
    secrets: &[(String, Vec<u8>)],
) -> anyhow::Result<Vec<Finding>> {
    scan_labelled(server, secrets).await
}

async fn scan_labelled(server: &TestServer, needles: &[(String, Vec<u8>)]) -> anyhow::Result<Vec<Finding>> {
    let patterns = Patterns::new(needles)?;
    let mut findings = Vec::new();
    let mut files = Vec::new();
    collect_files(server.data_dir(), &mut files)?;
    ensure!(
        server.database_url.is_some() || files.iter().any(|f| f.extension().is_some_and(|e| e == "db")),
        "no SQLite database in {}: the scan would prove nothing",
        server.data_dir().display()
    );
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let place = file.strip_prefix(server.data_dir()).unwrap_or(&file).display().to_string();
        patterns.search(&bytes, &place, &mut findings);
    }
    if let Some(url) = &server.database_url {
        match pg_dump(url).await? {
            Some(dump) => patterns.search(&dump, "pg_dump", &mut findings),
            None => {
                for (place, value) in postgres_rows(url).await? {
                    patterns.search(&value, &place, &mut findings);
                }
            }
        }
    }
    Ok(findings)
}

/// Every live row of the server's database where one of `needles` appears (SQLite: read-only
/// connection to `kitsulan.db` in the data dir; PostgreSQL: its database).
pub async fn scan_database_rows(server: &TestServer, needles: &[&[u8]]) -> anyhow::Result<Vec<Finding>> {
    let patterns = Patterns::new(&label_plaintexts(needles))?;
    let rows = match &server.database_url {
        Some(url) => postgres_rows(url).await?,
        None => sqlite_rows(&server.data_dir().join("kitsulan.db")).await?,
    };
    ensure!(!rows.is_empty(), "the database has no rows at all: the scan would prove nothing");
    let mut findings = Vec::new();
    for (place, value) in rows {
        patterns.search(&value, &place, &mut findings);
    }
    Ok(findings)
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(())
}

/// `pg_dump --data-only` of the database, or `None` when `pg_dump` is not installed.
async fn pg_dump(url: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let output = match tokio::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", "--dbname", url])
        .output()
        .await
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("running pg_dump"),
    };
    ensure!(output.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(Some(output.stdout))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// (`table.column#row`, value as bytes) for every non-null value in the `public` schema.
async fn postgres_rows(url: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut conn = sqlx::PgConnection::connect(url).await.context("connecting to the test database")?;
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut out = Vec::new();
    for (table, column, data_type) in columns {
        let expr = if data_type == "bytea" {
            quote_ident(&column)
        } else {
            format!("convert_to({}::text, 'UTF8')", quote_ident(&column))
        };
        let sql = format!("SELECT {expr} FROM public.{}", quote_ident(&table));
        let rows = sqlx::query(&sql).fetch_all(&mut conn).await.with_context(|| sql.clone())?;
        for (n, row) in rows.iter().enumerate() {
            if let Some(value) = row.try_get::<Option<Vec<u8>>, _>(0)? {
                out.push((format!("{table}.{column}#{n}"), value));
            }
        }
    }
    conn.close().await.ok();
    Ok(out)
}

/// (`table.column#row`, value as bytes) for every non-null value of every table.
async fn sqlite_rows(path: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'").fetch_all(&mut conn).await?;
    let mut out = Vec::new();
    for (table,) in tables {
        let columns: Vec<String> = sqlx::query(&format!("PRAGMA table_info({})", quote_ident(&table)))
            .fetch_all(&mut conn)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>("name"))
            .collect::<Result<_, _>>()?;
        for column in columns {
            let sql = format!("SELECT CAST({} AS BLOB) FROM {}", quote_ident(&column), quote_ident(&table));
            let rows = sqlx::query(&sql).fetch_all(&mut conn).await.with_context(|| sql.clone())?;
            for (n, row) in rows.iter().enumerate() {
                if let Some(value) = row.try_get::<Option<Vec<u8>>, _>(0)? {
                    out.push((format!("{table}.{column}#{n}"), value));
                }
            }
        }
    }
    conn.close().await.ok();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn find(needle: &[u8], haystack: &[u8]) -> Vec<&'static str> {
        let patterns = Patterns::new(&[("n".to_owned(), needle.to_vec())]).unwrap();
        let mut findings = Vec::new();
        patterns.search(haystack, "x", &mut findings);
        findings.into_iter().map(|f| f.encoding).collect()
    }

    #[test]
    fn needles_are_found_raw_hex_and_base64_at_any_alignment() {
        let needle = b"hello from alice";
        assert_eq!(find(needle, b"..hello from alice.."), ["raw"]);
        assert_eq!(find(needle, b"\\x0068656c6c6f2066726f6d20616c696365ff"), ["hex"]);
        assert_eq!(find(needle, b"68656C6C6F2066726F6D20616C696365"), ["HEX"]);
        for prefix in 0..6usize {
            let mut blob = vec![0xA5u8; prefix];
            blob.extend_from_slice(needle);
            blob.extend_from_slice(&[0x5A; 5]);
            assert_eq!(find(needle, STANDARD_NO_PAD.encode(&blob).as_bytes()), ["base64"], "prefix {prefix}");
            let url = URL_SAFE_NO_PAD.encode(&blob);
            let found = find(needle, url.as_bytes());
            assert!(found == ["base64url"] || found == ["base64"], "prefix {prefix}: {found:?}");
        }
        assert!(find(needle, b"hello from bob and alice").is_empty());
    }

    #[test]
    fn short_needles_are_refused() {
        assert!(Patterns::new(&[("n".to_owned(), b"short".to_vec())]).is_err());
    }
}
