//! Which SQLite table goes to which PostgreSQL table, in an order that satisfies the foreign
//! keys (parents first). Columns are not listed here: they are read from both schemas and must
//! match one to one, so a column a future migration adds on one side only is an error, never
//! silently dropped. The few differences that are by design are spelled out below.

/// One of the hub's SQLite files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFile {
    Registry,
    Events,
    Dedup,
}

/// One table to copy.
#[derive(Debug, Clone, Copy)]
pub struct TablePlan {
    pub file: SourceFile,
    pub sqlite: &'static str,
    pub pg: &'static str,
    /// SQLite column → PostgreSQL column, where the names differ.
    pub renamed: &'static [(&'static str, &'static str)],
    /// PostgreSQL columns with no SQLite counterpart, by design: cluster-only state that
    /// starts empty (NULL or its default).
    pub pg_only: &'static [&'static str],
    /// PostgreSQL columns with no SQLite counterpart, filled with a constant.
    pub constant: &'static [(&'static str, &'static str)],
}

const fn same(file: SourceFile, table: &'static str) -> TablePlan {
    TablePlan {
        file,
        sqlite: table,
        pg: table,
        renamed: &[],
        pg_only: &[],
        constant: &[],
    }
}

/// The value of `stored_batches.hub_id` for the batches the single node stored.
pub const SINGLE_NODE_HUB_ID: &str = "single-node";

/// Every table the SQLite schemas have, parents before children.
pub const TABLES: &[TablePlan] = &[
    same(SourceFile::Registry, "regions"),
    same(SourceFile::Registry, "departments"),
    same(SourceFile::Registry, "component_classes"),
    same(SourceFile::Registry, "grid_cells"),
    same(SourceFile::Registry, "components"),
    same(SourceFile::Registry, "edges"),
    same(SourceFile::Registry, "sensors"),
    same(SourceFile::Registry, "unassigned_sensors"),
    same(SourceFile::Registry, "api_tokens"),
    same(SourceFile::Registry, "edge_gaps"),
    same(SourceFile::Registry, "mqtt_users"),
    same(SourceFile::Registry, "ingest_audit"),
    // Configuration from the hub: every version of each edge's, and its newest report.
    same(SourceFile::Registry, "edge_configs"),
    same(SourceFile::Registry, "edge_config_reports"),
    same(SourceFile::Events, "events"),
    same(SourceFile::Events, "event_history"),
    // Photo metadata (the bytes are files, copied by `blobs`).
    same(SourceFile::Events, "attachments"),
    same(SourceFile::Events, "changes"),
    same(SourceFile::Events, "audit"),
    same(SourceFile::Events, "subscriptions"),
    TablePlan {
        // A delivery's claim is a cluster member's lease on it; none is held yet.
        pg_only: &["claimed_until_ns"],
        ..same(SourceFile::Events, "deliveries")
    },
    same(SourceFile::Events, "delivery_attempts"),
    same(SourceFile::Events, "cursors"),
    same(SourceFile::Events, "pending_conditions"),
    // Announced edge outages (the evaluation report's exclusions).
    same(SourceFile::Events, "edge_outages"),
    TablePlan {
        file: SourceFile::Dedup,
        sqlite: "stored_batches",
        pg: "stored_batches",
        renamed: &[("stored_at", "stored_at_ns")],
        pg_only: &[],
        constant: &[("hub_id", SINGLE_NODE_HUB_ID)],
    },
];

/// SQLite tables that are bookkeeping, not hub state: each back end's migrations keep their
/// own versions on PostgreSQL (`wangge_migrations`).
pub const NOT_COPIED: &[(SourceFile, &str)] = &[(SourceFile::Registry, "schema_migrations")];

/// PostgreSQL sequences that are not identity columns: the outbox cursor (drawn under a lock,
/// see hub/events/migrations/pg/0001_events.sql).
pub const SEQUENCES: &[(&str, &str, &str)] = &[("changes", "cursor", "changes_cursor")];

impl TablePlan {
    /// The PostgreSQL name of a SQLite column.
    pub fn pg_column<'a>(&self, sqlite_column: &'a str) -> &'a str
    where
        'static: 'a,
    {
        self.renamed
            .iter()
            .find(|(s, _)| *s == sqlite_column)
            .map(|(_, p)| *p)
            .unwrap_or(sqlite_column)
    }
}
