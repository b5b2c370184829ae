//! Every incident of the catalogue, on components of the registry seed
//! (`config/registry/components.csv`), through the default rules and sharing: exactly one event of
//! the right type and severity on the right component, received by exactly the right departments.

use protocol::uplink::Quality;
use protocol::Quantity;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use wangge_events::model::{ComponentCtx, Severity};
use wangge_events::rules::RuleInput;
use wangge_events::{ComponentDirectory, Events, EventsConfig};

const S: i64 = 1_000_000_000;
/// 2024-11-25T00:00:00Z = 08:00 local.
const T0: i64 = 1_732_492_800 * S;

struct Seed(HashMap<String, ComponentCtx>);

impl ComponentDirectory for Seed {
    fn component(&self, id: &str) -> Option<ComponentCtx> {
        self.0.get(id).cloned()
    }
}

fn seed() -> Seed {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/registry/components.csv"
    ))
    .unwrap();
    let mut m = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 9, "{line}");
        m.insert(
            f[0].to_string(),
            ComponentCtx {
                component_type: f[1].into(),
                grid_cell: f[6].into(),
                owner_department: f[7].into(),
                maintainer_department: f[8].into(),
            },
        );
    }
    Seed(m)
}

/// An incident: readings (seconds after the start, quantity, value) on a component of `ctype`.
struct Incident {
    name: &'static str,
    ctype: &'static str,
    start_s: i64,
    readings: Vec<(i64, Quantity, f64)>,
    /// Run the offline tick at this many seconds after the start.
    tick_s: Option<i64>,
    event: &'static str,
    severity: Severity,
    /// Departments that receive it by type (besides owner/maintainer, and jd by grid cell).
    by_type: &'static [&'static str],
    jd: bool,
}

const NIGHT: i64 = 15 * 3600;

impl Incident {
    /// A daytime incident, sent to the owner and maintainer only, with no readings yet.
    fn new(
        name: &'static str,
        ctype: &'static str,
        event: &'static str,
        severity: Severity,
    ) -> Self {
        Incident {
            name,
            ctype,
            start_s: 0,
            readings: Vec::new(),
            tick_s: None,
            event,
            severity,
            by_type: &[],
            jd: false,
        }
    }

    /// Departments that receive it by type.
    fn also_to(self, by_type: &'static [&'static str]) -> Self {
        Incident { by_type, ..self }
    }

    /// Starts at night (15 h after T0).
    fn at_night(self) -> Self {
        Incident {
            start_s: NIGHT,
            ..self
        }
    }

    /// The grid cell's jd also receives it.
    fn with_jd(self) -> Self {
        Incident { jd: true, ..self }
    }

    /// Runs the offline tick at `s` seconds after the start.
    fn tick_at(self, s: i64) -> Self {
        Incident {
            tick_s: Some(s),
            ..self
        }
    }

    /// Adds readings of one quantity: (seconds after the start, value). All readings are fed in
    /// time order; those at the same second in the order they were added.
    fn series(mut self, q: Quantity, series: &[(i64, f64)]) -> Self {
        self.readings.extend(series.iter().map(|&(t, v)| (t, q, v)));
        self.readings.sort_by_key(|&(t, _, _)| t);
        self
    }
}

