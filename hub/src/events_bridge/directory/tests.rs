//! Data completeness over the real registry and the real embedded store: a sensor on schedule
//! scores ≈ 100 %, one silent half the window ≈ 50 %, one registered mid-window is counted
//! from its registration, one under maintenance has that time excluded and shown.

use super::RegistryDirectory;
use crate::registry::seed::import_dir;
use crate::registry::SqliteRegistry;
use crate::timeseries::embedded::{EmbeddedConfig, EmbeddedStore};
use crate::timeseries::{StoredReading, TimeSeriesSink};
use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use serde_json::Value as Json;
use std::sync::Arc;
use wangge_events::lifecycle::Action;
use wangge_events::model::{Actor, Scope, Severity, Trigger};
use wangge_events::rules::{Condition, ConditionKind};
use wangge_events::store::TransitionRequest;
use wangge_events::{Events, EventsConfig};

const S: i64 = 1_000_000_000;
const HOUR: i64 = 3600 * S;

/// Seeded sensors (60 s interval) and their components.
const ON_SCHEDULE: (&str, &str) = ("MH-0001", "1201110101000001");
const HALF_SILENT: (&str, &str) = ("MH-0002", "1201110102000001");
const MID_WINDOW: (&str, &str) = ("MH-0003", "1201110103000001");
const MAINTAINED: (&str, &str) = ("MH-0004", "1201110105000001");
const NEVER: (&str, &str) = ("MH-0005", "1201110106000001");

struct World {
    _dir: tempfile::TempDir,
    registry: Arc<SqliteRegistry>,
    store: Arc<EmbeddedStore>,
    events: Events,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    // The hub's own layout: the registry where `[registry] path` puts it by default.
    let cfg = crate::config::HubConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let registry = Arc::new(SqliteRegistry::open(&cfg.registry_path()).unwrap());
    import_dir(registry.as_ref(), &wangge_testkit::paths::seed_dir()).unwrap();
    let store = Arc::new(EmbeddedStore::open(&EmbeddedConfig::in_dir(dir.path())).unwrap());
    let directory = Arc::new(RegistryDirectory {
        registry: registry.clone(),
        store: store.clone(),
        sources: Default::default(),
    });
    let events = Events::open(
        &dir.path().join("events.db"),
        EventsConfig::defaults(),
        directory,
    )
    .unwrap();
    World {
        _dir: dir,
        registry,
        store,
        events,
    }
}

impl World {
    /// Sets when `sensor` was registered (the seed registered it just now).
    fn registered_at(&self, sensor: &str, at_ns: i64) {
        let found = self.registry.set_registered_at(sensor, at_ns).unwrap();
        assert!(found, "{sensor} is seeded");
    }

    /// One report of `sensor` every 60 s in `[from, to)` except `[skip_from, skip_to)`, each
    /// carrying two quantities (a report counts once).
    fn reports(&self, sensor: &str, from: i64, to: i64, skip: (i64, i64)) {
        let mut rows = Vec::new();
        let mut t = from;
        while t < to {
            if !(skip.0..skip.1).contains(&t) {
                for (quantity, v) in [(Quantity::Tilt, 1.0), (Quantity::Battery, 90.0)] {
                    rows.push(StoredReading {
                        reading: Reading {
                            sensor: sensor.into(),
                            quantity,
                            value: Value::Float(v),
                            ts_ns: t,
                            quality: Quality::Good,
                            flags: ReadingFlags::default(),
                        },
                        edge_id: "edge-xq-01".into(),
                        component_id: None,
                        grid_cell: None,
                        department: None,
                    });
                }
            }
            t += 60 * S;
        }
        self.store.write(&rows).unwrap();
    }

