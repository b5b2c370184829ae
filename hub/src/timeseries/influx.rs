//! The InfluxDB v2 API sink (InfluxDB 2.x, VictoriaMetrics, any `/api/v2/write` server).
//!
//! Every write goes first to a durable spill on disk (line protocol, appended, fsynced once per
//! `write`), and `write` returns as soon as that is durable: the edge's ack then never waits for
//! the server. A drain thread sends the spill to the server in POSTs of `batch_size` lines
//! through the `influxdb2` crate's `write_line_protocol` (the spill is already line protocol,
//! so nothing is re-parsed or rebuilt into `DataPoint`s), retrying with exponential backoff.
//! An outage of the server therefore loses nothing: the spill grows (bounded by
//! `spill_bytes_max`; when full, `write` fails, ingest does not ack, and the edges keep the
//! readings in their own buffers) and drains when the server returns.
//!
//! Schema (one point per reading):
//! - measurement: the quantity name (`tilt`, `pressure`, …; units as in the catalogue)
//! - tags: `sensor`, `edge`, and when the sensor is assigned `component`, `grid`, `department`
//!   (the owner department)
//! - fields: `value` (float; booleans 0/1), `quality` (integer: 0 good, 1 suspect, 2 bad)
//! - timestamp: the reading's `ts_ns` (nanosecond precision)
//!
//! A reading is identified by (measurement, tags, ts): InfluxDB overwrites a rewritten point, so
//! a resend after a crash between POST and the saved drain position stores nothing twice.
//! VictoriaMetrics does the same when started with `-dedup.minScrapeInterval=1ms`.
//!
//! A 2xx is not durability at the server (VictoriaMetrics keeps acknowledged points in memory for
//! seconds): acknowledged lines stay in the spill for `replay_window_ms` and are sent again when
//! the server is seen failing or restarted ([`replay`], [`probe`]).

mod probe;
mod replay;

use super::{StoredReading, TimeSeriesSink, TsError};
use probe::Probe;
use replay::{Incarnation, ReplayWindow, SpillPos};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// InfluxDB sink settings (`[timeseries.influx]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// e.g. `http://127.0.0.1:8086`.
    pub url: String,
    pub org: String,
    pub bucket: String,
    pub token: String,
    /// Lines per POST. Default 5000.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Directory of the durable spill. Default `./data/influx-spill`.
    #[serde(default = "default_spill_dir")]
    pub spill_dir: PathBuf,
    /// Bound of the spill, bytes; when full, writes fail (and edges keep their data). Default 1 GiB.
    #[serde(default = "default_spill_bytes_max")]
    pub spill_bytes_max: u64,
    /// POSTs in flight at once (consecutive pieces of the spill). Default 4.
    #[serde(default = "default_parallel_posts")]
    pub parallel_posts: usize,
    /// Longest wait between retries, ms. Default 10 000.
    #[serde(default = "default_retry_backoff_ms_max")]
    pub retry_backoff_ms_max: u64,
    /// Timeout of one POST, ms. Default 30 000.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How long acknowledged lines stay in the spill, ms, to be sent again if the server turns
    /// out to have lost them (it failed a request or restarted). Default 30 000: VictoriaMetrics
    /// acknowledges points held in memory and writes them to disk later (every
    /// `-inmemoryDataFlushInterval`, 5 s, in current releases; with 1.79.5 a `kill -9` 7 s after
    /// a write lost it, 15 s after kept it, measured here), InfluxDB may fsync its WAL in
    /// batches. The window counts toward `spill_bytes_max`. 0 = trust the 2xx (the old way).
    #[serde(default = "default_replay_window_ms")]
    pub replay_window_ms: u64,
}

