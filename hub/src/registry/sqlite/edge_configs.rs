//! Configuration from the hub (tables `edge_configs`, `edge_config_reports`, migration 0008).

use super::*;
use crate::registry::edge_config::{report_columns, sql, stored_u64, NewConfig, StoredConfig};
use protocol::edge_config::ConfigReport;

impl SqliteRegistry {
    pub(super) fn put_edge_config(
        &self,
        c: &NewConfig<'_>,
    ) -> Result<(StoredConfig, bool), RegistryError> {
        self.write(|tx| {
            if !exists(tx, "edges", "id", c.edge_id).map_err(db)? {
                return Err(RegistryError::NotFound(format!("edge {}", c.edge_id)));
            }
            let current: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM edge_configs WHERE edge_id = ?1",
                    [c.edge_id],
                    |r| r.get(0),
                )
                .map_err(db)?;
            let current = current.max(0) as u64;
            let stored = StoredConfig::next(c, current)?;
            tx.execute(
                sql::INSERT,
                params![
                    stored.edge_id,
                    stored_u64("version", stored.version)?,
                    stored.hash,
                    stored.document,
                    stored.created_ns,
                    stored.created_by
                ],
            )
            .map_err(db)?;
            Ok((stored, current == 0))
        })
    }

    pub(super) fn record_config_report(
        &self,
        r: &ConfigReport,
        received_ns: i64,
    ) -> Result<bool, RegistryError> {
        let (applied_version, version) = report_columns(r)?;
        let n = self.execute(
            sql::UPSERT_REPORT,
            params![
                r.edge_id.as_str(),
                applied_version,
                r.applied_hash,
                version,
                r.outcome.name(),
                r.error,
                r.ts_ns,
                received_ns
            ],
        )?;
        Ok(n > 0)
    }
}
