//! The photos' bytes: the single node keeps them as files under `<data_dir>/attachments/`
//! (`ab/abcdef…`, named by their SHA-256); a cluster keeps them in PostgreSQL
//! (`attachment_blobs`, `wangge_events::attachments::PgBlobStore`). Every file is read and its
//! hash checked before the target is written, so a damaged photo fails the migration naming
//! it instead of being copied.

use super::MigrateError;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The PostgreSQL table the bytes go to.
pub const TABLE: &str = "attachment_blobs";

/// A photo's bytes under their SHA-256 (lowercase hex).
pub struct Blob {
    pub sha256: String,
    pub bytes: Vec<u8>,
}

fn is_digest(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Every blob under `root` (none if the directory is missing: a hub that never took a photo).
/// `tmp/` holds uploads a crash interrupted and is skipped; any other file must be a blob
/// whose content matches its name.
pub fn read_all(root: &Path) -> Result<Vec<Blob>, MigrateError> {
    let fail = |p: &Path, m: String| MigrateError::source(p, m);
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fail(root, e.to_string())),
    };
    let mut out = Vec::new();
    for dir in entries {
        let dir = dir.map_err(|e| fail(root, e.to_string()))?.path();
        if dir.file_name().is_some_and(|n| n == "tmp") || !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).map_err(|e| fail(&dir, e.to_string()))? {
            let path = file.map_err(|e| fail(&dir, e.to_string()))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !is_digest(name) {
                return Err(fail(&path, "not a blob (its name is no SHA-256)".into()));
            }
            let bytes = std::fs::read(&path).map_err(|e| fail(&path, e.to_string()))?;
            if hex::encode(Sha256::digest(&bytes)) != name {
                return Err(fail(
                    &path,
                    "its content does not match its SHA-256 name".into(),
                ));
            }
            out.push(Blob {
                sha256: name.to_string(),
                bytes,
            });
        }
    }
    out.sort_by(|a, b| a.sha256.cmp(&b.sha256));
    Ok(out)
}