fn default_batch_size() -> usize {
    5000
}
fn default_parallel_posts() -> usize {
    4
}
fn default_spill_dir() -> PathBuf {
    PathBuf::from("./data/influx-spill")
}
fn default_spill_bytes_max() -> u64 {
    1 << 30
}
fn default_retry_backoff_ms_max() -> u64 {
    10_000
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_replay_window_ms() -> u64 {
    30_000
}

impl InfluxConfig {
    /// A config with defaults for everything but the server coordinates.
    pub fn new(url: &str, org: &str, bucket: &str, token: &str) -> Self {
        InfluxConfig {
            url: url.into(),
            org: org.into(),
            bucket: bucket.into(),
            token: token.into(),
            batch_size: default_batch_size(),
            parallel_posts: default_parallel_posts(),
            spill_dir: default_spill_dir(),
            spill_bytes_max: default_spill_bytes_max(),
            retry_backoff_ms_max: default_retry_backoff_ms_max(),
            request_timeout_ms: default_request_timeout_ms(),
            replay_window_ms: default_replay_window_ms(),
        }
    }
}

/// A spill segment is closed and a new one started past this size.
const SEGMENT_BYTES_MAX: u64 = 64 << 20;
/// Largest read from the spill per round of POSTs (pieces end on line boundaries).
const CHUNK_BYTES_MAX: usize = 8 << 20;
/// The settled position (see [`replay`]): where the next process starts sending.
const POS_FILE: &str = "drain.pos";
/// Least time between two looks at the server's `/metrics` while lines wait to settle.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Counters of the InfluxDB sink.
#[derive(Debug, Default)]
pub struct InfluxMetrics {
    pub points_sent: AtomicU64,
    pub posts_ok: AtomicU64,
    pub posts_failed: AtomicU64,
    /// Lines the server refused as malformed (HTTP 400/422); skipped, not retried.
    pub lines_rejected: AtomicU64,
    /// Bytes written to the spill and not yet sent.
    pub spill_backlog_bytes: AtomicU64,
    /// Bytes sent and acknowledged, kept for the replay window (not settled yet).
    pub spill_window_bytes: AtomicU64,
    /// Times the drain rewound to the settled position because the server failed or restarted.
    pub replays: AtomicU64,
    /// Acknowledged lines sent again by those rewinds.
    pub replayed_lines: AtomicU64,
    /// Restarts noticed only by the server's changed start time (no request had failed).
    pub restarts_detected: AtomicU64,
    /// Microseconds of the last successful round of POSTs.
    pub last_post_us: AtomicU64,
}

impl InfluxMetrics {
    pub fn render_prometheus(&self, out: &mut String) {
        let m = [
            (
                "wangge_influx_points_sent_total",
                "counter",
                "Points the server accepted.",
                self.points_sent.load(Relaxed),
            ),
            (
                "wangge_influx_posts_ok_total",
                "counter",
                "Successful write POSTs.",
                self.posts_ok.load(Relaxed),
            ),
            (
                "wangge_influx_posts_failed_total",
                "counter",
                "Failed write POSTs (retried).",
                self.posts_failed.load(Relaxed),
            ),
            (
                "wangge_influx_lines_rejected_total",
                "counter",
                "Lines refused by the server as malformed.",
                self.lines_rejected.load(Relaxed),
            ),
            (
                "wangge_influx_spill_backlog_bytes",
                "gauge",
                "Spilled bytes not yet written to the server.",
                self.spill_backlog_bytes.load(Relaxed),
            ),
            (
                "wangge_influx_spill_window_bytes",
                "gauge",
                "Acknowledged bytes kept for the replay window.",
                self.spill_window_bytes.load(Relaxed),
            ),
            (
                "wangge_influx_replays_total",
                "counter",
                "Rewinds to the settled position after the server failed or restarted.",
                self.replays.load(Relaxed),
            ),
            (
                "wangge_influx_replayed_lines_total",
                "counter",
                "Acknowledged lines sent again because the server may have lost them.",
                self.replayed_lines.load(Relaxed),
            ),
            (
                "wangge_influx_server_restarts_detected_total",
                "counter",
                "Server restarts seen only by its changed process start time.",
                self.restarts_detected.load(Relaxed),
            ),
            (
                "wangge_influx_last_post_microseconds",
                "gauge",
                "Duration of the last successful POST.",
                self.last_post_us.load(Relaxed),
            ),
        ];
        for (name, kind, help, v) in m {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}

struct SpillWriter {
    file: File,
    seg: u64,
    len: u64,
}

struct Shared {
    dir: PathBuf,
    /// (current segment, its durable length): the drain reads only up to here.
    committed: Mutex<(u64, u64)>,
    wake: Condvar,
    stop: AtomicBool,
    /// True until the drain thread ends (returns or panics): its liveness probe.
    drain_alive: AtomicBool,
    metrics: Arc<InfluxMetrics>,
}

/// Clears `Shared::drain_alive` when the drain thread ends, however it ends.
struct DrainAlive(Arc<Shared>);

impl Drop for DrainAlive {
    fn drop(&mut self) {
        self.0.drain_alive.store(false, Relaxed);
    }
}

/// The sink. Dropping it stops the drain thread (what is spilled stays on disk).
pub struct InfluxSink {
    writer: Mutex<SpillWriter>,
    shared: Arc<Shared>,
    spill_bytes_max: u64,
    drain: Option<std::thread::JoinHandle<()>>,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> TsError {
    TsError::Store(format!("influx spill {what} {}: {e}", path.display()))
}

/// Makes a new segment's directory entry durable (its contents are fsynced on every write).
fn sync_dir(dir: &Path) -> Result<(), TsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("sync", dir, e))
}

fn seg_path(dir: &Path, seg: u64) -> PathBuf {
    dir.join(format!("{seg:016}.lp"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, TsError> {
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

fn escape_tag(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
}

/// Appends one line of line protocol for `r`.
pub fn line_of(out: &mut String, r: &StoredReading) {
    let rd = &r.reading;
    out.push_str(rd.quantity.name());
    let tags: [(&str, Option<&str>); 5] = [
        ("component", r.component_id.as_deref()),
        ("department", r.department.as_deref()),
        ("edge", Some(r.edge_id.as_str())),
        ("grid", r.grid_cell.as_deref()),
        ("sensor", Some(rd.sensor.as_str())),
    ];
    for (k, v) in tags {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.push(',');
            out.push_str(k);
            out.push('=');
            escape_tag(out, v);
        }
    }
    let v = rd.value.as_f64();
    let v = if v.is_finite() { v } else { 0.0 };
    let q = match rd.quality {
        protocol::uplink::Quality::Good => 0,
        protocol::uplink::Quality::Suspect => 1,
        protocol::uplink::Quality::Bad => 2,
    };
    let _ = writeln!(out, " value={v:?},quality={q}i {}", rd.ts_ns);
}

impl InfluxSink {
    /// Opens the spill (recovering a torn tail) and starts the drain thread.
    pub fn start(cfg: &InfluxConfig) -> Result<Self, TsError> {
        if cfg.batch_size == 0 || cfg.parallel_posts == 0 {
            return Err(TsError::Store(
                "influx.batch_size and influx.parallel_posts must be > 0".into(),
            ));
        }
        let dir = cfg.spill_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, e))?;
        let segs = list_segments(&dir)?;
        let seg = segs.last().copied().unwrap_or(1);
        let path = seg_path(&dir, seg);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err("open", &path, e))?;
        sync_dir(&dir)?;
        // A write torn by a crash was never acknowledged: cut it back to the last full line.
        let len = {
            let mut buf = Vec::new();
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.read_to_end(&mut buf))
                .map_err(|e| io_err("read", &path, e))?;
            let good = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if good != buf.len() {
                file.set_len(good as u64)
                    .map_err(|e| io_err("truncate", &path, e))?;
            }
            good as u64
        };
        let metrics = Arc::new(InfluxMetrics::default());
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            committed: Mutex::new((seg, len)),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            drain_alive: AtomicBool::new(true),
            metrics,
        });
        let (pos_seg, pos_off) = read_pos(&dir);
        let mut backlog = 0;
        for s in &segs {
            let l = std::fs::metadata(seg_path(&dir, *s))
                .map(|m| m.len())
                .unwrap_or(0);
            if *s > pos_seg {
                backlog += l;
            } else if *s == pos_seg {
                backlog += l.saturating_sub(pos_off);
            }
        }
        shared.metrics.spill_backlog_bytes.store(backlog, Relaxed);
        if backlog > 0 {
            // From the settled position: lines never sent, and those acknowledged within the
            // replay window before the last stop (the server may not have kept them).
            tracing::info!(
                bytes = backlog,
                segment = pos_seg,
                offset = pos_off,
                "influx spill: sending from the settled position"
            );
        }
        // influxdb2 0.5 builds on reqwest 0.11 (the hub uses 0.12), so the request timeout is
        // applied around the call instead of on the HTTP client.
        let client = influxdb2::ClientBuilder::new(&cfg.url, &cfg.org, &cfg.token)
            .build()
            .map_err(|e| TsError::Store(format!("influx client: {e}")))?;
        let drain_shared = shared.clone();
        let drain_cfg = cfg.clone();
        let drain = std::thread::Builder::new()
            .name("influx-drain".into())
            .spawn(move || drain_loop(drain_shared, client, drain_cfg))
            .map_err(|e| TsError::Store(format!("influx drain thread: {e}")))?;
        Ok(InfluxSink {
            writer: Mutex::new(SpillWriter { file, seg, len }),
            shared,
            spill_bytes_max: cfg.spill_bytes_max,
            drain: Some(drain),
        })
    }

    /// A liveness probe of the drain thread (`hub::supervise` watches it): `true` while it
    /// runs. It is not restarted: it owns the spill reader and its replay window.
    pub fn drain_liveness(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.drain_alive.load(Relaxed)
    }

    pub fn metrics(&self) -> Arc<InfluxMetrics> {
        self.shared.metrics.clone()
    }

    /// Bytes spilled and not yet accepted by the server.
    pub fn backlog_bytes(&self) -> u64 {
        self.shared.metrics.spill_backlog_bytes.load(Relaxed)
    }

    /// Bytes the spill holds against `spill_bytes_max`: not yet accepted, or accepted within the
    /// replay window.
    pub fn held_bytes(&self) -> u64 {
        self.backlog_bytes() + self.shared.metrics.spill_window_bytes.load(Relaxed)
    }

    fn spill(&self, readings: &[StoredReading]) -> Result<(), TsError> {
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

impl Drop for InfluxSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        self.shared.wake.notify_all();
        if let Some(h) = self.drain.take() {
            let _ = h.join();
        }
    }
}

