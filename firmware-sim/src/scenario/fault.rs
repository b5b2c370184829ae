//! Wire faults: what can go wrong on the way to the receiver, and the `[[fault]]` entries that
//! inject them. A Modbus slave's own faults (mute, slow, CRC-corrupted answers, exception codes)
//! are entries too, aimed at one Modbus sensor and active in a `from`/`until` window.

use super::{secs_to_ms, Added, Entries, Invalid, Scenario, ScenarioError};
use crate::sensors::{Dialect, Sensor};
use serde::Deserialize;

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
    /// Modbus: the slave does not answer (dead, unpowered, wrong unit id).
    Mute,
    /// Modbus: the slave answers after `delay` seconds (past the master's timeout it looks mute).
    Slow,
    /// Modbus: this fraction (`rate`) of the slave's answers carry a corrupted CRC.
    Crc,
    /// Modbus: the slave answers every read with exception `code`.
    Exception,
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
            "mute" => FaultKind::Mute,
            "slow" => FaultKind::Slow,
            "crc" => FaultKind::Crc,
            "exception" => FaultKind::Exception,
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

    /// A Modbus slave's faults (`output::modbus::device`), not the report engine's.
    pub const fn modbus_only(self) -> bool {
        matches!(
            self,
            FaultKind::Mute | FaultKind::Slow | FaultKind::Crc | FaultKind::Exception
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
    /// `slow`: how late the slave answers, ms.
    pub delay_ms: u64,
    /// `exception`: the exception code the slave answers with.
    pub code: u8,
}

impl Fault {
    /// The window of a `burst` or `clock_skew`, scenario ms.
    pub fn window(&self) -> (u64, Option<u64>) {
        let at = self.at_ms.first().copied().unwrap_or(0);
        (at, self.duration_ms.map(|d| at + d))
    }
}
#[derive(Deserialize)]
#[serde(untagged)]
enum Times {
    One(f64),
    Many(Vec<f64>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FaultSpec {
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
    delay: Option<f64>,
    code: Option<u8>,
}
/// Validates `[[fault]]` number `index` (from 0) and adds it to `out`, or notes it skipped
/// when it aims at one sensor that is not in this run.
pub(super) fn add(f: FaultSpec, index: usize, cx: &Entries<'_>, out: &mut Scenario) -> Added {
    let (invalid, registry, run) = (cx.invalid, cx.registry, cx.run);
    let what = format!("fault #{} ({})", index + 1, f.kind);
    let kind = FaultKind::from_name(&f.kind).ok_or_else(|| {
        invalid(what.clone(), "field `kind`: one of corrupt, truncate, noise, duplicate, out_of_order, clock_skew, burst, or for a Modbus sensor mute, slow, crc, exception".into())
    })?;
    let target = target(&f, kind, &what, invalid, registry)?;
    let rate = f.rate.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&rate) {
        return Err(invalid(what, "field `rate`: a probability in 0..=1".into()));
    }
    let (delay_ms, code) = modbus_fields(&f, kind, &what, invalid)?;
    let (at_ms, duration_ms) = if kind.modbus_only() {
        (Vec::new(), None)
    } else {
        times(&f, kind, &what, invalid)?
    };
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
        (_, Some(_)) => return Err(invalid(what, "field `offset`: only for clock_skew".into())),
        _ => 0,
    };
    let bytes = f.bytes.unwrap_or((4, 32));
    if bytes.0 == 0 || bytes.0 > bytes.1 || bytes.1 > 4096 {
        return Err(invalid(
            what,
            "field `bytes`: [min, max] with 1 ≤ min ≤ max ≤ 4096".into(),
        ));
    }
    let (from_ms, until_ms) = active_range(&f, &what, invalid)?;
    // A fault aimed at one sensor that is not in this run does nothing: say so.
    if let Some(id) = &f.sensor {
        if !run.iter().any(|s| &s.id == id) {
            out.skipped
                .push(format!("{what}: sensor {id} not in this run"));
            return Ok(());
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
        delay_ms,
        code,
    });
    Ok(())
}

/// `delay` (slow), `code` (exception) and what a Modbus fault takes: one Modbus sensor, a
/// `from`/`until` window, `rate` for crc only.
fn modbus_fields(
    f: &FaultSpec,
    kind: FaultKind,
    what: &str,
    invalid: &Invalid<'_>,
) -> Result<(u64, u8), ScenarioError> {
    let what = what.to_string();
    if !kind.modbus_only() {
        if f.delay.is_some() || f.code.is_some() {
            return Err(invalid(
                what,
                "fields `delay` and `code`: only for the Modbus faults slow and exception".into(),
            ));
        }
        return Ok((0, 0));
    }
    if f.at.is_some() || f.duration.is_some() {
        return Err(invalid(
            what,
            "fields `at`/`duration`: a Modbus fault lasts from `from` to `until` (seconds)".into(),
        ));
    }
    if (kind == FaultKind::Crc) != f.rate.is_some() {
        return Err(invalid(
            what,
            "field `rate`: the fraction of answers corrupted, for crc only".into(),
        ));
    }
    let delay_ms = match (kind, f.delay) {
        (FaultKind::Slow, Some(d)) => secs_to_ms(d)
            .filter(|d| *d > 0 && *d <= 60_000)
            .ok_or_else(|| invalid(what.clone(), "field `delay`: seconds in (0, 60]".into()))?,
        (FaultKind::Slow, None) => {
            return Err(invalid(
                what,
                "field `delay`: the seconds a slow slave takes to answer".into(),
            ))
        }
        (_, Some(_)) => return Err(invalid(what, "field `delay`: only for slow".into())),
        _ => 0,
    };
    let code = match (kind, f.code) {
        (FaultKind::Exception, Some(c)) if c > 0 => c,
        (FaultKind::Exception, _) => {
            return Err(invalid(
                what,
                "field `code`: the exception code, e.g. 2 (illegal data address) or 6 (busy)"
                    .into(),
            ))
        }
        (_, Some(_)) => return Err(invalid(what, "field `code`: only for exception".into())),
        _ => 0,
    };
    Ok((delay_ms, code))
}

/// The selectors (`sensor`, `profile`, `line`, `gateway`), checked against where the kind of
/// fault can happen at all.
fn target(
    f: &FaultSpec,
    kind: FaultKind,
    what: &str,
    invalid: &Invalid<'_>,
    registry: &[Sensor],
) -> Result<Target, ScenarioError> {
    let what = what.to_string();
    let profile = match &f.profile {
        Some(p) => Some(
            Dialect::from_name(p)
                .ok_or_else(|| invalid(what.clone(), format!("field `profile`: unknown {p:?}")))?,
        ),
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
    let modbus_sensor = sensor_reg.is_some_and(|s| s.dialect == Dialect::Modbus);
    if kind.modbus_only() != modbus_sensor {
        return Err(invalid(
            what,
            "mute, slow, crc and exception are a Modbus slave's faults, for one Modbus sensor (`sensor = \"..\"`); a Modbus slave takes no other".into(),
        ));
    }
    if kind.modbus_only() && (f.profile.is_some() || f.line.is_some() || f.gateway.is_some()) {
        return Err(invalid(
            what,
            "a Modbus fault names its `sensor` only".into(),
        ));
    }
    if kind.line_a_only() {
        let ok = profile.is_none_or(|p| p == Dialect::SerialBinary)
            && f.line.as_deref().is_none_or(|l| l == "A")
            && f.gateway.is_none()
            && sensor_reg.is_none_or(|s| s.dialect == Dialect::SerialBinary);
        if !ok {
            return Err(invalid(
                what,
                "corrupt, truncate and noise exist only on serial line A (serial-binary)".into(),
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
    Ok(target)
}

/// `at` (one-shot times, or a window's start) and `duration`, checked against the kind.
fn times(
    f: &FaultSpec,
    kind: FaultKind,
    what: &str,
    invalid: &Invalid<'_>,
) -> Result<(Vec<u64>, Option<u64>), ScenarioError> {
    let what = what.to_string();
    let mut at_ms = Vec::new();
    match &f.at {
        Some(Times::One(s)) => at_ms.push(
            secs_to_ms(*s)
                .ok_or_else(|| invalid(what.clone(), "field `at`: seconds ≥ 0".into()))?,
        ),
        Some(Times::Many(v)) => {
            for s in v {
                at_ms.push(
                    secs_to_ms(*s)
                        .ok_or_else(|| invalid(what.clone(), "field `at`: seconds ≥ 0".into()))?,
                );
            }
        }
        None => {}
    }
    at_ms.sort_unstable();
    let duration_ms = match f.duration {
        Some(d) => Some(
            secs_to_ms(d)
                .filter(|d| *d > 0)
                .ok_or_else(|| invalid(what.clone(), "field `duration`: > 0 seconds".into()))?,
        ),
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
    Ok((at_ms, duration_ms))
}

/// `from` and `until`: when a rate fault is active.
fn active_range(
    f: &FaultSpec,
    what: &str,
    invalid: &Invalid<'_>,
) -> Result<(u64, Option<u64>), ScenarioError> {
    let from_ms = match f.from {
        Some(s) => secs_to_ms(s)
            .ok_or_else(|| invalid(what.to_string(), "field `from`: seconds ≥ 0".into()))?,
        None => 0,
    };
    let until_ms = match f.until {
        Some(s) => Some(
            secs_to_ms(s)
                .filter(|u| *u > from_ms)
                .ok_or_else(|| invalid(what.to_string(), "field `until`: after `from`".into()))?,
        ),
        None => None,
    };
    Ok((from_ms, until_ms))
}
