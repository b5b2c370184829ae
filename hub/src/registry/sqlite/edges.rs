//! Edges (tables `edges`, `edge_gaps`, ingest audit): credentials, status, gaps.

use super::*;
use crate::registry::issued::EdgeSecret;
use crate::registry::rows::StoredMark;

impl SqliteRegistry {
    pub(super) fn record_edge_status(&self, s: &EdgeStatus) -> Result<Freshness, RegistryError> {
        self.write(|tx| {
            let stored = tx
                .query_row(
                    "SELECT epoch, status_counter, status_will_pending FROM edges WHERE id = ?1",
                    [s.edge_id.as_str()],
                    |r| StoredMark::from_row(r),
                )
                .optional()
                .map_err(db)?;
            let Some(stored) = stored else {
                return Err(RegistryError::NotFound(format!("edge {}", s.edge_id)));
            };
            let (fresh, next) = stored.judge(s);
            let Some(mark) = next else {
                return Ok(fresh);
            };
            tx.execute(
                "UPDATE edges SET online = ?2, version = ?3, epoch = ?4, backlog_readings = ?5,
                        backlog_bytes = ?6, oldest_unacked_ns = ?7, status_at_ns = ?8,
                        last_seen_ns = MAX(COALESCE(last_seen_ns, 0), ?9),
                        status_counter = ?10, status_will_pending = ?11
                 WHERE id = ?1",
                params![
                    s.edge_id.as_str(),
                    s.online,
                    s.version,
                    mark.epoch as i64,
                    s.backlog_readings.min(i64::MAX as u64) as i64,
                    s.backlog_bytes.min(i64::MAX as u64) as i64,
                    s.oldest_unacked_ns,
                    s.ts_ns,
                    now_ns(),
                    mark.counter as i64,
                    mark.will_pending.map(|w| w as i64),
                ],
            )
            .map_err(db)?;
            Ok(fresh)
        })
    }

    pub(super) fn audit_ingest(&self, r: &IngestRefusal<'_>) -> Result<bool, RegistryError> {
        let (kind, edge_id, sensor_id, detail, at_ns) =
            (r.kind, r.edge_id, r.sensor_id, r.detail, r.at_ns);
        self.write(|tx| {
            let n = tx
                .execute(
                    sql::AUDIT_INGEST,
                    params![kind, edge_id, sensor_id, detail, at_ns],
                )
                .map_err(db)?;
            if n == 0 {
                tx.execute(
                    "UPDATE ingest_audit SET last_seen_ns = MAX(last_seen_ns, ?4),
                            seen_count = seen_count + 1
                     WHERE kind = ?1 AND edge_id = ?2 AND sensor_id = ?3",
                    params![kind, edge_id, sensor_id, at_ns],
                )
                .map_err(db)?;
            }
            Ok(n > 0)
        })
    }

    pub(super) fn record_edge_seen(&self, edge_id: &str, at_ns: i64) -> Result<(), RegistryError> {
        self.execute(
            "UPDATE edges SET last_seen_ns = MAX(COALESCE(last_seen_ns, 0), ?2), online = 1
             WHERE id = ?1",
            params![edge_id, at_ns],
        )?;
        Ok(())
    }

    pub(super) fn record_gaps(&self, r: &GapReport<'_>, at_ns: i64) -> Result<(), RegistryError> {
        self.write(|tx| {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO edge_gaps(edge_id, epoch, seq, sensor_id, from_ns, to_ns,
                         count, reason, received_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(db)?;
            for g in r.gaps {
                let reason = match g.reason {
                    protocol::uplink::GapReason::BufferFull => "buffer_full",
                    protocol::uplink::GapReason::Recovery => "recovery",
                };
                st.execute(params![
                    r.edge_id,
                    r.epoch as i64,
                    r.seq as i64,
                    g.sensor.as_str(),
                    g.from_ns,
                    g.to_ns,
                    i64::try_from(g.count).unwrap_or(i64::MAX),
                    reason,
                    at_ns
                ])
                .map_err(db)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    pub(super) fn store_edge_secret(&self, e: &EdgeSecret<'_>) -> Result<(), RegistryError> {
        // A re-issued secret starts the edge's status freshness over: statuses sealed with the
        // old key no longer verify, and a re-provisioned box may restart its epochs at 1.
        self.write(|tx| {
            tx.execute(
                "INSERT INTO edges(id, name, site, password_hash, mac_key, revoked, broker_hash)
                 VALUES (?1, COALESCE(?2, ''), COALESCE(?3, ''), ?4, ?5, 0, ?6)
                 ON CONFLICT(id) DO UPDATE SET password_hash = excluded.password_hash,
                     mac_key = excluded.mac_key, revoked = 0, broker_hash = excluded.broker_hash,
                     status_counter = NULL, status_will_pending = NULL,
                     name = COALESCE(?2, name), site = COALESCE(?3, site)",
                params![
                    e.edge_id,
                    e.name,
                    e.site,
                    e.secret.hash,
                    e.mac_key.as_slice(),
                    e.broker_hash
                ],
            )
            .map_err(db)
        })?;
        Ok(())
    }
}
