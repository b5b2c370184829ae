//! Configuration from the hub (tables `edge_configs`, `edge_config_reports`, migration 0008).

use super::*;
use crate::registry::edge_config::{
    check_base, report_columns, sql, stored_u64, NewConfig, StoredConfig,
};
use protocol::edge_config::{document_hash, ConfigReport};

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
            check_base(c.base_version, current)?;
            let stored = StoredConfig {
                edge_id: c.edge_id.to_string(),
                version: current + 1,
                hash: document_hash(c.document),
                document: c.document.to_string(),
                created_ns: c.created_ns,
                created_by: c.created_by.to_string(),
            };
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
