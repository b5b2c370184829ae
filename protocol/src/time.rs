//! The one clock and the one RFC 3339 codec of the workspace (needs `std`): every timestamp is
//! UTC nanoseconds since the Unix epoch as an `i64`, on the wire, in every store and in the API.
//!
//! Accepted input ([`parse_ts_ns`]): RFC 3339 with `Z` or a `±HH:MM` offset
//! (`2024-11-25T02:00:00Z`, `2024-11-25T10:00:00+08:00`, optional fraction) or Unix
//! milliseconds (`1732500000123`). An offset outside `-23:59..=+23:59` is refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, as UTC nanoseconds (0 if the clock is before 1970, `i64::MAX` after 2262).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// Parses RFC 3339 (`Z` or `±HH:MM`) or Unix milliseconds into UTC nanoseconds. The error
/// says what was expected, quoting the input.
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

/// Parses RFC 3339 leniently (`Z` optional, a space for `T`; no numeric offset: the time is
/// UTC), as vendor payloads write it. `None` if it is not such a time or is before 1970.
pub fn parse_rfc3339_lenient(s: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(d.as_nanos()).ok()
}

fn system_time(ts_ns: i64) -> SystemTime {
    if ts_ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ts_ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ts_ns.unsigned_abs())
    }
}

/// RFC 3339 in UTC with milliseconds (`2024-11-25T02:00:00.123Z`); times before 1970 show as
/// the epoch.
pub fn format_ms(ts_ns: i64) -> String {
    humantime::format_rfc3339_millis(system_time(ts_ns.max(0))).to_string()
}

/// RFC 3339 in UTC with all nine fractional digits (a cursor loses no precision); times before
/// 1970 show as the epoch.
pub fn format_ns(ts_ns: i64) -> String {
    humantime::format_rfc3339_nanos(system_time(ts_ns.max(0))).to_string()
}

/// RFC 3339 in UTC: milliseconds when the time has no finer part, else nanoseconds.
pub fn format_ts(ts_ns: i64) -> String {
    let t = system_time(ts_ns);
    if ts_ns % 1_000_000 == 0 {
        humantime::format_rfc3339_millis(t).to_string()
    } else {
        humantime::format_rfc3339_nanos(t).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_offset_and_unix_ms_agree() {
        let z = parse_ts_ns("2024-11-25T02:00:00Z").unwrap();
        assert_eq!(parse_ts_ns("2024-11-25T10:00:00+08:00").unwrap(), z);
        assert_eq!(parse_ts_ns("2024-11-24T20:30:00-05:30").unwrap(), z);
        assert_eq!(parse_ts_ns("1732500000000").unwrap(), z);
        assert_eq!(parse_ts_ns("2024-11-25T02:00:00z").unwrap(), z);
        assert_eq!(
            parse_ts_ns("2024-11-25T02:00:00.5Z").unwrap(),
            z + 500_000_000
        );
        assert!(parse_ts_ns("yesterday").is_err());
        assert!(parse_ts_ns("2024-11-25T10:00:00+8").is_err());
        assert!(parse_ts_ns("99999999999999999999").is_err());
    }

    #[test]
    fn an_offset_of_hour_24_or_minute_60_is_refused() {
        for s in [
            "2024-11-25T10:00:00+24:00",
            "2024-11-25T10:00:00-24:00",
            "2024-11-25T10:00:00+08:60",
        ] {
            let e = parse_ts_ns(s).unwrap_err();
            assert!(e.contains("neither RFC 3339"), "{s}: {e}");
        }
        assert!(parse_ts_ns("2024-11-25T10:00:00+23:59").is_ok());
        // An hour of 24 in the time itself is not RFC 3339 either.
        assert!(parse_ts_ns("2024-11-25T24:00:00Z").is_err());
    }

    #[test]
    fn formats_round_trip_through_the_parser() {
        let t = 1_732_500_000_123_000_000;
        assert_eq!(format_ms(t), "2024-11-25T02:00:00.123Z");
        assert_eq!(format_ns(t + 456), "2024-11-25T02:00:00.123000456Z");
        assert_eq!(format_ts(t), "2024-11-25T02:00:00.123Z");
        assert_eq!(format_ts(t + 456), "2024-11-25T02:00:00.123000456Z");
        for s in [format_ms(t), format_ns(t + 456), format_ts(t + 456)] {
            assert!(parse_ts_ns(&s).is_ok(), "{s}");
        }
        assert_eq!(parse_ts_ns(&format_ns(t + 456)).unwrap(), t + 456);
        assert_eq!(format_ms(-5), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_rfc3339_lenient("2024-11-25 02:00:00.123"), Some(t));
        assert_eq!(parse_rfc3339_lenient("soon"), None);
    }

    #[test]
    fn now_is_after_2024() {
        assert!(now_ns() > 1_700_000_000_000_000_000);
    }
}
