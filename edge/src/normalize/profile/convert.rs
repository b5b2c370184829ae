//! Raw JSON values and timestamps → canonical values and UTC nanoseconds.

use super::{Field, TsUnit};
use protocol::{Quantity, Value};

pub(super) fn lookup<'a>(
    v: &'a serde_json::Value,
    path: &[String],
) -> Option<&'a serde_json::Value> {
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
pub(super) fn int_ts(i: i64, unit: TsUnit) -> Option<i64> {
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

pub(super) fn convert_json(field: &Field, raw: &serde_json::Value) -> Option<Value> {
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
