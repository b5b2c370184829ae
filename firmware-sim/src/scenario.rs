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

use crate::sensors::{Dialect, Sensor, SensorType};
use protocol::{Quantity, Value};
use serde::Deserialize;
use std::path::Path;

/// What happens to a sensor: the incidents of the catalogue's default events, plus a few device troubles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IncidentKind {
    /// Manhole cover lifted: tilt 20–35° and `opened`.
    ManholeLifted,
    /// Hydrant pressure falls below 0.14 MPa (`level` MPa, default 0.06–0.12).
    HydrantLowPressure,
    /// Street light fails while switched on: `lamp_on` true, current below 0.02 A.
    StreetLightFailure,
    /// Water rises: 16–22 cm at once, 31–40 cm after `rise` seconds (default 20).
    FloodRise,
    /// Smoke 8–15 %obs/m and `alarm`.
    SmokeAlarm,
    /// Gas at `level` %LEL (default 22–45).
    GasLeak,
    /// Door forced open (`door_open` true); put it at night with `start`.
    DoorForced,
    /// Motion detected.
    Intrusion,
    /// Passengers trapped: `trapped` true, doors shut, `fault_code` if given.
    ElevatorEntrapment,
    /// The sensor sends nothing.
    SensorSilent,
    /// Battery falls linearly to `level` % (default 5) over `duration` (default 60 s), and stays there.
    BatteryDrain,
    /// Any values, given in `values = { quantity = value }`.
    Set,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 12] = [
        IncidentKind::ManholeLifted,
        IncidentKind::HydrantLowPressure,
        IncidentKind::StreetLightFailure,
        IncidentKind::FloodRise,
        IncidentKind::SmokeAlarm,
        IncidentKind::GasLeak,
        IncidentKind::DoorForced,
        IncidentKind::Intrusion,
        IncidentKind::ElevatorEntrapment,
        IncidentKind::SensorSilent,
        IncidentKind::BatteryDrain,
        IncidentKind::Set,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            IncidentKind::ManholeLifted => "manhole_lifted",
            IncidentKind::HydrantLowPressure => "hydrant_low_pressure",
            IncidentKind::StreetLightFailure => "street_light_failure",
            IncidentKind::FloodRise => "flood_rise",
            IncidentKind::SmokeAlarm => "smoke_alarm",
            IncidentKind::GasLeak => "gas_leak",
            IncidentKind::DoorForced => "door_forced",
            IncidentKind::Intrusion => "intrusion",
            IncidentKind::ElevatorEntrapment => "elevator_entrapment",
            IncidentKind::SensorSilent => "sensor_silent",
            IncidentKind::BatteryDrain => "battery_drain",
            IncidentKind::Set => "set",
        }
    }

    pub fn from_name(name: &str) -> Option<IncidentKind> {
        IncidentKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the incident makes sense for a sensor of type `t`.
    pub fn applies_to(self, t: SensorType) -> bool {
        use SensorType as T;
        match self {
            IncidentKind::ManholeLifted => t == T::ManholeCover,
            IncidentKind::HydrantLowPressure => t == T::FireHydrant,
            IncidentKind::StreetLightFailure => t == T::StreetLight,
            IncidentKind::FloodRise => matches!(t, T::FloodGauge | T::ManholeCover),
            IncidentKind::SmokeAlarm => t == T::SmokeDetector,
            IncidentKind::GasLeak => t == T::GasDetector,
            IncidentKind::DoorForced => t == T::DoorContact,
            IncidentKind::Intrusion => t == T::Intrusion,
            IncidentKind::ElevatorEntrapment => t == T::Elevator,
            IncidentKind::BatteryDrain => t.quantities().contains(&Quantity::Battery),
            IncidentKind::SensorSilent | IncidentKind::Set => true,
        }
    }
}

