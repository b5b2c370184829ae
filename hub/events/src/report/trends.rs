//! The department figures per day and per week across the range (UTC; weeks start on Monday),
//! for the trend charts and the department × week heat map, with the data completeness of the
//! department's sensors in the same period (`daily.rs`).

use super::cases::Case;
use super::daily::Counts;
use super::departments::{closed_on_time, overdue};
use super::stats::ratio;
use super::table::{Cell, Table};
use std::collections::BTreeMap;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// Period length of a trend table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
}

impl Period {
    /// Start of the period holding `t`.
    pub fn start(self, t: i64) -> i64 {
        let day = t.div_euclid(DAY_NS);
        match self {
            Period::Day => day * DAY_NS,
            // 1970-01-01 was a Thursday: Monday is 3 days before.
            Period::Week => (day - (day + 3).rem_euclid(7)) * DAY_NS,
        }
    }

    fn table_name(self) -> &'static str {
        match self {
            Period::Day => "trend_daily",
            Period::Week => "trend_weekly",
        }
    }
}

pub const COLUMNS: &[&str] = &[
    "period",
    "department",
    "received",
    "acknowledged",
    "closed",
    "closed_on_time",
    "on_time_closure_rate",
    "overdue",
    "reports_received",
    "reports_expected",
    "completeness",
];

#[derive(Default)]
struct Bucket {
    received: u64,
    acknowledged: u64,
    closed: u64,
    on_time: u64,
    overdue: u64,
    reports: (u64, u64),
}

/// Per (period, department): events received (registered) in the period, acknowledged in it,
/// closed in it (and on time), and of those received, overdue; and the `completeness` of its
/// sensors' reports in the period. Department `*` is all of them.
pub fn table(
    cases: &[&Case],
    departments: &[String],
    completeness: &Counts,
    period: Period,
    now_ns: i64,
) -> Table {
    let mut per: BTreeMap<(i64, String), Bucket> = BTreeMap::new();
    for (key, reports) in completeness {
        per.entry(key.clone()).or_default().reports = *reports;
    }
    for c in cases {
        let e = &c.event;
        let mut who: Vec<&str> = c
            .recipients
            .iter()
            .map(String::as_str)
            .filter(|d| departments.iter().any(|x| x == d))
            .collect();
        who.push("*");
        for d in who {
            let key = |t: i64| (period.start(t), d.to_string());
            let b = per.entry(key(e.created_at_ns)).or_default();
            b.received += 1;
            b.overdue += u64::from(overdue(e, now_ns));
            if let Some(a) = e.acknowledged_at_ns {
                per.entry(key(a)).or_default().acknowledged += 1;
            }
            if let Some(cl) = e.closed_at_ns {
                let b = per.entry(key(cl)).or_default();
                b.closed += 1;
                b.on_time += u64::from(closed_on_time(e));
            }
        }
    }
    Table {
        name: period.table_name(),
        columns: COLUMNS,
        rows: per
            .into_iter()
            .map(|((start, d), b)| {
                vec![
                    Cell::Time(Some(start)),
                    Cell::Text(d),
                    Cell::Int(b.received as i64),
                    Cell::Int(b.acknowledged as i64),
                    Cell::Int(b.closed as i64),
                    Cell::Int(b.on_time as i64),
                    Cell::Num(ratio(b.on_time, b.closed)),
                    Cell::Int(b.overdue as i64),
                    Cell::Int(b.reports.0 as i64),
                    Cell::Int(b.reports.1 as i64),
                    Cell::Num(ratio(b.reports.0, b.reports.1)),
                ]
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday_utc() {
        // 2026-12-04 (a Friday) 13:00 UTC → Monday 2026-11-30 00:00 UTC.
        let fri = crate::model::parse_ts_ns("2026-12-04T13:00:00Z").unwrap();
        let mon = crate::model::parse_ts_ns("2026-11-30T00:00:00Z").unwrap();
        assert_eq!(Period::Week.start(fri), mon);
        assert_eq!(Period::Week.start(mon), mon);
        let day = crate::model::parse_ts_ns("2026-12-04T00:00:00Z").unwrap();
        assert_eq!(Period::Day.start(fri), day);
    }
}
