//! The buffer's counters, and what `edge buffer` reads from disk when the agent is not running.

use super::cursor::{read_cursor, read_u64_file, CURSOR_FILE, EPOCH_FILE};
use super::{record, segment, Buffer, Lane};
use std::io;
use std::path::Path;

/// Counters the buffer keeps (metrics, `edge buffer`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BufferStats {
    pub bytes: u64,
    pub records_unacked: u64,
    pub urgent_unacked: u64,
    pub durable_unread: u64,
    /// Unsent readings evicted (each reported as part of a gap).
    pub evicted_records: u64,
    pub evicted_urgent_records: u64,
    /// Readings evicted from the disk while in an unacked batch: delivered if the batch is
    /// acked, reported as a gap if the edge restarts first.
    pub evicted_in_flight_records: u64,
    pub epoch: u64,
    pub recovery_records_dropped: u64,
    pub recovery_bytes_dropped: u64,
    /// Records found unreadable while running (after recovery) and skipped.
    pub unreadable_skipped: u64,
}

impl Buffer {
    pub fn stats(&self) -> BufferStats {
        BufferStats {
            bytes: self.bytes(),
            records_unacked: self.logs[0].unacked() + self.logs[1].unacked(),
            urgent_unacked: self.logs[0].unacked(),
            durable_unread: self.unread(Lane::Urgent) + self.unread(Lane::Normal),
            unreadable_skipped: self.logs[0].skipped + self.logs[1].skipped,
            ..self.stats.clone()
        }
    }
}

/// What `edge buffer` shows when the agent is not running: read from disk, changing nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfflineStats {
    pub bytes: u64,
    pub unacked: u64,
    pub urgent_unacked: u64,
    pub oldest_unacked_ns: Option<i64>,
    /// Bytes at segment tails that recovery will drop (torn or corrupt).
    pub torn_bytes: u64,
    pub epoch: u64,
}

/// Scans the buffer directory read-only (no recovery, no truncation).
pub fn offline_stats(dir: &Path) -> io::Result<OfflineStats> {
    let acked = read_cursor(&dir.join(CURSOR_FILE))?;
    let mut st = OfflineStats {
        epoch: read_u64_file(&dir.join(EPOCH_FILE))?.unwrap_or(0),
        ..Default::default()
    };
    for lane in Lane::ALL {
        let lane_dir = dir.join(lane.name());
        if !lane_dir.exists() {
            continue;
        }
        for (first, path) in segment::list(&lane_dir)? {
            let bytes = std::fs::read(&path)?;
            st.bytes += bytes.len() as u64;
            let (mut off, mut index) = (0usize, first);
            while let record::Decoded::Record(r, n) = record::decode(&bytes[off..]) {
                if index >= acked[lane as usize] {
                    st.unacked += 1;
                    if lane == Lane::Urgent {
                        st.urgent_unacked += 1;
                    }
                    st.oldest_unacked_ns =
                        Some(st.oldest_unacked_ns.map_or(r.ts_ns, |t| t.min(r.ts_ns)));
                }
                off += n;
                index += 1;
            }
            st.torn_bytes += (bytes.len() - off) as u64;
        }
    }
    Ok(st)
}
