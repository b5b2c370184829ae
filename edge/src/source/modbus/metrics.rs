//! Per-slave counters of a Modbus line: requests, poll cycles, failures by reason, up or not.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Why a request got no usable answer. The name is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing came back within the timeout.
    Timeout,
    /// Bytes came back but no valid frame (CRC error, truncated or garbled answer).
    Garbled,
    /// The slave answered with a Modbus exception (illegal address, device busy, ...).
    Exception(u8),
    /// An answer for another unit or function (a late answer to an earlier request).
    Mismatch,
    /// The port or connection failed; the line is reopened.
    Io,
}

/// Failure reasons in label order.
pub const FAILURE_REASONS: [&str; 5] = ["timeout", "crc", "exception", "mismatch", "io"];

impl Failure {
    pub fn index(self) -> usize {
        match self {
            Failure::Timeout => 0,
            Failure::Garbled => 1,
            Failure::Exception(_) => 2,
            Failure::Mismatch => 3,
            Failure::Io => 4,
        }
    }
    pub fn reason(self) -> &'static str {
        FAILURE_REASONS[self.index()]
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => f.write_str("no answer within the timeout"),
            Failure::Garbled => f.write_str("garbled answer (CRC or framing error)"),
            Failure::Exception(c) => {
                write!(f, "Modbus exception {c:#04x} ({})", exception_name(*c))
            }
            Failure::Mismatch => f.write_str("answer for another request"),
            Failure::Io => f.write_str("port or connection failed"),
        }
    }
}

/// The standard exception names (Modbus application protocol 1.1b3, 7).
pub fn exception_name(code: u8) -> &'static str {
    match code {
        1 => "illegal function",
        2 => "illegal data address",
        3 => "illegal data value",
        4 => "server device failure",
        5 => "acknowledge",
        6 => "server device busy",
        8 => "memory parity error",
        10 => "gateway path unavailable",
        11 => "gateway target device failed to respond",
        _ => "non-standard",
    }
}

/// One slave's counters.
#[derive(Debug, Default)]
pub struct SlaveMetrics {
    pub line: String,
    pub unit: u8,
    pub sensor: String,
    pub up: AtomicBool,
    /// Requests sent, retries included.
    pub requests: AtomicU64,
    /// Poll cycles started (each sends the plan's due requests once, plus retries).
    pub cycles: AtomicU64,
    /// Requests in the read plan (merged blocks).
    pub plan_requests: AtomicU64,
    /// Requests the last completed poll cycle sent, retries included: equal to
    /// `plan_requests` when every block was due and answered at the first try.
    pub last_cycle_requests: AtomicU64,
    pub failures: [AtomicU64; FAILURE_REASONS.len()],
}

impl SlaveMetrics {
    pub fn new(line: &str, unit: u8, sensor: &str) -> SlaveMetrics {
        SlaveMetrics {
            line: line.into(),
            unit,
            sensor: sensor.into(),
            ..Default::default()
        }
    }
    pub fn failed(&self, f: Failure) {
        self.failures[f.index()].fetch_add(1, Relaxed);
    }
}

/// The per-slave families without a reason label: (name, type, help), read by [`sample`].
const FAMILIES: [(&str, &str, &str); 5] = [
    ("edge_modbus_slave_up", "gauge", "1 while the slave answers"),
    (
        "edge_modbus_requests_total",
        "counter",
        "Read requests sent, retries included",
    ),
    (
        "edge_modbus_poll_cycles_total",
        "counter",
        "Poll cycles started",
    ),
    (
        "edge_modbus_plan_requests",
        "gauge",
        "Requests in the read plan",
    ),
    (
        "edge_modbus_last_cycle_requests",
        "gauge",
        "Requests the last completed poll cycle sent",
    ),
];

/// The value of `FAMILIES[family]` for one slave.
fn sample(s: &SlaveMetrics, family: usize) -> u64 {
    match family {
        0 => u64::from(s.up.load(Relaxed)),
        1 => s.requests.load(Relaxed),
        2 => s.cycles.load(Relaxed),
        3 => s.plan_requests.load(Relaxed),
        _ => s.last_cycle_requests.load(Relaxed),
    }
}

/// Appends the Prometheus exposition of every slave's counters, one family at a time.
pub fn render(slaves: &[std::sync::Arc<SlaveMetrics>], out: &mut String) {
    if slaves.is_empty() {
        return;
    }
    let labels = |s: &SlaveMetrics| {
        format!(
            "line=\"{}\",unit=\"{}\",sensor=\"{}\"",
            s.line, s.unit, s.sensor
        )
    };
    for (f, (name, kind, help)) in FAMILIES.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in slaves {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(s), sample(s, f));
        }
    }
    let name = "edge_modbus_failures_total";
    let _ = writeln!(
        out,
        "# HELP {name} Requests without a usable answer, by reason\n# TYPE {name} counter"
    );
    for s in slaves {
        for (i, reason) in FAILURE_REASONS.iter().enumerate() {
            let n = s.failures[i].load(Relaxed);
            let _ = writeln!(out, "{name}{{{},reason=\"{reason}\"}} {n}", labels(s));
        }
    }
}
