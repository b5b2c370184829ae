//! The durable buffer: two segmented append-only logs on disk (`urgent` and `normal`),
//! group-committed, bounded in bytes, with a persisted acked cursor per log.
//!
//! Invariants:
//! * a record is handed to the uplink only once it is fsynced (`durable`), so the acked
//!   cursor can never point past what survives a crash;
//! * a record leaves the disk only when the hub acked it (segment deletion) or when the
//!   byte bound forced an eviction, which is counted and reported as a [`Gap`] — at once if
//!   the record was never sent; if it was in a batch still in flight, only when that batch
//!   is never acked (the edge restarted first): see [`gaps`];
//! * eviction takes the oldest `normal` segment first; `urgent` only when `normal` is empty;
//! * after a restart reading resumes at the acked cursor (never "resend everything").
//!
//! Why our own log rather than a crate: the access pattern is append + sequential read +
//! delete-from-head, which a segmented log does with one write and one fdatasync per group;
//! measured figures are in edge/README.md.

pub mod gaps;
pub mod record;
pub mod segment;

use gaps::{GapsFile, InFlightLoss, GAPS_FILE};
use protocol::uplink::{Gap, Reading, ReadingFlags};
use segment::SegmentMeta;
use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which log a record lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    Urgent = 0,
    Normal = 1,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Urgent, Lane::Normal];
    pub fn name(self) -> &'static str {
        match self {
            Lane::Urgent => "urgent",
            Lane::Normal => "normal",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BufferOptions {
    pub buffer_bytes_max: u64,
    pub segment_bytes_max: u64,
}

/// What recovery found on open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: u64,
    pub records: u64,
    /// Records still to send (after the acked cursor).
    pub unacked: u64,
    pub bytes_dropped: u64,
    pub records_dropped: u64,
    /// Readings evicted from the disk while their batch was in flight, whose batch the hub
    /// had not acked when the last epoch ended: lost, reported as gaps in this one.
    pub in_flight_lost: u64,
    /// The `gaps` file could not be read (logged): what it owed the hub is not reported.
    pub gaps_file_unreadable: bool,
}

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

/// Where the reader is.
#[derive(Debug, Clone)]
struct ReadPos {
    index: u64,
    /// First index of the segment being read and the byte offset in it.
    segment: u64,
    offset: u64,
}

struct Log {
    lane: Lane,
    dir: PathBuf,
    segments: VecDeque<SegmentMeta>,
    writer: Option<BufWriter<File>>,
    /// A second handle on the active segment, for fdatasync outside the buffer lock.
    sync_handle: Option<Arc<File>>,
    next_index: u64,
    durable: u64,
    acked: u64,
    read: ReadPos,
    /// Buffered: records are read sequentially; read-ahead past `durable` is harmless
    /// because the log is append-only (bytes at an offset never change).
    reader: Option<(u64, io::BufReader<File>)>,
    /// Sum of `segments[..].bytes`, kept so the byte bound costs nothing per append.
    bytes_total: u64,
    /// Records skipped because they were unreadable after recovery.
    skipped: u64,
}

