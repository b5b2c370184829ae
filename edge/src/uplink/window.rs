//! The in-flight window of the uplink, without I/O: which batches to take from the buffer,
//! which to (re)send and when, and how an [`Ack`] moves the buffer's acked cursor.
//!
//! Kept apart from MQTT so the delivery protocol can be driven by anything that carries
//! bytes: the real [`super::Batcher`] over rumqttc, and the deterministic simulation in
//! `tests/tests/delivery_sim.rs` over a simulated network with partitions and crashes. Time
//! is passed in (`now`), never read here, so a simulated clock drives it.
//!
//! Invariants:
//! * at most `inflight_batches_max` batches are held in memory; the rest waits on disk;
//! * a batch keeps its (epoch, seq) for every resend, so the hub deduplicates it;
//! * a lane's acked cursor moves only over a prefix of acked batches of that lane: it never
//!   passes a batch the hub has not acknowledged.

use crate::buffer::{Buffer, Lane, Taken};
use crate::config::UplinkSection;
use bytes::Bytes;
use protocol::uplink::{Ack, EdgeId, Gap, UplinkBatch};
use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

/// One batch the hub has not acknowledged yet (or acked out of order, waiting for the
/// batches before it in its lane).
#[derive(Debug)]
pub struct InFlight {
    pub seq: u64,
    pub lane: Lane,
    /// The lane indexes `start..end` the batch carries.
    pub start: u64,
    pub end: u64,
    pub readings: u64,
    /// Oldest reading's timestamp (the backlog's age).
    pub min_ts: i64,
    pub gaps: Vec<Gap>,
    /// The sealed bytes: resends are byte-identical.
    pub sealed: Bytes,
    /// When it last went out; `None` if never or if it must go out again now (reconnect).
    pub sent_at: Option<Instant>,
    /// It went out at least once (so the next send is a resend, also after a reconnect).
    pub sent_before: bool,
    pub acked: bool,
}

/// Readings taken from the buffer for a batch, with the gaps that ride on it; sealed by
/// [`DeliveryWindow::push`] (outside the buffer lock: sealing a large batch takes a while).
#[derive(Debug)]
pub struct TakenBatch {
    taken: Taken,
    seq: u64,
    gaps: Vec<Gap>,
}

/// What an ack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckEffect {
    /// A batch of ours was acked for the first time: its readings and gaps are delivered.
    Acked { seq: u64, readings: u64, gaps: u64 },
    /// Another epoch, an unknown seq or a second ack of the same batch: counted, harmless.
    Unexpected,
}

/// A batch to publish now.
#[derive(Debug, Clone)]
pub struct Due {
    pub seq: u64,
    pub sealed: Bytes,
    /// Sent before (on an ack timeout or a reconnect).
    pub resend: bool,
}

/// The sans-IO delivery state machine of one buffer epoch.
pub struct DeliveryWindow {
    edge_id: String,
    key: [u8; 32],
    epoch: u64,
    next_seq: u64,
    inflight: VecDeque<InFlight>,
    cfg: UplinkSection,
    /// When normal-lane readings started waiting for a partial batch.
    waiting_since: Option<Instant>,
}

