//! Scenario files: a timeline of incidents per sensor and the wire faults to inject.
//!
//! ```toml
//! [scenario]
//! name = "demo"
//! seed = 7                            # optional; --seed wins
//! start = "2024-11-25T14:00:00Z"      # optional sensor-clock origin; --start wins
//!
//! [[incident]]
//! sensor = "MH-0001"
//! kind = "manhole_lifted"
//! at = 30                             # seconds of scenario time
//! duration = 20                       # or `until = 50`; neither: to the end of the run
//!
//! [[fault]]
//! kind = "corrupt"                    # corrupt | truncate | noise | duplicate | out_of_order | clock_skew | burst
//! line = "A"                          # selectors: sensor, profile, line, gateway (all optional)
//! rate = 0.05                         # per transmission, or `at = [12, 30.5]` one-shots
//! ```
//! The README lists every kind with its parameters.
//!
//! `incident.rs` has the incidents and their entries, `fault.rs` the wire faults and theirs;
//! here is the file as a whole.

mod fault;
mod incident;

pub use fault::{Fault, FaultKind, Target};
pub use incident::{Incident, IncidentKind};

use crate::sensors::Sensor;
use fault::FaultSpec;
use incident::IncidentSpec;
use serde::Deserialize;
use std::path::Path;

/// A validated scenario.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scenario {
    pub name: Option<String>,
    pub seed: Option<u64>,
    /// Sensor-clock origin, Unix ms.
    pub start_ms: Option<u64>,
    pub incidents: Vec<Incident>,
    pub faults: Vec<Fault>,
    /// Things skipped because their sensor is not part of this run (for the log).
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Toml { path: String, msg: String },
    #[error("{path}: {what}: {msg}")]
    Invalid {
        path: String,
        what: String,
        msg: String,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    scenario: HeaderSpec,
    #[serde(default)]
    incident: Vec<IncidentSpec>,
    #[serde(default)]
    fault: Vec<FaultSpec>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HeaderSpec {
    name: Option<String>,
    #[allow(dead_code)]
    description: Option<String>,
    seed: Option<u64>,
    start: Option<String>,
}
/// Parses a Unix-ms number or an RFC 3339 time.
pub fn parse_time_ms(s: &str) -> Option<u64> {
    if let Ok(ms) = s.parse::<u64>() {
        return Some(ms);
    }
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64)
}

fn secs_to_ms(s: f64) -> Option<u64> {
    (s.is_finite() && (0.0..=1.0e9).contains(&s)).then(|| (s * 1000.0).round() as u64)
}

/// Reads and validates a scenario. `registry` is every known sensor (an unknown id is an error);
/// `run` the sensors of this run (incidents and faults of other sensors are skipped and noted).
pub fn load(path: &Path, registry: &[Sensor], run: &[Sensor]) -> Result<Scenario, ScenarioError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
        path: p.clone(),
        source,
    })?;
    parse(&text, &p, registry, run)
}
/// Makes the error for one entry (`what`) of the scenario file.
type Invalid<'a> = dyn Fn(String, String) -> ScenarioError + 'a;

/// What every entry is checked against: the error maker, the sensor registry, this run's sensors.
struct Entries<'a> {
    invalid: &'a Invalid<'a>,
    registry: &'a [Sensor],
    run: &'a [Sensor],
}

/// An entry added to the scenario (or noted skipped), or why it is invalid.
type Added = Result<(), ScenarioError>;

/// Parses the text of a scenario; `path` only names the file in errors.
pub fn parse(
    text: &str,
    path: &str,
    registry: &[Sensor],
    run: &[Sensor],
) -> Result<Scenario, ScenarioError> {
    let spec: FileSpec = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| {
            let before = &text[..s.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {col}: ")
        });
        ScenarioError::Toml {
            path: path.to_string(),
            msg: format!("{}{}", at.unwrap_or_default(), e.message()),
        }
    })?;
    let invalid = |what: String, msg: String| ScenarioError::Invalid {
        path: path.to_string(),
        what,
        msg,
    };
    let mut out = header(spec.scenario, &invalid)?;
    let cx = Entries {
        invalid: &invalid,
        registry,
        run,
    };
    for (i, inc) in spec.incident.into_iter().enumerate() {
        incident::add(inc, i, &cx, &mut out)?;
    }
    out.incidents.sort_by_key(|i| (i.sensor, i.at_ms));
    for (i, f) in spec.fault.into_iter().enumerate() {
        fault::add(f, i, &cx, &mut out)?;
    }
    Ok(out)
}

