//! Reports counted per sensor from VictoriaMetrics, for data completeness in a cluster: every
//! member's sink writes there, so any member counts every edge's reports (a member's embedded
//! store holds only the edges it owned).
//!
//! One instant query per question, answered by the server without exporting a point:
//! - reports in a window: `max by (sensor) (count_over_time({__name__=~".+_quality"}[w]))` —
//!   the sink writes one `<quantity>_quality` sample per reading, so the count of a sensor's
//!   most frequent quantity is its number of reports when every report carries that quantity
//!   (every profile of this repository does); a sensor whose reports carry disjoint quantities
//!   would be undercounted (the embedded store counts distinct timestamps exactly);
//! - the first report: `min by (sensor) (tfirst_over_time({…}[lookback]))` (MetricsQL) over
//!   the server's whole retention.
//!
//! A window is `(from − 1 ms, to − 1 ms]` on the server's millisecond clock, i.e. `[from, to)`
//! as the embedded store counts it.

use super::http::Fetch;
use super::VictoriaQuery;
use crate::timeseries::TsError;
use serde::Deserialize;
use std::collections::HashMap;

/// Every reading's quality sample, whatever the quantity and the other tags.
const QUALITY_SERIES: &str = "{__name__=~\".+_quality\"}";
/// How far back the first report is looked for, s: longer than any retention configured here.
const FIRST_LOOKBACK_S: i64 = 5 * 366 * 86_400;

#[derive(Deserialize)]
struct Answer {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    result: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    metric: HashMap<String, String>,
    /// `[unix seconds, "value"]`.
    value: (f64, String),
}

impl VictoriaQuery {
    /// Reports per sensor in `[from_ns, to_ns)`.
    pub fn report_counts(&self, from_ns: i64, to_ns: i64) -> Result<HashMap<String, u64>, TsError> {
        self.count_query(from_ns, to_ns, None)
    }

    /// Reports of one sensor in `[from_ns, to_ns)`.
    pub fn report_count(&self, sensor: &str, from_ns: i64, to_ns: i64) -> Result<u64, TsError> {
        Ok(self
            .count_query(from_ns, to_ns, Some(sensor))?
            .remove(sensor)
            .unwrap_or(0))
    }

    /// The first report of every sensor that has one, ns (whole milliseconds).
    pub fn first_reports(&self, now_ns: i64) -> Result<HashMap<String, i64>, TsError> {
        let q =
            format!("min by (sensor) (tfirst_over_time({QUALITY_SERIES}[{FIRST_LOOKBACK_S}s]))");
        let at_ms = now_ns / 1_000_000;
        Ok(self
            .instant(&q, at_ms)?
            .into_iter()
            .map(|(s, t)| (s, (t * 1000.0).round() as i64 * 1_000_000))
            .collect())
    }

    fn count_query(
        &self,
        from_ns: i64,
        to_ns: i64,
        sensor: Option<&str>,
    ) -> Result<HashMap<String, u64>, TsError> {
        let (from_ms, to_ms) = (
            from_ns.div_euclid(1_000_000),
            (to_ns - 1).div_euclid(1_000_000),
        );
        if to_ms < from_ms {
            return Ok(HashMap::new());
        }
        let selector = match sensor {
            Some(s) => format!(
                "{{__name__=~\".+_quality\",sensor=\"{}\"}}",
                super::export::label_value(s)
            ),
            None => QUALITY_SERIES.to_string(),
        };
        // (to − 1 ms − span, to − 1 ms] with span = to − from: the window's whole milliseconds.
        let span_ms = to_ms - from_ms + 1;
        let q = format!("max by (sensor) (count_over_time({selector}[{span_ms}ms]))");
        Ok(self
            .instant(&q, to_ms)?
            .into_iter()
            .map(|(s, n)| (s, n.max(0.0) as u64))
            .collect())
    }

    /// `/api/v1/query` at `at_ms`: (sensor, value) of each result.
    fn instant(&self, query: &str, at_ms: i64) -> Result<Vec<(String, f64)>, TsError> {
        let body = self
            .http
            .get(
                "api/v1/query",
                &[
                    ("query", query.to_string()),
                    ("time", super::window::seconds(at_ms)),
                ],
            )
            .map_err(|e| match e {
                Fetch::Failed(e) => e,
                Fetch::TooLarge => TsError::Store(format!(
                    "{}: the report counts exceed victoria.response_bytes_max",
                    self.describe()
                )),
            })?;
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
            TsError::Store(format!("{}: unreadable query answer: {e}", self.describe()))
        })?;
        Ok(answer
            .data
            .result
            .into_iter()
            .filter_map(|s| {
                let sensor = s.metric.get("sensor")?.clone();
                let v: f64 = s.value.1.parse().ok()?;
                v.is_finite().then_some((sensor, v))
            })
            .collect())
    }
}
