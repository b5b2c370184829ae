//! Sensor profiles: how one vendor dialect maps onto canonical quantities and units.
//!
//! A profile is data (`config/profiles/*.toml`), not code, so a new vendor is a new file.
//! The canonical JSON dialect (`sensors/{id}/readings`) is a built-in profile that needs no
//! file. Profiles are compiled once at start-up into [`Profile`], which never fails on input:
//! every problem with a payload is a [`Reject`] counted by reason.//!
//! `file.rs` is the profile file and its compilation; `convert.rs` turns raw JSON values and
//! timestamps into canonical ones; here the compiled profile applies to payloads.

mod convert;
mod file;

pub use convert::{parse_rfc3339, parse_ts};
pub use file::{FieldSpec, ProfileFile};

use crate::config::Calibration;
use convert::{convert_json, int_ts, lookup};
use protocol::{Quantity, Value};
use serde::Deserialize;
use std::collections::HashMap;

/// The quantity set as a bitmask (24 quantities fit in a u32).
pub type QuantityMask = u32;

pub fn mask_of(q: Quantity) -> QuantityMask {
    1 << q.code()
}

/// How a payload's timestamp is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TsUnit {
    S,
    Ms,
    Us,
    Ns,
    /// An RFC 3339 string, e.g. `2024-11-25T02:00:00.123Z`.
    Rfc3339,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileKind {
    /// JSON over MQTT.
    #[default]
    Json,
    /// `key=value` lines on a serial port.
    TextLine,
}

/// Why a payload produced no readings. The name is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("no profile matches the topic")]
    NoProfile,
    #[error("payload is not valid JSON / UTF-8")]
    Syntax,
    #[error("sensor id missing or not a string")]
    MissingSensor,
    #[error("timestamp not understood")]
    BadTimestamp,
    #[error("sequence number not a non-negative integer")]
    BadSeq,
    #[error("no usable measurement in the payload")]
    NoValues,
}

impl Reject {
    pub const ALL: [Reject; 6] = [
        Reject::NoProfile,
        Reject::Syntax,
        Reject::MissingSensor,
        Reject::BadTimestamp,
        Reject::BadSeq,
        Reject::NoValues,
    ];
    pub const fn reason(self) -> &'static str {
        match self {
            Reject::NoProfile => "no_profile",
            Reject::Syntax => "syntax",
            Reject::MissingSensor => "missing_sensor",
            Reject::BadTimestamp => "bad_timestamp",
            Reject::BadSeq => "bad_seq",
            Reject::NoValues => "no_values",
        }
    }
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// One sensor's report after unit conversion, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub sensor: String,
    pub seq: Option<u64>,
    /// Sensor clock, UTC ns; `None` if the dialect or message carries none.
    pub ts_ns: Option<i64>,
    pub values: Vec<(Quantity, Value)>,
    /// Urgent quantities for this sensor's profile.
    pub urgent: QuantityMask,
}

#[derive(Debug, Clone)]
struct Field {
    quantity: Quantity,
    scale: f64,
    offset: f64,
    trues: Vec<String>,
    falses: Vec<String>,
}

/// A compiled profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub kind: ProfileKind,
    pub topic: Option<String>,
    topic_levels: Vec<String>,
    sensor_field: Option<Vec<String>>,
    sensor_topic_level: Option<usize>,
    seq_field: Option<Vec<String>>,
    ts_field: Option<Vec<String>>,
    ts_unit: TsUnit,
    values_field: Vec<String>,
    items_field: Option<Vec<String>>,
    pub urgent: QuantityMask,
    fields: HashMap<String, Field>,
    calibration: HashMap<(String, Quantity), Calibration>,
    aliases: HashMap<String, Quantity>,
    units: HashMap<(Option<Quantity>, String), f64>,
    sensor_key: String,
    seq_key: String,
    ts_key: String,
}

impl Profile {
    /// True if `topic` matches this profile's filter.
    pub fn matches(&self, topic: &str) -> bool {
        if self.topic_levels.is_empty() {
            return false;
        }
        let mut levels = topic.split('/');
        for f in &self.topic_levels {
            match f.as_str() {
                "#" => return true,
                "+" => {
                    if levels.next().is_none() {
                        return false;
                    }
                }
                lit => {
                    if levels.next() != Some(lit) {
                        return false;
                    }
                }
            }
        }
        levels.next().is_none()
    }

    /// Normalizes one JSON message into reports; returns how many values were skipped
    /// (unknown field, wrong type) so the caller can count them.
    pub fn normalize_json(
        &self,
        topic: &str,
        payload: &[u8],
        calib: &HashMap<(String, Quantity), Calibration>,
        out: &mut Vec<Report>,
    ) -> Result<usize, Reject> {
        let doc: serde_json::Value = serde_json::from_slice(payload).map_err(|_| Reject::Syntax)?;
        let ts_ns = match &self.ts_field {
            Some(p) => match lookup(&doc, p) {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => Some(parse_ts(v, self.ts_unit).ok_or(Reject::BadTimestamp)?),
            },
            None => None,
        };
        let mut skipped = 0;
        match &self.items_field {
            None => {
                out.push(self.report(topic, &doc, ts_ns, calib, &mut skipped)?);
            }
            Some(p) => {
                let items = lookup(&doc, p)
                    .and_then(|v| v.as_array())
                    .ok_or(Reject::NoValues)?;
                for item in items {
                    match self.report(topic, item, ts_ns, calib, &mut skipped) {
                        Ok(r) => out.push(r),
                        // One bad item costs that item only.
                        Err(_) => skipped += 1,
                    }
                }
                if out.is_empty() {
                    return Err(Reject::NoValues);
                }
            }
        }
        Ok(skipped)
    }

