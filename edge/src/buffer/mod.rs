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
//!
//! The files, one concept each: `log.rs` (one lane's segmented log: append, read, ack, evict),
//! `cursor.rs` (the acked-cursor and epoch files), `sync.rs` (group commit: fdatasync outside
//! the lock, on its own thread), `stats.rs` (counters, and the read-only scan for `edge buffer`).

mod cursor;
pub mod gaps;
mod log;
pub mod record;
pub mod segment;
mod stats;
mod sync;

pub use cursor::write_cursor;
pub use stats::{offline_stats, BufferStats, OfflineStats};
pub use sync::{spawn_sync_thread, SyncTicket};

use cursor::{read_cursor, read_u64_file, write_atomically, CURSOR_FILE, EPOCH_FILE};
use gaps::{GapsFile, InFlightLoss, GAPS_FILE};
use log::Log;
use protocol::uplink::{Gap, Reading, ReadingFlags};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

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
}
