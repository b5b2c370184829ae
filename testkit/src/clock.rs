//! The wall clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall clock, ns since the Unix epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

/// Wall clock, ms since the Unix epoch.
pub fn now_ms() -> i64 {
    now_ns() / 1_000_000
}
