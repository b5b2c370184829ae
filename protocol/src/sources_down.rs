//! Which of an edge's sources are down, as its status reports them ([`SourceDown`]), with the
//! bounds both sides apply, and the status layout of edges that report none (so an older
//! status still decodes, and a hub that predates the field still reads a newer edge's status
//! while nothing is down).

use crate::uplink::{EdgeId, EdgeStatus};
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Down sources one status lists, at most; the rest are dropped and counted.
pub const SOURCES_DOWN_MAX: usize = 32;
/// Sensors named behind one down source, at most.
pub const SOURCE_SENSORS_MAX: usize = 256;
/// Sensors named behind all the down sources of one status together, at most (so a status
/// stays far below the MQTT packet bound: ≤ 1024 × 64 bytes of ids).
pub const SOURCE_SENSORS_TOTAL_MAX: usize = 1024;
/// Longest source name (`modbus:<line>` or `modbus:<line>/<unit>`), bytes.
pub const SOURCE_NAME_BYTES_MAX: usize = 128;
/// Longest sensor id named behind a source, bytes.
pub const SOURCE_SENSOR_ID_BYTES_MAX: usize = 64;

/// One source of the edge that is down: a Modbus line it cannot open (`modbus:<line>`) or a
/// slave that stopped answering (`modbus:<line>/<unit>`), and the sensors whose readings it
/// carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDown {
    pub source: String,
    pub sensors: Vec<String>,
}

/// The name of a Modbus line as a source.
pub fn modbus_line_source(line: &str) -> String {
    alloc::format!("modbus:{line}")
}

/// The name of one Modbus slave as a source.
pub fn modbus_slave_source(line: &str, unit: u8) -> String {
    alloc::format!("modbus:{line}/{unit}")
}

/// `list` within the bounds above: sources past [`SOURCES_DOWN_MAX`] or with an over-long name
/// are dropped, and so are sensors past the per-source or total bound or with an over-long id
/// (an id is never cut short: a cut id would name another sensor). Returns the kept list and
/// how many entries (sources and sensors) were dropped.
pub fn bounded(list: Vec<SourceDown>) -> (Vec<SourceDown>, u64) {
    let mut dropped = 0u64;
    let mut total = 0usize;
    let mut kept = Vec::with_capacity(list.len().min(SOURCES_DOWN_MAX));
    for s in list {
        if kept.len() == SOURCES_DOWN_MAX || s.source.len() > SOURCE_NAME_BYTES_MAX {
            dropped += 1 + s.sensors.len() as u64;
            continue;
        }
        let mut sensors = Vec::with_capacity(s.sensors.len().min(SOURCE_SENSORS_MAX));
        for id in s.sensors {
            let room = sensors.len() < SOURCE_SENSORS_MAX && total < SOURCE_SENSORS_TOTAL_MAX;
            if room && id.len() <= SOURCE_SENSOR_ID_BYTES_MAX {
                total += 1;
                sensors.push(id);
            } else {
                dropped += 1;
            }
        }
        kept.push(SourceDown {
            source: s.source,
            sensors,
        });
    }
    (kept, dropped)
}

/// An [`EdgeStatus`] without `sources_down`: what edges sent before the field existed, and
/// what an edge sends while nothing is down (postcard has no optional trailing fields, so the
/// field's absence is this other layout).
#[derive(Serialize, Deserialize)]
pub(crate) struct StatusWithoutSources {
    edge_id: EdgeId,
    online: bool,
    version: String,
    epoch: u64,
    counter: u64,
    will_counter: u64,
    backlog_readings: u64,
    backlog_bytes: u64,
    oldest_unacked_ns: Option<i64>,
    ts_ns: i64,
}

impl From<StatusWithoutSources> for EdgeStatus {
    fn from(s: StatusWithoutSources) -> EdgeStatus {
        EdgeStatus {
            edge_id: s.edge_id,
            online: s.online,
            version: s.version,
            epoch: s.epoch,
            counter: s.counter,
            will_counter: s.will_counter,
            backlog_readings: s.backlog_readings,
            backlog_bytes: s.backlog_bytes,
            oldest_unacked_ns: s.oldest_unacked_ns,
            ts_ns: s.ts_ns,
            sources_down: Vec::new(),
        }
    }
}

impl From<&EdgeStatus> for StatusWithoutSources {
    fn from(s: &EdgeStatus) -> StatusWithoutSources {
        StatusWithoutSources {
            edge_id: s.edge_id.clone(),
            online: s.online,
            version: s.version.clone(),
            epoch: s.epoch,
            counter: s.counter,
            will_counter: s.will_counter,
            backlog_readings: s.backlog_readings,
            backlog_bytes: s.backlog_bytes,
            oldest_unacked_ns: s.oldest_unacked_ns,
            ts_ns: s.ts_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uplink::mac_key;
    use alloc::string::ToString;
    use alloc::vec;

    fn down(source: &str, sensors: &[&str]) -> SourceDown {
        SourceDown {
            source: source.into(),
            sensors: sensors.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_status_without_the_field_still_opens_and_one_with_it_round_trips() {
        let key = mac_key("s3cret");
        let plain = EdgeStatus::online("edge-1", "0.1.0", 1, 2, 1, 5);
        // Nothing down: the old layout, byte for byte, so an older hub still reads it.
        let old = crate::uplink::seal_without_sources(&plain, &key);
        assert_eq!(plain.seal(&key), old);
        assert_eq!(EdgeStatus::open(&old, &key), Ok(plain.clone()));
        let with = EdgeStatus {
            sources_down: vec![down("modbus:rs485-1", &["FL-0001", "EF-0002"])],
            ..plain
        };
        let sealed = with.seal(&key);
        assert_ne!(sealed, old);
        assert_eq!(EdgeStatus::open(&sealed, &key), Ok(with));
    }

    #[test]
    fn over_long_lists_are_cut_to_the_bounds_and_counted() {
        let many: Vec<SourceDown> = (0..SOURCES_DOWN_MAX + 3)
            .map(|i| down(&alloc::format!("modbus:l{i}"), &["S-1"]))
            .collect();
        let (kept, dropped) = bounded(many);
        assert_eq!(kept.len(), SOURCES_DOWN_MAX);
        assert_eq!(dropped, 6, "3 sources and their one sensor each");

        let long_id = "x".repeat(SOURCE_SENSOR_ID_BYTES_MAX + 1);
        let long_name = "m".repeat(SOURCE_NAME_BYTES_MAX + 1);
        let ids: Vec<String> = (0..SOURCE_SENSORS_MAX + 1)
            .map(|i| alloc::format!("S-{i}"))
            .collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (kept, dropped) = bounded(vec![
            down("modbus:a", &ids),
            down("modbus:b", &[&long_id, "OK-1"]),
            down(&long_name, &["S-9"]),
        ]);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].sensors.len(), SOURCE_SENSORS_MAX);
        assert_eq!(kept[1].sensors, vec!["OK-1".to_string()]);
        assert_eq!(dropped, 1 + 1 + 2);
    }
}
