//! The firmware-sim `--record` file: one JSON line per reading a correct receiver must end up
//! with.

use anyhow::Context;
use serde_json::Value as Json;
use std::path::Path;

/// One line of a `--record` file.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Recorded {
    pub sensor: String,
    pub quantity: String,
    pub value: Json,
    pub ts_ms: Option<i64>,
    /// Every record line carries the sensor's sequence number (firmware-sim writes a `u32`).
    pub seq: u32,
}

impl Recorded {
    /// The value as a number (booleans as 0/1, NaN for anything else).
    pub fn value_f64(&self) -> f64 {
        match &self.value {
            Json::Bool(b) => f64::from(u8::from(*b)),
            other => other.as_f64().unwrap_or(f64::NAN),
        }
    }
}

/// Every line of the record at `path`, in order.
pub fn read_record(path: &Path) -> anyhow::Result<Vec<Recorded>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}
