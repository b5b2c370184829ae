//! Sensor profiles: how one vendor dialect maps onto canonical quantities and units.
//!
//! A profile is data (`config/profiles/*.toml`), not code, so a new vendor is a new file.
//! The canonical JSON dialect (`sensors/{id}/readings`) is a built-in profile that needs no
//! file. Profiles are compiled once at start-up into [`Profile`], which never fails on input:
//! every problem with a payload is a [`Reject`] counted by reason.

use crate::config::{toml_error, Calibration, ConfigError};
use protocol::{Quantity, Value};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

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

/// One field of a vendor payload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The canonical quantity it carries.
    pub quantity: String,
    /// canonical = raw × scale + offset (unit conversion). Default 1 and 0.
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    /// Spellings of `true` for boolean quantities (besides JSON true and non-zero numbers).
    #[serde(default, rename = "true")]
    pub true_spellings: Vec<String>,
    /// Spellings of `false`.
    #[serde(default, rename = "false")]
    pub false_spellings: Vec<String>,
}

fn one() -> f64 {
    1.0
}

/// A profile file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    pub name: String,
    #[serde(default)]
    pub kind: ProfileKind,
    /// MQTT topic filter (`+`, `#` wildcards), JSON profiles only.
    #[serde(default)]
    pub topic: Option<String>,
    /// Where the sensor id is: a payload field (path with dots) ...
    #[serde(default)]
    pub sensor_field: Option<String>,
    /// ... or a topic level (0-based), e.g. 1 for `acme/{id}/data`.
    #[serde(default)]
    pub sensor_topic_level: Option<usize>,
    #[serde(default)]
    pub seq_field: Option<String>,
    /// Timestamp field; absent means the dialect has none (the edge stamps receive time).
    #[serde(default)]
    pub ts_field: Option<String>,
    #[serde(default = "default_ts_unit")]
    pub ts_unit: TsUnit,
    /// Object holding the measurements (dotted path); absent = the payload's top level.
    #[serde(default)]
    pub values_field: Option<String>,
    /// Array of per-sensor items (gateway dialects); `sensor_field`, `seq_field` and
    /// `values_field` then apply inside each item, `ts_field` to the whole message.
    #[serde(default)]
    pub items_field: Option<String>,
    /// Quantities that skip the backlog (alarms).
    #[serde(default)]
    pub urgent: Vec<String>,
    /// Payload field name → quantity and conversion.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSpec>,
    /// sensor → quantity → calibration applied after conversion.
    #[serde(default)]
    pub calibration: BTreeMap<String, BTreeMap<String, Calibration>>,
    /// Text lines: key aliases (`p` → `pressure`).
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Text lines: quantity (or `any`) → unit suffix → factor to the canonical unit.
    #[serde(default)]
    pub units: BTreeMap<String, BTreeMap<String, f64>>,
    /// Text lines: keys of the sensor id, sequence and timestamp.
    #[serde(default)]
    pub sensor_key: Option<String>,
    #[serde(default)]
    pub seq_key: Option<String>,
    #[serde(default)]
    pub ts_key: Option<String>,
}

