//! Time windows in milliseconds, and the walks that keep every response under the size cap:
//! a window whose export is refused as too large is halved and asked again, so a query of any
//! range is answered in bounded pieces, never by one unbounded body.

use super::super::TsError;
use super::http::Fetch;

/// A closed range of milliseconds, `from_ms <= to_ms`, both >= 0 (VictoriaMetrics stores
/// nothing before 1970).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Most requests one query makes; beyond, it fails instead of running on.
const REQUESTS_MAX: u32 = 10_000;

impl Window {
    /// The milliseconds whose points fall in `[from_ns, to_ns)`; None when there are none.
    pub fn of_ns(from_ns: i64, to_ns: i64) -> Option<Window> {
        let from_ms = from_ns.div_euclid(1_000_000) + i64::from(from_ns.rem_euclid(1_000_000) != 0);
        let to_ms = to_ns.div_euclid(1_000_000) + i64::from(to_ns.rem_euclid(1_000_000) != 0) - 1;
        let from_ms = from_ms.max(0);
        (to_ms >= from_ms).then_some(Window { from_ms, to_ms })
    }

    fn span_ms(self) -> i64 {
        self.to_ms - self.from_ms + 1
    }
}

/// `start`/`end` of an export: Unix seconds with milliseconds (`end` is inclusive).
pub fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn too_many(describe: &str) -> TsError {
    TsError::Store(format!(
        "{describe}: more than {REQUESTS_MAX} requests for one query; raise victoria.response_bytes_max"
    ))
}

fn too_dense(describe: &str) -> TsError {
    TsError::Store(format!(
        "{describe}: one millisecond's export exceeds victoria.response_bytes_max"
    ))
}

/// Exports `range` oldest window first, handing each window's result to `take` until it
/// returns false. The window doubles after an answer and halves after a refusal.
pub fn walk_forward<T>(
    range: Window,
    describe: &str,
    mut export: impl FnMut(Window) -> Result<T, Fetch>,
    mut take: impl FnMut(T) -> bool,
) -> Result<(), TsError> {
    let (mut cursor, mut span) = (range.from_ms, range.span_ms());
    for _ in 0..REQUESTS_MAX {
        if cursor > range.to_ms {
            return Ok(());
        }
        let w = Window {
            from_ms: cursor,
            to_ms: cursor.saturating_add(span - 1).min(range.to_ms),
        };
        match export(w) {
            Ok(found) => {
                if !take(found) {
                    return Ok(());
                }
                cursor = w.to_ms + 1;
                span = span.saturating_mul(2);
            }
            Err(Fetch::TooLarge) if w.span_ms() > 1 => span = (w.span_ms() / 2).max(1),
            Err(Fetch::TooLarge) => return Err(too_dense(describe)),
            Err(Fetch::Failed(e)) => return Err(e),
        }
    }
    Err(too_many(describe))
}

/// Exports backwards from `newest_ms`: first `first_span_ms`, then windows four times longer,
/// until `found` has something to say or 1970 is reached. None: nothing at all.
pub fn walk_backward<T>(
    newest_ms: i64,
    first_span_ms: i64,
    describe: &str,
    mut export: impl FnMut(Window) -> Result<Option<T>, Fetch>,
) -> Result<Option<T>, TsError> {
    let (mut to_ms, mut span) = (newest_ms, first_span_ms.max(1));
    for _ in 0..REQUESTS_MAX {
        if to_ms < 0 {
            return Ok(None);
        }
        let w = Window {
            from_ms: to_ms.saturating_sub(span - 1).max(0),
            to_ms,
        };
        match export(w) {
            Ok(Some(found)) => return Ok(Some(found)),
            Ok(None) => {
                to_ms = w.from_ms - 1;
                span = span.saturating_mul(4);
            }
            Err(Fetch::TooLarge) if w.span_ms() > 1 => span = (w.span_ms() / 4).max(1),
            Err(Fetch::TooLarge) => return Err(too_dense(describe)),
            Err(Fetch::Failed(e)) => return Err(e),
        }
    }
    Err(too_many(describe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_open_nanosecond_range_becomes_the_milliseconds_inside_it() {
        let w = |a, b| Window::of_ns(a, b).map(|w| (w.from_ms, w.to_ms));
        assert_eq!(w(0, 3_000_000), Some((0, 2)));
        assert_eq!(w(1, 3_000_001), Some((1, 3)));
        assert_eq!(w(1_000_000, 1_000_001), Some((1, 1)));
        assert_eq!(w(1_000_001, 2_000_000), None);
        assert_eq!(w(-5_000_000, 1_000_000), Some((0, 0)));
        assert_eq!(w(i64::MIN, i64::MAX).map(|w| w.0), Some(0));
        assert_eq!(seconds(1_700_000_000_042), "1700000000.042");
    }

    #[test]
    fn a_refused_window_is_halved_and_the_walk_covers_the_range_once() {
        let range = Window {
            from_ms: 0,
            to_ms: 99,
        };
        let mut asked = Vec::new();
        let mut covered = Vec::new();
        walk_forward(
            range,
            "vm",
            |w| {
                asked.push(w);
                if w.span_ms() > 30 {
                    Err(Fetch::TooLarge)
                } else {
                    Ok(w)
                }
            },
            |w| {
                covered.push(w);
                true
            },
        )
        .unwrap();
        assert_eq!(covered.first().unwrap().from_ms, 0);
        assert_eq!(covered.last().unwrap().to_ms, 99);
        for pair in covered.windows(2) {
            assert_eq!(pair[0].to_ms + 1, pair[1].from_ms);
        }
        assert!(asked.len() > covered.len());
        let err = walk_forward(
            range,
            "vm at x",
            |_| Err::<(), _>(Fetch::TooLarge),
            |_| true,
        );
        assert!(err.unwrap_err().to_string().contains("vm at x"));
    }

    #[test]
    fn the_backward_walk_stops_at_the_newest_window_with_points_or_at_1970() {
        let mut asked = Vec::new();
        let found = walk_backward(10_000, 10, "vm", |w| {
            asked.push(w);
            Ok((w.from_ms <= 500 && 500 <= w.to_ms).then_some(500))
        })
        .unwrap();
        assert_eq!(found, Some(500));
        assert_eq!(
            asked[0],
            Window {
                from_ms: 9_991,
                to_ms: 10_000
            }
        );
        let none = walk_backward(10_000, 10, "vm", |_| Ok(None::<i64>)).unwrap();
        assert_eq!(none, None);
    }
}
