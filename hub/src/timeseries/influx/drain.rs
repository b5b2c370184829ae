//! The drain thread: sends the spill to the server in rounds of up to `parallel_posts` POSTs of
//! `batch_size` lines, retries with backoff, and keeps acknowledged lines for the replay window
//! (sent again when the server is seen failing or restarted).

use super::probe::{self, Probe};
use super::replay::{Incarnation, ReplayWindow, SpillPos};
use super::spill::{list_segments, read_pos, seg_path, settle_to};
use super::{DrainAlive, InfluxConfig, InfluxMetrics, Shared};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest read from the spill per round of POSTs (pieces end on line boundaries).
const CHUNK_BYTES_MAX: usize = 8 << 20;
/// Least time between two looks at the server's `/metrics` while lines wait to settle.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// One POST of a round: `buf[from..to]`, `lines` lines.
#[derive(Debug, Clone, Copy)]
struct Piece {
    from: usize,
    to: usize,
    lines: usize,
}

/// What the reader found at the drain position.
enum Next {
    /// `n` bytes of whole lines are in the buffer.
    Read(usize),
    /// Nothing to send now (waited, moved to the next segment, or an error was logged).
    Again,
    /// The spill's state is gone (a poisoned lock): the drain ends.
    Stop,
}

/// How a round of POSTs went.
struct Outcome {
    /// The error to retry after, if any piece failed.
    retry: Option<String>,
    /// A connection error, a timeout or a 5xx: the server may have crashed.
    server_failed: bool,
}

/// The drain thread's state.
struct Drain {
    shared: Arc<Shared>,
    client: influxdb2::Client,
    cfg: InfluxConfig,
    rt: tokio::runtime::Runtime,
    dir: PathBuf,
    window: ReplayWindow,
    /// Where the next read starts: (segment, offset).
    pos: SpillPos,
    /// A fresh connection per look (at most one a second): a pooled one to a server that was
    /// killed would fail as if the new one were down.
    http: reqwest::Client,
    timeout: Duration,
    last_probe: Option<Instant>,
    backoff_ms: u64,
    buf: Vec<u8>,
}

pub(super) fn drain_loop(shared: Arc<Shared>, client: influxdb2::Client, cfg: InfluxConfig) {
    let _alive = DrainAlive(shared.clone());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "influx drain cannot start a runtime");
            return;
        }
    };
    let dir = shared.dir.clone();
    // Starts at the settled position: a restart resends the window of the process before.
    let window = ReplayWindow::new(Duration::from_millis(cfg.replay_window_ms), read_pos(&dir));
    let pos = window.settled();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default();
    let timeout = Duration::from_millis(cfg.request_timeout_ms);
    Drain {
        shared,
        client,
        cfg,
        rt,
        dir,
        window,
        pos,
        http,
        timeout,
        last_probe: None,
        backoff_ms: 100,
        buf: vec![0u8; CHUNK_BYTES_MAX],
    }
    .run();
}

impl Drain {
    fn run(mut self) {
        while !self.shared.stop.load(Relaxed) {
            self.probe_if_due();
            let n = match self.read_next() {
                Next::Read(n) => n,
                Next::Again => continue,
                Next::Stop => return,
            };
            let pieces = split_pieces(&self.buf[..n], self.cfg.batch_size, self.cfg.parallel_posts);
            let Some(cut) = pieces.last().map(|p| p.to) else {
                // A single line longer than the chunk cannot happen (lines are < 1 KiB); skip a byte
                // rather than spin.
                self.pos.1 += 1;
                continue;
            };
            let started = Instant::now();
            let outcome = self.post(&pieces);
            match outcome.retry {
                Some(e) => self.back_off(&e, outcome.server_failed),
                None => self.acknowledged(&pieces, cut, started),
            }
        }
    }