/// `[scenario]`: name, seed and start.
fn header(h: HeaderSpec, invalid: &Invalid<'_>) -> Result<Scenario, ScenarioError> {
    let mut out = Scenario {
        name: h.name,
        seed: h.seed,
        ..Scenario::default()
    };
    if let Some(s) = &h.start {
        out.start_ms = Some(parse_time_ms(s).ok_or_else(|| {
            invalid(
                "[scenario] start".into(),
                format!("{s:?} is neither Unix ms nor an RFC 3339 time"),
            )
        })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensors::parse_sensors;

    fn reg() -> Vec<Sensor> {
        parse_sensors(
            "id,type,profile,address,interval_s\nMH-1,manhole_cover,gridsense,GW-01,60\nMH-2,manhole_cover,serial-binary,A,60\nHY-1,fire_hydrant,acme,,30\n",
            "s.csv",
        )
        .unwrap()
    }

    #[test]
    fn incidents_and_faults_parse() {
        let r = reg();
        let s = parse(
            r#"
            [scenario]
            start = "2024-11-25T14:00:00Z"
            [[incident]]
            sensor = "MH-1"
            kind = "manhole_lifted"
            at = 30
            duration = 20
            [[incident]]
            sensor = "MH-2"
            kind = "set"
            at = 5
            values = { tilt = 40.5, opened = true, battery = 3 }
            [[fault]]
            kind = "corrupt"
            rate = 0.1
            [[fault]]
            kind = "clock_skew"
            sensor = "HY-1"
            at = 10
            offset = -3600
            "#,
            "x.toml",
            &r,
            &r,
        )
        .unwrap();
        assert_eq!(s.start_ms, Some(1_732_543_200_000));
        assert_eq!(s.incidents[0].until_ms, Some(50_000));
        assert_eq!(s.incidents[1].values.len(), 3);
        assert_eq!(s.faults[0].target.line.as_deref(), Some("A"));
        assert_eq!(s.faults[1].offset_ms, -3_600_000);
    }

    #[test]
    fn errors_name_the_entry_and_field() {
        let r = reg();
        let cases = [
            (
                "[[incident]]\nsensor = \"HY-1\"\nkind = \"manhole_lifted\"\nat = 1\n",
                "incident #1 (sensor HY-1): field `kind`",
            ),
            (
                "[[incident]]\nsensor = \"XX-9\"\nkind = \"gas_leak\"\nat = 1\n",
                "incident #1 (sensor XX-9): field `sensor`",
            ),
            (
                "[[fault]]\nkind = \"corrupt\"\nprofile = \"acme\"\nrate = 0.1\n",
                "fault #1 (corrupt)",
            ),
            (
                "[[fault]]\nkind = \"duplicate\"\n",
                "fault #1 (duplicate): give `rate`",
            ),
            (
                "[[fault]]\nkind = \"burst\"\nat = 3\n",
                "fault #1 (burst): field `duration`",
            ),
            (
                "[[incident]]\nsensor = \"MH-1\"\nkind = \"manhole_lifted\"\nat = 1\ncolour = 3\n",
                "x.toml: line 5, column 1: unknown field `colour`",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text, "x.toml", &r, &r).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
    }

    #[test]
    fn modbus_faults_parse_for_a_modbus_sensor_and_name_what_is_wrong() {
        let mut r = reg();
        r.extend(
            parse_sensors(
                "id,type,profile,address,interval_s\nFL-1,flood_gauge,modbus-flood-level,rs485-1:1,5\n",
                "s.csv",
            )
            .unwrap(),
        );
        let s = parse(
            "[[fault]]\nkind = \"slow\"\nsensor = \"FL-1\"\ndelay = 0.3\nfrom = 10\nuntil = 20\n[[fault]]\nkind = \"exception\"\nsensor = \"FL-1\"\ncode = 6\n[[fault]]\nkind = \"crc\"\nsensor = \"FL-1\"\nrate = 0.2\n",
            "x.toml",
            &r,
            &r,
        )
        .unwrap();
        assert_eq!(s.faults.len(), 3);
        assert_eq!(
            (
                s.faults[0].delay_ms,
                s.faults[0].from_ms,
                s.faults[0].until_ms
            ),
            (300, 10_000, Some(20_000))
        );
        assert_eq!(s.faults[1].code, 6);
        let cases = [
            (
                "[[fault]]\nkind = \"mute\"\n",
                "fault #1 (mute): mute, slow, crc and exception are a Modbus slave's faults",
            ),
            (
                "[[fault]]\nkind = \"mute\"\nsensor = \"HY-1\"\n",
                "a Modbus slave's faults",
            ),
            (
                "[[fault]]\nkind = \"duplicate\"\nsensor = \"FL-1\"\nrate = 0.1\n",
                "a Modbus slave takes no other",
            ),
            (
                "[[fault]]\nkind = \"slow\"\nsensor = \"FL-1\"\n",
                "field `delay`",
            ),
            (
                "[[fault]]\nkind = \"exception\"\nsensor = \"FL-1\"\n",
                "field `code`",
            ),
            (
                "[[fault]]\nkind = \"crc\"\nsensor = \"FL-1\"\n",
                "field `rate`",
            ),
            (
                "[[fault]]\nkind = \"mute\"\nsensor = \"FL-1\"\nat = 3\n",
                "fields `at`/`duration`",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text, "x.toml", &r, &r).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
    }

    #[test]
    fn the_modbus_demo_scenario_loads_against_its_registry() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/modbus-demo");
        let r = crate::sensors::load_sensors(&dir.join("sensors.csv")).unwrap();
        let s = load(&dir.join("scenario.toml"), &r, &r).unwrap();
        assert!(s.incidents.len() >= 3 && s.faults.len() >= 3, "{s:?}");
        assert!(s.skipped.is_empty(), "{:?}", s.skipped);
    }

    #[test]
    fn entries_for_sensors_outside_the_run_are_skipped_and_noted() {
        let r = reg();
        let run: Vec<Sensor> = r.iter().filter(|s| s.id == "HY-1").cloned().collect();
        let s = parse(
            "[[incident]]\nsensor = \"MH-1\"\nkind = \"manhole_lifted\"\nat = 1\n",
            "x.toml",
            &r,
            &run,
        )
        .unwrap();
        assert!(s.incidents.is_empty());
        assert_eq!(s.skipped.len(), 1);
    }
}
