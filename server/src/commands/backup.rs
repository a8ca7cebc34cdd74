//! `kitsulan admin backup` and `kitsulan admin restore` (docs/admin.md, "Backup and restore").
//!
//! A backup is a directory, readable by its owner only:
//!
//! ```text
//! manifest.json   format, versions, time, the database's schema version, and every file
//!                 below with its size and SHA-256
//! kitsulan.db     a consistent copy of the SQLite database (none on PostgreSQL: pg_dump)
//! files/…         everything else in the data dir: the keys (`blob-key`, `totp-key`,
//!                 `turn-secret`, certificates), the blobs (attachments, avatars), by path
//! ```
//!
//! The database is copied first, then the files: a blob uploaded meanwhile is copied too (the
//! restored server deletes it as a stray), and one deleted meanwhile (expired) is left out.
//!
//! Restore reads and checks everything (the manifest, every file's size and SHA-256, no file
//! the manifest does not list, the schema version against this binary's) before it writes
//! anything; then it copies into a staging directory inside the data dir, checking the sums
//! again as it copies, and only then moves the copy into place. A bad backup changes nothing.
//! The SHA-256 sums find damage and edits by mistake; they are no signature: someone who can
//! write the backup can also rewrite its manifest. Keep backups where only the admin can.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::{BackupArgs, GlobalArgs, RestoreArgs};
use crate::data_dir::private_dir;
use crate::store::{self, Backend, DatabaseUrl};

const MANIFEST: &str = "manifest.json";
const DATABASE: &str = "kitsulan.db";
const FILES: &str = "files";
const FORMAT: &str = "kitsulan-backup";
const FORMAT_VERSION: u32 = 1;
/// What restore stages its copy in, inside the data dir.
const STAGING: &str = ".kitsulan-restore";

/// `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    format_version: u32,
    /// The `kitsulan` that wrote it.
    kitsulan_version: String,
    /// `YYYY-MM-DD HH:MM UTC`, for people; `created_at_ms` is exact.
    created_at: String,
    created_at_ms: i64,
    /// The database copied in `kitsulan.db`; `None` for a files-only backup (PostgreSQL).
    database: Option<DatabaseEntry>,
    /// Every file of the backup but the manifest, sorted by path.
    files: Vec<FileEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseEntry {
    /// `sqlite`.
    backend: String,
    /// The newest migration applied to the copy.
    schema_version: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    /// Relative to the backup, `/`-separated: `kitsulan.db` or `files/…`.
    path: String,
    size: u64,
    /// Lowercase hex.
    sha256: String,
}

/// `kitsulan admin backup DEST`.
pub async fn backup(global: &GlobalArgs, args: &BackupArgs) -> anyhow::Result<()> {
    let data_dir = &global.data_dir;
    ensure!(
        data_dir.is_dir(),
        "the data dir {} does not exist (KITSULAN_DATA_DIR): nothing to back up",
        data_dir.display()
    );
    let database = match DatabaseUrl::resolve(global.database_url.as_ref(), data_dir) {
        DatabaseUrl::Sqlite(path) if args.files_only => bail!(
            "--files-only is for PostgreSQL; the database here is SQLite ({}), which a backup includes",
            path.display()
        ),
        DatabaseUrl::Sqlite(path) => {
            ensure!(
                path.is_file(),
                "no database at {} (is KITSULAN_DATA_DIR or DATABASE_URL right?)",
                path.display()
            );
            Some(path)
        }
        DatabaseUrl::Postgres(_) if args.files_only => None,
        DatabaseUrl::Postgres(_) => bail!(
            "the database is PostgreSQL (DATABASE_URL): back it up with pg_dump (docs/admin.md, \
             \"Backup on PostgreSQL\"); add --files-only to back up the data dir's keys and files"
        ),
    };
    let dest = Destination::create(&args.dest, data_dir)?;
    let manifest = write_backup(data_dir, database.as_deref(), dest.path()).await?;
    dest.keep();
    let bytes: u64 = manifest.files.iter().map(|f| f.size).sum();
    let mut text =
        format!("Backed up to {}: {} files, {} bytes", args.dest.display(), manifest.files.len(), bytes);
    match &manifest.database {
        Some(db) => {
            text.push_str(&format!(", the SQLite database at schema version {}.\n", db.schema_version))
        }
        None => text.push_str(
            " (keys and files only: back up the PostgreSQL database with pg_dump, and the S3 bucket if \
             attachments are there).\n",
        ),
    }
    super::admin::print(&text);
    Ok(())
}

