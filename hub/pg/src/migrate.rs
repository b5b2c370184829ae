//! Versioned migrations for PostgreSQL: each back end (registry, events, ingest, cluster) names
//! its set; versions apply in order, each in its own transaction, once. An advisory lock per set
//! serializes hubs that start together, so a migration never runs twice nor half.

use crate::{Pg, PgError};

/// One schema step: its version (ascending, never reused) and SQL (several statements allowed).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

/// Applies the migrations of `set` that this database has not seen yet; returns how many ran.
pub fn migrate(pg: &Pg, set: &str, migrations: &[Migration]) -> Result<usize, PgError> {
    pg.run(async |c| {
        // Under one lock for every set: `CREATE TABLE IF NOT EXISTS` is not safe against a
        // concurrent create (the loser fails on the table's type, SQLSTATE 42710).
        let tx = c.transaction().await?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(hashtext('wangge_migrations'));
             CREATE TABLE IF NOT EXISTS wangge_migrations (
                 set_name TEXT NOT NULL, version BIGINT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                 PRIMARY KEY (set_name, version))",
        )
        .await?;
        tx.commit().await?;
        let mut applied = 0;
        for m in migrations {
            let tx = c.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&set])
                .await?;
            let done = tx
                .query_opt(
                    "SELECT 1 FROM wangge_migrations WHERE set_name = $1 AND version = $2",
                    &[&set, &m.version],
                )
                .await?
                .is_some();
            if !done {
                tx.batch_execute(m.sql).await?;
                tx.execute(
                    "INSERT INTO wangge_migrations (set_name, version) VALUES ($1, $2)",
                    &[&set, &m.version],
                )
                .await?;
                applied += 1;
            }
            tx.commit().await?;
        }
        Ok(applied)
    })
}
