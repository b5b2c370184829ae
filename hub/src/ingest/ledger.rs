//! The batch ledger: which batches (edge, epoch, seq) were stored and acked, the one record that
//! decides whether a batch is acked `stored` or `duplicate`, and (in a cluster) whether this hub
//! may ack it at all.
//!
//! Single node: [`super::dedup::DedupStore`] (SQLite, `<data_dir>/ingest.sqlite`), which accepts
//! every commit. Cluster: `cluster::PgLedger`, which commits a batch only while this hub holds
//! its edge's lease at the fence the batch was received under, in the same transaction; a
//! batch another hub committed first comes back `Duplicate`, one whose lease moved on comes
//! back `NotOwner` and is not acked (its new owner stores and acks the edge's resend).

use super::dedup::{DedupError, DedupStore};

/// A batch's identity: (edge, epoch, seq).
pub type BatchKey<'a> = (&'a str, u64, u64);

/// What recording a stored batch decided about its ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Recorded by this call: ack `stored`.
    Stored,
    /// Recorded earlier (another hub, or an earlier copy): ack `duplicate`.
    Duplicate,
    /// This hub no longer owns the batch's edge: do not ack.
    NotOwner,
    /// The ledger could not record it (its database is down): do not ack.
    Unrecorded,
}

/// The record of stored batches (see the module doc).
pub trait BatchLedger: Send {
    /// True if the batch was recorded as stored.
    fn contains(&self, edge: &str, epoch: u64, seq: u64) -> Result<bool, DedupError>;
    /// Records stored batches in one transaction; one [`Commit`] per batch, in order. `Err`
    /// means nothing is known to be recorded: the caller does not ack.
    fn commit(&mut self, batches: &[BatchKey<'_>], now_ns: i64) -> Result<Vec<Commit>, DedupError>;
    /// Forgets batches recorded longer ago than the ledger keeps them; returns how many.
    fn prune(&self, now_ns: i64) -> Result<usize, DedupError>;
    /// True if this hub may store and evaluate `edge`'s batches now (always, on a single node).
    fn may_handle(&self, _edge: &str) -> bool {
        true
    }
    /// Whether a failed commit still lets the batches be acked `stored`. On a single node the
    /// ledger only saves work (the sinks and rules are idempotent), so yes; in a cluster an
    /// unrecorded batch must not be acked (PostgreSQL is down: the edges keep their backlog).
    fn ack_when_unrecorded(&self) -> bool {
        true
    }
}

impl BatchLedger for DedupStore {
    fn contains(&self, edge: &str, epoch: u64, seq: u64) -> Result<bool, DedupError> {
        DedupStore::contains(self, edge, epoch, seq)
    }

    fn commit(&mut self, batches: &[BatchKey<'_>], now_ns: i64) -> Result<Vec<Commit>, DedupError> {
        self.insert_all(batches.iter().copied(), now_ns)?;
        Ok(vec![Commit::Stored; batches.len()])
    }

    fn prune(&self, now_ns: i64) -> Result<usize, DedupError> {
        DedupStore::prune(self, now_ns)
    }
}
