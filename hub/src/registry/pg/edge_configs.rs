//! Configuration from the hub (tables `edge_configs`, `edge_config_reports`, migration 0003).
//! A new version is numbered under the edge's row locked `FOR UPDATE`, so two hubs storing a
//! version for one edge at once number them one after the other (or one gets the `Conflict`
//! its `base_version` asks for).

use super::*;
use crate::registry::edge_config::{report_columns, sql, stored_u64, NewConfig, StoredConfig};
use protocol::edge_config::ConfigReport;

impl PgRegistry {
    pub(super) fn put_edge_config(
        &self,
        c: &NewConfig<'_>,
    ) -> Result<(StoredConfig, bool), RegistryError> {
        self.write(async |tx| {
            let locked = tx
                .query_opt(
                    "SELECT 1 FROM edges WHERE id = $1 FOR UPDATE",
                    &[&c.edge_id],
                )
                .await?;
            if locked.is_none() {
                return Err(RegistryError::NotFound(format!("edge {}", c.edge_id)).into());
            }
            let current: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0)::BIGINT FROM edge_configs WHERE edge_id = $1",
                    &[&c.edge_id],
                )
                .await?
                .try_get(0)?;
            let current = current.max(0) as u64;
            let stored = StoredConfig::next(c, current)?;
            let version = stored_u64("version", stored.version)?;
            tx.execute(
                sql::INSERT,
                &[
                    &stored.edge_id,
                    &version,
                    &stored.hash,
                    &stored.document,
                    &stored.created_ns,
                    &stored.created_by,
                ],
            )
            .await?;
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
            &[
                &r.edge_id.as_str(),
                &applied_version,
                &r.applied_hash,
                &version,
                &r.outcome.name(),
                &r.error,
                &r.ts_ns,
                &received_ns,
            ],
        )?;
        Ok(n > 0)
    }
}
