//! Helpers shared by the firmware-sim integration tests: running the real binary with bounded
//! waits, and a receiver written from DIALECTS.md alone (not from the simulator's encoders).

#![allow(dead_code)]

use protocol::{FrameDecoder, Quantity, Value};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_firmware-sim")
}

pub use wangge_testkit::paths::repo;

/// The simulator with the seed registry, a fixed clock origin and quiet logs.
pub fn sim() -> Command {
    let mut c = Command::new(bin());
    c.arg("--sensors")
        .arg(repo("config/registry/sensors.csv"))
        .args(["--start", "2024-11-25T02:00:00Z"])
        .env("RUST_LOG", "warn");
    c
}

/// The simulator playing `config/scenarios/faults.toml` fast (interval scale 0.02) for
/// `duration` with only the dialects `profiles`, recording what it sent to `record`.
pub fn faults_sim(profiles: &str, duration: &str, record: &Path) -> Command {
    let mut c = sim();
    c.args(["--profiles", profiles])
        .arg("--scenario")
        .arg(repo("config/scenarios/faults.toml"))
        .args(["--interval-scale", "0.02", "--duration", duration])
        .arg("--record")
        .arg(record);
    c
}

/// Waits for `child` at most `limit`; kills it and panics past that.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("collecting output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collecting output");
            panic!(
                "process still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the simulator with its stdout (the summary) and stderr captured.
pub fn spawn_sim(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning firmware-sim")
}

/// Waits for a run at most `limit` and asserts it succeeded.
pub fn finish_ok(child: Child, limit: Duration) -> Output {
    let out = wait_bounded(child, limit);
    assert!(
        out.status.success(),
        "firmware-sim failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the simulator to completion (bounded) and returns its summary.
pub fn run_sim(cmd: &mut Command, limit: Duration) -> Json {
    let out = finish_ok(spawn_sim(cmd), limit);
    serde_json::from_slice(&out.stdout).expect("the summary on stdout is JSON")
}

/// One reading as a receiver decodes it: (sensor, quantity, seq) → (value, ts_ms).
pub type Readings = BTreeMap<(String, String, u32), (Value, Option<u64>)>;

fn num(v: &Json, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {v}"))
}

fn int(v: &Json, what: &str) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("{what}: not an integer: {v}"))
}

fn flag01(v: &Json, what: &str) -> Value {
    match v.as_i64() {
        Some(0) => Value::Bool(false),
        Some(1) => Value::Bool(true),
        _ => panic!("{what}: expected 0 or 1, got {v}"),
    }
}

fn add(out: &mut Readings, sensor: &str, q: &str, seq: u32, v: Value, ts: Option<u64>) {
    Quantity::from_name(q).unwrap_or_else(|_| panic!("{q} is not canonical"));
    let key = (sensor.to_string(), q.to_string(), seq);
    if let Some(old) = out.get(&key) {
        // A duplicate must repeat exactly what the first copy said.
        assert_eq!(old, &(v, ts), "{key:?} resent with other content");
    }
    out.insert(key, (v, ts));
}

fn json_value(v: &Json, q: &str) -> Value {
    match v {
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) if n.is_i64() => Value::Int(n.as_i64().unwrap()),
        Json::Number(n) => Value::Float(n.as_f64().unwrap()),
        other => panic!("{q}: {other} is neither number nor boolean"),
    }
}

