//! Timestamps and durations as the API accepts them: RFC 3339 (`2024-11-25T02:00:00Z`,
//! `2024-11-25T10:00:00+08:00`) or Unix milliseconds (`1732500000123`); durations as
//! humantime (`30s`, `5m`, `1h`) or milliseconds.

use std::time::{Duration, UNIX_EPOCH};

/// Parses a timestamp into UTC nanoseconds.
pub fn parse_ts_ns(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .ok()
            .and_then(|ms| ms.checked_mul(1_000_000))
            .ok_or_else(|| format!("{s:?}: Unix milliseconds out of range"));
    }
    let bad = || format!("{s:?} is neither RFC 3339 (2024-11-25T02:00:00Z) nor Unix milliseconds");
    // humantime parses only the `Z` form: split off a numeric offset ourselves.
    let (base, offset_s) = match s.get(19..).and_then(|tail| tail.rfind(['+', '-'])) {
        Some(i) => {
            let at = 19 + i;
            let off = &s[at..];
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (h, m) = off[1..].split_once(':').ok_or_else(bad)?;
            let h: i64 = h.parse().map_err(|_| bad())?;
            let m: i64 = m.parse().map_err(|_| bad())?;
            if h > 23 || m > 59 {
                return Err(bad());
            }
            (format!("{}Z", &s[..at]), sign * (h * 3600 + m * 60))
        }
        None => (s.replace('z', "Z"), 0),
    };
    let t = humantime::parse_rfc3339(&base).map_err(|_| bad())?;
    let ns = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .map_err(|_| format!("{s:?} is before 1970"))?;
    Ok(ns - offset_s * 1_000_000_000)
}

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
    fn rfc3339_with_offset_and_unix_ms_agree() {
        let z = parse_ts_ns("2024-11-25T02:00:00Z").unwrap();
        assert_eq!(parse_ts_ns("2024-11-25T10:00:00+08:00").unwrap(), z);
        assert_eq!(parse_ts_ns("1732500000000").unwrap(), z);
        assert_eq!(
            parse_ts_ns("2024-11-25T02:00:00.5Z").unwrap(),
            z + 500_000_000
        );
        assert!(parse_ts_ns("yesterday").is_err());
        assert!(parse_ts_ns("2024-11-25T10:00:00+8").is_err());
    }

    #[test]
    fn durations_accept_humantime_and_ms() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1500").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
    }
}
