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
            .map(|r| {
                Ok(AuditEntry {
                    at_ns: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    department: r.try_get(2)?,
                    action: r.try_get(3)?,
                    event_id: r.try_get(4)?,
                    reason: r.try_get(5)?,
                })
            })
            .collect()
    }
}
