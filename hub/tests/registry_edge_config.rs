//! Configuration from the hub in the registry, the same story on both back ends (SQLite and
//! PostgreSQL): every version kept and numbered from 1, a stale `base_version` a conflict, an
//! unknown edge not found, only a newer report replacing the stored one, and the delivery list.

use hub::registry::seed::import_dir;
use hub::registry::{
    NewConfig, PgRegistry, RegistryAdmin, RegistryError, SensorInput, SqliteRegistry,
};
use protocol::edge_config::{document_hash, ConfigOutcome, ConfigReport};
use protocol::uplink::EdgeId;
use std::sync::Arc;
use wangge_pg::Pg;
use wangge_testkit::paths::seed_dir;
use wangge_testkit::Postgres;

const EDGE: &str = "edge-xq-01";

/// Runs `story` on a seeded SQLite registry, then on a seeded PostgreSQL one.
fn on_both(story: impl Fn(&dyn RegistryAdmin)) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteRegistry::open(&dir.path().join("registry.sqlite")).unwrap();
    import_dir(&sqlite, &seed_dir()).unwrap();
    story(&sqlite);
    let server = Postgres::start();
    let url = server.create_database("edge_config");
    let pg = PgRegistry::open(Arc::new(Pg::connect(&url, 2).unwrap())).unwrap();
    import_dir(&pg, &seed_dir()).unwrap();
    story(&pg);
}

fn new<'a>(document: &'a str, base: Option<u64>, by: &'a str) -> NewConfig<'a> {
    NewConfig {
        edge_id: EDGE,
        document,
        base_version: base,
        created_by: by,
        created_ns: 1_000,
    }
}

fn report(version: u64, outcome: ConfigOutcome, ts_ns: i64) -> ConfigReport {
    ConfigReport {
        edge_id: EdgeId(EDGE.into()),
        applied_version: version,
        applied_hash: document_hash("b = 2\n"),
        version,
        outcome,
        error: None,
        ts_ns,
    }
}

#[test]
fn every_version_is_kept_numbered_from_one_and_a_stale_base_is_a_conflict() {
    on_both(|reg| {
        let state = reg.edge_config(EDGE).unwrap().unwrap();
        assert!(state.desired.is_none() && state.applied.is_none());
        let (v1, created) = reg
            .put_edge_config(&new("a = 1\n", Some(0), "admin"))
            .unwrap();
        assert_eq!(
            (v1.version, created, v1.hash.as_str()),
            (1, true, document_hash("a = 1\n").as_str())
        );
        let (v2, created) = reg.put_edge_config(&new("b = 2\n", None, "tok1")).unwrap();
        assert_eq!((v2.version, created), (2, false));
        let stale = reg.put_edge_config(&new("c = 3\n", Some(1), "tok1"));
        assert!(
            matches!(stale, Err(RegistryError::Conflict(_))),
            "{stale:?}"
        );
        let (v3, _) = reg
            .put_edge_config(&new("c = 3\n", Some(2), "cli"))
            .unwrap();
        assert_eq!(v3.version, 3);
        let desired = reg.edge_config(EDGE).unwrap().unwrap().desired.unwrap();
        assert_eq!(
            (
                desired.version,
                desired.document.as_str(),
                desired.created_by.as_str()
            ),
            (3, "c = 3\n", "cli")
        );
        let unknown = reg.put_edge_config(&NewConfig {
            edge_id: "edge-nowhere",
            ..new("a = 1\n", None, "admin")
        });
        assert!(
            matches!(unknown, Err(RegistryError::NotFound(_))),
            "{unknown:?}"
        );
        assert!(reg.edge_config("edge-nowhere").unwrap().is_none());
    });
}

#[test]
fn only_a_newer_report_replaces_the_stored_one_and_delivery_lists_what_is_pending() {
    on_both(|reg| {
        reg.put_edge_config(&new("a = 1\n", None, "admin")).unwrap();
        reg.put_edge_config(&new("b = 2\n", None, "admin")).unwrap();
        let pending = reg.list_config_deliveries(None, 10).unwrap();
        assert_eq!(pending.items.len(), 1);
        assert_eq!(pending.items[0].config.version, 2);
        assert!(pending.items[0].pending());

        assert!(reg
            .record_config_report(&report(1, ConfigOutcome::Applied, 50), 60)
            .unwrap());
        assert!(reg.list_config_deliveries(None, 10).unwrap().items[0].pending());
        let mut refused = report(2, ConfigOutcome::Refused, 70);
        refused.applied_version = 1;
        refused.error = Some("validate.limits.x: unknown quantity".into());
        assert!(reg.record_config_report(&refused, 80).unwrap());
        // A replay, and an older report arriving late, change nothing.
        assert!(!reg.record_config_report(&refused, 90).unwrap());
        assert!(!reg
            .record_config_report(&report(2, ConfigOutcome::Applied, 65), 90)
            .unwrap());
        let applied = reg.edge_config(EDGE).unwrap().unwrap().applied.unwrap();
        assert_eq!(
            (
                applied.applied_version,
                applied.version,
                applied.outcome.as_str()
            ),
            (1, 2, "refused")
        );
        assert_eq!(
            applied.error.as_deref(),
            Some("validate.limits.x: unknown quantity")
        );
        assert_eq!((applied.reported_ns, applied.received_ns), (70, 80));
        assert!(!reg.list_config_deliveries(None, 10).unwrap().items[0].pending());
    });
}

#[test]
fn the_maintainers_behind_an_edge_are_those_of_its_sensors_components() {
    on_both(|reg| {
        let seeded = reg.edge_sensor_maintainers(EDGE).unwrap();
        assert!(
            seeded.len() > 1,
            "the seed edge serves several departments: {seeded:?}"
        );
        reg.add_edge("edge-sw-01", None, None).unwrap();
        assert!(reg
            .edge_sensor_maintainers("edge-sw-01")
            .unwrap()
            .is_empty());
        let sensor = SensorInput {
            component_id: Some("1201110101000001".into()),
            edge: Some("edge-sw-01".into()),
            ..SensorInput::default()
        };
        reg.put_sensor("SW-T-1", &sensor).unwrap();
        assert_eq!(
            reg.edge_sensor_maintainers("edge-sw-01").unwrap(),
            vec![Some("sw".to_string())]
        );
    });
}
