//! Encodes one report in each dialect of `DIALECTS.md`, and says what a correct receiver decodes
//! from it (canonical quantities, units and timestamp) so the `--record` file is exact.
//!
//! Values are rounded in the *dialect's* unit (kPa to 0.1, mA to 0.1, mm to 1 …) and the decoded
//! view is computed from those wire numbers with the conversion `DIALECTS.md` states
//! (`MPa = kPa / 1000`, `A = mA / 1000`, `mA = A × 1000`, `cm = mm / 10`), as a receiver does.

use crate::model::round;
use crate::sensors::SensorType;
use protocol::{encode_frame, Measurement, Quantity, SensorFrame, Value, MAX_ENCODED_FRAME_BYTES};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// One report of one sensor, in canonical quantities and units.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    pub sensor_id: &'a str,
    pub kind: SensorType,
    pub seq: u32,
    /// The sensor's clock, Unix ms (dialects without a timestamp ignore it).
    pub ts_ms: u64,
    pub values: &'a [(Quantity, Value)],
}

/// What a receiver that follows `DIALECTS.md` gets out of one report.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Unix ms as the receiver reconstructs it; `None` when the dialect sends no time.
    pub ts_ms: Option<u64>,
    pub values: Vec<(Quantity, Value)>,
}

/// An MQTT message.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttMessage {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A JSON value with fields in the order we write them (the dialects' documented order).
enum J<'a> {
    F(f64),
    I(i64),
    B(bool),
    S(&'a str),
    Owned(String),
    Obj(Vec<(&'static str, J<'a>)>),
    Arr(Vec<J<'a>>),
}

impl Serialize for J<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::F(v) => s.serialize_f64(*v),
            J::I(v) => s.serialize_i64(*v),
            J::B(v) => s.serialize_bool(*v),
            J::S(v) => s.serialize_str(v),
            J::Owned(v) => s.serialize_str(v),
            J::Obj(fields) => {
                let mut m = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            J::Arr(items) => {
                let mut q = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    q.serialize_element(v)?;
                }
                q.end()
            }
        }
    }
}

fn to_json(v: &J<'_>) -> Vec<u8> {
    // Serialising our own tree of finite numbers and strings cannot fail.
    serde_json::to_vec(v).expect("dialect payloads serialise")
}

fn json_value(v: Value) -> J<'static> {
    match v {
        Value::Float(f) => J::F(f),
        Value::Int(i) => J::I(i),
        Value::Bool(b) => J::B(b),
    }
}

fn flag(v: Value) -> J<'static> {
    J::I(v.as_bool() as i64)
}

/// The message carrying the JSON `body` on `topic`, and what a receiver decodes from it.
fn mqtt_report(
    topic: String,
    body: &J<'_>,
    ts_ms: Option<u64>,
    values: Vec<(Quantity, Value)>,
) -> (MqttMessage, Decoded) {
    let msg = MqttMessage {
        topic,
        payload: to_json(body),
    };
    (msg, Decoded { ts_ms, values })
}

/// `canonical`: `sensors/{id}/readings`, `{"ts": ms, "seq": n, "values": {...}}`.
pub fn canonical(r: &Report<'_>) -> (MqttMessage, Decoded) {
    let values = r
        .values
        .iter()
        .map(|(q, v)| (q.name(), json_value(*v)))
        .collect();
    let body = J::Obj(vec![
        ("ts", J::I(r.ts_ms as i64)),
        ("seq", J::I(r.seq as i64)),
        ("values", J::Obj(values)),
    ]);
    mqtt_report(
        format!("sensors/{}/readings", r.sensor_id),
        &body,
        Some(r.ts_ms),
        r.values.to_vec(),
    )
}

