//! A measured value: a float, an integer or a boolean.

use core::fmt;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One measured value.
///
/// In binary formats (postcard) it is a tagged enum: variant index `0` float (f64, 8 bytes
/// little-endian), `1` integer (zigzag varint), `2` bool (one byte). In human-readable formats
/// (JSON) it is the bare number or boolean, so `{"tilt": 12.5}` reads naturally.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Float(f64),
    Int(i64),
    Bool(bool),
}

impl Value {
    /// The value as a float, booleans as 0/1: what a time-series store keeps.
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Float(v) => v,
            Value::Int(v) => v as f64,
            Value::Bool(v) => {
                if v {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }

    /// The value as a boolean state: non-zero numbers are `true`.
    pub fn as_bool(self) -> bool {
        match self {
            Value::Bool(v) => v,
            Value::Int(v) => v != 0,
            Value::Float(v) => v != 0.0,
        }
    }

    /// True unless the value is a NaN or an infinity.
    pub fn is_finite(self) -> bool {
        match self {
            Value::Float(v) => v.is_finite(),
            _ => true,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Float(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match *self {
                Value::Float(v) => s.serialize_f64(v),
                Value::Int(v) => s.serialize_i64(v),
                Value::Bool(v) => s.serialize_bool(v),
            }
        } else {
            match *self {
                Value::Float(v) => s.serialize_newtype_variant("Value", 0, "Float", &v),
                Value::Int(v) => s.serialize_newtype_variant("Value", 1, "Int", &v),
                Value::Bool(v) => s.serialize_newtype_variant("Value", 2, "Bool", &v),
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(BareVisitor)
        } else {
            Tagged::deserialize(d).map(|t| match t {
                Tagged::Float(v) => Value::Float(v),
                Tagged::Int(v) => Value::Int(v),
                Tagged::Bool(v) => Value::Bool(v),
            })
        }
    }
}

/// The binary shape of [`Value`]; derive keeps the variant indices 0, 1, 2.
#[derive(Deserialize)]
enum Tagged {
    Float(f64),
    Int(i64),
    Bool(bool),
}

struct BareVisitor;

impl<'de> Visitor<'de> for BareVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or a boolean")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
}
