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
//! the server is seen failing or restarted ([`replay`], [`probe`]).//!
//! The files: here the configuration and the sink (`write` → spill); `spill.rs` the segment
//! files and the settled position; `drain.rs` the thread that sends them; `line.rs` the line
//! protocol; `metrics.rs` the counters.

mod drain;
mod line;
mod metrics;
mod probe;
mod replay;
mod spill;

pub use line::line_of;
pub use metrics::InfluxMetrics;

use super::{StoredReading, TimeSeriesSink, TsError};
use drain::drain_loop;
use serde::{Deserialize, Serialize};
use spill::{io_err, list_segments, read_pos, seg_path, sync_dir, SpillWriter};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};

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
