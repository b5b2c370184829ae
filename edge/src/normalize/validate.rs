//! Validation: marks quality instead of dropping, and fixes untrustworthy clocks.
//!
//! * value outside the quantity's physical range → `bad`
//! * jump from the previous value larger than the quantity's plausible step → `suspect`
//! * timestamp missing or more than `future_skew_max_ms` ahead → edge receive time + flag
//! * repeated (sensor, seq) → dropped and counted (the only thing validation drops)
//! * sensor not in the registry → forwarded, flagged `unregistered`
//! * more reports from one sensor than its token bucket allows → dropped, counted
//!   (`rate_limited`): one flooding sensor cannot fill the buffer for everyone else

use super::dedup::Dedup;
use super::profile::{mask_of, QuantityMask, Report};
use protocol::uplink::{Quality, Reading, ReadingFlags, SensorId};
use protocol::{Quantity, Value};
use std::collections::{HashMap, HashSet};

/// Physical range and plausible step per quantity (canonical units). `None`: no check.
/// Defaults from the sensor catalogue; documented in edge/README.md.
pub fn default_limits(q: Quantity) -> (Option<(f64, f64)>, Option<f64>) {
    use Quantity::*;
    match q {
        Tilt => (Some((0.0, 180.0)), None),
        WaterLevel => (Some((0.0, 1000.0)), Some(300.0)),
        Battery | FillLevel | Humidity => (Some((0.0, 100.0)), None),
        Voltage => (Some((0.0, 500.0)), None),
        Current => (Some((0.0, 100.0)), None),
        Power => (Some((0.0, 50_000.0)), None),
        Pressure => (Some((0.0, 4.0)), Some(1.5)),
        Smoke => (Some((0.0, 100.0)), None),
        Gas => (Some((0.0, 100.0)), None),
        ResidualCurrent => (Some((0.0, 10_000.0)), None),
        CableTemp => (Some((-40.0, 250.0)), Some(80.0)),
        Pm25 => (Some((0.0, 2000.0)), None),
        Noise => (Some((0.0, 160.0)), None),
        Temperature => (Some((-60.0, 90.0)), Some(30.0)),
        FaultCode => (Some((0.0, i32::MAX as f64)), None),
        _ => (None, None),
    }
}

/// What validation did with one report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Dropped by the per-sensor flood guard (nothing else was checked).
    pub rate_limited: bool,
    pub duplicate: bool,
    pub ts_from_edge: bool,
    pub unregistered: bool,
    pub bad: u32,
    pub suspect: u32,
}

/// Range and step per quantity code.
pub type Limits = [(Option<(f64, f64)>, Option<f64>); 24];

/// The built-in table, with `overrides` (from `[validate.limits]`) applied.
pub fn limits_with(overrides: &[(Quantity, crate::config::LimitSpec)]) -> Limits {
    let mut t: Limits = [(None, None); 24];
    for q in Quantity::ALL {
        t[q.code() as usize] = default_limits(*q);
    }
    for (q, o) in overrides {
        let (range, step) = &mut t[q.code() as usize];
        let (lo, hi) = range.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
        let lo = o.min.unwrap_or(lo);
        let hi = o.max.unwrap_or(hi);
        *range = (lo.is_finite() || hi.is_finite()).then_some((lo, hi));
        if o.jump.is_some() {
            *step = o.jump;
        }
    }
    t
}

/// Per-sensor flood guard: a token bucket of `burst_reports_max` reports refilled at
/// `reports_per_s_max`. A non-positive or non-finite rate disables it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub reports_per_s_max: f64,
    pub burst_reports_max: u32,
}

/// Sensors whose bucket is tracked; past this (a flood of invented sensor ids) the table is
/// cleared, which only ever errs towards accepting.
const RATE_SENSORS_MAX: usize = 100_000;

pub struct Validator {
    limits: Limits,
    rate: Option<RateLimit>,
    /// sensor → (tokens left, edge time of the last refill in ns).
    buckets: HashMap<Box<str>, (f64, i64)>,
    registered: HashSet<String>,
    dedup: Dedup,
    /// Last good value per sensor and quantity code (NaN: none yet), for the jump check.
    last: HashMap<Box<str>, [f64; 24]>,
    /// Last receive-time stamp given to each clockless sensor (whole ms).
    edge_stamps: HashMap<Box<str>, i64>,
    future_skew_ns: i64,
    default_urgent: QuantityMask,
}

