//! The cluster's blob store: attachment bytes in PostgreSQL (`attachment_blobs`, BYTEA keyed by
//! the SHA-256), so a photo uploaded through one hub is served by every hub of the cluster.
//! Used whenever the events store is [`crate::store::PgStore`]; same contract as
//! [`super::FsBlobStore`] (a `put` of a present key is a no-op, `delete` of an absent one too).

use super::blob::check_key;
use super::BlobStore;
use std::sync::Arc;
use wangge_pg::Pg;

/// Blobs in the `attachment_blobs` table of the events database (created by the events
/// store's migration 0002, so open the [`crate::store::PgStore`] first).
pub struct PgBlobStore {
    pg: Arc<Pg>,
}

impl PgBlobStore {
    pub fn new(pg: Arc<Pg>) -> PgBlobStore {
        PgBlobStore { pg }
    }
}

/// A database error as the I/O error the [`BlobStore`] seam speaks (never the password:
/// `PgError` does not carry it).
fn io(e: wangge_pg::PgError) -> std::io::Error {
    std::io::Error::other(format!("blob store on PostgreSQL: {e}"))
}

impl BlobStore for PgBlobStore {
    /// Committed before returning (durable as the database is).
    fn put(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        check_key(sha256)?;
        self.pg
            .execute(
                "INSERT INTO attachment_blobs (sha256, bytes) VALUES ($1, $2) \
                 ON CONFLICT (sha256) DO NOTHING",
                &[&sha256, &bytes],
            )
            .map_err(io)?;
        Ok(())
    }

    fn get(&self, sha256: &str) -> std::io::Result<Option<Vec<u8>>> {
        check_key(sha256)?;
        let row = self
            .pg
            .query_opt(
                "SELECT bytes FROM attachment_blobs WHERE sha256 = $1",
                &[&sha256],
            )
            .map_err(io)?;
        row.map(|r| r.try_get::<_, Vec<u8>>(0))
            .transpose()
            .map_err(|e| io(wangge_pg::PgError::Db(e)))
    }

    fn delete(&self, sha256: &str) -> std::io::Result<()> {
        check_key(sha256)?;
        self.pg
            .execute("DELETE FROM attachment_blobs WHERE sha256 = $1", &[&sha256])
            .map_err(io)?;
        Ok(())
    }
}
