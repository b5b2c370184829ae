//! Configuration from the hub (tables `edge_configs`, `edge_config_reports`, migration 0008).

use super::*;
use crate::registry::edge_config::{
    check_base, report_columns, sql, stored_u64, ConfigDelivery, EdgeConfigState, NewConfig,
    StoredConfig, StoredReport,
};
use protocol::edge_config::{document_hash, ConfigReport};

fn config_row(r: &Row<'_>) -> rusqlite::Result<StoredConfig> {
    Ok(StoredConfig {
        edge_id: r.get(0)?,
        version: r.get::<_, i64>(1)?.max(0) as u64,
        hash: r.get(2)?,
        document: r.get(3)?,
        created_ns: r.get(4)?,
        created_by: r.get(5)?,
    })
}

fn report_row(r: &Row<'_>) -> rusqlite::Result<StoredReport> {
    Ok(StoredReport {
        edge_id: r.get(0)?,
        applied_version: r.get::<_, i64>(1)?.max(0) as u64,
        applied_hash: r.get(2)?,
        version: r.get::<_, i64>(3)?.max(0) as u64,
        outcome: r.get(4)?,
        error: r.get(5)?,
        reported_ns: r.get(6)?,
        received_ns: r.get(7)?,
    })
}

/// The newest version of every edge that has one, with its newest report's version.
pub(super) const DELIVERIES: Listing<ConfigDelivery> = Listing {
    sql: sql::DELIVERIES,
    row: |r| {
        Ok(ConfigDelivery {
            config: config_row(r)?,
            reported_version: r.get::<_, Option<i64>>(6)?.map(|v| v.max(0) as u64),
        })
    },
    key: |d| d.config.edge_id.clone(),
};

impl SqliteRegistry {
    pub(super) fn edge_config(
        &self,
        edge_id: &str,
    ) -> Result<Option<EdgeConfigState>, RegistryError> {
        if self
            .one("SELECT 1 FROM edges WHERE id = ?1", edge_id, |_| Ok(()))?
            .is_none()
        {
            return Ok(None);
        }
        let desired = self.one(sql::DESIRED, edge_id, config_row)?;
        let applied = self.one(sql::REPORT, edge_id, report_row)?;
        Ok(Some(EdgeConfigState { desired, applied }))
    }

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

    pub(super) fn edge_sensor_maintainers(
        &self,
        edge_id: &str,
    ) -> Result<Vec<Option<String>>, RegistryError> {
        self.all(sql::MAINTAINERS, [edge_id], |r| r.get(0))
    }
}