/// One validated incident on one sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// Index of the sensor in the run's sensor list.
    pub sensor: usize,
    pub kind: IncidentKind,
    /// Onset, scenario ms.
    pub at_ms: u64,
    /// End (exclusive), scenario ms; `None` lasts to the end of the run. For `battery_drain` the
    /// drain is over by `at + duration` and the battery stays low: it has no end.
    pub until_ms: Option<u64>,
    /// `battery_drain`: ramp length, ms. `flood_rise`: time from warning to danger level, ms.
    pub ramp_ms: u64,
    /// Level parameter: MPa (hydrant), %LEL (gas), % (battery).
    pub level: Option<f64>,
    pub fault_code: Option<i64>,
    /// `set`: the values to force.
    pub values: Vec<(Quantity, Value)>,
}

impl Incident {
    /// True while the incident shapes the sensor's values at scenario time `t_ms`.
    pub fn active_at(&self, t_ms: u64) -> bool {
        t_ms >= self.at_ms && self.until_ms.is_none_or(|u| t_ms < u)
    }

    /// Scenario times at which the sensor reports at once because its state changed (onset,
    /// flood danger stage, end), as event-driven sensors do.
    pub fn edges_ms(&self) -> Vec<u64> {
        let mut v = vec![self.at_ms];
        if self.kind == IncidentKind::FloodRise {
            v.push(self.at_ms + self.ramp_ms);
        }
        if let Some(u) = self.until_ms {
            v.push(u);
        }
        v
    }
}

/// A wire fault kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Line A: one data byte of the frame changed (CRC error). Terminated by its own 0x00.
    Corrupt,
    /// Line A: the frame cut short, then 0x00.
    Truncate,
    /// Line A: a burst of non-zero random bytes, then 0x00.
    Noise,
    /// The same message (same seq, same bytes) sent again right after.
    Duplicate,
    /// A message held back and sent after the sender's next one.
    OutOfOrder,
    /// The sender's clock is off by `offset` seconds during the window.
    ClockSkew,
    /// The sender buffers its messages for `duration`, then sends them all back to back.
    Burst,
}

impl FaultKind {
    pub fn from_name(name: &str) -> Option<FaultKind> {
        Some(match name {
            "corrupt" => FaultKind::Corrupt,
            "truncate" => FaultKind::Truncate,
            "noise" => FaultKind::Noise,
            "duplicate" => FaultKind::Duplicate,
            "out_of_order" => FaultKind::OutOfOrder,
            "clock_skew" => FaultKind::ClockSkew,
            "burst" => FaultKind::Burst,
            _ => return None,
        })
    }

    /// Faults that only exist on the binary serial line.
    pub const fn line_a_only(self) -> bool {
        matches!(
            self,
            FaultKind::Corrupt | FaultKind::Truncate | FaultKind::Noise
        )
    }

    /// Faults that act on a window of time rather than on single transmissions.
    pub const fn is_window(self) -> bool {
        matches!(self, FaultKind::ClockSkew | FaultKind::Burst)
    }
}

/// Which transmissions a fault applies to; every given selector must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Target {
    pub sensor: Option<String>,
    pub profile: Option<Dialect>,
    /// Serial line, `A` or `B`.
    pub line: Option<String>,
    /// gridsense gateway id.
    pub gateway: Option<String>,
}

/// One validated wire fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub target: Target,
    /// Probability per matching transmission, within [`from_ms`, `until_ms`).
    pub rate: f64,
    /// One-shot times, scenario ms, ascending: each hits the first matching transmission at or
    /// after it (`noise`: injected at that time). For window faults, the single window start.
    pub at_ms: Vec<u64>,
    pub from_ms: u64,
    pub until_ms: Option<u64>,
    /// Window length for `burst` and `clock_skew` (`clock_skew` without one: to the end).
    pub duration_ms: Option<u64>,
    /// `clock_skew`: offset added to the sender's clock, ms.
    pub offset_ms: i64,
    /// `noise`: burst length range in bytes, inclusive.
    pub bytes: (usize, usize),
}