fn incidents() -> Vec<Incident> {
    use Quantity::*;
    use Severity::*;
    vec![
        Incident::new(
            "manhole_lifted",
            "manhole_cover",
            "manhole.displaced",
            Critical,
        )
        .also_to(&["cg"])
        .with_jd()
        .series(Tilt, &[(0, 1.0), (60, 40.0), (75, 40.0)])
        .series(Opened, &[(61, 1.0)]),
        Incident::new(
            "hydrant_low_pressure",
            "fire_hydrant",
            "hydrant.low_pressure",
            Major,
        )
        .also_to(&["xf"])
        .series(Pressure, &[(0, 0.3), (60, 0.1), (100, 0.1), (130, 0.1)]),
        Incident::new("street_light_failure", "street_light", "light.fault", Major)
            .at_night()
            .series(LampOn, &[(0, 1.0)])
            .series(Current, &[(0, 0.4), (60, 0.01), (200, 0.01), (400, 0.01)]),
        Incident::new("flood_rise", "flood_gauge", "flood.warning", Major)
            .also_to(&["cg", "sw"])
            .series(WaterLevel, &[(0, 2.0), (60, 9.0), (120, 18.0), (180, 21.0)]),
        Incident::new("smoke_alarm", "smoke_detector", "fire.smoke", Critical)
            .also_to(&["xf"])
            .with_jd()
            .series(Smoke, &[(60, 4.0)])
            .series(Alarm, &[(0, 0.0), (60, 1.0)]),
        Incident::new("gas_leak", "gas_detector", "gas.leak", Critical)
            .also_to(&["xf"])
            .with_jd()
            .series(Gas, &[(0, 1.0), (60, 35.0), (120, 40.0)]),
        Incident::new("door_forced", "door_contact", "security.door_open", Major)
            .also_to(&["ga"])
            .at_night()
            .series(DoorOpen, &[(0, 0.0), (60, 1.0)]),
        Incident::new("intrusion", "intrusion", "security.intrusion", Critical)
            .also_to(&["ga"])
            .at_night()
            .series(Motion, &[(0, 0.0), (60, 1.0), (70, 0.0), (80, 1.0)]),
        Incident::new(
            "elevator_entrapment",
            "elevator",
            "elevator.entrapment",
            Critical,
        )
        .also_to(&["xf"])
        .series(DoorOpen, &[(60, 0.0)])
        .series(Trapped, &[(0, 0.0), (60, 1.0)]),
        Incident::new(
            "electrical_leakage",
            "electrical_fire",
            "electrical.leakage",
            Major,
        )
        .also_to(&["xf"])
        .series(ResidualCurrent, &[(0, 20.0), (60, 320.0)]),
        Incident::new("bin_full", "waste_bin", "sanitation.bin_full", Minor)
            .also_to(&["cg"])
            .series(FillLevel, &[(0, 50.0), (60, 93.0)]),
        Incident::new("pm25_high", "environment", "environment.pm25_high", Minor)
            .series(Pm25, &[(0, 40.0), (60, 180.0)]),
        Incident::new(
            "battery_drain",
            "smoke_detector",
            "device.battery_low",
            Minor,
        )
        .series(Battery, &[(0, 30.0), (60, 18.0), (120, 17.0)]),
        Incident::new("sensor_silent", "gas_detector", "device.offline", Major)
            .tick_at(181)
            .series(Gas, &[(0, 1.0)]),
    ]
}

#[test]
fn each_catalogue_incident_raises_exactly_one_event_for_the_right_departments() {
    let seed = Arc::new(seed());
    let dir = tempfile::tempdir().unwrap();
    let events = Events::open(
        &dir.path().join("events.db"),
        EventsConfig::defaults(),
        seed.clone(),
    )
    .unwrap();
    let mut used = BTreeSet::new();
    for inc in incidents() {
        // A fresh component of the type (different incidents never share one).
        let (id, ctx) = seed
            .0
            .iter()
            .filter(|(id, c)| c.component_type == inc.ctype && !used.contains(*id))
            .min_by_key(|(id, _)| id.to_string())
            .map(|(id, c)| (id.clone(), c.clone()))
            .unwrap();
        used.insert(id.clone());
        let sensor = format!("S-{id}");
        let mut changes = Vec::new();
        for &(t, q, v) in &inc.readings {
            let ts = T0 + (inc.start_s + t) * S;
            let r = RuleInput {
                component_id: &id,
                component_type: inc.ctype,
                sensor_id: &sensor,
                interval_s: 60,
                quantity: q,
                value: v,
                ts_ns: ts,
                quality: Quality::Good,
            };
            changes.extend(events.ingest(&r, ts).unwrap());
        }
        if let Some(t) = inc.tick_s {
            changes.extend(events.tick(T0 + (inc.start_s + t) * S).unwrap());
        }
        let active = events.store().active_for_component(&id).unwrap();
        assert_eq!(
            active.len(),
            1,
            "{}: exactly one event, got {active:?}",
            inc.name
        );
        let e = &active[0];
        assert_eq!(
            (e.event_type.as_str(), e.severity),
            (inc.event, inc.severity),
            "{}",
            inc.name
        );
        assert!(
            changes.iter().all(|c| c.event.id == e.id),
            "{}: all changes on one event",
            inc.name
        );
        // A repeat (motion again while the case is open) counts on the same event.
        let raises = if inc.name == "intrusion" { 2 } else { 1 };
        assert_eq!(e.count, raises, "{}", inc.name);

        let mut want: BTreeSet<String> = [
            ctx.owner_department.clone(),
            ctx.maintainer_department.clone(),
        ]
        .into();
        want.extend(inc.by_type.iter().map(|d| d.to_string()));
        if inc.jd && ctx.grid_cell.starts_with("120111001") {
            want.insert("jd".into());
        }
        let got: BTreeSet<String> = events
            .mqtt_publications(&changes[0])
            .into_iter()
            .map(|(topic, _)| {
                let rest = topic.strip_prefix("wangge/v1/events/").unwrap();
                let (dept, ty) = rest.split_once('/').unwrap();
                assert_eq!(ty, inc.event);
                dept.to_string()
            })
            .collect();
        assert_eq!(got, want, "{}: departments", inc.name);
    }
}