fn rfc3339_ms(s: &str) -> u64 {
    let t = humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("ts {s:?}: {e}"));
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Decodes one MQTT message per DIALECTS.md into `out`. Panics on anything the document does
/// not allow (unknown topic, field, unit or type).
pub fn decode_mqtt(topic: &str, payload: &[u8], out: &mut Readings) {
    let j: Json =
        serde_json::from_slice(payload).unwrap_or_else(|e| panic!("{topic}: not JSON: {e}"));
    let parts: Vec<&str> = topic.split('/').collect();
    match parts.as_slice() {
        ["sensors", id, "readings"] => {
            let obj = j.as_object().expect("object");
            for k in obj.keys() {
                assert!(
                    ["ts", "seq", "values"].contains(&k.as_str()),
                    "canonical: unexpected field {k}"
                );
            }
            let ts = match &j["ts"] {
                Json::Null => None,
                Json::String(s) => Some(rfc3339_ms(s)),
                v => Some(int(v, "ts") as u64),
            };
            let seq = int(&j["seq"], "seq") as u32;
            for (q, v) in j["values"].as_object().expect("values object") {
                add(out, id, q, seq, json_value(v, q), ts);
            }
        }
        ["acme", id, "data"] => {
            assert_eq!(
                j["devId"].as_str(),
                Some(*id),
                "acme devId matches the topic"
            );
            let seq = int(&j["sn"], "sn") as u32;
            let ts = Some(int(&j["time"], "time") as u64 * 1000);
            for (k, v) in j["data"].as_object().expect("data object") {
                let (q, val) = match k.as_str() {
                    "press_kpa" => ("pressure", Value::Float(num(v, k) / 1000.0)),
                    "tilt_deg" => ("tilt", Value::Float(num(v, k))),
                    "leak" => match v.as_str() {
                        Some("ON") => ("leak", Value::Bool(true)),
                        Some("OFF") => ("leak", Value::Bool(false)),
                        _ => panic!("acme leak: {v}"),
                    },
                    "level_mm" => ("water_level", Value::Float(num(v, k) / 10.0)),
                    other => panic!("acme: unexpected field {other}"),
                };
                add(out, id, q, seq, val, ts);
            }
        }
        ["lumen", "v2", "telemetry", id] => {
            assert_eq!(j["device"].as_str(), Some(*id));
            let seq = int(&j["cnt"], "cnt") as u32;
            for (k, v) in j.as_object().expect("object") {
                let (q, val) = match k.as_str() {
                    "device" | "cnt" => continue,
                    "U" => ("voltage", Value::Float(num(v, k))),
                    "I_mA" => ("current", Value::Float(num(v, k) / 1000.0)),
                    "P" => ("power", Value::Float(num(v, k))),
                    "lamp" => ("lamp_on", flag01(v, k)),
                    "leak_A" => ("residual_current", Value::Float(num(v, k) * 1000.0)),
                    "T_cable" => ("cable_temp", Value::Float(num(v, k))),
                    other => panic!("lumen: unexpected field {other}"),
                };
                // Lumen sends no timestamp: the receiver stamps the reading.
                add(out, id, q, seq, val, None);
            }
        }
        ["gridsense", "gw", gw, "up"] => {
            assert_eq!(j["gw"].as_str(), Some(*gw));
            let ts = Some(rfc3339_ms(
                j["ts"].as_str().expect("gridsense ts is a string"),
            ));
            let mut seen = std::collections::HashSet::new();
            for item in j["items"].as_array().expect("items array") {
                let sid = item["sid"].as_str().expect("sid");
                assert!(
                    seen.insert(sid.to_string()),
                    "two items of {sid} in one message"
                );
                let seq = int(&item["seq"], "seq") as u32;
                for (k, v) in item["m"].as_object().expect("m object") {
                    let open_closed = |v: &Json| match v.as_str() {
                        Some("OPEN") => Value::Bool(true),
                        Some("CLOSED") => Value::Bool(false),
                        _ => panic!("gridsense door: {v}"),
                    };
                    let (q, val) = match k.as_str() {
                        "angle" => ("tilt", Value::Float(num(v, k))),
                        "open" => ("opened", flag01(v, k)),
                        "lvl" => ("water_level", Value::Float(num(v, k))),
                        "bat" => ("battery", json_value(v, k)),
                        "obs" => ("smoke", Value::Float(num(v, k))),
                        "alm" => ("alarm", flag01(v, k)),
                        "lel" => ("gas", Value::Float(num(v, k))),
                        "door" => ("door_open", open_closed(v)),
                        "pir" => ("motion", flag01(v, k)),
                        "trap" => ("trapped", flag01(v, k)),
                        "err" => ("fault_code", Value::Int(int(v, k))),
                        "fill" => ("fill_level", Value::Float(num(v, k))),
                        "pm25" => ("pm25", Value::Float(num(v, k))),
                        "db" => ("noise", Value::Float(num(v, k))),
                        "temp_c" => ("temperature", Value::Float(num(v, k))),
                        "rh" => ("humidity", Value::Float(num(v, k))),
                        other => panic!("gridsense: unexpected field {other}"),
                    };
                    add(out, sid, q, seq, val, ts);
                }
            }
        }
        _ => panic!("topic {topic} is in no dialect"),
    }
}