impl Validator {
    pub fn new(
        registered: HashSet<String>,
        future_skew_ms: u64,
        default_urgent: QuantityMask,
    ) -> Self {
        Validator {
            limits: limits_with(&[]),
            rate: None,
            buckets: HashMap::new(),
            registered,
            dedup: Dedup::default(),
            last: HashMap::new(),
            edge_stamps: HashMap::new(),
            future_skew_ns: (future_skew_ms as i64).saturating_mul(1_000_000),
            default_urgent,
        }
    }

    /// Replaces the range/step table (config overrides).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Enables the per-sensor flood guard.
    pub fn with_rate_limit(mut self, rate: RateLimit) -> Self {
        let on = rate.reports_per_s_max.is_finite() && rate.reports_per_s_max > 0.0;
        self.rate = on.then_some(rate);
        self
    }

    /// Takes one token from `sensor`'s bucket; false when it is empty.
    fn admit(&mut self, sensor: &str, recv_ns: i64) -> bool {
        let Some(rate) = self.rate else {
            return true;
        };
        let cap = f64::from(rate.burst_reports_max.max(1));
        if !self.buckets.contains_key(sensor) {
            if self.buckets.len() >= RATE_SENSORS_MAX {
                self.buckets.clear();
            }
            self.buckets.insert(sensor.into(), (cap, recv_ns));
        }
        let Some((tokens, at)) = self.buckets.get_mut(sensor) else {
            return true;
        };
        let elapsed_s = (recv_ns.saturating_sub(*at)).max(0) as f64 / 1e9;
        *tokens = (*tokens + elapsed_s * rate.reports_per_s_max).min(cap);
        *at = recv_ns;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The receive time as a sensor's timestamp: whole milliseconds, and later than the last
    /// stamp this sensor got, so two reports arriving in one millisecond stay two readings in
    /// every store — a reading is identified by (sensor, quantity, ts), and millisecond stores
    /// (VictoriaMetrics) would merge them.
    fn edge_stamp(&mut self, sensor: &str, recv_ns: i64) -> i64 {
        const MS: i64 = 1_000_000;
        let mut ts = recv_ns.div_euclid(MS) * MS;
        match self.edge_stamps.get_mut(sensor) {
            Some(last) => {
                if ts <= *last {
                    ts = *last + MS;
                }
                *last = ts;
            }
            None => {
                self.edge_stamps.insert(sensor.into(), ts);
            }
        }
        ts
    }

    pub fn is_registered(&self, sensor: &str) -> bool {
        self.registered.contains(sensor)
    }

    /// Validates one report received at `recv_ns` (edge clock) and appends its readings.
    pub fn validate(&mut self, r: &Report, recv_ns: i64, out: &mut Vec<Reading>) -> Outcome {
        let mut o = Outcome::default();
        if !self.admit(&r.sensor, recv_ns) {
            o.rate_limited = true;
            return o;
        }
        if let Some(seq) = r.seq {
            if !self.dedup.first_time(&r.sensor, seq, r.ts_ns) {
                o.duplicate = true;
                return o;
            }
        }
        let mut flags = ReadingFlags::default();
        let ts_ns = match r.ts_ns {
            Some(ts) if ts <= recv_ns.saturating_add(self.future_skew_ns) => ts,
            _ => {
                o.ts_from_edge = true;
                flags = flags.with(ReadingFlags::TS_FROM_EDGE);
                self.edge_stamp(&r.sensor, recv_ns)
            }
        };
        if !self.registered.contains(r.sensor.as_str()) {
            o.unregistered = true;
            flags = flags.with(ReadingFlags::UNREGISTERED);
        }
        let urgent = if r.urgent != 0 {
            r.urgent
        } else {
            self.default_urgent
        };
        if !self.last.contains_key(r.sensor.as_str()) {
            self.last.insert(r.sensor.as_str().into(), [f64::NAN; 24]);
        }
        let last = self
            .last
            .get_mut(r.sensor.as_str())
            .expect("inserted above");
        for &(q, v) in &r.values {
            let quality = quality(&self.limits, last, q, v);
            match quality {
                Quality::Bad => o.bad += 1,
                Quality::Suspect => o.suspect += 1,
                Quality::Good => {}
            }
            let f = if urgent & mask_of(q) != 0 {
                flags.with(ReadingFlags::URGENT)
            } else {
                flags
            };
            out.push(Reading {
                sensor: SensorId(r.sensor.clone()),
                quantity: q,
                value: v,
                ts_ns,
                quality,
                flags: f,
            });
        }
        o
    }

    pub fn sensors_seen(&self) -> usize {
        self.dedup.sensors()
    }
}

fn quality(limits: &Limits, last: &mut [f64; 24], q: Quantity, v: Value) -> Quality {
    if !v.is_finite() {
        return Quality::Bad;
    }
    if q.is_bool() {
        return Quality::Good;
    }
    let x = v.as_f64();
    let (range, step) = limits[q.code() as usize];
    if let Some((lo, hi)) = range {
        if x < lo || x > hi {
            return Quality::Bad;
        }
    }
    let Some(step) = step else {
        return Quality::Good;
    };
    // Only good values become the reference, so after one spike the return to normal is
    // not marked suspect too.
    let prev = &mut last[q.code() as usize];
    if !prev.is_nan() && (x - *prev).abs() > step {
        Quality::Suspect
    } else {
        *prev = x;
        Quality::Good
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitSpec;

    #[test]
    fn configured_limits_override_the_built_in_table() {
        let t = limits_with(&[(
            Quantity::Pressure,
            LimitSpec {
                min: None,
                max: Some(2.5),
                jump: Some(0.5),
            },
        )]);
        assert_eq!(
            t[Quantity::Pressure.code() as usize],
            (Some((0.0, 2.5)), Some(0.5))
        );
        let report = Report {
            sensor: "HY-1".into(),
            seq: None,
            ts_ns: Some(1),
            values: vec![(Quantity::Pressure, Value::Float(3.0))],
            urgent: 0,
        };
        let mut v = Validator::new(HashSet::new(), 300_000, 0).with_limits(t);
        let mut out = Vec::new();
        v.validate(&report, 2, &mut out);
        assert_eq!(out[0].quality, Quality::Bad);
    }

    #[test]
    fn a_flooding_sensor_is_cut_to_its_rate_and_others_are_untouched() {
        let mut v = Validator::new(HashSet::new(), 300_000, 0).with_rate_limit(RateLimit {
            reports_per_s_max: 10.0,
            burst_reports_max: 5,
        });
        let report = |sensor: &str| Report {
            sensor: sensor.into(),
            seq: None,
            ts_ns: Some(1),
            values: vec![(Quantity::Temperature, Value::Float(20.0))],
            urgent: 0,
        };
        let mut out = Vec::new();
        // 20 reports within the same instant: the burst of 5 passes, 15 are cut.
        let limited = (0..20)
            .filter(|_| v.validate(&report("FLOOD"), 1_000, &mut out).rate_limited)
            .count();
        assert_eq!((out.len(), limited), (5, 15));
        // Another sensor has its own bucket.
        assert!(!v.validate(&report("QUIET"), 1_000, &mut out).rate_limited);
        // 0.5 s later the flooding sensor has earned 5 tokens back.
        let later = 1_000 + 500_000_000;
        let admitted = (0..10)
            .filter(|_| !v.validate(&report("FLOOD"), later, &mut out).rate_limited)
            .count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn clockless_reports_in_one_millisecond_get_distinct_millisecond_stamps() {
        let mut v = Validator::new(HashSet::new(), 300_000, 0);
        let report = |sensor: &str| Report {
            sensor: sensor.into(),
            seq: None,
            ts_ns: None,
            values: vec![(Quantity::Current, Value::Float(0.4))],
            urgent: 0,
        };
        let ms = 1_000_000;
        let t = 1_732_500_000_123 * ms;
        let mut out = Vec::new();
        // Three reports 0.23 ms apart, then one long after: whole, increasing milliseconds.
        for recv in [t + 100_000, t + 330_000, t + 560_000, t + 50 * ms + 7] {
            assert!(v.validate(&report("SL-0024"), recv, &mut out).ts_from_edge);
        }
        let stamps: Vec<i64> = out.iter().map(|r| r.ts_ns).collect();
        assert_eq!(stamps, vec![t, t + ms, t + 2 * ms, t + 50 * ms]);
        // Another sensor in the same millisecond keeps the receive millisecond.
        v.validate(&report("SL-0025"), t + 400_000, &mut out);
        assert_eq!(out.last().unwrap().ts_ns, t);
    }
}