async fn write_backup(data_dir: &Path, source: Option<&Path>, dest: &Path) -> anyhow::Result<Manifest> {
    let mut files = Vec::new();
    let database = match source {
        Some(source) => {
            let copy = dest.join(DATABASE);
            store::copy_sqlite(source, &copy)
                .await
                .with_context(|| format!("cannot copy the database {}", source.display()))?;
            let schema_version = store::inspect_sqlite(&copy).await.context("the copy of the database")?;
            #[cfg(unix)]
            std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            // VACUUM INTO does not sync its output.
            std::fs::File::open(&copy)?.sync_all()?;
            let (size, sha256) = hash_file(&copy)?;
            files.push(FileEntry { path: DATABASE.into(), size, sha256 });
            Some(DatabaseEntry { backend: Backend::Sqlite.name().into(), schema_version })
        }
        None => None,
    };
    // The database's own files are not copied as files: the copy above is consistent, they are not.
    let skip = database_files(source);
    let (data_dir, dest_owned) = (data_dir.to_owned(), dest.to_owned());
    let copied = tokio::task::spawn_blocking(move || {
        let mut copied = Vec::new();
        copy_tree(&data_dir, &data_dir, &dest_owned.join(FILES), &skip, &mut copied)?;
        Ok::<_, anyhow::Error>(copied)
    })
    .await??;
    files.extend(copied);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let created_at_ms = store::now_ms();
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        kitsulan_version: env!("CARGO_PKG_VERSION").into(),
        created_at: super::admin::time(created_at_ms),
        created_at_ms,
        database,
        files,
    };
    // Written last, so a backup that stopped half-way has none and is refused.
    let partial = dest.join(format!("{MANIFEST}.partial"));
    write_new(&partial, serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    std::fs::rename(&partial, dest.join(MANIFEST))?;
    sync_dir(dest)?;
    Ok(manifest)
}

/// The SQLite database file and its `-wal`, `-shm` and `-journal`, by their real paths.
fn database_files(database: Option<&Path>) -> Vec<PathBuf> {
    let Some(path) = database else { return Vec::new() };
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = PathBuf::from(name);
            std::fs::canonicalize(&file).unwrap_or(file)
        })
        .collect()
}

/// Copies the regular files under `dir` to the same relative paths under `to`, leaving out
/// `skip`, symbolic links and anything else that is not a file, and `blobs/.tmp` (uploads in
/// progress). A file deleted while the walk runs (an expired blob) is left out.
fn copy_tree(
    root: &Path,
    dir: &Path,
    to: &Path,
    skip: &[PathBuf],
    out: &mut Vec<FileEntry>,
) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let relative = path.strip_prefix(root)?;
        if relative == Path::new("blobs/.tmp") {
            continue;
        }
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            copy_tree(root, &path, to, skip, out)?;
        } else if kind.is_file() {
            let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if skip.contains(&real) {
                continue;
            }
            let target = to.join(relative);
            if let Some(parent) = target.parent() {
                private_dir(parent).with_context(|| format!("cannot create {}", parent.display()))?;
            }
            match copy_hashed(&path, &target, None) {
                Ok((size, sha256)) => {
                    out.push(FileEntry { path: slash_path(Path::new(FILES).join(relative))?, size, sha256 })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !target.exists() => {}
                Err(e) => return Err(e).with_context(|| format!("cannot copy {}", path.display())),
            }
        } else {
            eprintln!("kitsulan: left out {} (not a regular file or directory)", path.display());
        }
    }
    Ok(())
}

/// The backup's directory while it is written: removed again if the backup fails.
struct Destination {
    path: PathBuf,
    /// Whether this run made it (else it existed, empty).
    made: bool,
    keep: bool,
}

