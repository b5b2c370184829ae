//! Data completeness: reports received against reports expected over the part of the window
//! each sensor was monitored, less the time its component was under maintenance and its edge
//! was out on an announced outage; per sensor,
//! per component, and rolled up per component type, grid cell, department and edge.

use super::stats::ratio;
use super::table::{Cell, Table};
use crate::model::ComponentCtx;
use crate::ReadingCount;
use std::collections::BTreeMap;

/// One attached sensor's share of a window, as the hub's directory measures it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SensorCoverage {
    pub sensor_id: String,
    pub component_id: String,
    pub component_name: String,
    pub component: ComponentCtx,
    /// The edge it reports through; empty if unknown.
    pub edge: String,
    /// Expected reporting interval; 0 if unknown (then nothing can be excluded).
    pub interval_s: u32,
    /// Start of the monitored part: the latest of the window's start, the sensor's
    /// registration and its first report. None: not monitored in the window at all.
    pub monitored_from_ns: Option<i64>,
    /// End of the monitored part: the earlier of the window's end and now.
    pub monitored_to_ns: i64,
    /// Reports in the monitored part.
    pub received: u64,
    /// Reports expected in it: its length over the interval, rounded up (a sensor that
    /// reports at the start of every interval is exactly complete).
    pub expected: u64,
}

impl SensorCoverage {
    /// One row per component from per-component counts (a directory without sensor detail).
    pub fn from_counts(counts: Vec<ReadingCount>, from_ns: i64) -> Vec<SensorCoverage> {
        counts
            .into_iter()
            .map(|c| SensorCoverage {
                sensor_id: c.component_id.clone(),
                component_name: c.component_id.clone(),
                component_id: c.component_id,
                monitored_from_ns: Some(from_ns),
                monitored_to_ns: from_ns,
                received: c.received,
                expected: c.expected,
                ..SensorCoverage::default()
            })
            .collect()
    }
}

/// Expected reports over `span_ns` at `interval_s`, rounded up.
pub fn expected_reports(span_ns: i64, interval_s: u32) -> u64 {
    if interval_s == 0 || span_ns <= 0 {
        return 0;
    }
    let step = i64::from(interval_s) * 1_000_000_000;
    u64::try_from((span_ns + step - 1) / step).unwrap_or(0)
}

/// A sensor after exclusions.
#[derive(Debug, Clone)]
pub struct SensorScore {
    pub cov: SensorCoverage,
    /// Excluded time (maintenance and outages, overlaps counted once).
    pub excluded_ns: i64,
    /// Maintenance periods in the monitored part.
    pub excluded_periods: usize,
    /// Announced outages of its edge in the monitored part.
    pub outage_periods: usize,
    /// Received, less reports inside excluded spans, at most `expected`.
    pub received: u64,
    pub expected: u64,
}