impl Fault {
    /// The window of a `burst` or `clock_skew`, scenario ms.
    pub fn window(&self) -> (u64, Option<u64>) {
        let at = self.at_ms.first().copied().unwrap_or(0);
        (at, self.duration_ms.map(|d| at + d))
    }
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentSpec {
    sensor: String,
    kind: String,
    at: f64,
    duration: Option<f64>,
    until: Option<f64>,
    level: Option<f64>,
    fault_code: Option<i64>,
    rise: Option<f64>,
    values: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Times {
    One(f64),
    Many(Vec<f64>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    kind: String,
    sensor: Option<String>,
    profile: Option<String>,
    line: Option<String>,
    gateway: Option<String>,
    rate: Option<f64>,
    at: Option<Times>,
    from: Option<f64>,
    until: Option<f64>,
    duration: Option<f64>,
    offset: Option<f64>,
    bytes: Option<(usize, usize)>,
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
    let mut out = Scenario {
        name: spec.scenario.name,
        seed: spec.scenario.seed,
        ..Scenario::default()
    };
    let invalid = |what: String, msg: String| ScenarioError::Invalid {
        path: path.to_string(),
        what,
        msg,
    };
    if let Some(s) = &spec.scenario.start {
        out.start_ms = Some(parse_time_ms(s).ok_or_else(|| {
            invalid(
                "[scenario] start".into(),
                format!("{s:?} is neither Unix ms nor an RFC 3339 time"),
            )
        })?);
    }

    for (i, inc) in spec.incident.into_iter().enumerate() {
        let what = format!("incident #{} (sensor {})", i + 1, inc.sensor);
        let Some(reg) = registry.iter().find(|s| s.id == inc.sensor) else {
            return Err(invalid(
                what,
                "field `sensor`: not in the sensor registry".into(),
            ));
        };
        let kind = IncidentKind::from_name(&inc.kind).ok_or_else(|| {
            let all: Vec<_> = IncidentKind::ALL.iter().map(|k| k.name()).collect();
            invalid(
                what.clone(),
                format!(
                    "field `kind`: unknown {:?}; one of {}",
                    inc.kind,
                    all.join(", ")
                ),
            )
        })?;
        if !kind.applies_to(reg.kind) {
            return Err(invalid(
                what,
                format!(
                    "field `kind`: {} does not apply to a {}",
                    kind.name(),
                    reg.kind
                ),
            ));
        }
        let at_ms = secs_to_ms(inc.at)
            .ok_or_else(|| invalid(what.clone(), "field `at`: not a time in seconds ≥ 0".into()))?;
        let dur_ms = match inc.duration {
            Some(d) => Some(secs_to_ms(d).filter(|d| *d > 0).ok_or_else(|| {
                invalid(what.clone(), "field `duration`: must be > 0 seconds".into())
            })?),
            None => None,
        };
        let until_ms = match (inc.until, dur_ms) {
            (Some(_), Some(_)) => {
                return Err(invalid(what, "give `duration` or `until`, not both".into()))
            }
            (Some(u), None) => Some(secs_to_ms(u).filter(|u| *u > at_ms).ok_or_else(|| {
                invalid(what.clone(), "field `until`: must be after `at`".into())
            })?),
            (None, Some(d)) => Some(at_ms + d),
            (None, None) => None,
        };
        let mut incident = Incident {
            sensor: usize::MAX,
            kind,
            at_ms,
            until_ms,
            ramp_ms: 0,
            level: inc.level,
            fault_code: inc.fault_code,
            values: Vec::new(),
        };
        match kind {
            IncidentKind::BatteryDrain => {
                incident.ramp_ms = dur_ms.or(until_ms.map(|u| u - at_ms)).unwrap_or(60_000);
                incident.until_ms = None;
                if let Some(l) = inc.level {
                    if !(0.0..=100.0).contains(&l) {
                        return Err(invalid(what, "field `level`: battery % in 0..=100".into()));
                    }
                }
            }
            IncidentKind::FloodRise => {
                incident.ramp_ms = secs_to_ms(inc.rise.unwrap_or(20.0))
                    .ok_or_else(|| invalid(what.clone(), "field `rise`: seconds ≥ 0".into()))?;
            }
            IncidentKind::HydrantLowPressure => {
                if let Some(l) = inc.level {
                    if !(0.0..0.14).contains(&l) {
                        return Err(invalid(what, "field `level`: MPa below 0.14".into()));
                    }
                }
            }
            IncidentKind::GasLeak => {
                if let Some(l) = inc.level {
                    if !(0.0..=100.0).contains(&l) {
                        return Err(invalid(what, "field `level`: %LEL in 0..=100".into()));
                    }
                }
            }
            IncidentKind::Set => {
                let Some(table) = inc.values else {
                    return Err(invalid(
                        what,
                        "kind `set` needs `values = { quantity = value, .. }`".into(),
                    ));
                };
                for (name, v) in table {
                    let q = Quantity::from_name(&name).map_err(|_| {
                        invalid(
                            what.clone(),
                            format!("field `values`: unknown quantity {name:?}"),
                        )
                    })?;
                    if !reg.kind.quantities().contains(&q) {
                        return Err(invalid(
                            what,
                            format!("field `values`: a {} has no {name}", reg.kind),
                        ));
                    }
                    let value = match (q, &v) {
                        (q, toml::Value::Boolean(b)) if q.is_bool() => Value::Bool(*b),
                        (Quantity::FaultCode | Quantity::Battery, toml::Value::Integer(i)) => {
                            Value::Int(*i)
                        }
                        (q, toml::Value::Integer(i))
                            if !q.is_bool() && q != Quantity::FaultCode =>
                        {
                            Value::Float(*i as f64)
                        }
                        (q, toml::Value::Float(f))
                            if !q.is_bool()
                                && q != Quantity::FaultCode
                                && q != Quantity::Battery
                                && f.is_finite() =>
                        {
                            Value::Float(*f)
                        }
                        _ => {
                            return Err(invalid(
                                what,
                                format!(
                                    "field `values.{name}`: {v} is not a valid {name} ({})",
                                    q.unit()
                                ),
                            ))
                        }
                    };
                    incident.values.push((q, value));
                }
                incident.values.sort_by_key(|(q, _)| *q);
            }
            _ => {}
        }
        match run.iter().position(|s| s.id == inc.sensor) {
            Some(idx) => {
                incident.sensor = idx;
                out.incidents.push(incident);
            }
            None => out
                .skipped
                .push(format!("{what}: {} (sensor not in this run)", kind.name())),
        }
    }
    out.incidents.sort_by_key(|i| (i.sensor, i.at_ms));

    for (i, f) in spec.fault.into_iter().enumerate() {
        let what = format!("fault #{} ({})", i + 1, f.kind);
        let kind = FaultKind::from_name(&f.kind).ok_or_else(|| {
            invalid(what.clone(), "field `kind`: one of corrupt, truncate, noise, duplicate, out_of_order, clock_skew, burst".into())
        })?;
        let profile =
            match &f.profile {
                Some(p) => Some(Dialect::from_name(p).ok_or_else(|| {
                    invalid(what.clone(), format!("field `profile`: unknown {p:?}"))
                })?),
                None => None,
            };
        if let Some(l) = &f.line {
            if l != "A" && l != "B" {
                return Err(invalid(
                    what,
                    format!("field `line`: {l:?} is neither \"A\" nor \"B\""),
                ));
            }
        }
        let mut target = Target {
            sensor: f.sensor.clone(),
            profile,
            line: f.line.clone(),
            gateway: f.gateway.clone(),
        };
        let sensor_reg = match &f.sensor {
            Some(id) => Some(registry.iter().find(|s| &s.id == id).ok_or_else(|| {
                invalid(
                    what.clone(),
                    format!("field `sensor`: {id} is not in the sensor registry"),
                )
            })?),
            None => None,
        };
        if kind.line_a_only() {
            let ok = profile.is_none_or(|p| p == Dialect::SerialBinary)
                && f.line.as_deref().is_none_or(|l| l == "A")
                && f.gateway.is_none()
                && sensor_reg.is_none_or(|s| s.dialect == Dialect::SerialBinary);
            if !ok {
                return Err(invalid(
                    what,
                    "corrupt, truncate and noise exist only on serial line A (serial-binary)"
                        .into(),
                ));
            }
            target.line = Some("A".into());
        }
        if kind == FaultKind::ClockSkew {
            if profile == Some(Dialect::Lumen)
                || sensor_reg.is_some_and(|s| s.dialect == Dialect::Lumen)
            {
                return Err(invalid(
                    what,
                    "lumen sends no timestamp: nothing to skew".into(),
                ));
            }
            if sensor_reg.is_some_and(|s| s.dialect == Dialect::Gridsense) {
                return Err(invalid(what, "a gridsense message carries its gateway's clock: skew `gateway = \"GW-..\"` instead".into()));
            }
        }
        let rate = f.rate.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&rate) {
            return Err(invalid(what, "field `rate`: a probability in 0..=1".into()));
        }
        let mut at_ms = Vec::new();
        match f.at {
            Some(Times::One(s)) => at_ms.push(
                secs_to_ms(s)
                    .ok_or_else(|| invalid(what.clone(), "field `at`: seconds ≥ 0".into()))?,
            ),
            Some(Times::Many(v)) => {
                for s in v {
                    at_ms.push(
                        secs_to_ms(s).ok_or_else(|| {
                            invalid(what.clone(), "field `at`: seconds ≥ 0".into())
                        })?,
                    );
                }
            }
            None => {}
        }
        at_ms.sort_unstable();
        let duration_ms =
            match f.duration {
                Some(d) => Some(secs_to_ms(d).filter(|d| *d > 0).ok_or_else(|| {
                    invalid(what.clone(), "field `duration`: > 0 seconds".into())
                })?),
                None => None,
            };
        if kind.is_window() {
            if at_ms.len() != 1 {
                return Err(invalid(
                    what,
                    "field `at`: one start time (seconds) for the window".into(),
                ));
            }
            if f.rate.is_some() {
                return Err(invalid(
                    what,
                    "field `rate`: not used by window faults (clock_skew, burst)".into(),
                ));
            }
            if kind == FaultKind::Burst && duration_ms.is_none() {
                return Err(invalid(
                    what,
                    "field `duration`: a burst needs the seconds it buffers".into(),
                ));
            }
        } else if f.rate.is_none() && at_ms.is_empty() {
            return Err(invalid(
                what,
                "give `rate` (per transmission) or `at` (one-shot times)".into(),
            ));
        }
        let offset_ms = match (kind, f.offset) {
            (FaultKind::ClockSkew, Some(o)) if o.is_finite() && o.abs() < 1.0e8 => {
                (o * 1000.0).round() as i64
            }
            (FaultKind::ClockSkew, _) => {
                return Err(invalid(
                    what,
                    "field `offset`: seconds the clock is off (may be negative)".into(),
                ))
            }
            (_, Some(_)) => {
                return Err(invalid(what, "field `offset`: only for clock_skew".into()))
            }
            _ => 0,
        };
        let bytes = f.bytes.unwrap_or((4, 32));
        if bytes.0 == 0 || bytes.0 > bytes.1 || bytes.1 > 4096 {
            return Err(invalid(
                what,
                "field `bytes`: [min, max] with 1 ≤ min ≤ max ≤ 4096".into(),
            ));
        }
        let from_ms = match f.from {
            Some(s) => secs_to_ms(s)
                .ok_or_else(|| invalid(what.clone(), "field `from`: seconds ≥ 0".into()))?,
            None => 0,
        };
        let until_ms = match f.until {
            Some(s) => Some(
                secs_to_ms(s)
                    .filter(|u| *u > from_ms)
                    .ok_or_else(|| invalid(what.clone(), "field `until`: after `from`".into()))?,
            ),
            None => None,
        };
        // A fault aimed at one sensor that is not in this run does nothing: say so.
        if let Some(id) = &f.sensor {
            if !run.iter().any(|s| &s.id == id) {
                out.skipped
                    .push(format!("{what}: sensor {id} not in this run"));
                continue;
            }
        }
        out.faults.push(Fault {
            kind,
            target,
            rate,
            at_ms,
            from_ms,
            until_ms,
            duration_ms,
            offset_ms,
            bytes,
        });
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