    /// A case on `component`, worked on (dispatched, in progress) over `[from, to)`.
    fn maintenance(&self, component: &str, from: i64, to: i64) {
        let c = Condition {
            kind: ConditionKind::Raised,
            component_id: component.into(),
            event_type: "manhole.displaced".into(),
            severity: Severity::Critical,
            trigger: Trigger {
                quantity: "tilt".into(),
                value: serde_json::json!(40.0),
                threshold: Some(15.0),
                ts_ns: from - 10 * S,
            },
            late: false,
        };
        let id = self
            .events
            .store()
            .apply_condition(&c, from - 10 * S)
            .unwrap()
            .unwrap()
            .event
            .id;
        let who = Actor {
            name: "wang".into(),
            department: Some("sw".into()),
            scope: Scope::Write,
        };
        let step = |action, dept: Option<&str>, at| {
            let req = TransitionRequest {
                action,
                department: dept.map(str::to_string),
                note: None,
            };
            self.events.transition(id, &who, &req, at).unwrap();
        };
        step(Action::Acknowledge, None, from - 5 * S);
        step(Action::Dispatch, Some("sw"), from);
        step(Action::Start, None, from + 60 * S);
        step(Action::Resolve, None, to);
    }
}

fn component<'a>(report: &'a Json, id: &str) -> &'a Json {
    report["components"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["component_id"] == id))
        .unwrap_or_else(|| panic!("no component {id}: {}", report["components"]))
}

fn completeness(report: &Json, id: &str) -> f64 {
    let c = component(report, id);
    c["completeness"]
        .as_f64()
        .unwrap_or_else(|| panic!("no completeness: {c}"))
}

#[test]
fn completeness_counts_the_monitored_part_of_the_window_less_maintenance() {
    let w = world();
    let now = crate::registry::now_ns();
    let (from, to) = (now - 4 * HOUR, now);
    for (sensor, _) in [ON_SCHEDULE, HALF_SILENT, MAINTAINED, NEVER] {
        w.registered_at(sensor, now - 5 * HOUR);
    }
    w.registered_at(MID_WINDOW.0, now - 2 * HOUR);
    let none = (0, 0);
    w.reports(ON_SCHEDULE.0, from, now, none);
    w.reports(HALF_SILENT.0, from, now - 2 * HOUR, none);
    // Reports from before its registration (sent while unassigned) are not its window's.
    w.reports(MID_WINDOW.0, from, now, none);
    // Silent while the crew works on it (an hour), reporting otherwise.
    let repair = (now - 2 * HOUR, now - HOUR);
    w.reports(MAINTAINED.0, from, now, repair);
    w.maintenance(MAINTAINED.1, repair.0, repair.1);

    let report = wangge_events::report::evaluation(&w.events, from, to, now, None)
        .unwrap()
        .to_json();
    let near = |id: &str, want: f64| {
        let got = completeness(&report, id);
        assert!(
            (got - want).abs() < 0.02,
            "{id}: {got}, want ≈ {want}: {}",
            component(&report, id)
        );
    };
    near(ON_SCHEDULE.1, 1.0);
    near(HALF_SILENT.1, 0.5);
    near(MID_WINDOW.1, 1.0);
    near(MAINTAINED.1, 1.0);
    near(NEVER.1, 0.0);
    // Each report carried two quantities and counts once: 4 h of 60 s reports.
    assert_eq!(component(&report, ON_SCHEDULE.1)["expected"], 240);
    assert_eq!(component(&report, ON_SCHEDULE.1)["received"], 240);
    // Counted from its registration: half the expected reports.
    let mid = component(&report, MID_WINDOW.1);
    assert_eq!(mid["expected"], 120, "{mid}");
    let sensor = report["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sensor_id"] == MID_WINDOW.0)
        .unwrap();
    assert_eq!(
        sensor["monitored_from"],
        wangge_events::model::rfc3339(now - 2 * HOUR)
    );
    // Maintenance is excluded, and shown.
    let m = component(&report, MAINTAINED.1);
    assert_eq!(m["maintenance_periods"], 1, "{m}");
    assert_eq!(m["excluded_s"], 3600.0, "{m}");
    assert_eq!(m["expected"], 180, "{m}");
    // Worst first, with names; roll-ups per type include every sensor above.
    assert_eq!(report["components"][0]["completeness"], 0.0);
    assert!(component(&report, ON_SCHEDULE.1)["name"]
        .as_str()
        .is_some_and(|n| !n.is_empty() && n != ON_SCHEDULE.1));
    let by_type = report["completeness_by_type"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "manhole_cover")
        .unwrap();
    assert!(by_type["sensors"].as_u64() >= Some(5), "{by_type}");
}

