//! The replay window: lines the server acknowledged but may not have on its disk yet.
//!
//! A 2xx from the server is not durability. VictoriaMetrics answers 204 while the points sit in
//! memory (flushed every `-inmemoryDataFlushInterval`, 5 s, in current releases; 1.79.5 lost a
//! write to a `kill -9` 7 s later and kept it 15 s later), and
//! InfluxDB's WAL may be unsynced on some setups: a `kill -9` or power loss of the server loses
//! what it acknowledged in the seconds before. So the spill keeps every acknowledged line for
//! `replay_window_ms` more, and only lines acknowledged longer ago than that — by a server seen
//! alive, and not restarted, since — are *settled*: only the settled position is persisted and lets
//! the spill be deleted. When the server is seen to fail or to have restarted, the drain rewinds to
//! the settled position and sends the window again (idempotent at the server: InfluxDB overwrites
//! the same series and time; VictoriaMetrics with `-dedup.minScrapeInterval`).
//!
//! This type is the bookkeeping only (no I/O), so every rule can be tested on its own.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A position in the spill: (segment number, byte offset in it).
pub type SpillPos = (u64, u64);

/// One acknowledged round of POSTs, not settled yet.
#[derive(Debug, Clone, Copy)]
struct Acked {
    at: Instant,
    /// The spill position just past the round's last line.
    end: SpillPos,
    lines: u64,
    bytes: u64,
}

/// What a rewind hands back to the drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// Where the drain resumes: the settled position.
    pub from: SpillPos,
    pub lines: u64,
    pub bytes: u64,
    /// How long ago the oldest line of the window was acknowledged.
    pub oldest_age: Duration,
}

/// What the server's start time says about the lines acknowledged so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Incarnation {
    /// The same process as before (or the first one seen): the window may settle.
    Same,
    /// The process start time changed: it restarted without a failed request in between.
    Restarted { before: f64, now: f64 },
    /// The server does not say when it started: only failures are noticed.
    Unknown,
}

/// Acknowledged lines held back from settling for the replay window.
#[derive(Debug)]
pub struct ReplayWindow {
    window: Duration,
    settled: SpillPos,
    acked: VecDeque<Acked>,
    lines: u64,
    bytes: u64,
    /// The server's process start time (`process_start_time_seconds`) when last seen.
    started: Option<f64>,
    /// Whether the server's start time was read since the window last started filling: lines
    /// acknowledged before the first reading cannot be tied to one process.
    started_checked: bool,
}

impl ReplayWindow {
    /// `settled`: the persisted position (everything before it is settled).
    pub fn new(window: Duration, settled: SpillPos) -> Self {
        ReplayWindow {
            window,
            settled,
            acked: VecDeque::new(),
            lines: 0,
            bytes: 0,
            started: None,
            started_checked: false,
        }
    }

    pub fn settled(&self) -> SpillPos {
        self.settled
    }

    /// Bytes acknowledged and not settled (they count toward `spill_bytes_max`).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    #[cfg(test)]
    fn lines(&self) -> u64 {
        self.lines
    }

    /// The server acknowledged the spill up to `end` (`lines` lines, `bytes` bytes) at `at`.
    /// Returns the new settled position when a window of zero settles it at once.
    pub fn acknowledged(
        &mut self,
        at: Instant,
        end: SpillPos,
        lines: u64,
        bytes: u64,
    ) -> Option<SpillPos> {
        if self.window.is_zero() {
            self.settled = end;
            return Some(end);
        }
        if self.acked.is_empty() {
            self.started_checked = false;
        }
        self.acked.push_back(Acked {
            at,
            end,
            lines,
            bytes,
        });
        self.lines += lines;
        self.bytes += bytes;
        None
    }

    /// Whether the drain should look at the server now: the oldest line has been held for the
    /// whole window, or the server's start time was not read since the window started filling.
    pub fn wants_probe(&self, now: Instant) -> bool {
        match self.acked.front() {
            None => false,
            Some(a) => !self.started_checked || now.duration_since(a.at) >= self.window,
        }
    }

    /// Records the server's start time (if it tells it) and says whether it restarted.
    pub fn observe_start(&mut self, started: Option<f64>) -> Incarnation {
        let Some(now) = started else {
            self.started_checked = true;
            return Incarnation::Unknown;
        };
        let before = self.started.replace(now);
        self.started_checked = true;
        match before {
            Some(b) if b != now => Incarnation::Restarted { before: b, now },
            _ => Incarnation::Same,
        }
    }

