//! One lane's segmented log: recovery on open, append, sequential read, ack, eviction.

use super::record;
use super::segment::{self, SegmentMeta};
use super::{Lane, RecoveryReport};
use protocol::uplink::Reading;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the reader is.
#[derive(Debug, Clone)]
pub(super) struct ReadPos {
    pub(super) index: u64,
    /// First index of the segment being read and the byte offset in it.
    pub(super) segment: u64,
    pub(super) offset: u64,
}

pub(super) struct Log {
    pub(super) lane: Lane,
    pub(super) dir: PathBuf,
    pub(super) segments: VecDeque<SegmentMeta>,
    pub(super) writer: Option<BufWriter<File>>,
    /// A second handle on the active segment, for fdatasync outside the buffer lock.
    pub(super) sync_handle: Option<Arc<File>>,
    pub(super) next_index: u64,
    pub(super) durable: u64,
    pub(super) acked: u64,
    pub(super) read: ReadPos,
    /// Buffered: records are read sequentially; read-ahead past `durable` is harmless
    /// because the log is append-only (bytes at an offset never change).
    pub(super) reader: Option<(u64, io::BufReader<File>)>,
    /// Sum of `segments[..].bytes`, kept so the byte bound costs nothing per append.
    pub(super) bytes_total: u64,
    /// Records skipped because they were unreadable after recovery.
    pub(super) skipped: u64,
}

impl Log {
    pub(super) fn open(
        lane: Lane,
        dir: PathBuf,
        acked: u64,
        report: &mut RecoveryReport,
    ) -> io::Result<Log> {
        std::fs::create_dir_all(&dir)?;
        let mut segments = VecDeque::new();
        for (first, path) in segment::list(&dir)? {
            let (meta, t) = segment::recover(first, &path)?;
            report.bytes_dropped += t.bytes_dropped;
            report.records_dropped += t.records_dropped;
            report.segments += 1;
            report.records += meta.records;
            segments.push_back(meta);
        }
        // Segments fully acked before the crash (deletion had not happened yet).
        while segments.len() > 1 && segments[0].end() <= acked {
            let s = segments.pop_front().expect("len > 1");
            std::fs::remove_file(&s.path)?;
        }
        let end = segments.back().map(|s| s.end()).unwrap_or(0);
        let next_index = end.max(acked);
        let mut log = Log {
            lane,
            dir,
            segments,
            writer: None,
            sync_handle: None,
            next_index,
            durable: next_index,
            acked,
            read: ReadPos {
                index: 0,
                segment: 0,
                offset: 0,
            },
            reader: None,
            bytes_total: 0,
            skipped: 0,
        };
        log.bytes_total = log.segments.iter().map(|s| s.bytes).sum();
        if next_index > end || log.segments.is_empty() {
            log.new_segment()?;
        } else {
            log.open_active()?;
        }
        log.seek_read(acked.max(log.segments[0].first))?;
        report.unacked += log.next_index.saturating_sub(log.read.index);
        Ok(log)
    }

    pub(super) fn open_active(&mut self) -> io::Result<()> {
        let s = self.segments.back().expect("a log always has a segment");
        let f = OpenOptions::new().append(true).open(&s.path)?;
        self.sync_handle = Some(Arc::new(f.try_clone()?));
        self.writer = Some(BufWriter::with_capacity(256 * 1024, f));
        Ok(())
    }