impl TimeSeriesSink for InfluxSink {
    fn name(&self) -> &'static str {
        "influx"
    }

    fn write(&self, readings: &[StoredReading]) -> Result<(), TsError> {
        if readings.is_empty() {
            return Ok(());
        }
        self.spill(readings)
    }
}

fn read_pos(dir: &Path) -> (u64, u64) {
    std::fs::read_to_string(dir.join(POS_FILE))
        .ok()
        .and_then(|s| {
            let (a, b) = s.trim().split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((0, 0))
}

fn write_pos(dir: &Path, seg: u64, off: u64) {
    // Not fsynced: losing it only resends points the server overwrites in place.
    let tmp = dir.join("drain.pos.tmp");
    if std::fs::write(&tmp, format!("{seg} {off}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, dir.join(POS_FILE));
    }
}

/// Persists a new settled position and deletes the segments wholly before it (also any left
/// behind by a crash between the two).
fn settle_to(dir: &Path, (seg, off): SpillPos) {
    write_pos(dir, seg, off);
    for s in list_segments(dir).unwrap_or_default() {
        if s < seg {
            let _ = std::fs::remove_file(seg_path(dir, s));
        }
    }
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

fn drain_loop(shared: Arc<Shared>, client: influxdb2::Client, cfg: InfluxConfig) {
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
    let m = &shared.metrics;
    // Starts at the settled position: a restart resends the window of the process before.
    let mut window = ReplayWindow::new(Duration::from_millis(cfg.replay_window_ms), read_pos(&dir));
    let (mut seg, mut off) = window.settled();
    // A fresh connection per look (at most one a second): a pooled one to a server that was
    // killed would fail as if the new one were down.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default();
    let timeout = Duration::from_millis(cfg.request_timeout_ms);
    let mut last_probe: Option<Instant> = None;
    let mut backoff_ms = 100u64;
    let mut buf = vec![0u8; CHUNK_BYTES_MAX];
    while !shared.stop.load(Relaxed) {
        // Lines wait to settle: look whether the server is still up, and the same process.
        let now = Instant::now();
        if window.wants_probe(now)
            && last_probe.is_none_or(|t| now.duration_since(t) >= PROBE_INTERVAL)
        {
            last_probe = Some(now);
            let mut pos = (seg, off);
            match rt.block_on(probe::probe(&http, &cfg.url, &cfg.token, timeout)) {
                Probe::Down(e) => {
                    replay_window(&mut window, &mut pos, m, &format!("unreachable: {e}"))
                }
                Probe::Alive { started } => match window.observe_start(started) {
                    Incarnation::Restarted { before, now: after } => {
                        m.restarts_detected.fetch_add(1, Relaxed);
                        let why = format!(
                            "restarted: process_start_time_seconds {before} -> {after}, no request failed"
                        );
                        replay_window(&mut window, &mut pos, m, &why);
                    }
                    Incarnation::Same | Incarnation::Unknown => {
                        if let Some(settled) = window.settle(now) {
                            settle_to(&dir, settled);
                        }
                    }
                },
            }
            (seg, off) = pos;
            m.spill_window_bytes.store(window.bytes(), Relaxed);
        }
        let (cur_seg, cur_len) = match shared.committed.lock() {
            Ok(c) => *c,
            Err(_) => return,
        };
        let segs = match list_segments(&dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "influx spill unreadable");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        // Start at the oldest segment not fully drained.
        if let Some(first) = segs.iter().copied().find(|s| *s >= seg) {
            if first != seg {
                seg = first;
                off = 0;
            }
        }
        let end = if seg == cur_seg {
            cur_len
        } else {
            std::fs::metadata(seg_path(&dir, seg))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        if off >= end {
            if seg < cur_seg {
                // Fully sent and closed: move on (it is deleted once settled).
                seg += 1;
                off = 0;
                continue;
            }
            if let Ok(g) = shared.committed.lock() {
                let _ = shared
                    .wake
                    .wait_timeout_while(g, Duration::from_millis(500), |c| {
                        *c == (cur_seg, cur_len) && !shared.stop.load(Relaxed)
                    });
            }
            continue;
        }
        // Read up to batch_size lines (and CHUNK_BYTES_MAX bytes) from (seg, off).
        let want = ((end - off) as usize).min(CHUNK_BYTES_MAX);
        let path = seg_path(&dir, seg);
        let n = match File::open(&path).and_then(|mut f| {
            f.seek(SeekFrom::Start(off))?;
            f.read_exact(&mut buf[..want])?;
            Ok(want)
        }) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "influx spill read failed");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        // Split into up to `parallel_posts` pieces of `batch_size` lines, POSTed at once.
        let mut pieces: Vec<(usize, usize, usize)> = Vec::new(); // (from, to, lines)
        let (mut from, mut lines) = (0usize, 0usize);
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                lines += 1;
                if lines == cfg.batch_size {
                    pieces.push((from, i + 1, lines));
                    (from, lines) = (i + 1, 0);
                    if pieces.len() == cfg.parallel_posts {
                        break;
                    }
                }
            }
        }
        if lines > 0 && pieces.len() < cfg.parallel_posts {
            let to = buf[..n]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            if to > from {
                pieces.push((from, to, lines));
            }
        }
        let Some(&(_, cut, _)) = pieces.last() else {
            // A single line longer than the chunk cannot happen (lines are < 1 KiB); skip a byte
            // rather than spin.
            off += 1;
            continue;
        };
        let started = Instant::now();
        let results = rt.block_on(futures::future::join_all(pieces.iter().map(
            |&(a, b, _)| {
                let body = buf[a..b].to_vec();
                let client = &client;
                let (org, bucket) = (&cfg.org, &cfg.bucket);
                async move {
                    tokio::time::timeout(timeout, client.write_line_protocol(org, bucket, body))
                        .await
                        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))
                }
            },
        )));
        let mut retry = None;
        // A connection error, a timeout or a 5xx: the server may have crashed.
        let mut server_failed = false;
        for (result, &(_, _, lines)) in results.into_iter().zip(&pieces) {
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
                    server_failed |= match &e {
                        influxdb2::RequestError::Http { status, .. } => status.is_server_error(),
                        influxdb2::RequestError::ReqwestProcessing { .. } => true,
                        _ => false,
                    };
                    retry = Some(e.to_string());
                }
                Err(e) => {
                    server_failed = true;
                    retry = Some(e);
                }
            }
        }
        if let Some(e) = retry {
            // Pieces that succeeded are sent again with the rest: the server overwrites them.
            m.posts_failed.fetch_add(1, Relaxed);
            if server_failed {
                let mut pos = (seg, off);
                replay_window(&mut window, &mut pos, m, &format!("write failed: {e}"));
                (seg, off) = pos;
            }
            tracing::warn!(error = %e, backoff_ms, "influx write failed; retrying");
            let deadline = Instant::now() + Duration::from_millis(backoff_ms);
            while Instant::now() < deadline && !shared.stop.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            backoff_ms = (backoff_ms * 2).min(cfg.retry_backoff_ms_max);
            continue;
        }
        backoff_ms = 100;
        m.last_post_us
            .store(started.elapsed().as_micros() as u64, Relaxed);
        off += cut as u64;
        m.spill_backlog_bytes.fetch_sub(
            (cut as u64).min(m.spill_backlog_bytes.load(Relaxed)),
            Relaxed,
        );
        let lines = pieces.iter().map(|p| p.2 as u64).sum();
        if let Some(settled) = window.acknowledged(Instant::now(), (seg, off), lines, cut as u64) {
            settle_to(&dir, settled);
        }
        m.spill_window_bytes.store(window.bytes(), Relaxed);
    }
}
