//! Readings queried from VictoriaMetrics (cluster mode): every hub's `[influx]` sink writes to
//! one server, and any hub answers the readings API and the charts from it.
//!
//! [`VictoriaQuery`] implements [`TimeSeriesQuery`] on `/api/v1/export` (raw samples, JSON
//! lines) and `/api/v1/series`, selecting exactly what the sink wrote (`export.rs`: metric
//! `<quantity>_value` and `<quantity>_quality`, label `sensor`, any other tags). `downsample`
//! buckets the exported samples here, with the embedded store's semantics (buckets at
//! `from + k·step`, min/max/mean/count of the raw points), rather than with PromQL rollups,
//! whose look-behind windows, step alignment and staleness rules answer a different question.
//!
//! Identity: VictoriaMetrics keeps **millisecond** timestamps, so there a point is idempotent
//! on (sensor, quantity, ts_ms) — two readings of a sensor and quantity within one millisecond
//! are one point (the server runs with `-dedup.minScrapeInterval=1ms`; the merge here collapses
//! them too, keeping the largest value as the server's dedup does). Returned `ts_ns` are whole
//! milliseconds.
//!
//! Bounds: every request is under `request_timeout_ms`; a response body above
//! `response_bytes_max` is refused while it is read, and the query asks again for a window
//! half as long (`window.rs`), so memory stays bounded whatever the range. A query makes at
//! most 10 000 requests. Errors are [`TsError`]s naming the server (`victoria-metrics at
//! http://host:port`, never its credentials): `Unavailable` when it cannot be reached or
//! answers 5xx, `Store` otherwise.
//!
//! The trait is synchronous; requests run on a one-thread runtime of this query's own
//! (`http.rs`), so call it from a blocking thread (`spawn_blocking`), as the embedded store.

mod config;
mod counts;
mod export;
mod http;
mod window;

pub use config::VictoriaConfig;

use super::{Bucket, Point, TimeSeriesQuery, TsError};
use http::{Fetch, VictoriaHttp};
use protocol::Quantity;
use window::{seconds, walk_backward, walk_forward, Window};

/// How far ahead of the clock `latest` looks (edges with a fast clock), ms: two days.
const FUTURE_MS: i64 = 2 * 86_400_000;
/// The first window `latest` exports behind the clock, ms: one hour.
const LATEST_FIRST_SPAN_MS: i64 = 3_600_000;

/// Readings queries against one VictoriaMetrics server (single-node, or a cluster's vmselect).
pub struct VictoriaQuery {
    http: VictoriaHttp,
}

impl VictoriaQuery {
    /// Checks `cfg` and prepares the client; does not contact the server (a server that is
    /// down turns into errors per query, and queries succeed again when it is back).
    pub fn new(cfg: &VictoriaConfig) -> Result<VictoriaQuery, TsError> {
        Ok(VictoriaQuery {
            http: VictoriaHttp::new(cfg)?,
        })
    }

    /// The server, without credentials: `victoria-metrics at http://host:port`.
    pub fn describe(&self) -> &str {
        self.http.describe()
    }

    /// The points of (sensor, quantity) in `w`, oldest first.
    fn export(&self, sensor: &str, quantity: Quantity, w: Window) -> Result<Vec<Point>, Fetch> {
        let body = self.http.get(
            "api/v1/export",
            &[
                ("match[]", export::selector(sensor, quantity)),
                ("start", seconds(w.from_ms)),
                ("end", seconds(w.to_ms)),
            ],
        )?;
        export::points_of(&body, quantity, self.describe()).map_err(Fetch::Failed)
    }

    /// The quantities a sensor has points of (any time).
    fn quantities(&self, sensor: &str) -> Result<Vec<Quantity>, TsError> {
        let body = self
            .http
            .get(
                "api/v1/series",
                &[
                    ("match[]", export::sensor_values_selector(sensor)),
                    // `start=0` means "no start" there, which is the last day only.
                    ("start", seconds(1)),
                    (
                        "end",
                        seconds(protocol::time::now_ns() / 1_000_000 + FUTURE_MS),
                    ),
                ],
            )
            .map_err(|e| match e {
                Fetch::Failed(e) => e,
                Fetch::TooLarge => TsError::Store(format!(
                    "{}: the series of sensor {sensor:?} exceed victoria.response_bytes_max",
                    self.describe()
                )),
            })?;
        export::quantities_of(&body, self.describe())
    }
}

impl TimeSeriesQuery for VictoriaQuery {
    fn points(
        &self,
        sensor: &str,
        quantity: Quantity,
        from_ns: i64,
        to_ns: i64,
        limit: usize,
    ) -> Result<Vec<Point>, TsError> {
        let mut out = Vec::new();
        let Some(range) = Window::of_ns(from_ns, to_ns).filter(|_| limit > 0) else {
            return Ok(out);
        };
        walk_forward(
            range,
            self.describe(),
            |w| self.export(sensor, quantity, w),
            |found| {
                let room = limit - out.len();
                out.extend(found.into_iter().take(room));
                out.len() < limit
            },
        )?;
        Ok(out)
    }

    fn downsample(
        &self,
        sensor: &str,
        quantity: Quantity,
        from_ns: i64,
        to_ns: i64,
        step_ns: i64,
    ) -> Result<Vec<Bucket>, TsError> {
        let mut buckets = super::buckets::Buckets::new(from_ns, step_ns)?;
        let Some(range) = Window::of_ns(from_ns, to_ns) else {
            return Ok(Vec::new());
        };
        walk_forward(
            range,
            self.describe(),
            |w| self.export(sensor, quantity, w),
            |found| {
                for p in found {
                    buckets.add_point(p.ts_ns, p.value);
                }
                true
            },
        )?;
        Ok(buckets.into_buckets())
    }

    fn latest(&self, sensor: &str) -> Result<Vec<(Quantity, Point)>, TsError> {
        let newest_ms = protocol::time::now_ns() / 1_000_000 + FUTURE_MS;
        let mut out = Vec::new();
        for quantity in self.quantities(sensor)? {
            let last = walk_backward(
                newest_ms,
                FUTURE_MS + LATEST_FIRST_SPAN_MS,
                self.describe(),
                |w| Ok(self.export(sensor, quantity, w)?.pop()),
            )?;
            if let Some(p) = last {
                out.push((quantity, p));
            }
        }
        Ok(out)
    }
}