/// The acme field of a quantity, its wire value, and what a receiver decodes from that.
fn acme_field(q: Quantity, v: Value) -> (&'static str, J<'static>, Value) {
    match q {
        Quantity::Pressure => {
            let kpa = round(v.as_f64() * 1000.0, 1);
            ("press_kpa", J::F(kpa), Value::Float(kpa / 1000.0))
        }
        Quantity::Tilt => ("tilt_deg", J::F(v.as_f64()), v),
        Quantity::Leak => {
            let on_off = J::S(if v.as_bool() { "ON" } else { "OFF" });
            ("leak", on_off, Value::Bool(v.as_bool()))
        }
        Quantity::WaterLevel => {
            let mm = (v.as_f64() * 10.0).round() as i64;
            ("level_mm", J::I(mm), Value::Float(mm as f64 / 10.0))
        }
        _ => unreachable!("acme has no {q} (sensors.rs checks the type)"),
    }
}

/// A field of a JSON object: its name and value.
type Field = (&'static str, J<'static>);

/// Encodes every value of `r` with `field` (which gives the field and what a receiver decodes
/// from it): the fields in order, and the decoded values.
fn fields_of(
    r: &Report<'_>,
    field: fn(Quantity, Value) -> (&'static str, J<'static>, Value),
) -> (Vec<Field>, Vec<(Quantity, Value)>) {
    r.values
        .iter()
        .map(|&(q, v)| {
            let (name, wire, decoded) = field(q, v);
            ((name, wire), (q, decoded))
        })
        .unzip()
}

/// `acme` (hydrants, flood gauges): `acme/{id}/data`, Unix seconds, kPa, mm, "ON"/"OFF".
pub fn acme(r: &Report<'_>) -> (MqttMessage, Decoded) {
    let secs = r.ts_ms / 1000;
    let (data, dec) = fields_of(r, acme_field);
    let body = J::Obj(vec![
        ("devId", J::S(r.sensor_id)),
        ("sn", J::I(r.seq as i64)),
        ("time", J::I(secs as i64)),
        ("data", J::Obj(data)),
    ]);
    mqtt_report(
        format!("acme/{}/data", r.sensor_id),
        &body,
        Some(secs * 1000),
        dec,
    )
}

/// The lumen field of a quantity, its wire value, and what a receiver decodes from that.
fn lumen_field(q: Quantity, v: Value) -> (&'static str, J<'static>, Value) {
    match q {
        Quantity::Voltage => ("U", J::F(v.as_f64()), v),
        Quantity::Current => {
            let ma = round(v.as_f64() * 1000.0, 1);
            ("I_mA", J::F(ma), Value::Float(ma / 1000.0))
        }
        Quantity::Power => ("P", J::F(v.as_f64()), v),
        Quantity::LampOn => ("lamp", flag(v), Value::Bool(v.as_bool())),
        Quantity::ResidualCurrent => {
            let a = round(v.as_f64() / 1000.0, 4);
            ("leak_A", J::F(a), Value::Float(a * 1000.0))
        }
        Quantity::CableTemp => ("T_cable", J::F(v.as_f64()), v),
        _ => unreachable!("lumen has no {q} (sensors.rs checks the type)"),
    }
}

/// `lumen` (street lights, electrical-fire monitors): `lumen/v2/telemetry/{id}`, no timestamp,
/// current in mA, residual current in A, lamp 1/0.
pub fn lumen(r: &Report<'_>) -> (MqttMessage, Decoded) {
    let (fields, dec) = fields_of(r, lumen_field);
    let mut body = vec![("device", J::S(r.sensor_id)), ("cnt", J::I(r.seq as i64))];
    body.extend(fields);
    mqtt_report(
        format!("lumen/v2/telemetry/{}", r.sensor_id),
        &J::Obj(body),
        None,
        dec,
    )
}

