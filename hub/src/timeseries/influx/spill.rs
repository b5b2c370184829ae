//! The spill: segment files of line protocol, appended and fsynced per `write`, and the
//! settled position (`drain.pos`) behind which segments are deleted.

use super::line::line_of;
use super::replay::SpillPos;
use super::{InfluxSink, StoredReading, TsError};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

/// A spill segment is closed and a new one started past this size.
const SEGMENT_BYTES_MAX: u64 = 64 << 20;
/// The settled position (see `replay.rs`): where the next process starts sending.
const POS_FILE: &str = "drain.pos";

pub(super) struct SpillWriter {
    pub(super) file: File,
    pub(super) seg: u64,
    pub(super) len: u64,
}

pub(super) fn io_err(what: &str, path: &Path, e: std::io::Error) -> TsError {
    TsError::Store(format!("influx spill {what} {}: {e}", path.display()))
}

/// Makes a new segment's directory entry durable (its contents are fsynced on every write).
pub(super) fn sync_dir(dir: &Path) -> Result<(), TsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("sync", dir, e))
}

pub(super) fn seg_path(dir: &Path, seg: u64) -> PathBuf {
    dir.join(format!("{seg:016}.lp"))
}

pub(super) fn list_segments(dir: &Path) -> Result<Vec<u64>, TsError> {
    let mut segs = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io_err("read", dir, e))? {
        let e = e.map_err(|e| io_err("read", dir, e))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".lp").and_then(|s| s.parse::<u64>().ok()) {
            segs.push(n);
        }
    }
    segs.sort_unstable();
    Ok(segs)
}

impl InfluxSink {
    pub(super) fn spill(&self, readings: &[StoredReading]) -> Result<(), TsError> {
        let mut body = String::with_capacity(readings.len() * 128);
        for r in readings {
            line_of(&mut body, r);
        }
        if self.held_bytes() + body.len() as u64 > self.spill_bytes_max {
            return Err(TsError::Unavailable(format!(
                "influx spill full ({} bytes unsent, {} bytes in the replay window; \
                 spill_bytes_max {}); the server has been unreachable or slow",
                self.backlog_bytes(),
                self.held_bytes() - self.backlog_bytes(),
                self.spill_bytes_max
            )));
        }
        let mut w = self
            .writer
            .lock()
            .map_err(|_| TsError::Store("spill lock poisoned".into()))?;
        if w.len >= SEGMENT_BYTES_MAX {
            let seg = w.seg + 1;
            let path = seg_path(&self.shared.dir, seg);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| io_err("open", &path, e))?;
            sync_dir(&self.shared.dir)?;
            *w = SpillWriter { file, seg, len: 0 };
        }
        let path = seg_path(&self.shared.dir, w.seg);
        if let Err(e) = w
            .file
            .write_all(body.as_bytes())
            .and_then(|_| w.file.sync_data())
        {
            // Undo a partial append so the segment stays whole lines.
            let len = w.len;
            let _ = w.file.set_len(len);
            return Err(io_err("append", &path, e));
        }
        w.len += body.len() as u64;
        self.shared
            .metrics
            .spill_backlog_bytes
            .fetch_add(body.len() as u64, Relaxed);
        if let Ok(mut c) = self.shared.committed.lock() {
            *c = (w.seg, w.len);
        }
        self.shared.wake.notify_one();
        Ok(())
    }
}

pub(super) fn read_pos(dir: &Path) -> (u64, u64) {
    std::fs::read_to_string(dir.join(POS_FILE))
        .ok()
        .and_then(|s| {
            let (a, b) = s.trim().split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((0, 0))
}

pub(super) fn write_pos(dir: &Path, seg: u64, off: u64) {
    // Not fsynced: losing it only resends points the server overwrites in place.
    let tmp = dir.join("drain.pos.tmp");
    if std::fs::write(&tmp, format!("{seg} {off}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, dir.join(POS_FILE));
    }
}

/// Persists a new settled position and deletes the segments wholly before it (also any left
/// behind by a crash between the two).
pub(super) fn settle_to(dir: &Path, (seg, off): SpillPos) {
    write_pos(dir, seg, off);
    for s in list_segments(dir).unwrap_or_default() {
        if s < seg {
            let _ = std::fs::remove_file(seg_path(dir, s));
        }
    }
}
