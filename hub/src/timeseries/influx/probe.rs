//! Looking at the server between writes: is it up, and is it still the same process?
//!
//! A server that crashes and restarts between two POSTs answers the next one as if nothing had
//! happened, while what it acknowledged before the crash may be gone. VictoriaMetrics (and any
//! server exporting the Prometheus Go/process collector) publishes `process_start_time_seconds`
//! in `/metrics`: a change means a restart. A server without it can only be caught failing.

use std::time::Duration;

/// What one look at the server found.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// It answered; `started` is its process start time when `/metrics` says it.
    Alive { started: Option<f64> },
    /// No connection, no answer in time, or a 5xx: it may have lost what it acknowledged.
    Down(String),
}

/// The start-time metric looked for in `/metrics`.
const START_METRIC: &str = "process_start_time_seconds";

/// `GET {url}/metrics` (with the write token, harmless where it is not needed). Any answer but a
/// 5xx means the server is up; only a 200 with the metric tells its start time.
pub async fn probe(client: &reqwest::Client, url: &str, token: &str, timeout: Duration) -> Probe {
    let req = client
        .get(format!("{}/metrics", url.trim_end_matches('/')))
        .header("Authorization", format!("Token {token}"))
        .timeout(timeout)
        .send();
    let resp = match req.await {
        Ok(r) => r,
        Err(e) => return Probe::Down(e.to_string()),
    };
    let status = resp.status();
    if status.is_server_error() {
        return Probe::Down(format!("/metrics answered {status}"));
    }
    if !status.is_success() {
        return Probe::Alive { started: None };
    }
    match resp.text().await {
        Ok(body) => Probe::Alive {
            started: start_time(&body),
        },
        Err(e) => Probe::Down(e.to_string()),
    }
}

/// The value of `process_start_time_seconds` in Prometheus text (no labels on it).
pub fn start_time(metrics: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(START_METRIC)?;
        let v = rest.strip_prefix(' ')?.split_whitespace().next()?;
        v.parse::<f64>().ok().filter(|v| v.is_finite())
    })
}

#[cfg(test)]
mod tests {
    use super::start_time;

    #[test]
    fn the_start_time_is_read_from_prometheus_text() {
        let vm = "# HELP x\nprocess_start_time_seconds_total 3\nprocess_start_time_seconds 1795686597\nvm_app_start_timestamp 1795686597\n";
        assert_eq!(start_time(vm), Some(1_795_686_597.0));
        let go = "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1.79568659712e+09\n";
        assert_eq!(start_time(go), Some(1_795_686_597.12));
        assert_eq!(start_time("up 1\n"), None);
        assert_eq!(start_time("process_start_time_seconds NaN\n"), None);
    }
}