    fn report(
        &self,
        topic: &str,
        obj: &serde_json::Value,
        ts_ns: Option<i64>,
        calib: &HashMap<(String, Quantity), Calibration>,
        skipped: &mut usize,
    ) -> Result<Report, Reject> {
        let sensor = match (&self.sensor_field, self.sensor_topic_level) {
            (Some(p), _) => lookup(obj, p)
                .and_then(|v| v.as_str())
                .ok_or(Reject::MissingSensor)?,
            (None, Some(level)) => topic.split('/').nth(level).ok_or(Reject::MissingSensor)?,
            (None, None) => return Err(Reject::MissingSensor),
        };
        if sensor.is_empty() || sensor.len() > 64 {
            return Err(Reject::MissingSensor);
        }
        let seq = match &self.seq_field {
            Some(p) => match lookup(obj, p) {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or(Reject::BadSeq)?),
            },
            None => None,
        };
        let values_obj = lookup(obj, &self.values_field)
            .and_then(|v| v.as_object())
            .ok_or(Reject::NoValues)?;
        let mut values = Vec::with_capacity(values_obj.len());
        for (name, raw) in values_obj {
            let Some(field) = self.fields.get(name.as_str()) else {
                // With values at the top level, the id/seq/time fields sit among them.
                if !self.is_meta_key(name) {
                    *skipped += 1;
                }
                continue;
            };
            match convert_json(field, raw) {
                Some(v) => values.push((
                    field.quantity,
                    self.calibrate(sensor, field.quantity, v, calib),
                )),
                None => *skipped += 1,
            }
        }
        if values.is_empty() {
            return Err(Reject::NoValues);
        }
        Ok(Report {
            sensor: sensor.to_string(),
            seq,
            ts_ns,
            values,
            urgent: self.urgent,
        })
    }

    fn is_meta_key(&self, key: &str) -> bool {
        self.values_field.is_empty()
            && [&self.sensor_field, &self.seq_field, &self.ts_field]
                .iter()
                .any(|p| p.as_ref().is_some_and(|p| p.len() == 1 && p[0] == key))
    }

    fn calibrate(
        &self,
        sensor: &str,
        q: Quantity,
        v: Value,
        global: &HashMap<(String, Quantity), Calibration>,
    ) -> Value {
        if self.calibration.is_empty() && global.is_empty() {
            return v;
        }
        let key = (sensor.to_string(), q);
        let c = self.calibration.get(&key).or_else(|| global.get(&key));
        match (c, v) {
            (Some(c), Value::Float(x)) => Value::Float(x * c.scale + c.offset),
            (Some(c), Value::Int(x)) if q != Quantity::FaultCode => {
                Value::Float(x as f64 * c.scale + c.offset)
            }
            _ => v,
        }
    }

    /// Normalizes one `key=value` text line (the `serial-text` dialect).
    pub fn normalize_text(
        &self,
        line: &str,
        calib: &HashMap<(String, Quantity), Calibration>,
    ) -> Result<(Report, usize), Reject> {
        let mut sensor = None;
        let mut seq = None;
        let mut ts_ns = None;
        let mut skipped = 0;
        let mut raw = Vec::new();
        for token in line.split_ascii_whitespace() {
            let Some((k, v)) = token.split_once('=') else {
                skipped += 1;
                continue;
            };
            if k == self.sensor_key {
                sensor = Some(v);
            } else if k == self.seq_key {
                seq = Some(v.parse::<u64>().map_err(|_| Reject::BadSeq)?);
            } else if k == self.ts_key {
                let n: i64 = v.parse().map_err(|_| Reject::BadTimestamp)?;
                ts_ns = Some(int_ts(n, self.ts_unit).ok_or(Reject::BadTimestamp)?);
            } else {
                let q = match self.aliases.get(k) {
                    Some(q) => *q,
                    None => match Quantity::from_name(k) {
                        Ok(q) => q,
                        Err(_) => {
                            skipped += 1;
                            continue;
                        }
                    },
                };
                raw.push((q, v));
            }
        }
        let sensor = sensor
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .ok_or(Reject::MissingSensor)?;
        let mut values = Vec::with_capacity(raw.len());
        for (q, v) in raw {
            match self.text_value(q, v) {
                Some(val) => values.push((q, self.calibrate(sensor, q, val, calib))),
                None => skipped += 1,
            }
        }
        if values.is_empty() {
            return Err(Reject::NoValues);
        }
        Ok((
            Report {
                sensor: sensor.to_string(),
                seq,
                ts_ns,
                values,
                urgent: self.urgent,
            },
            skipped,
        ))
    }

    fn text_value(&self, q: Quantity, v: &str) -> Option<Value> {
        if q.is_bool() {
            return match v {
                "1" | "true" | "ON" | "on" => Some(Value::Bool(true)),
                "0" | "false" | "OFF" | "off" => Some(Value::Bool(false)),
                _ => None,
            };
        }
        let split = v
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.')))
            .unwrap_or(v.len());
        let (num, suffix) = v.split_at(split);
        if q == Quantity::FaultCode && suffix.is_empty() {
            return num.parse::<i64>().ok().map(Value::Int);
        }
        let x: f64 = num.parse().ok()?;
        if !x.is_finite() {
            return None;
        }
        if suffix.is_empty() {
            return Some(Value::Float(x));
        }
        let factor = self
            .units
            .get(&(Some(q), suffix.to_string()))
            .or_else(|| self.units.get(&(None, suffix.to_string())))?;
        Some(Value::Float(x * factor))
    }
}