/// Merged spans of `spans` clipped to `[from, to)`.
pub fn clip_merge(spans: &[(i64, i64)], from: i64, to: i64) -> Vec<(i64, i64)> {
    let mut v: Vec<(i64, i64)> = spans
        .iter()
        .map(|&(a, b)| (a.max(from), b.min(to)))
        .filter(|(a, b)| a < b)
        .collect();
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Scores `cov` with its component's `maintenance` spans and its edge's announced `outages`;
/// `reports_in` counts the sensor's reports in a span (to take them off the received side too).
pub fn score(
    cov: SensorCoverage,
    maintenance: &[(i64, i64)],
    outages: &[(i64, i64)],
    reports_in: impl Fn(&str, i64, i64) -> u64,
) -> SensorScore {
    let Some(from) = cov.monitored_from_ns.filter(|_| cov.interval_s > 0) else {
        let (received, expected) = (cov.received.min(cov.expected), cov.expected);
        return SensorScore {
            cov,
            excluded_ns: 0,
            excluded_periods: 0,
            outage_periods: 0,
            received,
            expected,
        };
    };
    let to = cov.monitored_to_ns;
    let all: Vec<(i64, i64)> = maintenance.iter().chain(outages).copied().collect();
    let excluded = clip_merge(&all, from, to);
    let excluded_ns: i64 = excluded.iter().map(|(a, b)| b - a).sum();
    let in_excluded: u64 = excluded
        .iter()
        .map(|&(a, b)| reports_in(&cov.sensor_id, a, b))
        .sum();
    let expected = expected_reports(cov.monitored_to_ns - from - excluded_ns, cov.interval_s);
    let received = cov.received.saturating_sub(in_excluded).min(expected);
    SensorScore {
        excluded_periods: clip_merge(maintenance, from, to).len(),
        outage_periods: clip_merge(outages, from, to).len(),
        cov,
        excluded_ns,
        received,
        expected,
    }
}

pub const SENSOR_COLUMNS: &[&str] = &[
    "sensor_id",
    "component_id",
    "component_name",
    "edge",
    "interval_s",
    "monitored_from",
    "excluded_s",
    "maintenance_periods",
    "outage_periods",
    "received",
    "expected",
    "completeness",
];

pub fn sensor_table(scores: &[SensorScore]) -> Table {
    let mut rows: Vec<&SensorScore> = scores.iter().collect();
    rows.sort_by(|a, b| rank(a.received, a.expected, b.received, b.expected));
    Table {
        name: "sensors",
        columns: SENSOR_COLUMNS,
        rows: rows
            .into_iter()
            .map(|s| {
                vec![
                    Cell::text(&s.cov.sensor_id),
                    Cell::text(&s.cov.component_id),
                    Cell::text(&s.cov.component_name),
                    Cell::text(&s.cov.edge),
                    Cell::Int(i64::from(s.cov.interval_s)),
                    Cell::Time(s.cov.monitored_from_ns),
                    Cell::Num(Some((s.excluded_ns / 1_000_000_000) as f64)),
                    Cell::count(s.excluded_periods),
                    Cell::count(s.outage_periods),
                    Cell::Int(s.received as i64),
                    Cell::Int(s.expected as i64),
                    Cell::Num(ratio(s.received, s.expected)),
                ]
            })
            .collect(),
    }
}

/// Worst completeness first; rows with nothing expected last.
fn rank(ra: u64, ea: u64, rb: u64, eb: u64) -> std::cmp::Ordering {
    let key = |r, e| ratio(r, e).unwrap_or(f64::INFINITY);
    key(ra, ea).total_cmp(&key(rb, eb))
}

pub const COMPONENT_COLUMNS: &[&str] = &[
    "component_id",
    "name",
    "type",
    "grid_cell",
    "owner_department",
    "maintainer_department",
    "edge",
    "sensors",
    "excluded_s",
    "maintenance_periods",
    "outage_periods",
    "received",
    "expected",
    "completeness",
];

#[derive(Default)]
struct Sum {
    sensors: usize,
    components: std::collections::BTreeSet<String>,
    received: u64,
    expected: u64,
    excluded_ns: i64,
    periods: usize,
    outages: usize,
}

impl Sum {
    fn add(&mut self, s: &SensorScore) {
        self.sensors += 1;
        self.components.insert(s.cov.component_id.clone());
        self.received += s.received;
        self.expected += s.expected;
        self.excluded_ns = self.excluded_ns.max(s.excluded_ns);
        self.periods = self.periods.max(s.excluded_periods);
        self.outages = self.outages.max(s.outage_periods);
    }
}

/// Per component (its sensors summed), worst first.
pub fn component_table(scores: &[SensorScore]) -> Table {
    let mut per: BTreeMap<&str, (&SensorScore, Sum, Vec<&str>)> = BTreeMap::new();
    for s in scores {
        let e = per
            .entry(s.cov.component_id.as_str())
            .or_insert_with(|| (s, Sum::default(), Vec::new()));
        e.1.add(s);
        if !s.cov.edge.is_empty() && !e.2.contains(&s.cov.edge.as_str()) {
            e.2.push(&s.cov.edge);
        }
    }
    let mut rows: Vec<_> = per.into_values().collect();
    rows.sort_by(|a, b| rank(a.1.received, a.1.expected, b.1.received, b.1.expected));
    Table {
        name: "components",
        columns: COMPONENT_COLUMNS,
        rows: rows
            .into_iter()
            .map(|(first, sum, edges)| {
                let c = &first.cov;
                vec![
                    Cell::text(&c.component_id),
                    Cell::text(&c.component_name),
                    Cell::text(&c.component.component_type),
                    Cell::text(&c.component.grid_cell),
                    Cell::text(&c.component.owner_department),
                    Cell::text(&c.component.maintainer_department),
                    Cell::text(edges.join(" ")),
                    Cell::count(sum.sensors),
                    Cell::Num(Some((sum.excluded_ns / 1_000_000_000) as f64)),
                    Cell::count(sum.periods),
                    Cell::count(sum.outages),
                    Cell::Int(sum.received as i64),
                    Cell::Int(sum.expected as i64),
                    Cell::Num(ratio(sum.received, sum.expected)),
                ]
            })
            .collect(),
    }
}

pub const ROLLUP_COLUMNS: &[&str] = &[
    "key",
    "components",
    "sensors",
    "received",
    "expected",
    "completeness",
];

/// The roll-ups: per component type, grid cell, department (owner and maintainer) and edge.
pub fn rollup_tables(scores: &[SensorScore]) -> Vec<Table> {
    type KeyFn = fn(&SensorCoverage) -> Vec<String>;
    let rollups: [(&'static str, KeyFn); 4] = [
        ("completeness_by_type", |c| {
            vec![c.component.component_type.clone()]
        }),
        ("completeness_by_grid_cell", |c| {
            vec![c.component.grid_cell.clone()]
        }),
        ("completeness_by_department", |c| {
            let mut v = vec![
                c.component.owner_department.clone(),
                c.component.maintainer_department.clone(),
            ];
            v.dedup();
            v
        }),
        ("completeness_by_edge", |c| vec![c.edge.clone()]),
    ];
    rollups
        .into_iter()
        .map(|(name, keys)| {
            let mut per: BTreeMap<String, Sum> = BTreeMap::new();
            for s in scores {
                for k in keys(&s.cov).into_iter().filter(|k| !k.is_empty()) {
                    per.entry(k).or_default().add(s);
                }
            }
            let mut rows: Vec<(String, Sum)> = per.into_iter().collect();
            rows.sort_by(|a, b| rank(a.1.received, a.1.expected, b.1.received, b.1.expected));
            Table {
                name,
                columns: ROLLUP_COLUMNS,
                rows: rows
                    .into_iter()
                    .map(|(k, s)| {
                        vec![
                            Cell::Text(k),
                            Cell::count(s.components.len()),
                            Cell::count(s.sensors),
                            Cell::Int(s.received as i64),
                            Cell::Int(s.expected as i64),
                            Cell::Num(ratio(s.received, s.expected)),
                        ]
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn cov(from: i64, to: i64, received: u64) -> SensorCoverage {
        SensorCoverage {
            sensor_id: "s".into(),
            interval_s: 60,
            monitored_from_ns: Some(from),
            monitored_to_ns: to,
            received,
            expected: expected_reports(to - from, 60),
            ..SensorCoverage::default()
        }
    }

    #[test]
    fn maintenance_is_taken_off_both_sides() {
        // 100 minutes, 20 of them under maintenance in two overlapping spans; 5 reports in it.
        let s = score(
            cov(0, 6000 * S, 100),
            &[(600 * S, 1500 * S), (1200 * S, 1800 * S)],
            &[],
            |_, a, b| {
                assert_eq!((a, b), (600 * S, 1800 * S));
                5
            },
        );
        assert_eq!((s.expected, s.received, s.excluded_periods), (80, 80, 1));
        assert_eq!(s.excluded_ns, 1200 * S);
    }

    #[test]
    fn an_outage_overlapping_maintenance_is_excluded_once_and_counted_apart() {
        // 100 minutes: maintenance 10–30 min, the edge announced out 20–50 min.
        let s = score(
            cov(0, 6000 * S, 50),
            &[(600 * S, 1800 * S)],
            &[(1200 * S, 3000 * S)],
            |_, _, _| 0,
        );
        assert_eq!(s.excluded_ns, 2400 * S);
        assert_eq!((s.excluded_periods, s.outage_periods), (1, 1));
        assert_eq!((s.expected, s.received), (60, 50));
    }

    #[test]
    fn an_open_span_ends_at_the_monitored_end() {
        assert_eq!(clip_merge(&[(50, i64::MAX)], 0, 100), vec![(50, 100)]);
        assert_eq!(clip_merge(&[(150, 200)], 0, 100), vec![]);
    }

    #[test]
    fn expected_rounds_up_so_a_report_at_each_start_is_complete() {
        assert_eq!(expected_reports(120 * S, 10), 12);
        assert_eq!(expected_reports(121 * S, 10), 13);
        assert_eq!(expected_reports(0, 10), 0);
    }
}