impl Destination {
    fn create(dest: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        ensure!(
            !real_path(dest)?.starts_with(std::fs::canonicalize(data_dir)?),
            "{} is inside the data dir {}: back up to a directory outside it",
            dest.display(),
            data_dir.display()
        );
        let made = match std::fs::read_dir(dest) {
            Ok(mut entries) => {
                ensure!(
                    entries.next().is_none(),
                    "{} is not empty: back up into a new or empty directory",
                    dest.display()
                );
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(e).with_context(|| format!("cannot use {}", dest.display())),
        };
        private_dir(dest).with_context(|| format!("cannot create {}", dest.display()))?;
        Ok(Self { path: dest.to_owned(), made, keep: false })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Destination {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if self.made {
            let _ = std::fs::remove_dir_all(&self.path);
        } else if let Ok(entries) = std::fs::read_dir(&self.path) {
            for entry in entries.flatten() {
                let path = entry.path();
                let _ =
                    if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            }
        }
    }
}

/// `path` with its links resolved, also when it (or some of its parents) does not exist yet:
/// the nearest existing ancestor resolved, the rest appended.
fn real_path(path: &Path) -> anyhow::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        match std::fs::canonicalize(existing) {
            Ok(real) => return Ok(rest.iter().rev().fold(real, |p, c| p.join(c))),
            Err(_) => {
                rest.push(existing.file_name().context("no existing directory above it")?.to_owned());
                existing = existing.parent().context("no existing directory above it")?;
            }
        }
    }
}

/// `kitsulan admin restore SRC [--force]`.
pub async fn restore(global: &GlobalArgs, args: &RestoreArgs) -> anyhow::Result<()> {
    let src = &args.src;
    let manifest = read_manifest(src)?;
    let data_dir = &global.data_dir;
    match (&manifest.database, DatabaseUrl::resolve(global.database_url.as_ref(), data_dir)) {
        (Some(_), DatabaseUrl::Postgres(_)) => bail!(
            "this backup holds a SQLite database, but DATABASE_URL points at PostgreSQL: unset it to \
             restore a Lite server"
        ),
        (Some(_), DatabaseUrl::Sqlite(path)) if path != data_dir.join(DATABASE) => bail!(
            "restore puts the database at {}, but DATABASE_URL names {}: unset DATABASE_URL",
            data_dir.join(DATABASE).display(),
            path.display()
        ),
        (None, DatabaseUrl::Sqlite(_)) => bail!(
            "this backup has no database (it was made with --files-only on PostgreSQL): set DATABASE_URL \
             to the PostgreSQL database restored with pg_restore"
        ),
        _ => {}
    }
    // Everything is checked before anything is written.
    let listed: BTreeMap<String, FileEntry> =
        manifest.files.iter().map(|f| (f.path.clone(), f.clone())).collect();
    let (src_owned, check) = (src.to_owned(), listed.clone());
    tokio::task::spawn_blocking(move || verify_backup(&src_owned, &check)).await??;

    let existing = entries(data_dir)?;
    if !existing.is_empty() && !args.force {
        bail!(
            "the data dir {} is not empty ({}): restore into an empty or new directory, or add --force to \
             replace what it holds",
            data_dir.display(),
            names(&existing)
        );
    }
    let made_data_dir = !data_dir.exists();
    private_dir(data_dir).with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let staging = data_dir.join(format!("{STAGING}-{}", std::process::id()));
    let staged = stage(src, &staging, &listed, manifest.database.as_ref()).await;
    if let Err(e) = staged {
        let _ = std::fs::remove_dir_all(&staging);
        if made_data_dir {
            let _ = std::fs::remove_dir(data_dir);
        }
        return Err(e);
    }
    // The backup is complete and checked beside the old contents: now replace them.
    for path in &existing {
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        removed.with_context(|| {
            format!("cannot remove {} (the checked backup is in {})", path.display(), staging.display())
        })?;
    }
    for entry in std::fs::read_dir(&staging)? {
        let entry = entry?;
        std::fs::rename(entry.path(), data_dir.join(entry.file_name()))?;
    }
    std::fs::remove_dir(&staging)?;
    sync_dir(data_dir)?;

    let mut text = format!(
        "Restored {} files from {} (made {} by kitsulan {}) into {}",
        manifest.files.len(),
        src.display(),
        manifest.created_at,
        manifest.kitsulan_version,
        data_dir.display()
    );
    if !existing.is_empty() {
        text.push_str(&format!(", replacing {}", names(&existing)));
    }
    text.push_str(".\n");
    if manifest.database.is_none() {
        text.push_str("No database was in it: restore the PostgreSQL database with pg_restore.\n");
    }
    super::admin::print(&text);
    Ok(())
}