/// Decodes one serial-text line (without `\r\n`) per DIALECTS.md.
pub fn decode_text_line(line: &str, out: &mut Readings) {
    let mut id = None;
    let mut seq = None;
    let mut ts = None;
    let mut vals = Vec::new();
    for field in line.split(' ') {
        let (k, v) = field
            .split_once('=')
            .unwrap_or_else(|| panic!("serial-text field {field:?}"));
        match k {
            "id" => id = Some(v.to_string()),
            "seq" => seq = Some(v.parse::<u32>().expect("seq")),
            "t" => ts = Some(v.parse::<u64>().expect("t")),
            _ => vals.push((k.to_string(), v.to_string())),
        }
    }
    let id = id.expect("id=");
    let seq = seq.expect("seq=");
    for (k, v) in vals {
        let q = if k == "p" { "pressure".to_string() } else { k };
        let quantity = Quantity::from_name(&q).unwrap_or_else(|_| panic!("serial-text key {q}"));
        let split = v
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(v.len());
        let (number, unit) = v.split_at(split);
        let x: f64 = number
            .parse()
            .unwrap_or_else(|_| panic!("serial-text value {v:?}"));
        let factor = match (q.as_str(), unit) {
            ("pressure", "kPa") => 0.001,
            ("pressure", "MPa") | ("water_level", "cm") => 1.0,
            ("water_level", "mm") => 0.1,
            ("current", "mA") => 0.001,
            ("current", "A") => 1.0,
            ("residual_current", "mA") => 1.0,
            ("residual_current", "A") => 1000.0,
            (_, "V" | "W" | "deg" | "%" | "C" | "") => 1.0,
            (q, u) => panic!("serial-text: unit {u:?} for {q}"),
        };
        let value = if quantity.is_bool() {
            match number {
                "0" => Value::Bool(false),
                "1" => Value::Bool(true),
                _ => panic!("serial-text boolean {v}"),
            }
        } else if !number.contains('.')
            && matches!(quantity, Quantity::Battery | Quantity::FaultCode)
        {
            Value::Int(number.parse().unwrap())
        } else if factor == 0.001 {
            Value::Float(x / 1000.0)
        } else {
            Value::Float(x * factor)
        };
        add(out, &id, &q, seq, value, ts);
    }
}

/// Decodes a serial-binary byte stream; returns (frames, rejected runs).
pub fn decode_frames(bytes: &[u8], out: &mut Readings) -> (u64, u64) {
    let mut d: FrameDecoder = FrameDecoder::new();
    d.feed(bytes, |r| {
        if let Ok(f) = r {
            for m in &f.values {
                add(out, f.sensor_id, m.quantity.name(), f.seq, m.value, f.ts_ms);
            }
        }
    });
    let s = d.stats();
    (s.frames, s.rejected())
}

/// The `--record` file as the same map.
pub fn read_record(path: &Path) -> Readings {
    let mut out = Readings::new();
    for r in wangge_testkit::record::read_record(path).expect("record file") {
        let ts = r.ts_ms.map(|t| t as u64);
        let value = json_value(&r.value, &r.quantity);
        let key = (r.sensor, r.quantity, r.seq);
        assert!(!out.contains_key(&key), "{key:?} recorded twice");
        out.insert(key, (value, ts));
    }
    out
}

/// Compares what a receiver decoded with the record: same keys, same timestamps, same values
/// (floats to 1e-9 relative: the record states the documented conversion of the wire number).
pub fn assert_same_readings(got: &Readings, want: &Readings) {
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, unexpected {extra:?}"
    );
    for (k, (v, ts)) in want {
        let (gv, gts) = &got[k];
        assert_eq!(gts, ts, "{k:?} timestamp");
        let same = match (v, gv) {
            (Value::Float(a), b) | (b, Value::Float(a)) if !matches!(b, Value::Bool(_)) => {
                (a - b.as_f64()).abs() <= 1e-9 * a.abs().max(1.0)
            }
            (a, b) => a == b,
        };
        assert!(same, "{k:?}: received {gv:?}, recorded {v:?}");
    }
}