    /// Lines wait to settle: look whether the server is still up, and the same process.
    fn probe_if_due(&mut self) {
        let now = Instant::now();
        if !self.window.wants_probe(now)
            || self
                .last_probe
                .is_some_and(|t| now.duration_since(t) < PROBE_INTERVAL)
        {
            return;
        }
        self.last_probe = Some(now);
        let cfg = &self.cfg;
        let probed = self
            .rt
            .block_on(probe::probe(&self.http, &cfg.url, &cfg.token, self.timeout));
        match probed {
            Probe::Down(e) => self.replay(&format!("unreachable: {e}")),
            Probe::Alive { started } => match self.window.observe_start(started) {
                Incarnation::Restarted { before, now: after } => {
                    self.shared.metrics.restarts_detected.fetch_add(1, Relaxed);
                    let why = format!(
                        "restarted: process_start_time_seconds {before} -> {after}, no request failed"
                    );
                    self.replay(&why);
                }
                Incarnation::Same | Incarnation::Unknown => {
                    if let Some(settled) = self.window.settle(now) {
                        settle_to(&self.dir, settled);
                    }
                }
            },
        }
        self.shared
            .metrics
            .spill_window_bytes
            .store(self.window.bytes(), Relaxed);
    }

    /// Reads up to `CHUNK_BYTES_MAX` committed bytes from the drain position into `buf`, moving
    /// to the next segment or waiting for a write when there is nothing to read.
    fn read_next(&mut self) -> Next {
        let shared = &self.shared;
        let (cur_seg, cur_len) = match shared.committed.lock() {
            Ok(c) => *c,
            Err(_) => return Next::Stop,
        };
        let segs = match list_segments(&self.dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "influx spill unreadable");
                std::thread::sleep(Duration::from_secs(1));
                return Next::Again;
            }
        };
        let (seg, off) = &mut self.pos;
        // Start at the oldest segment not fully drained.
        if let Some(first) = segs.iter().copied().find(|s| *s >= *seg) {
            if first != *seg {
                *seg = first;
                *off = 0;
            }
        }
        let end = if *seg == cur_seg {
            cur_len
        } else {
            std::fs::metadata(seg_path(&self.dir, *seg))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        if *off >= end {
            if *seg < cur_seg {
                // Fully sent and closed: move on (it is deleted once settled).
                *seg += 1;
                *off = 0;
                return Next::Again;
            }
            if let Ok(g) = shared.committed.lock() {
                let _ = shared
                    .wake
                    .wait_timeout_while(g, Duration::from_millis(500), |c| {
                        *c == (cur_seg, cur_len) && !shared.stop.load(Relaxed)
                    });
            }
            return Next::Again;
        }
        // Read up to batch_size lines (and CHUNK_BYTES_MAX bytes) from (seg, off).
        let want = ((end - *off) as usize).min(CHUNK_BYTES_MAX);
        let path = seg_path(&self.dir, *seg);
        let buf = &mut self.buf;
        match File::open(&path).and_then(|mut f| {
            f.seek(SeekFrom::Start(*off))?;
            f.read_exact(&mut buf[..want])?;
            Ok(want)
        }) {
            Ok(n) => Next::Read(n),
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "influx spill read failed");
                std::thread::sleep(Duration::from_secs(1));
                Next::Again
            }
        }
    }

    /// POSTs the pieces at once and counts what the server said.
    fn post(&self, pieces: &[Piece]) -> Outcome {
        let (cfg, timeout) = (&self.cfg, self.timeout);
        let results = self
            .rt
            .block_on(futures::future::join_all(pieces.iter().map(|p| {
                let body = self.buf[p.from..p.to].to_vec();
                let client = &self.client;
                let (org, bucket) = (&cfg.org, &cfg.bucket);
                async move {
                    tokio::time::timeout(timeout, client.write_line_protocol(org, bucket, body))
                        .await
                        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))
                }
            })));
        let m = &self.shared.metrics;
        let mut out = Outcome {
            retry: None,
            server_failed: false,
        };
        for (result, p) in results.into_iter().zip(pieces) {
            let lines = p.lines;
            match result {
                Ok(Ok(())) => {
                    m.posts_ok.fetch_add(1, Relaxed);
                    m.points_sent.fetch_add(lines as u64, Relaxed);
                }
                Ok(Err(influxdb2::RequestError::Http { status, text }))
                    if status.as_u16() == 400 || status.as_u16() == 422 =>
                {
                    m.lines_rejected.fetch_add(lines as u64, Relaxed);
                    tracing::error!(%status, %text, lines, "influx server refused lines; skipped");
                }
                Ok(Err(e)) => {
                    out.server_failed |= match &e {
                        influxdb2::RequestError::Http { status, .. } => status.is_server_error(),
                        influxdb2::RequestError::ReqwestProcessing { .. } => true,
                        _ => false,
                    };
                    out.retry = Some(e.to_string());
                }
                Err(e) => {
                    out.server_failed = true;
                    out.retry = Some(e);
                }
            }
        }
        out
    }

    /// A round failed: rewind to the settled position if the server may have lost what it
    /// acknowledged, then wait the backoff. Pieces that succeeded are sent again with the rest:
    /// the server overwrites them.
    fn back_off(&mut self, e: &str, server_failed: bool) {
        self.shared.metrics.posts_failed.fetch_add(1, Relaxed);
        if server_failed {
            self.replay(&format!("write failed: {e}"));
        }
        let backoff_ms = self.backoff_ms;
        tracing::warn!(error = %e, backoff_ms, "influx write failed; retrying");
        let deadline = Instant::now() + Duration::from_millis(backoff_ms);
        while Instant::now() < deadline && !self.shared.stop.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.backoff_ms = (backoff_ms * 2).min(self.cfg.retry_backoff_ms_max);
    }

    /// A round succeeded: move past it and hold it in the replay window until it settles.
    fn acknowledged(&mut self, pieces: &[Piece], cut: usize, started: Instant) {
        let m = &self.shared.metrics;
        self.backoff_ms = 100;
        m.last_post_us
            .store(started.elapsed().as_micros() as u64, Relaxed);
        self.pos.1 += cut as u64;
        m.spill_backlog_bytes.fetch_sub(
            (cut as u64).min(m.spill_backlog_bytes.load(Relaxed)),
            Relaxed,
        );
        let lines = pieces.iter().map(|p| p.lines as u64).sum();
        if let Some(settled) = self
            .window
            .acknowledged(Instant::now(), self.pos, lines, cut as u64)
        {
            settle_to(&self.dir, settled);
        }
        m.spill_window_bytes.store(self.window.bytes(), Relaxed);
    }

    fn replay(&mut self, why: &str) {
        replay_window(&mut self.window, &mut self.pos, &self.shared.metrics, why);
    }
}

