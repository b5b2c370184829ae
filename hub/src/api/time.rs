//! Timestamps and durations as the API accepts them: RFC 3339 (`2024-11-25T02:00:00Z`,
//! `2024-11-25T10:00:00+08:00`) or Unix milliseconds (`1732500000123`); durations as
//! humantime (`30s`, `5m`, `1h`) or milliseconds.

use std::time::Duration;

/// Parses a timestamp into UTC nanoseconds (the workspace's one parser).
pub use protocol::time::parse_ts_ns;

/// Parses a duration (`30s`, `5m`, or milliseconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("{s:?}: milliseconds out of range"));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 30s, 5m, 1h)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_humantime_and_ms() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1500").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
    }
}