/// The gridsense field name of a quantity, and how its value is written.
fn gridsense_field(kind: SensorType, q: Quantity, v: Value) -> (&'static str, J<'static>) {
    use Quantity as Q;
    let open_closed = |v: Value| J::S(if v.as_bool() { "OPEN" } else { "CLOSED" });
    match (kind, q) {
        (_, Q::Tilt) => ("angle", J::F(v.as_f64())),
        (_, Q::Opened) => ("open", flag(v)),
        (_, Q::WaterLevel) => ("lvl", J::F(v.as_f64())),
        (_, Q::Battery) => ("bat", json_value(v)),
        (_, Q::Smoke) => ("obs", J::F(v.as_f64())),
        (_, Q::Alarm) => ("alm", flag(v)),
        (_, Q::Gas) => ("lel", J::F(v.as_f64())),
        (_, Q::DoorOpen) => ("door", open_closed(v)),
        (_, Q::Motion) => ("pir", flag(v)),
        (_, Q::Trapped) => ("trap", flag(v)),
        (_, Q::FaultCode) => ("err", json_value(v)),
        (_, Q::FillLevel) => ("fill", J::F(v.as_f64())),
        (_, Q::Pm25) => ("pm25", J::F(v.as_f64())),
        (_, Q::Noise) => ("db", J::F(v.as_f64())),
        (_, Q::Temperature) => ("temp_c", J::F(v.as_f64())),
        (_, Q::Humidity) => ("rh", J::F(v.as_f64())),
        (k, q) => unreachable!("gridsense has no {q} for {k} (sensors.rs checks the type)"),
    }
}

/// `gridsense`: one gateway message `gridsense/gw/{gw}/up` packing one item per sensor, with one
/// RFC 3339 timestamp (ms) for the whole message. Returns one [`Decoded`] per item.
pub fn gridsense(gateway: &str, ts_ms: u64, items: &[Report<'_>]) -> (MqttMessage, Vec<Decoded>) {
    let ts = rfc3339_ms(ts_ms);
    let mut arr = Vec::with_capacity(items.len());
    let mut decoded = Vec::with_capacity(items.len());
    for r in items {
        let m = r
            .values
            .iter()
            .map(|&(q, v)| gridsense_field(r.kind, q, v))
            .collect();
        arr.push(J::Obj(vec![
            ("sid", J::S(r.sensor_id)),
            ("seq", J::I(r.seq as i64)),
            ("m", J::Obj(m)),
        ]));
        let values = r
            .values
            .iter()
            .map(|&(q, v)| {
                (
                    q,
                    if q.is_bool() {
                        Value::Bool(v.as_bool())
                    } else {
                        v
                    },
                )
            })
            .collect();
        decoded.push(Decoded {
            ts_ms: Some(ts_ms),
            values,
        });
    }
    let body = J::Obj(vec![
        ("gw", J::S(gateway)),
        ("ts", J::Owned(ts)),
        ("items", J::Arr(arr)),
    ]);
    let msg = MqttMessage {
        topic: format!("gridsense/gw/{gateway}/up"),
        payload: to_json(&body),
    };
    (msg, decoded)
}

/// `serial-binary`: one frame `COBS(version | postcard | crc32) 0x00` from the protocol crate.
pub fn serial_binary(r: &Report<'_>) -> (Vec<u8>, Decoded) {
    let mut values = heapless::Vec::new();
    for &(quantity, value) in r.values {
        // At most 4 quantities per type, well under MAX_VALUES.
        let _ = values.push(Measurement { quantity, value });
    }
    let frame = SensorFrame {
        sensor_id: r.sensor_id,
        seq: r.seq,
        ts_ms: Some(r.ts_ms),
        values,
    };
    let mut buf = [0u8; MAX_ENCODED_FRAME_BYTES + 1];
    // Ids are checked at load (1..=32 bytes) and a frame has at most 4 values: this cannot fail.
    let n = encode_frame(&frame, &mut buf).expect("a registry sensor's frame encodes");
    (
        buf[..n].to_vec(),
        Decoded {
            ts_ms: Some(r.ts_ms),
            values: r.values.to_vec(),
        },
    )
}

/// `serial-text`: `id=HY-0013 seq=12 t=1732500000123 p=312.5kPa tilt=1.2deg leak=0\r\n`.
pub fn serial_text(r: &Report<'_>) -> (Vec<u8>, Decoded) {
    use std::fmt::Write;
    let mut line = format!("id={} seq={} t={}", r.sensor_id, r.seq, r.ts_ms);
    let mut dec = Vec::with_capacity(r.values.len());
    for &(q, v) in r.values {
        let (key, text, back) = match (q, v) {
            (Quantity::Pressure, v) => {
                let kpa = round(v.as_f64() * 1000.0, 1);
                ("p", format!("{kpa}kPa"), Value::Float(kpa / 1000.0))
            }
            (Quantity::Current, v) => {
                let ma = round(v.as_f64() * 1000.0, 1);
                ("current", format!("{ma}mA"), Value::Float(ma / 1000.0))
            }
            (q, Value::Bool(b)) => (q.name(), format!("{}", b as u8), Value::Bool(b)),
            (q, Value::Int(i)) => (q.name(), format!("{i}{}", text_suffix(q)), Value::Int(i)),
            (q, Value::Float(f)) => (q.name(), format!("{f}{}", text_suffix(q)), Value::Float(f)),
        };
        let _ = write!(line, " {key}={text}");
        dec.push((q, back));
    }
    line.push_str("\r\n");
    (
        line.into_bytes(),
        Decoded {
            ts_ms: Some(r.ts_ms),
            values: dec,
        },
    )
}

/// The unit suffix serial-text writes after a canonical value ("" where DIALECTS.md lists none).
fn text_suffix(q: Quantity) -> &'static str {
    use Quantity as Q;
    match q {
        Q::Tilt => "deg",
        Q::WaterLevel => "cm",
        Q::Battery | Q::FillLevel | Q::Humidity => "%",
        Q::Voltage => "V",
        Q::Power => "W",
        Q::ResidualCurrent => "mA",
        Q::CableTemp | Q::Temperature => "C",
        _ => "",
    }
}