fn default_ts_unit() -> TsUnit {
    TsUnit::Ms
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

fn path(p: &str) -> Vec<String> {
    p.split('.').map(str::to_string).collect()
}

fn quantity(file: &str, field: &str, name: &str) -> Result<Quantity, ConfigError> {
    Quantity::from_name(name).map_err(|_| ConfigError::Invalid {
        path: file.into(),
        field: field.into(),
        message: format!("unknown quantity {name:?}"),
        fix: "use a canonical quantity name from the sensor catalogue (tilt, pressure, ...)".into(),
    })
}

impl Profile {
    /// Loads and compiles one profile file.
    pub fn load(path: &Path) -> Result<Profile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
            fix: "check edge.profiles_dir and the profile file",
        })?;
        let file: ProfileFile = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
        Profile::compile(&path.display().to_string(), file)
    }

    /// Compiles a parsed profile; `origin` names it in errors.
    pub fn compile(origin: &str, f: ProfileFile) -> Result<Profile, ConfigError> {
        let invalid = |field: &str, message: String, fix: &str| ConfigError::Invalid {
            path: origin.into(),
            field: field.into(),
            message,
            fix: fix.into(),
        };
        if f.kind == ProfileKind::Json {
            if f.topic.is_none() {
                return Err(invalid(
                    "topic",
                    "a JSON profile needs a topic filter".into(),
                    "add e.g. topic = \"acme/+/data\"",
                ));
            }
            if f.sensor_field.is_none() && f.sensor_topic_level.is_none() {
                return Err(invalid(
                    "sensor_field",
                    "no way to find the sensor id".into(),
                    "set sensor_field = \"devId\" or sensor_topic_level = 1",
                ));
            }
        }
        let mut urgent = 0;
        for q in &f.urgent {
            urgent |= mask_of(quantity(origin, "urgent", q)?);
        }
        let mut fields = HashMap::new();
        for (name, spec) in &f.fields {
            let q = quantity(origin, &format!("fields.{name}.quantity"), &spec.quantity)?;
            if !spec.scale.is_finite() || !spec.offset.is_finite() {
                return Err(invalid(
                    &format!("fields.{name}.scale"),
                    "scale and offset must be finite".into(),
                    "use numbers like 0.001",
                ));
            }
            fields.insert(
                name.clone(),
                Field {
                    quantity: q,
                    scale: spec.scale,
                    offset: spec.offset,
                    trues: spec.true_spellings.clone(),
                    falses: spec.false_spellings.clone(),
                },
            );
        }
        let mut calibration = HashMap::new();
        for (sensor, per_q) in &f.calibration {
            for (qn, c) in per_q {
                let q = quantity(origin, &format!("calibration.{sensor}.{qn}"), qn)?;
                calibration.insert((sensor.clone(), q), *c);
            }
        }
        let mut aliases = HashMap::new();
        for (k, qn) in &f.aliases {
            aliases.insert(k.clone(), quantity(origin, &format!("aliases.{k}"), qn)?);
        }
        let mut units = HashMap::new();
        for (qn, per_unit) in &f.units {
            let q = if qn == "any" {
                None
            } else {
                Some(quantity(origin, &format!("units.{qn}"), qn)?)
            };
            for (suffix, factor) in per_unit {
                units.insert((q, suffix.clone()), *factor);
            }
        }
        Ok(Profile {
            topic_levels: f
                .topic
                .as_deref()
                .map(|t| t.split('/').map(str::to_string).collect())
                .unwrap_or_default(),
            topic: f.topic,
            name: f.name,
            kind: f.kind,
            sensor_field: f.sensor_field.as_deref().map(path),
            sensor_topic_level: f.sensor_topic_level,
            seq_field: f.seq_field.as_deref().map(path),
            ts_field: f.ts_field.as_deref().map(path),
            ts_unit: f.ts_unit,
            values_field: f
                .values_field
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(path)
                .unwrap_or_default(),
            items_field: f.items_field.as_deref().map(path),
            urgent,
            fields,
            calibration,
            aliases,
            units,
            sensor_key: f.sensor_key.unwrap_or_else(|| "id".into()),
            seq_key: f.seq_key.unwrap_or_else(|| "seq".into()),
            ts_key: f.ts_key.unwrap_or_else(|| "t".into()),
        })
    }

    /// The built-in canonical JSON dialect: `sensors/{id}/readings`, canonical names and units.
    pub fn canonical(urgent: QuantityMask) -> Profile {
        let fields = Quantity::ALL
            .iter()
            .map(|q| {
                (
                    q.name().to_string(),
                    Field {
                        quantity: *q,
                        scale: 1.0,
                        offset: 0.0,
                        trues: vec![],
                        falses: vec![],
                    },
                )
            })
            .collect();
        Profile {
            name: "canonical".into(),
            kind: ProfileKind::Json,
            topic: Some("sensors/+/readings".into()),
            topic_levels: vec!["sensors".into(), "+".into(), "readings".into()],
            sensor_field: None,
            sensor_topic_level: Some(1),
            seq_field: Some(path("seq")),
            ts_field: Some(path("ts")),
            ts_unit: TsUnit::Ms,
            values_field: path("values"),
            items_field: None,
            urgent,
            fields,
            calibration: HashMap::new(),
            aliases: HashMap::new(),
            units: HashMap::new(),
            sensor_key: "id".into(),
            seq_key: "seq".into(),
            ts_key: "t".into(),
        }
    }

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

fn lookup<'a>(v: &'a serde_json::Value, path: &[String]) -> Option<&'a serde_json::Value> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key.as_str())?;
    }
    Some(cur)
}

fn scale_ts(n: f64, unit: TsUnit) -> Option<i64> {
    let ns = match unit {
        TsUnit::S => n * 1e9,
        TsUnit::Ms => n * 1e6,
        TsUnit::Us => n * 1e3,
        TsUnit::Ns | TsUnit::Rfc3339 => n,
    };
    // Years 1970..2262 fit in i64 nanoseconds; anything else is garbage.
    (ns.is_finite() && (0.0..9.2e18).contains(&ns)).then_some(ns as i64)
}

/// An integer timestamp in `unit` → ns, exactly (no float rounding).
fn int_ts(i: i64, unit: TsUnit) -> Option<i64> {
    let mul: i64 = match unit {
        TsUnit::S => 1_000_000_000,
        TsUnit::Ms => 1_000_000,
        TsUnit::Us => 1_000,
        TsUnit::Ns | TsUnit::Rfc3339 => 1,
    };
    if i < 0 {
        return None;
    }
    i.checked_mul(mul)
}

/// Parses a timestamp value: a number in `unit`, or an RFC 3339 string whatever the unit.
pub fn parse_ts(v: &serde_json::Value, unit: TsUnit) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                int_ts(i, unit)
            } else {
                scale_ts(n.as_f64()?, unit)
            }
        }
        serde_json::Value::String(s) => parse_rfc3339(s),
        _ => None,
    }
}

/// RFC 3339 → UTC ns.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    protocol::time::parse_rfc3339_lenient(s)
}

fn convert_json(field: &Field, raw: &serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    let q = field.quantity;
    if q.is_bool() {
        return match raw {
            J::Bool(b) => Some(Value::Bool(*b)),
            J::Number(n) => Some(Value::Bool(n.as_f64()? != 0.0)),
            J::String(s) => {
                if field.trues.iter().any(|t| t.eq_ignore_ascii_case(s)) {
                    Some(Value::Bool(true))
                } else if field.falses.iter().any(|t| t.eq_ignore_ascii_case(s)) {
                    Some(Value::Bool(false))
                } else {
                    None
                }
            }
            _ => None,
        };
    }
    let identity = field.scale == 1.0 && field.offset == 0.0;
    let x = match raw {
        J::Number(n) => {
            if let (true, Some(i)) = (identity, n.as_i64()) {
                return Some(Value::Int(i));
            }
            n.as_f64()?
        }
        J::String(s) => s.trim().parse::<f64>().ok()?,
        J::Bool(b) if q == Quantity::FaultCode => return Some(Value::Int(*b as i64)),
        _ => return None,
    };
    if q == Quantity::FaultCode {
        return (x.fract() == 0.0).then_some(Value::Int(x as i64));
    }
    let v = x * field.scale + field.offset;
    v.is_finite().then_some(Value::Float(v))
}
