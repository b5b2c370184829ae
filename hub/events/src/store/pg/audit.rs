//! The audit log on PostgreSQL.

use super::{page, PgStore};
use crate::store::{AuditEntry, AuditLog, Result};

impl AuditLog for PgStore {
    fn audit(&self, a: &AuditEntry) -> Result<()> {
        self.pg.execute(
            "INSERT INTO audit (at_ns, actor, department, action, event_id, reason) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &a.at_ns,
                &a.actor,
                &a.department,
                &a.action,
                &a.event_id,
                &a.reason,
            ],
        )?;
        Ok(())
    }

    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let rows = self.pg.query(
            "SELECT at_ns, actor, department, action, event_id, reason FROM audit \
             ORDER BY id DESC LIMIT $1",
            &[&page(limit)],
        )?;
        rows.iter()
            .map(|r| Ok(crate::store::audit::audit_from_row(r)?))
            .collect()
    }
}