/// `2024-11-25T02:00:00.123Z` for Unix ms.
pub fn rfc3339_ms(ts_ms: u64) -> String {
    protocol::time::format_ms(
        i64::try_from(ts_ms)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hydrant report of the examples in `DIALECTS.md`.
    const HYDRANT_VALUES: [(Quantity, Value); 3] = [
        (Quantity::Pressure, Value::Float(0.3125)),
        (Quantity::Tilt, Value::Float(1.2)),
        (Quantity::Leak, Value::Bool(false)),
    ];

    fn hydrant(sensor_id: &str) -> Report<'_> {
        Report {
            sensor_id,
            kind: SensorType::FireHydrant,
            seq: 12,
            ts_ms: 1_732_500_000_123,
            values: &HYDRANT_VALUES,
        }
    }

    #[test]
    fn acme_example_from_dialects_md() {
        let (m, d) = acme(&hydrant("HY-0001"));
        assert_eq!(m.topic, "acme/HY-0001/data");
        assert_eq!(
            String::from_utf8(m.payload).unwrap(),
            r#"{"devId":"HY-0001","sn":12,"time":1732500000,"data":{"press_kpa":312.5,"tilt_deg":1.2,"leak":"OFF"}}"#
        );
        assert_eq!(d.ts_ms, Some(1_732_500_000_000));
        assert_eq!(d.values[0], (Quantity::Pressure, Value::Float(0.3125)));
    }

    #[test]
    fn serial_text_example_from_dialects_md() {
        let (line, _) = serial_text(&hydrant("HY-0013"));
        assert_eq!(
            line,
            b"id=HY-0013 seq=12 t=1732500000123 p=312.5kPa tilt=1.2deg leak=0\r\n"
        );
    }

    #[test]
    fn rfc3339_has_milliseconds() {
        assert_eq!(rfc3339_ms(1_732_500_000_123), "2024-11-25T02:00:00.123Z");
    }
}
