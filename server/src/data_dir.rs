//! Files in the data dir: the database (Lite), the keys (`blob-key`, `totp-key`,
//! `turn-secret`) and the blobs. Everything there is for this user only: directories 0700,
//! files 0600, and what an earlier version left readable by others is tightened on start.
//! A leaf module: it imports nothing of the project.

use std::io::Write as _;
use std::path::Path;

/// Makes `dir` (and its parents) if needed, readable by this user only (0700). An existing one
/// that others may read is tightened; `Ok(true)` says it was.
pub fn private_dir(dir: &Path) -> std::io::Result<bool> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    tighten(dir, 0o700)
}

/// Takes the group and other bits off `path` (leaving at most `mode`); `Ok(true)` if it had any.
pub fn tighten(path: &Path, mode: u32) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let current = std::fs::metadata(path)?.permissions().mode();
        if current & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode & 0o700))?;
            return Ok(true);
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(false)
}

/// Reads a key file as text, first taking away what an earlier version let others read.
pub fn read_private_file(path: &Path) -> std::io::Result<String> {
    if path.exists() {
        tighten(path, 0o600)?;
    }
    std::fs::read_to_string(path)
}

/// Writes `contents` to a new file at `path` that only this user can read (0600), and syncs it.
/// Fails if the file exists (a key is never overwritten).
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn directories_and_files_are_private_and_old_ones_tightened() {
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        assert!(!private_dir(&dir).unwrap());
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(private_dir(&dir).unwrap(), "tightened");
        assert_eq!(mode(&dir), 0o700);
        let key = dir.join("key");
        write_private_file(&key, b"secret").unwrap();
        assert_eq!(mode(&key), 0o600);
        assert!(write_private_file(&key, b"other").is_err(), "never overwritten");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_private_file(&key).unwrap(), "secret");
        assert_eq!(mode(&key), 0o600, "tightened when read");
    }
}