impl Log {
    fn open(lane: Lane, dir: PathBuf, acked: u64, report: &mut RecoveryReport) -> io::Result<Log> {
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

    fn open_active(&mut self) -> io::Result<()> {
        let s = self.segments.back().expect("a log always has a segment");
        let f = OpenOptions::new().append(true).open(&s.path)?;
        self.sync_handle = Some(Arc::new(f.try_clone()?));
        self.writer = Some(BufWriter::with_capacity(256 * 1024, f));
        Ok(())
    }

    /// Closes the active segment (synced) and starts a new one at `next_index`.
    fn new_segment(&mut self) -> io::Result<()> {
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
    fn seek_read(&mut self, index: u64) -> io::Result<()> {
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

    fn bytes(&self) -> u64 {
        debug_assert_eq!(
            self.bytes_total,
            self.segments.iter().map(|s| s.bytes).sum::<u64>()
        );
        self.bytes_total
    }

    fn append(&mut self, encoded: &[u8], segment_bytes_max: u64) -> io::Result<()> {
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

    /// Reads up to `max` durable records from the read position.
    fn take(&mut self, max: usize, out: &mut Vec<Reading>) -> io::Result<(u64, u64)> {
        let start = self.read.index;
        while out.len() < max && self.read.index < self.durable {
            let Some(seg) = self.segments.iter().find(|s| s.first == self.read.segment) else {
                // Our segment was evicted under us: continue at the oldest remaining one.
                let first = self.segments[0].first;
                self.read = ReadPos {
                    index: first,
                    segment: first,
                    offset: 0,
                };
                self.reader = None;
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
    fn ack(&mut self, end: u64) -> io::Result<()> {
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
    fn evict_oldest(&mut self) -> io::Result<Option<Evicted>> {
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
            let first = self.segments[0].first;
            self.read = ReadPos {
                index: first,
                segment: first,
                offset: 0,
            };
            self.reader = None;
        }
        self.acked = self.acked.max(s.end());
        Ok(Some(ev))
    }

    fn unacked(&self) -> u64 {
        self.next_index
            .saturating_sub(self.acked.max(self.segments[0].first))
    }
}

/// A segment eviction took out of its log (see [`Log::evict_oldest`]).
struct Evicted {
    /// The segment file, deleted by [`Buffer::evict`] after the reports are persisted.
    path: PathBuf,
    /// Records never handed to the uplink: lost.
    unsent: Vec<Reading>,
    /// Records handed to the uplink and not acked, with their index: in flight.
    in_flight: Vec<(u64, Reading)>,
}

/// A lane index range [`Buffer::take`] handed out for one batch, until the hub's ack moves
/// the lane's cursor past it. Eviction needs it to tell which batch an evicted record rides
/// on, and whether that batch was already acked out of order (then nothing is lost).
#[derive(Debug, Clone)]
struct TakenRange {
    start: u64,
    end: u64,
    acked: bool,
}

/// Taken ranges kept per lane. The uplink holds at most `inflight_batches_max` batches, so
/// this is only a guard: a range pushed out is treated as unknown, and an eviction reports
/// its records as lost at once (over-reporting rather than losing silently).
const TAKEN_RANGES_MAX: usize = 4096;

/// The buffer: both logs, the cursor file and the byte bound.
pub struct Buffer {
    dir: PathBuf,
    opts: BufferOptions,
    logs: [Log; 2],
    scratch: Vec<u8>,
    /// Gaps from evictions, waiting to ride on the next batch.
    gaps: Vec<Gap>,
    /// Gaps riding on batches not yet acked, by batch seq (persisted with `gaps`).
    gaps_inflight: BTreeMap<u64, Vec<Gap>>,
    /// Readings evicted while their batch was in flight (persisted with `gaps`).
    in_flight_losses: Vec<InFlightLoss>,
    /// Per lane, the ranges handed out and not yet passed by the acked cursor, oldest first.
    taken: [VecDeque<TakenRange>; 2],
    persisted_acked: [u64; 2],
    /// Readings appended since open, and how many of them are durable: sources acknowledge
    /// their input (MQTT PUBACK) only once their readings are durable.
    appended_total: u64,
    durable_total: u64,
    epoch: u64,
    stats: BufferStats,
    pub recovery: RecoveryReport,
}

/// Readings taken for one batch: which lane and which index range they cover.
#[derive(Debug)]
pub struct Taken {
    pub lane: Lane,
    pub start: u64,
    pub end: u64,
    pub readings: Vec<Reading>,
}

/// Handles to fdatasync outside the lock, with the index each makes durable.
pub struct SyncTicket {
    files: Vec<(Lane, Arc<File>, u64)>,
    appended_total: u64,
}

impl SyncTicket {
    pub fn run(&self) -> io::Result<()> {
        for (_, f, _) in &self.files {
            f.sync_data()?;
        }
        Ok(())
    }
}

const CURSOR_FILE: &str = "cursor";
const EPOCH_FILE: &str = "epoch";

impl Buffer {
    /// Opens (or creates) the buffer in `dir`, recovering from whatever a crash left.
    /// Each open is a new epoch.
    pub fn open(dir: &Path, opts: BufferOptions) -> io::Result<Buffer> {
        std::fs::create_dir_all(dir)?;
        let acked = read_cursor(&dir.join(CURSOR_FILE))?;
        let epoch = read_u64_file(&dir.join(EPOCH_FILE))?.unwrap_or(0) + 1;
        write_atomically(dir, EPOCH_FILE, &epoch.to_le_bytes())?;
        let mut recovery = RecoveryReport::default();
        // In-flight losses of the last epoch: their batches were never acked (an ack removes
        // them), and their readings are neither on disk nor in anyone's memory any more.
        // Converted in memory only: until the next write the file still says "in flight",
        // and reopening converts them again, exactly once.
        let mut owed = GapsFile::read(dir).unwrap_or_else(|| {
            recovery.gaps_file_unreadable = true;
            GapsFile::default()
        });
        for loss in std::mem::take(&mut owed.in_flight) {
            for g in loss.gaps {
                recovery.in_flight_lost += g.count;
                gaps::merge_gap(&mut owed.reported, g);
            }
        }
        if recovery.in_flight_lost > 0 {
            tracing::warn!(
                readings = recovery.in_flight_lost,
                "readings evicted while in flight were never acked before the last shutdown \
                 or crash: reported to the hub as gaps"
            );
        }
        let urgent = Log::open(Lane::Urgent, dir.join("urgent"), acked[0], &mut recovery)?;
        let normal = Log::open(Lane::Normal, dir.join("normal"), acked[1], &mut recovery)?;
        let stats = BufferStats {
            epoch,
            recovery_records_dropped: recovery.records_dropped,
            recovery_bytes_dropped: recovery.bytes_dropped,
            ..Default::default()
        };
        Ok(Buffer {
            dir: dir.to_path_buf(),
            opts,
            logs: [urgent, normal],
            scratch: Vec::with_capacity(256),
            gaps: owed.reported,
            gaps_inflight: BTreeMap::new(),
            in_flight_losses: Vec::new(),
            taken: [VecDeque::new(), VecDeque::new()],
            persisted_acked: acked,
            appended_total: 0,
            durable_total: 0,
            epoch,
            stats,
            recovery,
        })
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn bytes(&self) -> u64 {
        self.logs[0].bytes() + self.logs[1].bytes()
    }

    /// Appends one reading (not yet durable: see [`Buffer::prepare_sync`]).
    pub fn append(&mut self, r: &Reading) -> io::Result<()> {
        self.scratch.clear();
        record::encode(r, &mut self.scratch);
        let need = self.scratch.len() as u64;
        while self.bytes() + need > self.opts.buffer_bytes_max {
            if !self.evict()? {
                break;
            }
        }
        let lane = if r.flags.has(ReadingFlags::URGENT) {
            Lane::Urgent
        } else {
            Lane::Normal
        };
        let scratch = std::mem::take(&mut self.scratch);
        let res = self.logs[lane as usize].append(&scratch, self.opts.segment_bytes_max);
        self.scratch = scratch;
        if res.is_ok() {
            self.appended_total += 1;
        }
        res
    }

    /// Readings appended since open (a mark a source can wait on).
    pub fn appended_total(&self) -> u64 {
        self.appended_total
    }

    /// Readings appended since open that are durable (fdatasync'ed).
    pub fn durable_total(&self) -> u64 {
        self.durable_total
    }

    /// Frees space: the oldest normal segment, or the oldest urgent one only when normal
    /// holds nothing. Returns false if there was nothing to evict.
    fn evict(&mut self) -> io::Result<bool> {
        // Acked records still on disk cost nothing to drop: free them first.
        let mut freed = false;
        for log in &mut self.logs {
            let active = log.segments.back().expect("a log always has a segment");
            if log.segments.len() == 1 && active.records > 0 && log.acked >= active.end() {
                log.new_segment()?;
                let acked = log.acked;
                log.ack(acked)?;
                freed = true;
            }
        }
        if freed {
            return Ok(true);
        }
        let lane = if self.logs[Lane::Normal as usize].unacked() > 0
            || self.logs[Lane::Normal as usize].segments.len() > 1
        {
            Lane::Normal
        } else if self.logs[Lane::Urgent as usize]
            .segments
            .iter()
            .any(|s| s.records > 0)
        {
            Lane::Urgent
        } else {
            return Ok(false);
        };
        let Some(ev) = self.logs[lane as usize].evict_oldest()? else {
            return Ok(true);
        };
        self.stats.evicted_records += ev.unsent.len() as u64;
        if lane == Lane::Urgent {
            self.stats.evicted_urgent_records += ev.unsent.len() as u64;
        }
        self.stats.evicted_in_flight_records += ev.in_flight.len() as u64;
        let mut changed = gaps::merge_readings(&mut self.gaps, &ev.unsent);
        changed |= self.note_in_flight_losses(lane, &ev.in_flight);
        if changed {
            self.persist_gaps()?;
        }
        std::fs::remove_file(&ev.path)?;
        Ok(true)
    }

    /// Files evicted in-flight records under the batch (taken range) they ride on. Records
    /// of a batch already acked out of order arrived: nothing to note. Returns whether the
    /// reports changed.
    fn note_in_flight_losses(&mut self, lane: Lane, lost: &[(u64, Reading)]) -> bool {
        let mut per_batch: BTreeMap<(u64, u64), Vec<&Reading>> = BTreeMap::new();
        let mut unknown = Vec::new();
        for (index, r) in lost {
            let taken = self.taken[lane as usize]
                .iter()
                .find(|t| t.start <= *index && *index < t.end);
            match taken {
                Some(t) if t.acked => {}
                Some(t) => per_batch.entry((t.start, t.end)).or_default().push(r),
                None => unknown.push(r),
            }
        }
        let mut changed = gaps::merge_readings(&mut self.gaps, unknown);
        for ((start, end), readings) in per_batch {
            let lane_code = lane as u8;
            let pos = self
                .in_flight_losses
                .iter()
                .position(|l| (l.lane, l.start, l.end) == (lane_code, start, end));
            let loss = match pos {
                Some(p) => &mut self.in_flight_losses[p],
                None => {
                    self.in_flight_losses.push(InFlightLoss {
                        lane: lane_code,
                        start,
                        end,
                        gaps: Vec::new(),
                    });
                    self.in_flight_losses.last_mut().expect("just pushed")
                }
            };
            changed |= gaps::merge_readings(&mut loss.gaps, readings);
        }
        changed
    }

    /// Writes every unacknowledged gap (pending and riding on a batch) and every in-flight
    /// loss so a crash cannot lose the report of a loss. Rare (evictions, acks of batches
    /// carrying or losing something): done in place.
    fn persist_gaps(&self) -> io::Result<()> {
        let file = GapsFile {
            reported: self
                .gaps
                .iter()
                .chain(self.gaps_inflight.values().flatten())
                .cloned()
                .collect(),
            in_flight: self.in_flight_losses.clone(),
        };
        write_atomically(&self.dir, GAPS_FILE, &file.encode()?)
    }

    /// Flushes the append buffers and returns what to fdatasync, if anything is pending.
    pub fn prepare_sync(&mut self) -> io::Result<Option<SyncTicket>> {
        let mut files = Vec::new();
        for log in &mut self.logs {
            if log.next_index > log.durable {
                if let Some(w) = log.writer.as_mut() {
                    w.flush()?;
                }
                if let Some(h) = &log.sync_handle {
                    files.push((log.lane, h.clone(), log.next_index));
                }
            }
        }
        if files.is_empty() {
            self.durable_total = self.appended_total;
            return Ok(None);
        }
        Ok(Some(SyncTicket {
            files,
            appended_total: self.appended_total,
        }))
    }

    /// Marks what a ticket synced as durable (readable by the uplink).
    pub fn complete_sync(&mut self, t: SyncTicket) {
        self.durable_total = self.durable_total.max(t.appended_total);
        for (lane, _, upto) in t.files {
            let log = &mut self.logs[lane as usize];
            log.durable = log.durable.max(upto.min(log.next_index));
        }
    }

    /// Appends pending records and syncs them now (tests, shutdown).
    pub fn sync_now(&mut self) -> io::Result<()> {
        if let Some(t) = self.prepare_sync()? {
            t.run()?;
            self.complete_sync(t);
        }
        Ok(())
    }

    /// Records appended but not yet durable.
    pub fn pending_sync(&self) -> u64 {
        self.logs.iter().map(|l| l.next_index - l.durable).sum()
    }

    /// Durable records not yet handed to the uplink, urgent lane first.
    pub fn unread(&self, lane: Lane) -> u64 {
        let l = &self.logs[lane as usize];
        l.durable.saturating_sub(l.read.index)
    }

    /// Takes up to `max` durable readings for a batch: urgent ones first.
    pub fn take(&mut self, max: usize) -> io::Result<Option<Taken>> {
        for lane in Lane::ALL {
            if self.unread(lane) == 0 {
                continue;
            }
            let mut readings = Vec::with_capacity(max.min(self.unread(lane) as usize));
            let (start, end) = self.logs[lane as usize].take(max, &mut readings)?;
            if !readings.is_empty() {
                let taken = &mut self.taken[lane as usize];
                if taken.len() == TAKEN_RANGES_MAX {
                    taken.pop_front();
                }
                taken.push_back(TakenRange {
                    start,
                    end,
                    acked: false,
                });
                return Ok(Some(Taken {
                    lane,
                    start,
                    end,
                    readings,
                }));
            }
        }
        Ok(None)
    }

    /// Gaps to report on batch `seq`; they stay on disk until [`Buffer::gaps_acked`].
    pub fn take_gaps(&mut self, seq: u64) -> Vec<Gap> {
        let gaps = std::mem::take(&mut self.gaps);
        if !gaps.is_empty() {
            self.gaps_inflight.insert(seq, gaps.clone());
        }
        gaps
    }

    /// The hub acked batch `seq`: its gaps are reported.
    pub fn gaps_acked(&mut self, seq: u64) -> io::Result<()> {
        if self.gaps_inflight.remove(&seq).is_some() {
            self.persist_gaps()?;
        }
        Ok(())
    }

    /// The hub acked the batch `seq` carrying `lane` indexes `start..end` (possibly before
    /// earlier batches of the lane): its gaps are reported, and whatever of it an eviction
    /// took from the disk arrived, so that is no loss.
    pub fn batch_acked(&mut self, seq: u64, lane: Lane, start: u64, end: u64) -> io::Result<()> {
        let range = self.taken[lane as usize]
            .iter_mut()
            .find(|t| (t.start, t.end) == (start, end));
        if let Some(t) = range {
            t.acked = true;
        }
        let mut changed = self.gaps_inflight.remove(&seq).is_some();
        let before = self.in_flight_losses.len();
        self.in_flight_losses
            .retain(|l| (l.lane, l.start, l.end) != (lane as u8, start, end));
        changed |= self.in_flight_losses.len() != before;
        if changed {
            self.persist_gaps()?;
        }
        Ok(())
    }

    /// The hub acked everything below `end` in `lane`.
    pub fn ack(&mut self, lane: Lane, end: u64) -> io::Result<()> {
        self.logs[lane as usize].ack(end)?;
        self.taken[lane as usize].retain(|t| t.end > end);
        let before = self.in_flight_losses.len();
        self.in_flight_losses
            .retain(|l| l.lane != lane as u8 || l.end > end);
        if self.in_flight_losses.len() != before {
            self.persist_gaps()?;
        }
        Ok(())
    }

    /// Rewinds reading to the acked cursor (after the uplink dropped its in-flight batches).
    /// Evicted readings of the dropped batches will not be sent again: reported as lost.
    pub fn rewind_to_acked(&mut self) -> io::Result<()> {
        self.taken = [VecDeque::new(), VecDeque::new()];
        for loss in std::mem::take(&mut self.in_flight_losses) {
            for g in loss.gaps {
                gaps::merge_gap(&mut self.gaps, g);
            }
        }
        for log in &mut self.logs {
            let to = log.acked.max(log.segments[0].first);
            log.seek_read(to)?;
        }
        Ok(())
    }

    /// The acked cursors if they moved since the last persist; write them with
    /// [`write_cursor`] outside the lock, then call [`Buffer::cursor_persisted`].
    pub fn cursor_to_persist(&self) -> Option<(PathBuf, [u64; 2])> {
        let acked = [self.logs[0].acked, self.logs[1].acked];
        (acked != self.persisted_acked).then(|| (self.dir.clone(), acked))
    }

    pub fn cursor_persisted(&mut self, acked: [u64; 2]) {
        self.persisted_acked = acked;
    }

    /// Persists the acked cursors now if they moved (tests, shutdown).
    pub fn persist_cursor(&mut self) -> io::Result<()> {
        if let Some((dir, acked)) = self.cursor_to_persist() {
            write_cursor(&dir, acked)?;
            self.cursor_persisted(acked);
        }
        Ok(())
    }

    /// Timestamp of the next reading the uplink will take (the oldest not yet in flight).
    pub fn peek_ts(&mut self) -> Option<i64> {
        for lane in Lane::ALL {
            let log = &mut self.logs[lane as usize];
            if log.durable > log.read.index {
                let saved = (log.read.clone(), log.reader.take());
                let mut one = Vec::with_capacity(1);
                let ok = log.take(1, &mut one).is_ok();
                log.read = saved.0;
                log.reader = None;
                drop(saved.1);
                if ok {
                    if let Some(r) = one.first() {
                        return Some(r.ts_ns);
                    }
                }
            }
        }
        None
    }

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

/// Writes the acked cursors (atomic rename; two fsyncs). Safe to call without the lock.
pub fn write_cursor(dir: &Path, acked: [u64; 2]) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(20);
    bytes.extend_from_slice(&acked[0].to_le_bytes());
    bytes.extend_from_slice(&acked[1].to_le_bytes());
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    write_atomically(dir, CURSOR_FILE, &bytes)
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

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

fn read_u64_file(path: &Path) -> io::Result<Option<u64>> {
    match std::fs::read(path) {
        Ok(b) if b.len() >= 8 => Ok(Some(u64::from_le_bytes(
            b[..8].try_into().expect("8 bytes"),
        ))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The acked cursors; a missing or corrupt file means nothing acked (resend, hub dedups).
fn read_cursor(path: &Path) -> io::Result<[u64; 2]> {
    match std::fs::read(path) {
        Ok(b) if b.len() == 20 => {
            let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&b[..16]);
            if crc.to_le_bytes() != b[16..20] {
                return Ok([0, 0]);
            }
            Ok([
                u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
            ])
        }
        Ok(_) => Ok([0, 0]),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok([0, 0]),
        Err(e) => Err(e),
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