#[test]
fn a_department_sees_the_completeness_of_its_own_components_only() {
    let w = world();
    let now = crate::registry::now_ns();
    w.registered_at(ON_SCHEDULE.0, now - 5 * HOUR);
    w.reports(ON_SCHEDULE.0, now - HOUR, now, (0, 0));
    let report = wangge_events::report::evaluation(&w.events, now - HOUR, now, now, Some("xf"))
        .unwrap()
        .to_json();
    let rows = report["components"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|c| c["owner_department"] == "xf" || c["maintainer_department"] == "xf"),
        "{rows:?}"
    );
    assert!(rows.iter().all(|c| c["component_id"] != ON_SCHEDULE.1));
}

/// The hub's directory without `reports_per_window`: the report then asks for every day's
/// coverage, the reference the one-pass daily counts must agree with.
struct DayByDay(RegistryDirectory);

impl wangge_events::ComponentDirectory for DayByDay {
    fn component(&self, id: &str) -> Option<wangge_events::model::ComponentCtx> {
        self.0.component(id)
    }
    fn sensor_coverage(
        &self,
        from: i64,
        to: i64,
        now: i64,
    ) -> Vec<wangge_events::report::SensorCoverage> {
        self.0.sensor_coverage(from, to, now)
    }
    fn reports_between(&self, sensor: &str, from: i64, to: i64) -> u64 {
        self.0.reports_between(sensor, from, to)
    }
    fn department_exists(&self, d: &str) -> bool {
        self.0.department_exists(d)
    }
}

#[test]
fn the_daily_trend_counted_in_one_pass_matches_each_day_scored_as_its_own_window() {
    use wangge_events::ComponentDirectory;
    const DAY: i64 = 24 * HOUR;
    let w = world();
    let now = crate::registry::now_ns();
    // Three whole past days (kept counts), the window's partial first day and today (points).
    let from = now.div_euclid(DAY) * DAY - 3 * DAY - 5 * HOUR;
    for (sensor, _) in [ON_SCHEDULE, HALF_SILENT, MAINTAINED, NEVER] {
        w.registered_at(sensor, from - DAY);
    }
    // Registered on a day in the middle, reporting since before (unassigned) it.
    w.registered_at(MID_WINDOW.0, from + 2 * DAY + 7 * HOUR);
    w.reports(ON_SCHEDULE.0, from - HOUR, now, (0, 0));
    w.reports(HALF_SILENT.0, from, now, (from + DAY, from + 3 * DAY));
    w.reports(MID_WINDOW.0, from, now, (0, 0));
    // Worked on across midnight, silent meanwhile.
    let repair = (from + DAY + 20 * HOUR, from + 2 * DAY + 3 * HOUR);
    w.reports(MAINTAINED.0, from, now, repair);
    w.maintenance(MAINTAINED.1, repair.0, repair.1);
    let directory = RegistryDirectory {
        registry: w.registry.clone(),
        store: w.store.clone(),
        sources: Default::default(),
    };
    assert!(directory.reports_per_window(&[(from, now)], now).is_some());
    let reference = Events::open(
        &w._dir.path().join("events.db"),
        EventsConfig::defaults(),
        Arc::new(DayByDay(directory)),
    )
    .unwrap();
    let trends = |events: &Events, only: Option<&str>| {
        let r = wangge_events::report::evaluation(events, from, now, now, only)
            .unwrap()
            .to_json();
        (r["trend_daily"].clone(), r["trend_weekly"].clone())
    };
    // Twice: the first report counts the past days and keeps them, the second reads them.
    for run in ["counting", "kept"] {
        for only in [None, Some("sw"), Some("xf")] {
            let (daily, weekly) = trends(&w.events, only);
            assert_eq!(
                (&daily, &weekly),
                (&trends(&reference, only).0, &trends(&reference, only).1),
                "{run} {only:?}"
            );
            let days = daily.as_array().unwrap();
            assert!(days.len() >= 5 * 2, "{run} {only:?}: {daily}");
        }
    }
    // One row per day of the range for everyone (`*`), each with reports expected.
    let (daily, _) = trends(&w.events, None);
    let all: Vec<&Json> = daily
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["department"] == "*")
        .collect();
    assert_eq!(all.len(), 5, "{daily}");
    assert!(all.iter().all(|r| r["reports_expected"].as_u64() > Some(0)));
}