impl DeliveryWindow {
    /// A window for `epoch` (the buffer's, see [`Buffer::epoch`]); seqs start at 0.
    pub fn new(edge_id: &str, key: [u8; 32], epoch: u64, cfg: UplinkSection) -> Self {
        DeliveryWindow {
            edge_id: edge_id.to_string(),
            key,
            epoch,
            next_seq: 0,
            inflight: VecDeque::new(),
            cfg,
            waiting_since: None,
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Batches in memory, oldest first.
    pub fn inflight(&self) -> impl Iterator<Item = &InFlight> {
        self.inflight.iter()
    }

    pub fn has_room(&self) -> bool {
        self.inflight.len() < self.cfg.inflight_batches_max
    }

    /// The link is (re)connected: everything unacked goes out again with the same (epoch,
    /// seq), since what was in flight on the old connection may be lost.
    pub fn on_connected(&mut self) {
        for f in &mut self.inflight {
            f.sent_at = None;
        }
    }

    /// Takes the next batch from the buffer if the window has room and a batch is ready: any
    /// urgent reading at once; normal ones when a full batch waits or the oldest has waited
    /// `batch_age_ms`.
    pub fn take_batch(&mut self, b: &mut Buffer, now: Instant) -> io::Result<Option<TakenBatch>> {
        if !self.has_room() {
            return Ok(None);
        }
        let urgent = b.unread(Lane::Urgent);
        let normal = b.unread(Lane::Normal);
        if urgent == 0 && normal == 0 {
            self.waiting_since = None;
            return Ok(None);
        }
        if urgent == 0 && (normal as usize) < self.cfg.batch_readings_max {
            let since = *self.waiting_since.get_or_insert(now);
            if now.saturating_duration_since(since) < Duration::from_millis(self.cfg.batch_age_ms) {
                return Ok(None);
            }
        }
        let Some(taken) = b.take(self.cfg.batch_readings_max)? else {
            return Ok(None);
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let gaps = b.take_gaps(seq);
        if taken.lane == Lane::Normal {
            self.waiting_since = None;
        }
        Ok(Some(TakenBatch { taken, seq, gaps }))
    }

    /// Seals a taken batch and adds it to the window, unsent.
    pub fn push(&mut self, t: TakenBatch) {
        let batch = UplinkBatch {
            edge_id: EdgeId(self.edge_id.clone()),
            epoch: self.epoch,
            seq: t.seq,
            readings: t.taken.readings,
            gaps: t.gaps,
        };
        let min_ts = batch.readings.iter().map(|r| r.ts_ns).min().unwrap_or(0);
        self.inflight.push_back(InFlight {
            seq: batch.seq,
            lane: t.taken.lane,
            start: t.taken.start,
            end: t.taken.end,
            readings: batch.readings.len() as u64,
            min_ts,
            sealed: batch.seal(&self.key).into(),
            gaps: batch.gaps,
            sent_at: None,
            sent_before: false,
            acked: false,
        });
    }

    /// Takes and seals batches while the window has room; returns how many were added.
    pub fn fill(&mut self, b: &mut Buffer, now: Instant) -> io::Result<usize> {
        let mut added = 0;
        while let Some(t) = self.take_batch(b, now)? {
            self.push(t);
            added += 1;
        }
        Ok(added)
    }

    /// Unacked batches never sent, or sent `ack_timeout_ms` ago or longer, oldest first.
    /// Call [`DeliveryWindow::mark_sent`] for each one actually handed to the transport.
    pub fn due(&self, now: Instant) -> Vec<Due> {
        let timeout = Duration::from_millis(self.cfg.ack_timeout_ms);
        self.inflight
            .iter()
            .filter(|f| !f.acked)
            .filter(|f| match f.sent_at {
                None => true,
                Some(t) => now.saturating_duration_since(t) >= timeout,
            })
            .map(|f| Due {
                seq: f.seq,
                sealed: f.sealed.clone(),
                resend: f.sent_before,
            })
            .collect()
    }

    /// Batch `seq` went out at `now`: its ack timeout starts.
    pub fn mark_sent(&mut self, seq: u64, now: Instant) {
        if let Some(f) = self.inflight.iter_mut().find(|f| f.seq == seq) {
            f.sent_at = Some(now);
            f.sent_before = true;
        }
    }

    /// Applies the hub's ack: marks the batch acked, persists that its gaps are reported
    /// (and that its readings arrived, should an eviction have taken them off the disk),
    /// and moves each lane's cursor over the prefix of acked batches of that lane.
    /// `Err` only when the buffer could not record a step (the ack itself is applied).
    pub fn on_ack(&mut self, ack: Ack, b: &mut Buffer) -> (AckEffect, Vec<io::Error>) {
        let mut errors = Vec::new();
        if ack.epoch != self.epoch {
            return (AckEffect::Unexpected, errors);
        }
        let effect = match self.inflight.iter_mut().find(|f| f.seq == ack.seq) {
            Some(f) if !f.acked => {
                f.acked = true;
                // Its gaps are delivered, and so are its readings an eviction took off the
                // disk meanwhile: the buffer drops both reports.
                if let Err(e) = b.batch_acked(f.seq, f.lane, f.start, f.end) {
                    errors.push(e);
                }
                AckEffect::Acked {
                    seq: f.seq,
                    readings: f.readings,
                    gaps: f.gaps.len() as u64,
                }
            }
            _ => return (AckEffect::Unexpected, errors),
        };
        for lane in Lane::ALL {
            while let Some(pos) = self.inflight.iter().position(|f| f.lane == lane) {
                if !self.inflight[pos].acked {
                    break;
                }
                let f = self.inflight.remove(pos).expect("position is valid");
                if let Err(e) = b.ack(lane, f.end) {
                    errors.push(e);
                }
            }
        }
        (effect, errors)
    }
}