/// Splits `chunk` into up to `parallel_posts` pieces of `batch_size` whole lines (the last may
/// be shorter).
fn split_pieces(chunk: &[u8], batch_size: usize, parallel_posts: usize) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let (mut from, mut lines) = (0usize, 0usize);
    for (i, b) in chunk.iter().enumerate() {
        if *b == b'\n' {
            lines += 1;
            if lines == batch_size {
                pieces.push(Piece {
                    from,
                    to: i + 1,
                    lines,
                });
                (from, lines) = (i + 1, 0);
                if pieces.len() == parallel_posts {
                    break;
                }
            }
        }
    }
    if lines > 0 && pieces.len() < parallel_posts {
        let to = chunk.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if to > from {
            pieces.push(Piece { from, to, lines });
        }
    }
    pieces
}

/// The server may have lost what it acknowledged (`why`): move the drain back to the settled
/// position, so the window is sent again once the server answers.
fn replay_window(window: &mut ReplayWindow, pos: &mut SpillPos, m: &InfluxMetrics, why: &str) {
    let Some(r) = window.rewind(Instant::now()) else {
        return;
    };
    *pos = r.from;
    m.spill_backlog_bytes.fetch_add(r.bytes, Relaxed);
    m.spill_window_bytes.store(window.bytes(), Relaxed);
    m.replays.fetch_add(1, Relaxed);
    m.replayed_lines.fetch_add(r.lines, Relaxed);
    tracing::warn!(
        lines = r.lines,
        bytes = r.bytes,
        oldest_acked_s_ago = r.oldest_age.as_secs_f64(),
        segment = r.from.0,
        offset = r.from.1,
        "influx server may have lost points it acknowledged ({why}); sending the replay window again"
    );
}
