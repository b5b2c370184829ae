//! Counters of the InfluxDB sink, and their Prometheus text.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
        let counters = [
            (
                "wangge_influx_points_sent_total",
                "Points the server accepted.",
                &self.points_sent,
            ),
            (
                "wangge_influx_posts_ok_total",
                "Successful write POSTs.",
                &self.posts_ok,
            ),
            (
                "wangge_influx_posts_failed_total",
                "Failed write POSTs (retried).",
                &self.posts_failed,
            ),
            (
                "wangge_influx_lines_rejected_total",
                "Lines refused by the server as malformed.",
                &self.lines_rejected,
            ),
            (
                "wangge_influx_replays_total",
                "Rewinds to the settled position after the server failed or restarted.",
                &self.replays,
            ),
            (
                "wangge_influx_replayed_lines_total",
                "Acknowledged lines sent again because the server may have lost them.",
                &self.replayed_lines,
            ),
            (
                "wangge_influx_server_restarts_detected_total",
                "Server restarts seen only by its changed process start time.",
                &self.restarts_detected,
            ),
        ];
        let gauges = [
            (
                "wangge_influx_spill_backlog_bytes",
                "Spilled bytes not yet written to the server.",
                &self.spill_backlog_bytes,
            ),
            (
                "wangge_influx_spill_window_bytes",
                "Acknowledged bytes kept for the replay window.",
                &self.spill_window_bytes,
            ),
            (
                "wangge_influx_last_post_microseconds",
                "Duration of the last successful POST.",
                &self.last_post_us,
            ),
        ];
        for (kind, families) in [("counter", &counters[..]), ("gauge", &gauges[..])] {
            for (name, help, v) in families {
                crate::prometheus::single(out, name, kind, help, v.load(Relaxed));
            }
        }
    }
}
