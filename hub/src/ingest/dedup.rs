//! Which batches (edge, epoch, seq) were already stored, persisted across restarts.
//!
//! A row is written after every sink stored the batch and before the ack. If the hub dies in
//! between, the edge resends and the batch is stored again, which changes nothing because every
//! sink is idempotent on (sensor, quantity, ts); it is then acked as `stored` instead of
//! `duplicate`. So this table decides the ack outcome and saves the sinks' work; it does not
//! carry the exactly-once guarantee alone, which is why it runs with `synchronous = NORMAL`.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

pub struct DedupStore {
    conn: Connection,
    keep_days: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("ingest dedup store: {0}")]
pub struct DedupError(pub String);

fn err(e: rusqlite::Error) -> DedupError {
    DedupError(e.to_string())
}

impl DedupStore {
    /// Opens `<data_dir>/ingest.sqlite`, forgetting batches older than `keep_days`.
    pub fn open(data_dir: &Path, keep_days: u32, now_ns: i64) -> Result<Self, DedupError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| DedupError(format!("cannot create {}: {e}", data_dir.display())))?;
        let conn = Connection::open(data_dir.join("ingest.sqlite")).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS stored_batches (
                 edge TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
                 stored_at INTEGER NOT NULL,
                 PRIMARY KEY (edge, epoch, seq)) WITHOUT ROWID;",
        )
        .map_err(err)?;
        let store = DedupStore { conn, keep_days };
        store.prune(now_ns)?;
        Ok(store)
    }

    /// Forgets batches stored more than `keep_days` ago (an edge never resends that late:
    /// its own buffer would have evicted them and reported a gap).
    pub fn prune(&self, now_ns: i64) -> Result<usize, DedupError> {
        let cutoff = now_ns - i64::from(self.keep_days) * DAY_NS;
        self.conn
            .execute(
                "DELETE FROM stored_batches WHERE stored_at < ?1",
                params![cutoff],
            )
            .map_err(err)
    }

    pub fn contains(&self, edge: &str, epoch: u64, seq: u64) -> Result<bool, DedupError> {
        self.conn
            .prepare_cached(
                "SELECT 1 FROM stored_batches WHERE edge = ?1 AND epoch = ?2 AND seq = ?3",
            )
            .map_err(err)?
            .query_row(params![edge, epoch as i64, seq as i64], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
            .map_err(err)
    }

    /// Records batches as stored, in one transaction.
    pub fn insert_all<'a>(
        &mut self,
        batches: impl Iterator<Item = (&'a str, u64, u64)>,
        now_ns: i64,
    ) -> Result<(), DedupError> {
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO stored_batches (edge, epoch, seq, stored_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(err)?;
            for (edge, epoch, seq) in batches {
                stmt.execute(params![edge, epoch as i64, seq as i64, now_ns])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
}
