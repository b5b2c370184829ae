//! Segment files: `{first_index:020}.seg`, records appended in index order.
//!
//! Segments make deletion cheap (an acked segment is one `unlink`) and bound what recovery
//! and eviction touch to one file.

use super::record::{self, Decoded};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct SegmentMeta {
    /// Index of the first record.
    pub first: u64,
    /// Records in the segment (valid ones, after recovery).
    pub records: u64,
    /// Bytes in the file, including data not yet written from the append buffer.
    pub bytes: u64,
    pub path: PathBuf,
}

impl SegmentMeta {
    /// Index one past the last record.
    pub fn end(&self) -> u64 {
        self.first + self.records
    }
}

pub fn file_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// Segment files in `dir`, sorted by first index (files not named like segments are ignored).
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let first = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            out.push((first, p));
        }
    }
    out.sort();
    Ok(out)
}

/// What recovery did to one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Truncation {
    pub bytes_dropped: u64,
    /// Records in the dropped tail we could still frame by their length prefix (at least 1
    /// when anything was dropped): a torn tail is one record, a corrupt one may hide more.
    pub records_dropped: u64,
}

/// Scans a segment, truncating it at the first record that is torn or corrupt.
pub fn recover(first: u64, path: &Path) -> io::Result<(SegmentMeta, Truncation)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut off = 0usize;
    let mut records = 0u64;
    while off < bytes.len() {
        match record::decode(&bytes[off..]) {
            Decoded::Record(_, len) => {
                off += len;
                records += 1;
            }
            Decoded::Incomplete | Decoded::Corrupt => break,
        }
    }
    let mut t = Truncation::default();
    if off < bytes.len() {
        t.bytes_dropped = (bytes.len() - off) as u64;
        t.records_dropped = framed_records(&bytes[off..]);
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(off as u64)?;
        f.sync_all()?;
    }
    Ok((
        SegmentMeta {
            first,
            records,
            bytes: off as u64,
            path: path.to_path_buf(),
        },
        t,
    ))
}

/// How many records a dropped tail held, walking length prefixes while they are plausible.
fn framed_records(mut tail: &[u8]) -> u64 {
    let mut n = 0;
    while !tail.is_empty() {
        n += 1;
        if tail.len() < record::HEADER_BYTES {
            break;
        }
        let len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        if len == 0 || len > record::PAYLOAD_BYTES_MAX {
            break;
        }
        let step = record::HEADER_BYTES + len as usize;
        if step >= tail.len() {
            break;
        }
        tail = &tail[step..];
    }
    n
}