/// Reads and checks `manifest.json`: the format, this binary's schema versions, and paths that
/// stay inside the backup (a path a manifest names is never trusted to be harmless).
fn read_manifest(src: &Path) -> anyhow::Result<Manifest> {
    ensure!(
        src.is_dir(),
        "{} is not a directory: give the directory `kitsulan admin backup` wrote",
        src.display()
    );
    let path = src.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{} has no {MANIFEST}: not a backup, or one that did not finish", src.display())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{} is damaged: {e}", path.display()))?;
    ensure!(manifest.format == FORMAT, "{} is not a KitsuLAN backup manifest", path.display());
    ensure!(
        manifest.format_version == FORMAT_VERSION,
        "the backup's format version is {}, this kitsulan reads {FORMAT_VERSION}: restore it with kitsulan {} or newer",
        manifest.format_version,
        manifest.kitsulan_version
    );
    if let Some(db) = &manifest.database {
        ensure!(
            db.backend == Backend::Sqlite.name(),
            "the backup's database is {:?}, not sqlite",
            db.backend
        );
        let known = store::known_schema_version(Backend::Sqlite);
        ensure!(
            db.schema_version <= known,
            "the backup's database is at schema version {}, newer than this kitsulan knows ({known}): restore \
             it with kitsulan {} or newer",
            db.schema_version,
            manifest.kitsulan_version
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for file in &manifest.files {
        ensure!(safe_path(&file.path), "{} names an unsafe path {:?}", path.display(), file.path);
        ensure!(seen.insert(file.path.as_str()), "{} lists {:?} twice", path.display(), file.path);
        ensure!(file.sha256.len() == 64, "{} has a malformed SHA-256 for {:?}", path.display(), file.path);
    }
    ensure!(
        seen.contains(DATABASE) == manifest.database.is_some(),
        "{} does not match its database entry",
        path.display()
    );
    Ok(manifest)
}

/// `kitsulan.db` or `files/…`: relative, plain names only (no `..`, no root, no `.`).
fn safe_path(path: &str) -> bool {
    if path == DATABASE {
        return true;
    }
    let Some(rest) = path.strip_prefix("files/") else { return false };
    !rest.is_empty()
        && !path.contains('\\')
        && !path.contains('\0')
        && rest.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
        && Path::new(rest).components().all(|c| matches!(c, Component::Normal(_)))
}

/// Checks that the backup holds exactly the listed files with their sizes and sums.
fn verify_backup(src: &Path, listed: &BTreeMap<String, FileEntry>) -> anyhow::Result<()> {
    let mut present = Vec::new();
    list_files(src, src, &mut present)?;
    for path in &present {
        ensure!(
            path == MANIFEST || listed.contains_key(path),
            "{} holds {path}, which its manifest does not list: refusing a backup that was changed",
            src.display()
        );
    }
    for (path, file) in listed {
        let on_disk = src.join(path);
        ensure!(
            present.contains(path),
            "{} lacks {path}, which its manifest lists: the backup is incomplete",
            src.display()
        );
        let (size, sha256) =
            hash_file(&on_disk).with_context(|| format!("cannot read {}", on_disk.display()))?;
        ensure!(
            size == file.size && sha256 == file.sha256,
            "{path} in {} does not match its manifest (SHA-256 or size differs): the backup is damaged or was \
             changed; nothing was restored",
            src.display()
        );
    }
    Ok(())
}

/// Every file under `dir`, as `/`-separated paths relative to `root`; a link or other special
/// file is refused.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            list_files(root, &path, out)?;
        } else if kind.is_file() {
            out.push(slash_path(path.strip_prefix(root)?.to_owned())?);
        } else {
            bail!("{} is not a regular file: refusing the backup", path.display());
        }
    }
    Ok(())
}

