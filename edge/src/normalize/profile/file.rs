//! The profile file (`config/profiles/*.toml`) and its compilation into a [`Profile`].

use super::{mask_of, Field, Profile, ProfileKind, QuantityMask, TsUnit};
use crate::config::{read_text, toml_error, Calibration, ConfigError};
use protocol::Quantity;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

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

/// What to check when a profile file cannot be read.
const LOAD_FIX: &str = "check edge.profiles_dir and the profile file";

impl Profile {
    /// Loads and compiles every `*.toml` in `dir`, sorted by name.
    pub fn load_dir(dir: &Path) -> Result<Vec<Profile>, ConfigError> {
        let mut files: Vec<_> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(source) => {
                let fix = "check edge.profiles_dir (default: profiles next to the config)";
                return Err(ConfigError::read(dir, source, fix));
            }
        };
        files.sort();
        let mut profiles = Vec::with_capacity(files.len());
        for f in &files {
            let text = read_text(f, LOAD_FIX)?;
            // Modbus device profiles share the folder; the Modbus lines load those.
            if !crate::source::modbus::profile::is_modbus_profile(&text) {
                profiles.push(Profile::from_text(f, &text)?);
            }
        }
        Ok(profiles)
    }

    /// Loads and compiles one profile file.
    pub fn load(path: &Path) -> Result<Profile, ConfigError> {
        Profile::from_text(path, &read_text(path, LOAD_FIX)?)
    }

    /// Parses and compiles the text of the profile file at `path`.
    fn from_text(path: &Path, text: &str) -> Result<Profile, ConfigError> {
        let file: ProfileFile = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
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
}
