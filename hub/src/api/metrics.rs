//! `/metrics` in the Prometheus text format: the API's own counters plus whatever the other
//! stages (ingest, storage) register as a [`MetricsSource`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A stage that reports metrics. Each source renders complete `# HELP`/`# TYPE` blocks.
pub trait MetricsSource: Send + Sync + 'static {
    fn render_prometheus(&self) -> String;
}

impl<F> MetricsSource for F
where
    F: Fn() -> String + Send + Sync + 'static,
{
    fn render_prometheus(&self) -> String {
        self()
    }
}

/// The API's counters.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    requests: AtomicU64,
    responses_2xx: AtomicU64,
    responses_4xx: AtomicU64,
    responses_5xx: AtomicU64,
    auth_failures: AtomicU64,
}

impl ApiMetrics {
    pub fn count_response(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let c = match status {
            200..=299 => &self.responses_2xx,
            400..=499 => &self.responses_4xx,
            500..=599 => &self.responses_5xx,
            _ => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, sources: &[Arc<dyn MetricsSource>]) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        out.push_str("# HELP hub_http_requests_total HTTP requests answered by the API.\n");
        out.push_str("# TYPE hub_http_requests_total counter\n");
        out.push_str(&format!("hub_http_requests_total {}\n", g(&self.requests)));
        out.push_str("# HELP hub_http_responses_total HTTP responses by status class.\n");
        out.push_str("# TYPE hub_http_responses_total counter\n");
        for (class, c) in [
            ("2xx", &self.responses_2xx),
            ("4xx", &self.responses_4xx),
            ("5xx", &self.responses_5xx),
        ] {
            out.push_str(&format!(
                "hub_http_responses_total{{class=\"{class}\"}} {}\n",
                g(c)
            ));
        }
        out.push_str("# HELP hub_http_auth_failures_total Requests refused for a missing or invalid token.\n");
        out.push_str("# TYPE hub_http_auth_failures_total counter\n");
        out.push_str(&format!(
            "hub_http_auth_failures_total {}\n",
            g(&self.auth_failures)
        ));
        for s in sources {
            let text = s.render_prometheus();
            out.push_str(&text);
            if !text.ends_with('\n') && !text.is_empty() {
                out.push('\n');
            }
        }
        out
    }
}
