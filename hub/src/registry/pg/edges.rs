//! Edges (tables `edges`, `edge_gaps`, `ingest_audit`): credentials, status, gaps.

use super::*;
use crate::registry::issued::EdgeSecret;
use crate::registry::rows::StoredMark;

impl PgRegistry {
    /// Judges `s` against the mark read `FOR UPDATE`: a second hub handed the same status waits
    /// for this transaction and then reads the mark it wrote, so it finds the status `Same`.
    pub(super) fn record_edge_status(&self, s: &EdgeStatus) -> Result<Freshness, RegistryError> {
        self.write(async |tx| {
            let row = tx
                .query_opt(
                    "SELECT epoch, status_counter, status_will_pending FROM edges WHERE id = $1
                     FOR UPDATE",
                    &[&s.edge_id.as_str()],
                )
                .await?;
            let Some(stored) = row.as_ref().map(StoredMark::from_row).transpose()? else {
                return Err(RegistryError::NotFound(format!("edge {}", s.edge_id)).into());
            };
            let (fresh, next) = stored.judge(s);
            let Some(mark) = next else {
                return Ok(fresh);
            };
            tx.execute(
                "UPDATE edges SET online = $2, version = $3, epoch = $4, backlog_readings = $5,
                        backlog_bytes = $6, oldest_unacked_ns = $7, status_at_ns = $8,
                        last_seen_ns = GREATEST(COALESCE(last_seen_ns, 0), $9),
                        status_counter = $10, status_will_pending = $11
                 WHERE id = $1",
                &[
                    &s.edge_id.as_str(),
                    &s.online,
                    &s.version,
                    &(mark.epoch as i64),
                    &(s.backlog_readings.min(i64::MAX as u64) as i64),
                    &(s.backlog_bytes.min(i64::MAX as u64) as i64),
                    &s.oldest_unacked_ns,
                    &s.ts_ns,
                    &now_ns(),
                    &(mark.counter as i64),
                    &mark.will_pending.map(|w| w as i64),
                ],
            )
            .await?;
            Ok(fresh)
        })
    }

    pub(super) fn audit_ingest(&self, r: &IngestRefusal<'_>) -> Result<bool, RegistryError> {
        let (kind, edge_id, sensor_id, detail, at_ns) =
            (r.kind, r.edge_id, r.sensor_id, r.detail, r.at_ns);
        self.write(async |tx| {
            let n = tx
                .execute(
                    &sql::pg(sql::AUDIT_INGEST),
                    &[&kind, &edge_id, &sensor_id, &detail, &at_ns],
                )
                .await?;
            if n == 0 {
                tx.execute(
                    "UPDATE ingest_audit SET last_seen_ns = GREATEST(last_seen_ns, $4),
                            seen_count = seen_count + 1
                     WHERE kind = $1 AND edge_id = $2 AND sensor_id = $3",
                    &[&kind, &edge_id, &sensor_id, &at_ns],
                )
                .await?;
            }
            Ok(n > 0)
        })
    }

    pub(super) fn record_edge_seen(&self, edge_id: &str, at_ns: i64) -> Result<(), RegistryError> {
        self.execute(
            "UPDATE edges SET last_seen_ns = GREATEST(COALESCE(last_seen_ns, 0), $2), online = true
             WHERE id = $1",
            &[&edge_id, &at_ns],
        )?;
        Ok(())
    }

    pub(super) fn record_gaps(&self, r: &GapReport<'_>, at_ns: i64) -> Result<(), RegistryError> {
        self.write(async |tx| {
            let insert = tx
                .prepare(
                    "INSERT INTO edge_gaps(edge_id, epoch, seq, sensor_id, from_ns, to_ns,
                         count, reason, received_ns)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT DO NOTHING",
                )
                .await?;
            for g in r.gaps {
                let reason = match g.reason {
                    protocol::uplink::GapReason::BufferFull => "buffer_full",
                    protocol::uplink::GapReason::Recovery => "recovery",
                };
                tx.execute(
                    &insert,
                    &[
                        &r.edge_id,
                        &(r.epoch as i64),
                        &(r.seq as i64),
                        &g.sensor.as_str(),
                        &g.from_ns,
                        &g.to_ns,
                        &i64::try_from(g.count).unwrap_or(i64::MAX),
                        &reason,
                        &at_ns,
                    ],
                )
                .await?;
            }
            Ok(())
        })
    }

    pub(super) fn store_edge_secret(&self, e: &EdgeSecret<'_>) -> Result<(), RegistryError> {
        // A re-issued secret starts the edge's status freshness over (see the SQLite store).
        self.execute(
            "INSERT INTO edges(id, name, site, password_hash, mac_key, revoked, broker_hash)
             VALUES ($1, COALESCE($2, ''), COALESCE($3, ''), $4, $5, false, $6)
             ON CONFLICT(id) DO UPDATE SET password_hash = excluded.password_hash,
                 mac_key = excluded.mac_key, revoked = false, broker_hash = excluded.broker_hash,
                 status_counter = NULL, status_will_pending = NULL,
                 name = COALESCE($2, edges.name), site = COALESCE($3, edges.site)",
            &[
                &e.edge_id,
                &e.name,
                &e.site,
                &e.secret.hash,
                &e.mac_key.as_slice(),
                &e.broker_hash,
            ],
        )?;
        Ok(())
    }
}
