//! Announced edge outages: planned windows in which an edge is expected to be silent (a
//! technician replaces the box, roadworks cut its line). The evaluation report takes each
//! window off the data completeness of the sensors reporting through the edge, like
//! maintenance. A deletion keeps the row (who, when), so nothing announced is lost from the
//! record; the HTTP side writes the audit rows.

use super::{Result, SqliteStore, StoreError};
use crate::columns::Columns;
use rusqlite::{params, TransactionBehavior};

/// An outage to record (checked by the caller: `until_ns > from_ns`, bounded length).
#[derive(Debug, Clone, Copy)]
pub struct NewOutage<'a> {
    pub edge_id: &'a str,
    pub from_ns: i64,
    pub until_ns: i64,
    /// Why the edge will be silent, as the technician put it (bounded by the caller).
    pub reason: &'a str,
    /// The actor's label (`sw/wang`).
    pub announced_by: &'a str,
    pub at_ns: i64,
    /// Most live outages one edge may hold; past it the store answers `Limit`.
    pub per_edge_max: u32,
}

/// An announced outage as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeOutage {
    pub id: i64,
    pub edge_id: String,
    pub from_ns: i64,
    pub until_ns: i64,
    pub reason: String,
    pub announced_by: String,
    pub announced_at_ns: i64,
    pub deleted_by: Option<String>,
    pub deleted_at_ns: Option<i64>,
}

/// Announced edge outages, next to [`super::EventLog`] (a PostgreSQL store implements both).
pub trait Outages {
    /// Records an outage; `Err(Limit)` when the edge already holds `per_edge_max` live ones.
    fn add_outage(&self, o: &NewOutage<'_>) -> Result<EdgeOutage>;
    /// The edge's live outages, earliest first.
    fn outages(&self, edge_id: &str) -> Result<Vec<EdgeOutage>>;
    /// Marks outage `id` of `edge_id` deleted by `by`; None if the edge has no live one of
    /// that id.
    fn delete_outage(
        &self,
        edge_id: &str,
        id: i64,
        by: &str,
        at_ns: i64,
    ) -> Result<Option<EdgeOutage>>;
    /// Every live outage overlapping `[from_ns, to_ns)`, any edge (what the report subtracts).
    fn outages_between(&self, from_ns: i64, to_ns: i64) -> Result<Vec<EdgeOutage>>;
}

/// The columns every query reads, in [`EdgeOutage`]'s field order.
macro_rules! outage_cols {
    () => {
        "id, edge_id, from_ns, until_ns, reason, announced_by, announced_at_ns, deleted_by, \
         deleted_at_ns"
    };
}

/// The statements both back ends run (`$n` parameters, each first written in its number's order: SQLite numbers them by
/// their first appearance).
pub(super) mod sql {
    pub const LIVE_COUNT: &str =
        "SELECT COUNT(*) FROM edge_outages WHERE edge_id = $1 AND deleted_at_ns IS NULL";
    pub const INSERT: &str = concat!(
        "INSERT INTO edge_outages (edge_id, from_ns, until_ns, reason, announced_by, \
         announced_at_ns) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        outage_cols!()
    );
    pub const OF_EDGE: &str = concat!(
        "SELECT ",
        outage_cols!(),
        " FROM edge_outages WHERE edge_id = $1 AND deleted_at_ns IS NULL ORDER BY from_ns, id"
    );
    pub const DELETE: &str = concat!(
        "UPDATE edge_outages SET deleted_by = $1, deleted_at_ns = $2 \
         WHERE id = $3 AND edge_id = $4 AND deleted_at_ns IS NULL RETURNING ",
        outage_cols!()
    );
    pub const BETWEEN: &str = concat!(
        "SELECT ",
        outage_cols!(),
        " FROM edge_outages WHERE deleted_at_ns IS NULL AND until_ns > $1 AND from_ns < $2 \
         ORDER BY edge_id, from_ns"
    );
}

/// The refusal when an edge holds `max` live outages.
pub(super) fn too_many(edge_id: &str, max: u32) -> StoreError {
    StoreError::Limit(format!(
        "edge {edge_id} already has {max} announced outages, the most kept; delete past ones first"
    ))
}

/// An outage from a row of [`sql`]'s statements (their columns in [`EdgeOutage`]'s field
/// order), on either back end.
pub(super) fn outage<R: Columns>(r: &R) -> std::result::Result<EdgeOutage, R::Error> {
    Ok(from_columns!(
        r,
        EdgeOutage {
            id,
            edge_id,
            from_ns,
            until_ns,
            reason,
            announced_by,
            announced_at_ns,
            deleted_by,
            deleted_at_ns
        }
    ))
}

fn query(
    conn: &rusqlite::Connection,
    sql: &str,
    p: &[&dyn rusqlite::ToSql],
) -> Result<Vec<EdgeOutage>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(p, |r| outage(r))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl Outages for SqliteStore {
    fn add_outage(&self, o: &NewOutage<'_>) -> Result<EdgeOutage> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let live: i64 = tx.query_row(sql::LIVE_COUNT, [o.edge_id], |r| r.get(0))?;
        if live >= i64::from(o.per_edge_max) {
            return Err(too_many(o.edge_id, o.per_edge_max));
        }
        let p = params![
            o.edge_id,
            o.from_ns,
            o.until_ns,
            o.reason,
            o.announced_by,
            o.at_ns
        ];
        let row = query(&tx, sql::INSERT, p)?.pop();
        tx.commit()?;
        row.ok_or_else(|| StoreError::Corrupt("an edge outage was not recorded".into()))
    }

    fn outages(&self, edge_id: &str) -> Result<Vec<EdgeOutage>> {
        query(&self.conn(), sql::OF_EDGE, &[&edge_id])
    }

    fn delete_outage(
        &self,
        edge_id: &str,
        id: i64,
        by: &str,
        at_ns: i64,
    ) -> Result<Option<EdgeOutage>> {
        Ok(query(&self.conn(), sql::DELETE, params![by, at_ns, id, edge_id])?.pop())
    }

    fn outages_between(&self, from_ns: i64, to_ns: i64) -> Result<Vec<EdgeOutage>> {
        query(&self.conn(), sql::BETWEEN, &[&from_ns, &to_ns])
    }
}
