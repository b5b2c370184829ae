//! Incidents: what happens to a sensor, and the `[[incident]]` entries that schedule them.

use super::{secs_to_ms, Added, Entries, Invalid, Scenario, ScenarioError};
use crate::sensors::{Sensor, SensorType};
use protocol::{Quantity, Value};
use serde::Deserialize;

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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IncidentSpec {
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
/// Validates `[[incident]]` number `index` (from 0) and adds it to `out`, or notes it skipped
/// when its sensor is not in this run.
pub(super) fn add(inc: IncidentSpec, index: usize, cx: &Entries<'_>, out: &mut Scenario) -> Added {
    let (invalid, registry, run) = (cx.invalid, cx.registry, cx.run);
    let what = format!("incident #{} (sensor {})", index + 1, inc.sensor);
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
    let (at_ms, dur_ms, until_ms) = times(&inc, &what, invalid)?;
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
    shape(
        &mut incident,
        inc.rise,
        inc.values,
        dur_ms,
        reg,
        &what,
        invalid,
    )?;
    match run.iter().position(|s| s.id == inc.sensor) {
        Some(idx) => {
            incident.sensor = idx;
            out.incidents.push(incident);
        }
        None => out
            .skipped
            .push(format!("{what}: {} (sensor not in this run)", kind.name())),
    }
    Ok(())
}

/// `at`, `duration` and `until`: the onset, the duration if given, and the end.
fn times(
    inc: &IncidentSpec,
    what: &str,
    invalid: &Invalid<'_>,
) -> Result<(u64, Option<u64>, Option<u64>), ScenarioError> {
    let what = what.to_string();
    let at_ms = secs_to_ms(inc.at)
        .ok_or_else(|| invalid(what.clone(), "field `at`: not a time in seconds ≥ 0".into()))?;
    let dur_ms = match inc.duration {
        Some(d) => Some(secs_to_ms(d).filter(|d| *d > 0).ok_or_else(|| {
            invalid(what.clone(), "field `duration`: must be > 0 seconds".into())
        })?),
        None => None,
    };
    let until_ms =
        match (inc.until, dur_ms) {
            (Some(_), Some(_)) => {
                return Err(invalid(what, "give `duration` or `until`, not both".into()))
            }
            (Some(u), None) => Some(secs_to_ms(u).filter(|u| *u > at_ms).ok_or_else(|| {
                invalid(what.clone(), "field `until`: must be after `at`".into())
            })?),
            (None, Some(d)) => Some(at_ms + d),
            (None, None) => None,
        };
    Ok((at_ms, dur_ms, until_ms))
}

/// The parameters particular to the incident's kind: ramps, levels, forced values.
fn shape(
    incident: &mut Incident,
    rise: Option<f64>,
    values: Option<toml::Table>,
    dur_ms: Option<u64>,
    reg: &Sensor,
    what: &str,
    invalid: &Invalid<'_>,
) -> Result<(), ScenarioError> {
    let what = what.to_string();
    let (at_ms, until_ms) = (incident.at_ms, incident.until_ms);
    match incident.kind {
        IncidentKind::BatteryDrain => {
            incident.ramp_ms = dur_ms.or(until_ms.map(|u| u - at_ms)).unwrap_or(60_000);
            incident.until_ms = None;
            if let Some(l) = incident.level {
                if !(0.0..=100.0).contains(&l) {
                    return Err(invalid(what, "field `level`: battery % in 0..=100".into()));
                }
            }
        }
        IncidentKind::FloodRise => {
            incident.ramp_ms = secs_to_ms(rise.unwrap_or(20.0))
                .ok_or_else(|| invalid(what.clone(), "field `rise`: seconds ≥ 0".into()))?;
        }
        IncidentKind::HydrantLowPressure => {
            if let Some(l) = incident.level {
                if !(0.0..0.14).contains(&l) {
                    return Err(invalid(what, "field `level`: MPa below 0.14".into()));
                }
            }
        }
        IncidentKind::GasLeak => {
            if let Some(l) = incident.level {
                if !(0.0..=100.0).contains(&l) {
                    return Err(invalid(what, "field `level`: %LEL in 0..=100".into()));
                }
            }
        }
        IncidentKind::Set => {
            let Some(table) = values else {
                return Err(invalid(
                    what,
                    "kind `set` needs `values = { quantity = value, .. }`".into(),
                ));
            };
            incident.values = forced_values(table, reg, &what, invalid)?;
        }
        _ => {}
    }
    Ok(())
}

/// `set`: the `values` table, each a quantity of the sensor with a value of its type; sorted.
fn forced_values(
    table: toml::Table,
    reg: &Sensor,
    what: &str,
    invalid: &Invalid<'_>,
) -> Result<Vec<(Quantity, Value)>, ScenarioError> {
    let what = what.to_string();
    let mut values = Vec::with_capacity(table.len());
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
            (Quantity::FaultCode | Quantity::Battery, toml::Value::Integer(i)) => Value::Int(*i),
            (q, toml::Value::Integer(i)) if !q.is_bool() && q != Quantity::FaultCode => {
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
        values.push((q, value));
    }
    values.sort_by_key(|(q, _)| *q);
    Ok(values)
}
