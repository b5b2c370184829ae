//! The hub's data and secrets are readable by the hub's user only.
//!
//! The data dir holds the registry (edge secret hashes, token hashes), the events store and
//! the readings; a world-readable SQLite file would hand them to any local user. Three layers,
//! because each alone has a gap: the process umask (`0o077`) makes everything SQLite creates
//! later private (-wal, -shm, new day partitions, the influx spill); the data dir is set to
//! `0700` at start; files left from a run under another umask are tightened to `0600` at start.

use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of the data dir and every directory under it.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file under the data dir, and of secret files the CLI writes.
pub const FILE_MODE: u32 = 0o600;

/// Files the process creates from now on are private (group and others get nothing).
pub fn restrict_umask() {
    // SAFETY: umask only sets the process's file mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `dir` (and parents) if missing and sets it to `0700`.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
}

/// Sets every directory under `dir` to `0700` and every file to `0600` (symlinks untouched).
pub fn tighten_tree(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(DIR_MODE))?;
            tighten_tree(&path)?;
        } else if kind.is_file() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(FILE_MODE))?;
        }
    }
    Ok(())
}

/// Writes `contents` to `path` as a `0600` file (an existing file is truncated and set to it).
pub fn write_secret(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    // `mode` applies only to a new file.
    f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    f.write_all(contents)?;
    f.sync_all()
}