/// Copies every listed file into `staging` (the data dir's future contents), checking each
/// sum again as it copies (the backup may change between the check and the copy), then the
/// database copy's own schema version and integrity.
async fn stage(
    src: &Path,
    staging: &Path,
    listed: &BTreeMap<String, FileEntry>,
    database: Option<&DatabaseEntry>,
) -> anyhow::Result<()> {
    private_dir(staging).with_context(|| format!("cannot create {}", staging.display()))?;
    let (src, staging_owned, listed) = (src.to_owned(), staging.to_owned(), listed.clone());
    tokio::task::spawn_blocking(move || {
        for (path, file) in &listed {
            let target = match path.strip_prefix("files/") {
                Some(rest) => staging_owned.join(rest),
                None => staging_owned.join(DATABASE),
            };
            if let Some(parent) = target.parent() {
                private_dir(parent)?;
            }
            let (size, sha256) = copy_hashed(&src.join(path), &target, Some(file))
                .with_context(|| format!("cannot copy {path}"))?;
            ensure!(
                size == file.size && sha256 == file.sha256,
                "{path} changed while it was being restored; nothing was restored"
            );
        }
        Ok::<_, anyhow::Error>(())
    })
    .await??;
    if let Some(db) = database {
        let version =
            store::inspect_sqlite(&staging.join(DATABASE)).await.context("the backup's database")?;
        ensure!(
            version == db.schema_version,
            "the backup's database is at schema version {version}, its manifest says {}",
            db.schema_version
        );
    }
    Ok(())
}

/// What `dir` holds (nothing when it does not exist).
fn entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut out: Vec<PathBuf> = entries.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
            out.sort();
            Ok(out)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read the data dir {}", dir.display())),
    }
}

fn names(paths: &[PathBuf]) -> String {
    let mut names: Vec<String> = paths
        .iter()
        .take(6)
        .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .collect();
    if paths.len() > 6 {
        names.push(format!("and {} more", paths.len() - 6));
    }
    names.join(", ")
}

fn slash_path(path: PathBuf) -> anyhow::Result<String> {
    let parts: Vec<&str> = path
        .components()
        .map(|c| c.as_os_str().to_str().context("a file name in the data dir is not UTF-8"))
        .collect::<anyhow::Result<_>>()?;
    Ok(parts.join("/"))
}

/// The size and SHA-256 of a file.
fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut buffer = vec![0; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok((size, hex(&hash.finalize())));
        }
        hash.update(&buffer[..n]);
        size += n as u64;
    }
}

/// Copies `from` to a new file `to` (this user only, synced) and returns the size and SHA-256
/// of what was copied. With `expect`, stops as soon as the file is longer than expected.
fn copy_hashed(from: &Path, to: &Path, expect: Option<&FileEntry>) -> std::io::Result<(u64, String)> {
    let mut input = std::fs::File::open(from)?;
    let mut output = new_private_file(to)?;
    let mut hash = Sha256::new();
    let mut buffer = vec![0; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if expect.is_some_and(|e| size > e.size) {
            return Err(std::io::Error::other("longer than its manifest says"));
        }
        hash.update(&buffer[..n]);
        output.write_all(&buffer[..n])?;
    }
    output.sync_all()?;
    Ok((size, hex(&hash.finalize())))
}

fn new_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = new_private_file(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_safe() {
        for good in
            ["kitsulan.db", "files/totp-key", "files/blobs/attachments/0190-abc", "files/tls/cert.pem"]
        {
            assert!(safe_path(good), "{good}");
        }
        for bad in [
            "",
            "files/",
            "files/../x",
            "files/a/../../x",
            "/etc/passwd",
            "files//etc",
            "files/./x",
            "other/x",
            "kitsulan.db/x",
            "files/a\\..\\b",
            "../kitsulan.db",
        ] {
            assert!(!safe_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
