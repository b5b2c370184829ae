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
    readings: &'static [(i64, Quantity, f64)],
    /// Run the offline tick at this many seconds after the start.
    tick_s: Option<i64>,
    event: &'static str,
    severity: Severity,
    /// Departments that receive it by type (besides owner/maintainer, and jd by grid cell).
    by_type: &'static [&'static str],
    jd: bool,
}

const NIGHT: i64 = 15 * 3600;

fn incidents() -> Vec<Incident> {
    use Quantity as Q;
    vec![
        Incident {
            name: "manhole_lifted",
            ctype: "manhole_cover",
            start_s: 0,
            readings: &[
                (0, Q::Tilt, 1.0),
                (60, Q::Tilt, 40.0),
                (61, Q::Opened, 1.0),
                (75, Q::Tilt, 40.0),
            ],
            tick_s: None,
            event: "manhole.displaced",
            severity: Severity::Critical,
            by_type: &["cg"],
            jd: true,
        },
        Incident {
            name: "hydrant_low_pressure",
            ctype: "fire_hydrant",
            start_s: 0,
            readings: &[
                (0, Q::Pressure, 0.3),
                (60, Q::Pressure, 0.1),
                (100, Q::Pressure, 0.1),
                (130, Q::Pressure, 0.1),
            ],
            tick_s: None,
            event: "hydrant.low_pressure",
            severity: Severity::Major,
            by_type: &["xf"],
            jd: false,
        },
        Incident {
            name: "street_light_failure",
            ctype: "street_light",
            start_s: NIGHT,
            readings: &[
                (0, Q::LampOn, 1.0),
                (0, Q::Current, 0.4),
                (60, Q::Current, 0.01),
                (200, Q::Current, 0.01),
                (400, Q::Current, 0.01),
            ],
            tick_s: None,
            event: "light.fault",
            severity: Severity::Major,
            by_type: &[],
            jd: false,
        },
        Incident {
            name: "flood_rise",
            ctype: "flood_gauge",
            start_s: 0,
            readings: &[
                (0, Q::WaterLevel, 2.0),
                (60, Q::WaterLevel, 9.0),
                (120, Q::WaterLevel, 18.0),
                (180, Q::WaterLevel, 21.0),
            ],
            tick_s: None,
            event: "flood.warning",
            severity: Severity::Major,
            by_type: &["cg", "sw"],
            jd: false,
        },
        Incident {
            name: "smoke_alarm",
            ctype: "smoke_detector",
            start_s: 0,
            readings: &[(0, Q::Alarm, 0.0), (60, Q::Smoke, 4.0), (60, Q::Alarm, 1.0)],
            tick_s: None,
            event: "fire.smoke",
            severity: Severity::Critical,
            by_type: &["xf"],
            jd: true,
        },
        Incident {
            name: "gas_leak",
            ctype: "gas_detector",
            start_s: 0,
            readings: &[(0, Q::Gas, 1.0), (60, Q::Gas, 35.0), (120, Q::Gas, 40.0)],
            tick_s: None,
            event: "gas.leak",
            severity: Severity::Critical,
            by_type: &["xf"],
            jd: true,
        },
        Incident {
            name: "door_forced",
            ctype: "door_contact",
            start_s: NIGHT,
            readings: &[(0, Q::DoorOpen, 0.0), (60, Q::DoorOpen, 1.0)],
            tick_s: None,
            event: "security.door_open",
            severity: Severity::Major,
            by_type: &["ga"],
            jd: false,
        },
        Incident {
            name: "intrusion",
            ctype: "intrusion",
            start_s: NIGHT,
            readings: &[
                (0, Q::Motion, 0.0),
                (60, Q::Motion, 1.0),
                (70, Q::Motion, 0.0),
                (80, Q::Motion, 1.0),
            ],
            tick_s: None,
            event: "security.intrusion",
            severity: Severity::Critical,
            by_type: &["ga"],
            jd: false,
        },
        Incident {
            name: "elevator_entrapment",
            ctype: "elevator",
            start_s: 0,
            readings: &[
                (0, Q::Trapped, 0.0),
                (60, Q::DoorOpen, 0.0),
                (60, Q::Trapped, 1.0),
            ],
            tick_s: None,
            event: "elevator.entrapment",
            severity: Severity::Critical,
            by_type: &["xf"],
            jd: false,
        },
        Incident {
            name: "electrical_leakage",
            ctype: "electrical_fire",
            start_s: 0,
            readings: &[
                (0, Q::ResidualCurrent, 20.0),
                (60, Q::ResidualCurrent, 320.0),
            ],
            tick_s: None,
            event: "electrical.leakage",
            severity: Severity::Major,
            by_type: &["xf"],
            jd: false,
        },
        Incident {
            name: "bin_full",
            ctype: "waste_bin",
            start_s: 0,
            readings: &[(0, Q::FillLevel, 50.0), (60, Q::FillLevel, 93.0)],
            tick_s: None,
            event: "sanitation.bin_full",
            severity: Severity::Minor,
            by_type: &["cg"],
            jd: false,
        },
        Incident {
            name: "pm25_high",
            ctype: "environment",
            start_s: 0,
            readings: &[(0, Q::Pm25, 40.0), (60, Q::Pm25, 180.0)],
            tick_s: None,
            event: "environment.pm25_high",
            severity: Severity::Minor,
            by_type: &[],
            jd: false,
        },
        Incident {
            name: "battery_drain",
            ctype: "smoke_detector",
            start_s: 0,
            readings: &[
                (0, Q::Battery, 30.0),
                (60, Q::Battery, 18.0),
                (120, Q::Battery, 17.0),
            ],
            tick_s: None,
            event: "device.battery_low",
            severity: Severity::Minor,
            by_type: &[],
            jd: false,
        },
        Incident {
            name: "sensor_silent",
            ctype: "gas_detector",
            start_s: 0,
            readings: &[(0, Q::Gas, 1.0)],
            tick_s: Some(181),
            event: "device.offline",
            severity: Severity::Major,
            by_type: &[],
            jd: false,
        },
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
        for &(t, q, v) in inc.readings {
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
