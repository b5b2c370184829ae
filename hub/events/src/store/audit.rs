//! The audit log: refused requests and administrative actions, with their actor.

use super::{Result, SqliteStore, PAGE_MAX};
use crate::columns::Columns;
use rusqlite::params;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    pub at_ns: i64,
    pub actor: String,
    pub department: Option<String>,
    pub action: String,
    pub event_id: Option<i64>,
    pub reason: String,
}

/// The audit log.
pub trait AuditLog {
    fn audit(&self, entry: &AuditEntry) -> Result<()>;
    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>>;
}

impl AuditLog for SqliteStore {
    fn audit(&self, a: &AuditEntry) -> Result<()> {
        self.conn().execute(
            "INSERT INTO audit (at_ns, actor, department, action, event_id, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![a.at_ns, a.actor, a.department, a.action, a.event_id, a.reason],
        )?;
        Ok(())
    }

    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT at_ns, actor, department, action, event_id, reason FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit.clamp(1, PAGE_MAX) as i64], |r| audit_from_row(r))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// An audit row (at_ns, actor, department, action, event_id, reason), either back end.
pub(super) fn audit_from_row<R: Columns>(r: &R) -> std::result::Result<AuditEntry, R::Error> {
    Ok(from_columns!(
        r,
        AuditEntry {
            at_ns,
            actor,
            department,
            action,
            event_id,
            reason
        }
    ))
}
