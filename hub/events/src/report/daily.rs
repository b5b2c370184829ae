//! Data completeness per UTC day (and, summed, per week) for the trend tables: each day of the
//! range scored as its own window (the sensor monitored from the latest of the day's start, its
//! registration and its first report; less the same maintenance and announced outages),
//! summed per department (owner and maintainer of the sensor's component) and for all (`*`).
//!
//! A directory that counts every day's reports at once (`reports_per_window`, the hub's) gets
//! each day derived from the window's scores: at district scale (100k sensors, 30 days) asking
//! for each day's coverage would read the registry and the counts 31 times over.

use super::completeness::{expected_reports, score, SensorCoverage, SensorScore};
use super::exclusions::Exclusions;
use super::trends::Period;
use crate::ComponentDirectory;
use std::collections::{BTreeMap, HashMap};

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// Spans of time, ns: a component's maintenance, an edge's announced outages.
type Spans<'a> = &'a [(i64, i64)];

/// (period start, department) → (reports received, reports expected).
pub type Counts = BTreeMap<(i64, String), (u64, u64)>;

/// Per day of `[from_ns, to_ns)` up to `now_ns`: the reports received and expected of the
/// sensors of `scores` (the window's, already limited to what the reader sees), by owner and
/// maintainer department as `sees` keeps them, after `excluded`.
pub fn per_day(
    dir: &dyn ComponentDirectory,
    scores: &[SensorScore],
    (from_ns, to_ns, now_ns): (i64, i64, i64),
    excluded: &Exclusions,
    sees: &dyn Fn(&str) -> bool,
) -> Counts {
    let end = to_ns.min(now_ns);
    let mut days: Vec<(i64, (i64, i64))> = Vec::new();
    let mut day = Period::Day.start(from_ns);
    while day < end {
        days.push((day, (day.max(from_ns), (day + DAY_NS).min(end))));
        day += DAY_NS;
    }
    let windows: Vec<(i64, i64)> = days.iter().map(|d| d.1).collect();
    let mut out = Counts::new();
    match dir.reports_per_window(&windows, now_ns) {
        Some(counts) => {
            // Sensor by sensor, every day at once: the lookups (counts, exclusions, the
            // departments' sums) once per sensor, not once per sensor and day.
            let mut sums: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
            let mut day_sums: Vec<(u64, u64)> = Vec::with_capacity(days.len());
            for s in scores {
                let cov = &s.cov;
                let reports = counts.get(cov.sensor_id.as_str());
                let maintenance = excluded.maintenance(&cov.component_id);
                let outages = excluded.outages(&cov.edge);
                day_sums.clear();
                for (i, &(_, window)) in days.iter().enumerate() {
                    let got = reports.map_or(0, |v| v.get(i).copied().unwrap_or(0));
                    day_sums.push(day_of(dir, cov, window, (maintenance, outages), got));
                }
                for k in keys(cov, sees) {
                    let acc = sums.entry(k).or_insert_with(|| vec![(0, 0); days.len()]);
                    for (a, (r, e)) in acc.iter_mut().zip(&day_sums) {
                        a.0 += r;
                        a.1 += e;
                    }
                }
            }
            for (k, per) in sums {
                for (&(day, _), (r, e)) in days.iter().zip(per) {
                    out.insert((day, k.to_string()), (r, e));
                }
            }
        }
        None => {
            for &(day, (a, b)) in &days {
                let covs = dir.sensor_coverage(a, b, now_ns);
                let mut sums: HashMap<&str, (u64, u64)> = HashMap::new();
                for cov in &covs {
                    let (owner, maintainer) = (
                        cov.component.owner_department.as_str(),
                        cov.component.maintainer_department.as_str(),
                    );
                    if !sees(owner) && !sees(maintainer) {
                        continue;
                    }
                    let s = scored(dir, cov.clone(), excluded);
                    for k in keys(cov, sees) {
                        let c = sums.entry(k).or_default();
                        c.0 += s.received;
                        c.1 += s.expected;
                    }
                }
                for (k, (r, e)) in sums {
                    let c = out.entry((day, k.to_string())).or_default();
                    c.0 += r;
                    c.1 += e;
                }
            }
        }
    }
    out
}

/// `cov` scored with its component's maintenance and its edge's announced outages.
fn scored(dir: &dyn ComponentDirectory, cov: SensorCoverage, excluded: &Exclusions) -> SensorScore {
    let maintenance = excluded.maintenance(&cov.component_id);
    let outages = excluded.outages(&cov.edge);
    score(cov, maintenance, outages, |sensor, x, y| {
        dir.reports_between(sensor, x, y)
    })
}

/// (received, expected) of the sensor whose window coverage is `window_cov` over the day's
/// `(a, b)`, with `got` its reports in the day and its component's maintenance and its edge's
/// outages: what the directory's coverage of that day would give, scored.
fn day_of(
    dir: &dyn ComponentDirectory,
    window_cov: &SensorCoverage,
    (a, b): (i64, i64),
    (maintenance, outages): (Spans, Spans),
    mut got: u64,
) -> (u64, u64) {
    // The window's start is the latest of its start, the registration and the first report,
    // so the day's is the latest of that and the day's start.
    let Some(start) = window_cov
        .monitored_from_ns
        .map(|f| f.max(a))
        .filter(|&f| f < b && window_cov.interval_s > 0)
    else {
        return (0, 0);
    };
    let expected = expected_reports(b - start, window_cov.interval_s);
    // Reports before its registration (sent while unassigned) are not its day's; before its
    // first report there are none, so this takes nothing off then.
    if got > 0 && start > a {
        got = got.saturating_sub(dir.reports_between(&window_cov.sensor_id, a, start));
    }
    if maintenance.is_empty() && outages.is_empty() {
        return (got.min(expected), expected);
    }
    let cov = SensorCoverage {
        monitored_from_ns: Some(start),
        monitored_to_ns: b,
        received: got,
        expected,
        ..window_cov.clone()
    };
    let s = score(cov, maintenance, outages, |sensor, x, y| {
        dir.reports_between(sensor, x, y)
    });
    (s.received, s.expected)
}

/// The sums `cov`'s sensor counts in: `*`, and the owner and the maintainer of its component
/// that `sees` keeps (once when they are one department).
fn keys<'a>(cov: &'a SensorCoverage, sees: &dyn Fn(&str) -> bool) -> Vec<&'a str> {
    let owner = cov.component.owner_department.as_str();
    let maintainer = cov.component.maintainer_department.as_str();
    let mut keys = vec!["*"];
    for k in [owner, maintainer] {
        if !k.is_empty() && sees(k) && !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// `daily` summed into `period`s.
pub fn by_period(daily: &Counts, period: Period) -> Counts {
    let mut out = Counts::new();
    for ((day, d), (r, e)) in daily {
        let c = out.entry((period.start(*day), d.clone())).or_default();
        c.0 += r;
        c.1 += e;
    }
    out
}
