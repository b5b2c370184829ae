//! The loss reports the buffer owes the hub, and the `gaps` file that keeps them across
//! crashes.
//!
//! Two kinds:
//! * **reported** gaps: readings evicted before they were ever sent, certainly lost. They
//!   ride on the next batch and stay in the file until the hub acks that batch;
//! * **in-flight losses**: readings evicted from the disk while a batch carrying them was in
//!   flight. Only the uplink's memory holds them then: if that batch is acked they arrived
//!   and the loss is dropped; if the edge restarts first they are gone, and the loss becomes
//!   a reported gap of the next epoch. Reporting them at once would over-report (most such
//!   batches are acked); not reporting them at all lost them silently on a crash (found by
//!   `tests/tests/delivery_sim.rs`, seed 297).
//!
//! The file is replaced atomically (tmp + fdatasync + rename + dir fsync), so a crash or
//! power loss leaves either the old or the new version, never a torn one; a CRC catches
//! what the disk damaged later. Written only when the set changes: evictions and acks of
//! batches that carry or lost something, both rare.

use protocol::uplink::{Gap, GapReason, Reading};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

pub const GAPS_FILE: &str = "gaps";

/// Start of the file since in-flight losses are kept (the first version was a bare
/// postcard `Vec<Gap>`, still read).
const MAGIC: &[u8; 8] = b"WGGAPS2\n";

/// Readings of one in-flight batch (`lane`, indexes `start..end`) evicted from the disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlightLoss {
    /// [`super::Lane`] as a number (0 urgent, 1 normal).
    pub lane: u8,
    pub start: u64,
    pub end: u64,
    /// Per sensor: what to report if the batch is never acked.
    pub gaps: Vec<Gap>,
}

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GapsFile {
    pub reported: Vec<Gap>,
    pub in_flight: Vec<InFlightLoss>,
}

impl GapsFile {
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let body = postcard::to_allocvec(self).map_err(|e| io::Error::other(e.to_string()))?;
        let mut bytes = Vec::with_capacity(MAGIC.len() + body.len() + 4);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&crc32c(&body).to_le_bytes());
        Ok(bytes)
    }

    /// Decodes either version. `Err` names what is wrong; the caller decides what to do.
    pub fn decode(bytes: &[u8]) -> Result<GapsFile, String> {
        let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
            // The first version: the reported gaps only.
            return postcard::from_bytes::<Vec<Gap>>(bytes)
                .map(|reported| GapsFile {
                    reported,
                    in_flight: Vec::new(),
                })
                .map_err(|e| format!("neither format decodes: {e}"));
        };
        if rest.len() < 4 {
            return Err(format!("{} bytes: too short for its CRC", bytes.len()));
        }
        let (body, crc) = rest.split_at(rest.len() - 4);
        if crc32c(body).to_le_bytes() != crc {
            return Err("CRC mismatch".into());
        }
        postcard::from_bytes(body).map_err(|e| format!("undecodable: {e}"))
    }

    /// Reads the file in `dir`; missing = nothing owed. `None` when it cannot be read or
    /// decoded (logged with its path; the caller counts it): the buffer still opens, since
    /// refusing to start would lose far more than the reports in that file.
    pub fn read(dir: &Path) -> Option<GapsFile> {
        let path = dir.join(GAPS_FILE);
        let why = match std::fs::read(&path) {
            Ok(b) => match GapsFile::decode(&b) {
                Ok(f) => return Some(f),
                Err(why) => why,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(GapsFile::default()),
            Err(e) => e.to_string(),
        };
        tracing::error!(
            file = %path.display(),
            error = %why,
            "unreadable gaps file: losses not yet acked by the hub cannot be reported again"
        );
        None
    }
}

fn crc32c(bytes: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(bytes)
}

/// Adds `readings` to `gaps` as one gap per sensor (merged with that sensor's gap if there
/// is one: at most one gap per sensor, so the list is bounded by the sensors). Returns
/// whether anything was added.
pub fn merge_readings<'a>(
    gaps: &mut Vec<Gap>,
    readings: impl IntoIterator<Item = &'a Reading>,
) -> bool {
    let mut per_sensor: BTreeMap<&str, (i64, i64, u64)> = BTreeMap::new();
    for r in readings {
        let e = per_sensor
            .entry(r.sensor.as_str())
            .or_insert((r.ts_ns, r.ts_ns, 0));
        e.0 = e.0.min(r.ts_ns);
        e.1 = e.1.max(r.ts_ns);
        e.2 += 1;
    }
    let changed = !per_sensor.is_empty();
    for (sensor, (from_ns, to_ns, count)) in per_sensor {
        merge_gap(
            gaps,
            Gap {
                sensor: sensor.into(),
                from_ns,
                to_ns,
                count,
                reason: GapReason::BufferFull,
            },
        );
    }
    changed
}

/// Adds one gap, merged into the sensor's existing one if there is one.
pub fn merge_gap(gaps: &mut Vec<Gap>, g: Gap) {
    if let Some(e) = gaps.iter_mut().find(|e| e.sensor == g.sensor) {
        e.from_ns = e.from_ns.min(g.from_ns);
        e.to_ns = e.to_ns.max(g.to_ns);
        e.count += g.count;
    } else {
        gaps.push(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(sensor: &str, count: u64) -> Gap {
        Gap {
            sensor: sensor.into(),
            from_ns: 1,
            to_ns: 2,
            count,
            reason: GapReason::BufferFull,
        }
    }

    #[test]
    fn both_versions_decode_and_damage_is_refused() {
        let f = GapsFile {
            reported: vec![gap("A", 3)],
            in_flight: vec![InFlightLoss {
                lane: 1,
                start: 10,
                end: 20,
                gaps: vec![gap("B", 4)],
            }],
        };
        let bytes = f.encode().unwrap();
        assert_eq!(GapsFile::decode(&bytes).unwrap(), f);
        let legacy = postcard::to_allocvec(&vec![gap("A", 3)]).unwrap();
        assert_eq!(
            GapsFile::decode(&legacy).unwrap().reported,
            vec![gap("A", 3)]
        );
        for cut in [bytes.len() - 1, MAGIC.len() + 2] {
            assert!(GapsFile::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[MAGIC.len() + 1] ^= 0x40;
        assert!(GapsFile::decode(&flipped).is_err());
    }
}
