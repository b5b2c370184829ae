//! Vendor payloads → canonical [`Reading`]s: profile lookup, unit conversion, validation.

pub mod dedup;
pub mod profile;
pub mod validate;

use crate::config::{Calibration, Config, ConfigError};
use profile::{mask_of, Profile, ProfileKind, QuantityMask, Reject, Report};
use protocol::uplink::Reading;
use protocol::{Quantity, SensorFrame};
use std::collections::HashMap;
use std::path::Path;

/// Every profile of this edge, compiled. Shared read-only by all sources.
pub struct Normalizer {
    /// JSON profiles in match order; the built-in canonical one is last.
    json: Vec<Profile>,
    /// The text-line profile for serial `text` ports.
    text: Option<Profile>,
    calibration: HashMap<(String, Quantity), Calibration>,
    default_urgent: QuantityMask,
}

impl Normalizer {
    /// Loads every `*.toml` in `dir` (sorted by name) plus the built-in canonical profile.
    pub fn load(dir: &Path, cfg: &Config) -> Result<Normalizer, ConfigError> {
        let profiles = Profile::load_dir(dir)?;
        let mut calibration = HashMap::new();
        for (sensor, per_q) in &cfg.calibration {
            for (q, c) in per_q {
                if let Ok(q) = Quantity::from_name(q) {
                    calibration.insert((sensor.clone(), q), *c);
                }
            }
        }
        let default_urgent = cfg
            .validate
            .urgent
            .iter()
            .filter_map(|q| Quantity::from_name(q).ok())
            .fold(0, |m, q| m | mask_of(q));
        Ok(Normalizer::new(profiles, calibration, default_urgent))
    }

    pub fn new(
        profiles: Vec<Profile>,
        calibration: HashMap<(String, Quantity), Calibration>,
        default_urgent: QuantityMask,
    ) -> Normalizer {
        let mut json = Vec::new();
        let mut text = None;
        for p in profiles {
            match p.kind {
                ProfileKind::Json => json.push(p),
                ProfileKind::TextLine => text = Some(p),
            }
        }
        json.push(Profile::canonical(default_urgent));
        Normalizer {
            json,
            text,
            calibration,
            default_urgent,
        }
    }

    /// Topic filters to subscribe to on a site broker.
    pub fn topics(&self) -> Vec<String> {
        self.json.iter().filter_map(|p| p.topic.clone()).collect()
    }

    pub fn profile_names(&self) -> Vec<String> {
        self.json
            .iter()
            .chain(self.text.iter())
            .map(|p| p.name.clone())
            .collect()
    }

    /// One MQTT message → reports. Returns the number of skipped values.
    pub fn mqtt(
        &self,
        topic: &str,
        payload: &[u8],
        out: &mut Vec<Report>,
    ) -> Result<usize, Reject> {
        let p = self
            .json
            .iter()
            .find(|p| p.matches(topic))
            .ok_or(Reject::NoProfile)?;
        p.normalize_json(topic, payload, &self.calibration, out)
    }

    /// One text line → a report. Returns the number of skipped values too.
    pub fn text_line(&self, line: &str) -> Result<(Report, usize), Reject> {
        let p = self.text.as_ref().ok_or(Reject::NoProfile)?;
        p.normalize_text(line, &self.calibration)
    }

    /// One binary serial frame (already canonical) → a report.
    pub fn frame(&self, f: &SensorFrame<'_>) -> Report {
        Report {
            sensor: f.sensor_id.to_string(),
            seq: Some(u64::from(f.seq)),
            ts_ns: f
                .ts_ms
                .and_then(|ms| i64::try_from(ms).ok())
                .and_then(|ms| ms.checked_mul(1_000_000)),
            values: f
                .values
                .iter()
                .map(|m| {
                    let v = match self.calibration.get(&(f.sensor_id.to_string(), m.quantity)) {
                        Some(c) if !m.quantity.is_bool() && m.quantity != Quantity::FaultCode => {
                            protocol::Value::Float(m.value.as_f64() * c.scale + c.offset)
                        }
                        _ => m.value,
                    };
                    (m.quantity, v)
                })
                .collect(),
            urgent: self.default_urgent,
        }
    }
}

/// Convenience for tests and benches: normalize + validate a whole MQTT message.
pub fn readings_of(
    n: &Normalizer,
    v: &mut validate::Validator,
    topic: &str,
    payload: &[u8],
    recv_ns: i64,
) -> Result<Vec<Reading>, Reject> {
    let mut reports = Vec::new();
    n.mqtt(topic, payload, &mut reports)?;
    let mut out = Vec::new();
    for r in &reports {
        v.validate(r, recv_ns, &mut out);
    }
    Ok(out)
}
