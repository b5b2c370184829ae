//! Schema migrations, kept as SQL files in `hub/migrations/` and compiled in.
//!
//! Applied in order inside one transaction each; the applied version is tracked in
//! `schema_migrations` so a registry opened by an older hub is brought up to date on start.

use rusqlite::{params, Connection};

/// (version, file name, SQL). Append only: an applied migration is never edited.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_registry.sql",
        include_str!("../../migrations/0001_registry.sql"),
    ),
    (
        2,
        "0002_events.sql",
        include_str!("../../migrations/0002_events.sql"),
    ),
    (
        3,
        "0003_gaps.sql",
        include_str!("../../migrations/0003_gaps.sql"),
    ),
    (
        4,
        "0004_mqtt_users.sql",
        include_str!("../../migrations/0004_mqtt_users.sql"),
    ),
    (
        5,
        "0005_ingest_trust.sql",
        include_str!("../../migrations/0005_ingest_trust.sql"),
    ),
    (
        6,
        "0006_drop_unused_events.sql",
        include_str!("../../migrations/0006_drop_unused_events.sql"),
    ),
    (
        7,
        "0007_sensor_registered_at.sql",
        include_str!("../../migrations/0007_sensor_registered_at.sql"),
    ),
    (
        8,
        "0008_edge_config.sql",
        include_str!("../../migrations/0008_edge_config.sql"),
    ),
];

/// Applies every migration newer than the database's version; returns the resulting version.
pub fn apply(conn: &mut Connection) -> rusqlite::Result<i64> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             applied_at_ns INTEGER NOT NULL
         );",
    )?;
    let mut current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for (version, name, sql) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations(version, name, applied_at_ns) VALUES (?1, ?2, ?3)",
            params![version, name, super::now_ns()],
        )?;
        tx.commit()?;
        current = *version;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unused_events_tables_are_dropped() {
        let mut conn = Connection::open_in_memory().unwrap();
        let latest = MIGRATIONS.last().unwrap().0;
        assert_eq!(apply(&mut conn).unwrap(), latest);
        let left: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE name IN ('events', 'event_transitions', \
                 'sharing_rules', 'audit_log', 'events_one_active', 'events_status', \
                 'event_transitions_event')",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(left.is_empty(), "{left:?}");
        // Applying again is a no-op.
        assert_eq!(apply(&mut conn).unwrap(), latest);
    }

    #[test]
    fn a_new_sensor_records_when_it_was_registered_and_keeps_it_on_update() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn).unwrap();
        let before = crate::registry::now_ns() - 1_000_000_000;
        conn.execute("INSERT INTO sensors (id) VALUES ('S-1')", [])
            .unwrap();
        let at = |c: &Connection| -> i64 {
            c.query_row(
                "SELECT registered_at_ns FROM sensors WHERE id = 'S-1'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        let first = at(&conn);
        assert!(first >= before, "{first} < {before}");
        conn.execute("UPDATE sensors SET interval_s = 30 WHERE id = 'S-1'", [])
            .unwrap();
        assert_eq!(at(&conn), first);
    }
}
