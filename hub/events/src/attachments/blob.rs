//! Where attachment bytes live, by content hash: the [`BlobStore`] seam and its filesystem
//! implementation under the hub's data dir (`<data_dir>/attachments/ab/abcdef…`).
//!
//! A cluster of hubs keeps the bytes in PostgreSQL ([`super::PgBlobStore`]); an S3-compatible
//! object store could stand behind the same three calls (the key is the hash, so any hub can
//! serve what another stored), documented, not built.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Content-addressed storage of attachment bytes. Keys are lowercase hex SHA-256 digests of
/// the bytes stored; `put` of a key already present is a no-op, so two uploads of one photo
/// share one copy.
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` under `sha256`, durably, before returning.
    fn put(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// The bytes stored under `sha256`, or None.
    fn get(&self, sha256: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// Forgets `sha256` (no error when it is absent).
    fn delete(&self, sha256: &str) -> std::io::Result<()>;
}

/// Blobs as files: `<root>/<first two hex digits>/<digest>`, written to a temporary file,
/// fsynced and renamed into place, so a crash leaves either the whole file or none. Files are
/// 0600 and directories 0700, like the rest of the data dir (photos are personal data).
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Uses (creating) the directory `root`.
    pub fn open(root: &Path) -> std::io::Result<FsBlobStore> {
        private_dir(root)?;
        private_dir(&root.join("tmp"))?;
        Ok(FsBlobStore {
            root: root.to_path_buf(),
        })
    }

    /// The path of `sha256`; refuses anything but 64 lowercase hex digits, so a key can never
    /// name a path outside the root.
    fn path(&self, sha256: &str) -> std::io::Result<PathBuf> {
        check_key(sha256)?;
        Ok(self.root.join(&sha256[..2]).join(sha256))
    }
}

/// Refuses a key that is not 64 lowercase hex digits (every blob store checks its keys).
pub(super) fn check_key(sha256: &str) -> std::io::Result<()> {
    let hex = sha256.len() == 64
        && sha256
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    if hex {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("blob key {sha256:?} is not a SHA-256 hex digest"),
        ))
    }
}

/// Creates `dir` (and its parents) 0700 if it is missing.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// A number no other temporary file of this process has, so two uploads of one photo at once
/// never write the same temporary file.
fn next_tmp() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl BlobStore for FsBlobStore {
    fn put(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(sha256)?;
        if path.exists() {
            return Ok(());
        }
        let dir = path.parent().expect("a blob path has a parent");
        private_dir(dir)?;
        let tmp =
            self.root
                .join("tmp")
                .join(format!("{sha256}.{}.{}", std::process::id(), next_tmp()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        // The rename is durable only once the directory is.
        std::fs::File::open(dir)?.sync_all()
    }

    fn get(&self, sha256: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(sha256)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, sha256: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(sha256)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_kept_by_hash_and_keys_cannot_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let key = "ab".repeat(32);
        store.put(&key, b"photo").unwrap();
        store.put(&key, b"photo").unwrap();
        assert_eq!(store.get(&key).unwrap().as_deref(), Some(&b"photo"[..]));
        let file = dir.path().join("ab").join(&key);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(file.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        store.delete(&key).unwrap();
        store.delete(&key).unwrap();
        assert_eq!(store.get(&key).unwrap(), None);
        for bad in ["../../etc/passwd", "", &"AB".repeat(32), &"a".repeat(63)] {
            assert!(store.put(bad, b"x").is_err(), "{bad:?}");
            assert!(store.get(bad).is_err(), "{bad:?}");
        }
    }
}
