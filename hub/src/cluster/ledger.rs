//! The batch ledger of a cluster member: `stored_batches` in PostgreSQL, written only under the
//! edge's lease (see `ingest::ledger`).

use super::ownership::Ownership;
use crate::ingest::dedup::DedupError;
use crate::ingest::ledger::{BatchKey, BatchLedger, Commit};
use std::collections::HashMap;
use std::sync::Arc;
use wangge_pg::{Pg, PgError};

const DAY_NS: i64 = 86_400 * 1_000_000_000;

pub struct PgLedger {
    pub(super) pg: Pg,
    pub(super) hub_id: String,
    pub(super) ownership: Arc<Ownership>,
    pub(super) keep_days: u32,
}

fn err(e: PgError) -> DedupError {
    DedupError(e.to_string())
}

impl BatchLedger for PgLedger {
    fn contains(&self, edge: &str, epoch: u64, seq: u64) -> Result<bool, DedupError> {
        self.pg
            .query_opt(
                "SELECT 1 FROM stored_batches WHERE edge = $1 AND epoch = $2 AND seq = $3",
                &[&edge, &(epoch as i64), &(seq as i64)],
            )
            .map(|r| r.is_some())
            .map_err(err)
    }

    /// In one transaction: lock the leases of the batches' edges that this hub still holds at
    /// the fence it knows (`FOR SHARE`: a peer's takeover waits for this commit), then insert
    /// the batches of those edges; a batch whose row exists already is a duplicate.
    fn commit(&mut self, batches: &[BatchKey<'_>], now_ns: i64) -> Result<Vec<Commit>, DedupError> {
        let mut fences: HashMap<&str, i64> = HashMap::new();
        for (edge, _, _) in batches {
            if let Some(f) = self.ownership.fence(edge) {
                fences.insert(edge, f);
            }
        }
        let (edges, fence_list): (Vec<String>, Vec<i64>) =
            fences.iter().map(|(e, f)| (e.to_string(), *f)).unzip();
        let hub = &self.hub_id;
        self.pg
            .transaction(async |tx| {
                let held: Vec<String> = tx
                    .query(
                        "SELECT l.edge_id FROM edge_leases l
                         JOIN unnest($1::text[], $2::bigint[]) AS f(edge_id, fence)
                           ON f.edge_id = l.edge_id AND f.fence = l.fence
                         WHERE l.owner = $3 AND l.expires_at > now()
                         FOR SHARE OF l",
                        &[&edges, &fence_list, hub],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let insert = tx
                    .prepare(
                        "INSERT INTO stored_batches (edge, epoch, seq, stored_at_ns, hub_id)
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .await?;
                let mut out = Vec::with_capacity(batches.len());
                for (edge, epoch, seq) in batches {
                    if !held.iter().any(|h| h == edge) {
                        out.push(Commit::NotOwner);
                        continue;
                    }
                    let n = tx
                        .execute(
                            &insert,
                            &[edge, &(*epoch as i64), &(*seq as i64), &now_ns, hub],
                        )
                        .await?;
                    out.push(if n == 1 {
                        Commit::Stored
                    } else {
                        Commit::Duplicate
                    });
                }
                Ok(out)
            })
            .map_err(err)
    }

    fn prune(&self, now_ns: i64) -> Result<usize, DedupError> {
        let cutoff = now_ns - i64::from(self.keep_days) * DAY_NS;
        self.pg
            .execute(
                "DELETE FROM stored_batches WHERE stored_at_ns < $1",
                &[&cutoff],
            )
            .map(|n| n as usize)
            .map_err(err)
    }

    fn may_handle(&self, edge: &str) -> bool {
        self.ownership.fence(edge).is_some()
    }

    fn ack_when_unrecorded(&self) -> bool {
        false
    }
}