    /// The server was seen alive, and not restarted, at `seen_alive`: lines it acknowledged a
    /// whole window before that are settled. Returns the new settled position if it moved.
    pub fn settle(&mut self, seen_alive: Instant) -> Option<SpillPos> {
        let mut moved = false;
        while let Some(a) = self.acked.front() {
            if seen_alive.saturating_duration_since(a.at) < self.window {
                break;
            }
            self.settled = a.end;
            self.lines -= a.lines;
            self.bytes -= a.bytes;
            self.acked.pop_front();
            moved = true;
        }
        moved.then_some(self.settled)
    }

    /// The server may have lost what it acknowledged: forget the window and say where to resend
    /// from. `None` when nothing was acknowledged since the last settle or rewind.
    pub fn rewind(&mut self, now: Instant) -> Option<Replay> {
        let oldest = self.acked.front()?.at;
        let replay = Replay {
            from: self.settled,
            lines: self.lines,
            bytes: self.bytes,
            oldest_age: now.saturating_duration_since(oldest),
        };
        self.acked.clear();
        self.lines = 0;
        self.bytes = 0;
        // The server that comes back is a new process (or we cannot tell): read its start time
        // afresh rather than calling the change a second restart.
        self.started = None;
        self.started_checked = false;
        Some(replay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(30);

    #[test]
    fn lines_settle_only_after_a_whole_window_with_the_server_alive() {
        let t0 = Instant::now();
        let mut w = ReplayWindow::new(W, (1, 0));
        assert_eq!(w.acknowledged(t0, (1, 100), 2, 100), None);
        assert_eq!(
            w.acknowledged(t0 + Duration::from_secs(10), (1, 250), 3, 150),
            None
        );
        assert_eq!((w.lines(), w.bytes()), (5, 250));
        assert_eq!(w.settle(t0 + Duration::from_secs(29)), None);
        assert_eq!(w.settle(t0 + W), Some((1, 100)));
        assert_eq!((w.lines(), w.bytes()), (3, 150));
        assert_eq!(w.settle(t0 + Duration::from_secs(45)), Some((1, 250)));
        assert_eq!(w.settled(), (1, 250));
        assert_eq!(w.bytes(), 0);
    }

    #[test]
    fn a_failure_rewinds_to_the_settled_position_and_hands_back_the_whole_window() {
        let t0 = Instant::now();
        let mut w = ReplayWindow::new(W, (3, 40));
        w.acknowledged(t0, (3, 90), 1, 50);
        w.acknowledged(t0 + Duration::from_secs(1), (4, 60), 2, 70);
        let r = w.rewind(t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(
            r,
            Replay {
                from: (3, 40),
                lines: 3,
                bytes: 120,
                oldest_age: Duration::from_secs(5)
            }
        );
        assert_eq!(w.bytes(), 0);
        // A second failure of the same outage has nothing more to replay.
        assert_eq!(w.rewind(t0 + Duration::from_secs(6)), None);
    }

    #[test]
    fn a_changed_start_time_is_a_restart_and_an_unchanged_one_is_not() {
        let t0 = Instant::now();
        let mut w = ReplayWindow::new(W, (1, 0));
        assert!(!w.wants_probe(t0), "nothing to settle, nothing to ask");
        w.acknowledged(t0, (1, 10), 1, 10);
        assert!(w.wants_probe(t0), "the start time is read once per filling");
        assert_eq!(w.observe_start(Some(100.0)), Incarnation::Same);
        assert!(!w.wants_probe(t0 + Duration::from_secs(1)));
        assert!(w.wants_probe(t0 + W));
        assert_eq!(w.observe_start(Some(100.0)), Incarnation::Same);
        assert_eq!(
            w.observe_start(Some(160.0)),
            Incarnation::Restarted {
                before: 100.0,
                now: 160.0
            }
        );
        w.rewind(t0);
        // After a rewind the next start time read is the reference, not another restart.
        w.acknowledged(t0, (1, 10), 1, 10);
        assert_eq!(w.observe_start(Some(160.0)), Incarnation::Same);
        assert_eq!(w.observe_start(None), Incarnation::Unknown);
    }

    #[test]
    fn a_window_of_zero_settles_every_acknowledgement_at_once() {
        let mut w = ReplayWindow::new(Duration::ZERO, (1, 0));
        assert_eq!(
            w.acknowledged(Instant::now(), (1, 10), 1, 10),
            Some((1, 10))
        );
        assert_eq!(w.bytes(), 0);
        assert_eq!(w.rewind(Instant::now()), None);
    }
}