    /// Closes the active segment (synced) and starts a new one at `next_index`.
    pub(super) fn new_segment(&mut self) -> io::Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        self.durable = self.next_index;
        let path = self.dir.join(segment::file_name(self.next_index));
        File::create(&path)?;
        if let Ok(d) = File::open(&self.dir) {
            d.sync_all()?;
        }
        self.segments.push_back(SegmentMeta {
            first: self.next_index,
            records: 0,
            bytes: 0,
            path,
        });
        self.open_active()
    }

    /// Positions the reader at record `index` (or the first record after it).
    pub(super) fn seek_read(&mut self, index: u64) -> io::Result<()> {
        let seg = self
            .segments
            .iter()
            .rev()
            .find(|s| s.first <= index)
            .or(self.segments.front())
            .expect("a log always has a segment")
            .clone();
        let mut pos = ReadPos {
            index: seg.first,
            segment: seg.first,
            offset: 0,
        };
        if index > seg.first {
            let mut bytes = Vec::new();
            File::open(&seg.path)?.read_to_end(&mut bytes)?;
            while pos.index < index {
                match record::decode(&bytes[pos.offset as usize..]) {
                    record::Decoded::Record(_, len) => {
                        pos.offset += len as u64;
                        pos.index += 1;
                    }
                    _ => break,
                }
            }
        }
        self.read = pos;
        self.reader = None;
        Ok(())
    }

    pub(super) fn bytes(&self) -> u64 {
        debug_assert_eq!(
            self.bytes_total,
            self.segments.iter().map(|s| s.bytes).sum::<u64>()
        );
        self.bytes_total
    }

    pub(super) fn append(&mut self, encoded: &[u8], segment_bytes_max: u64) -> io::Result<()> {
        let active = self.segments.back().expect("a log always has a segment");
        if active.bytes > 0 && active.bytes + encoded.len() as u64 > segment_bytes_max {
            self.new_segment()?;
        }
        let w = self.writer.as_mut().expect("active writer");
        w.write_all(encoded)?;
        let s = self
            .segments
            .back_mut()
            .expect("a log always has a segment");
        s.bytes += encoded.len() as u64;
        self.bytes_total += encoded.len() as u64;
        s.records += 1;
        self.next_index += 1;
        Ok(())
    }

    /// Moves the read position to the start of the oldest segment kept.
    fn read_from_oldest(&mut self) {
        let first = self.segments[0].first;
        self.read = ReadPos {
            index: first,
            segment: first,
            offset: 0,
        };
        self.reader = None;
    }

    /// Reads up to `max` durable records from the read position.
    pub(super) fn take(&mut self, max: usize, out: &mut Vec<Reading>) -> io::Result<(u64, u64)> {
        let start = self.read.index;
        while out.len() < max && self.read.index < self.durable {
            let Some(seg) = self.segments.iter().find(|s| s.first == self.read.segment) else {
                // Our segment was evicted under us: continue at the oldest remaining one.
                self.read_from_oldest();
                continue;
            };
            if self.read.offset >= seg.bytes {
                // End of this segment: move to the next one, if any.
                let next = self
                    .segments
                    .iter()
                    .find(|s| s.first > seg.first)
                    .map(|s| s.first);
                match next {
                    Some(first) => {
                        self.read = ReadPos {
                            index: first,
                            segment: first,
                            offset: 0,
                        };
                        self.reader = None;
                        continue;
                    }
                    None => break,
                }
            }
            if self.reader.as_ref().map(|r| r.0) != Some(seg.first) {
                let mut f = File::open(&seg.path)?;
                f.seek(SeekFrom::Start(self.read.offset))?;
                self.reader = Some((seg.first, io::BufReader::with_capacity(64 * 1024, f)));
            }
            let (_, f) = self.reader.as_mut().expect("set above");
            match read_record(f) {
                Ok(record::Decoded::Record(r, n)) => {
                    out.push(r);
                    self.read.offset += n as u64;
                    self.read.index += 1;
                }
                // Damage after recovery (bit rot, a truncated file): never stall the uplink on
                // it. Skip the rest of this segment (sealing it first if it is the active one)
                // and count what was skipped.
                other => {
                    let seg_end = seg.end();
                    let seg_first = seg.first;
                    tracing::error!(
                        lane = self.lane.name(),
                        segment = seg_first,
                        offset = self.read.offset,
                        result = ?other.as_ref().map(|_| "corrupt").map_err(|e| e.to_string()),
                        "unreadable record in the buffer; skipping the rest of its segment"
                    );
                    self.skipped += seg_end.saturating_sub(self.read.index);
                    if self.segments.back().map(|s| s.first) == Some(seg_first) {
                        self.new_segment()?;
                    }
                    let next = self
                        .segments
                        .iter()
                        .find(|s| s.first > seg_first)
                        .map(|s| s.first)
                        .expect("a later segment exists: the active one was just sealed");
                    self.read = ReadPos {
                        index: next,
                        segment: next,
                        offset: 0,
                    };
                    self.reader = None;
                }
            }
        }
        Ok((start, self.read.index))
    }

    /// Deletes segments whose records are all acked (never the active one).
    pub(super) fn ack(&mut self, end: u64) -> io::Result<()> {
        self.acked = self.acked.max(end);
        while self.segments.len() > 1 && self.segments[0].end() <= self.acked {
            let s = self.segments.pop_front().expect("len > 1");
            self.bytes_total -= s.bytes;
            std::fs::remove_file(&s.path)?;
        }
        Ok(())
    }

    /// Takes the oldest segment out of the log and sorts its records into unsent and in
    /// flight. Its file stays on disk for the caller to delete once the loss reports are
    /// persisted: a crash in between may both resend and report them, never lose them
    /// unreported.
    pub(super) fn evict_oldest(&mut self) -> io::Result<Option<Evicted>> {
        if self.segments.len() == 1 {
            if self.segments[0].records == 0 {
                return Ok(None);
            }
            self.new_segment()?;
        }
        let s = self.segments.pop_front().expect("len > 1");
        self.bytes_total -= s.bytes;
        let mut bytes = Vec::new();
        File::open(&s.path)?.read_to_end(&mut bytes)?;
        let mut ev = Evicted {
            path: s.path.clone(),
            unsent: Vec::new(),
            in_flight: Vec::new(),
        };
        let mut off = 0;
        let mut index = s.first;
        while let record::Decoded::Record(r, n) = record::decode(&bytes[off..]) {
            if index >= self.read.index {
                ev.unsent.push(r);
            } else if index >= self.acked {
                ev.in_flight.push((index, r));
            }
            off += n;
            index += 1;
        }
        if self.read.segment == s.first || self.read.index < s.end() {
            self.read_from_oldest();
        }
        self.acked = self.acked.max(s.end());
        Ok(Some(ev))
    }

    pub(super) fn unacked(&self) -> u64 {
        self.next_index
            .saturating_sub(self.acked.max(self.segments[0].first))
    }
}

/// A segment eviction took out of its log (see [`Log::evict_oldest`]).
pub(super) struct Evicted {
    /// The segment file, deleted by [`Buffer::evict`] after the reports are persisted.
    pub(super) path: PathBuf,
    /// Records never handed to the uplink: lost.
    pub(super) unsent: Vec<Reading>,
    /// Records handed to the uplink and not acked, with their index: in flight.
    pub(super) in_flight: Vec<(u64, Reading)>,
}

/// Reads one record from a sequential reader.
fn read_record(f: &mut impl Read) -> io::Result<record::Decoded> {
    let mut header = [0u8; record::HEADER_BYTES];
    f.read_exact(&mut header)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len == 0 || len > record::PAYLOAD_BYTES_MAX as usize {
        return Ok(record::Decoded::Corrupt);
    }
    let mut rec = header.to_vec();
    rec.resize(record::HEADER_BYTES + len, 0);
    f.read_exact(&mut rec[record::HEADER_BYTES..])?;
    Ok(record::decode(&rec))
}
