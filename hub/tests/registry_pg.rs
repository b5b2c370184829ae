//! What only the PostgreSQL registry has to show: several hubs (each its own pool) on one
//! database, the same seed export as SQLite byte for byte, and a lost database reported as such.

use hub::registry::seed::{export_dir, import_dir};
use hub::registry::{
    ComponentInput, Freshness, PgRegistry, RegistryAdmin, RegistryError, RegistryStore,
    SqliteRegistry,
};
use protocol::uplink::EdgeStatus;
use std::sync::{Arc, Barrier};
use wangge_pg::Pg;
use wangge_testkit::paths::seed_dir;
use wangge_testkit::Postgres;

/// A registry on `url` as one hub opens it: a pool of its own.
fn hub_registry(url: &str) -> Arc<PgRegistry> {
    Arc::new(PgRegistry::open(Arc::new(Pg::connect(url, 2).unwrap())).unwrap())
}

/// Runs `each(hub, round)` on two hubs at once, `rounds` times, released together by a barrier;
/// returns both hubs' results of every round.
fn race<T: Send + 'static>(
    hubs: [Arc<PgRegistry>; 2],
    rounds: u64,
    each: fn(&PgRegistry, u64) -> T,
) -> Vec<[T; 2]> {
    let barrier = Arc::new(Barrier::new(2));
    let threads = hubs.map(|hub| {
        let barrier = barrier.clone();
        std::thread::spawn(move || {
            (1..=rounds)
                .map(|round| {
                    barrier.wait();
                    each(&hub, round)
                })
                .collect::<Vec<T>>()
        })
    });
    let [a, b] = threads.map(|t| t.join().unwrap());
    a.into_iter().zip(b).map(|(a, b)| [a, b]).collect()
}

#[test]
fn two_hubs_handed_the_same_status_accept_it_exactly_once() {
    let server = Postgres::start();
    let url = server.create_database("race");
    let first = hub_registry(&url);
    import_dir(first.as_ref(), &seed_dir()).unwrap();
    let second = hub_registry(&url);
    // Both hubs receive each status (as from a broker that delivers to both); every round's
    // status is newer than the last.
    let rounds = race([first.clone(), second], 60, |hub, round| {
        let status = EdgeStatus::online("edge-xq-01", "0.1.0", 7, round, 0, round as i64);
        hub.record_edge_status(&status).unwrap()
    });
    for (i, judged) in rounds.iter().enumerate() {
        let fresh = judged.iter().filter(|f| **f == Freshness::Fresh).count();
        assert_eq!(fresh, 1, "round {}: {judged:?}", i + 1);
        assert!(
            judged.contains(&Freshness::Same),
            "round {}: {judged:?}",
            i + 1
        );
    }
    // The stored mark is the last round's.
    let replay = EdgeStatus::online("edge-xq-01", "0.1.0", 7, 59, 0, 1);
    assert_eq!(first.record_edge_status(&replay).unwrap(), Freshness::Stale);
}

#[test]
fn two_hubs_creating_one_component_get_one_created_and_one_conflict() {
    let server = Postgres::start();
    let url = server.create_database("create");
    let first = hub_registry(&url);
    import_dir(first.as_ref(), &seed_dir()).unwrap();
    let rounds = race([first, hub_registry(&url)], 20, |hub, round| {
        hub.create_component(&ComponentInput {
            id: Some(format!("12011101119{round:05}")),
            ..Default::default()
        })
    });
    for (i, created) in rounds.iter().enumerate() {
        let ok = created.iter().filter(|r| r.is_ok()).count();
        let conflicts = created
            .iter()
            .filter(|r| matches!(r, Err(RegistryError::Conflict(_))))
            .count();
        assert_eq!((ok, conflicts), (1, 1), "round {}: {created:?}", i + 1);
    }
}

#[test]
fn the_seed_exports_the_same_bytes_from_postgres_as_from_sqlite() {
    let server = Postgres::start();
    let pg = hub_registry(&server.create_database("export"));
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteRegistry::open(&dir.path().join("registry.sqlite")).unwrap();
    let mut summaries = Vec::new();
    for (name, reg) in [
        ("pg", pg.as_ref() as &dyn RegistryAdmin),
        ("sqlite", &sqlite),
    ] {
        let imported = import_dir(reg, &seed_dir()).unwrap();
        let exported = export_dir(reg, &dir.path().join(name)).unwrap();
        assert_eq!(imported, exported, "{name}");
        summaries.push(exported);
    }
    assert_eq!(summaries[0], summaries[1]);
    for (file, rows) in &summaries[0].files {
        assert!(*rows > 0, "{file} exported no rows");
        let a = std::fs::read(dir.path().join("pg").join(file)).unwrap();
        let b = std::fs::read(dir.path().join("sqlite").join(file)).unwrap();
        assert!(a == b, "{file} differs between PostgreSQL and SQLite");
    }
}

#[test]
fn a_lost_database_is_a_db_error_that_names_it_without_the_password() {
    let server = Postgres::start();
    let reg = hub_registry(&server.create_database("lost"));
    assert_eq!(reg.stats().unwrap().components, 0);
    server.kill9();
    for err in [
        reg.stats().map(|_| ()).unwrap_err(),
        reg.sensor_assignment("MH-0001").map(|_| ()).unwrap_err(),
        reg.record_edge_seen("edge-xq-01", 1).unwrap_err(),
    ] {
        let RegistryError::Db(msg) = &err else {
            panic!("want a database error, got {err:?}")
        };
        assert!(msg.contains("unavailable"), "{msg}");
        assert!(msg.contains(reg.describe()), "{msg}");
        assert!(!msg.contains(wangge_testkit::postgres::PASSWORD), "{msg}");
    }
}
