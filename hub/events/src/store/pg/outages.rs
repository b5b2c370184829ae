//! Announced edge outages on PostgreSQL: the SQLite store's `outages.rs`. Two hubs announcing
//! outages of one edge at once take turns on a transaction advisory lock keyed by the edge, so
//! neither passes the per-edge limit.

use super::{DbResult, PgStore};
use crate::store::outages::{outage, sql, too_many};
use crate::store::{EdgeOutage, NewOutage, Outages, Result};
use wangge_pg::Row;

fn rows(rows: &[Row]) -> Result<Vec<EdgeOutage>> {
    Ok(rows.iter().map(outage::<Row>).collect::<DbResult<_>>()?)
}

impl Outages for PgStore {
    fn add_outage(&self, o: &NewOutage<'_>) -> Result<EdgeOutage> {
        let o = *o;
        self.write(async |tx| {
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('edge_outages:' || $1))",
                &[&o.edge_id],
            )
            .await?;
            let live: i64 = tx
                .query_one(sql::LIVE_COUNT, &[&o.edge_id])
                .await?
                .try_get(0)?;
            if live >= i64::from(o.per_edge_max) {
                return Ok(Err(too_many(o.edge_id, o.per_edge_max)));
            }
            let p: [&(dyn wangge_pg::ToSql + Sync); 6] = [
                &o.edge_id,
                &o.from_ns,
                &o.until_ns,
                &o.reason,
                &o.announced_by,
                &o.at_ns,
            ];
            Ok(Ok(outage(&tx.query_one(sql::INSERT, &p).await?)?))
        })
    }

    fn outages(&self, edge_id: &str) -> Result<Vec<EdgeOutage>> {
        rows(&self.pg.query(sql::OF_EDGE, &[&edge_id])?)
    }

    fn delete_outage(
        &self,
        edge_id: &str,
        id: i64,
        by: &str,
        at_ns: i64,
    ) -> Result<Option<EdgeOutage>> {
        Ok(rows(&self.pg.query(sql::DELETE, &[&by, &at_ns, &id, &edge_id])?)?.pop())
    }

    fn outages_between(&self, from_ns: i64, to_ns: i64) -> Result<Vec<EdgeOutage>> {
        rows(&self.pg.query(sql::BETWEEN, &[&from_ns, &to_ns])?)
    }
}
