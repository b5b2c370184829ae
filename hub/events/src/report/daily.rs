//! Data completeness per UTC day (and, summed, per week) for the trend tables: each day of the
//! range scored as its own window (the directory's coverage of that day, less the same
//! maintenance and announced outages), summed per department (owner and maintainer of the
//! sensor's component) and for all (`*`).

use super::completeness::score;
use super::exclusions::Exclusions;
use super::trends::Period;
use crate::ComponentDirectory;
use std::collections::BTreeMap;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// (period start, department) → (reports received, reports expected).
pub type Counts = BTreeMap<(i64, String), (u64, u64)>;

/// Per day of `[from_ns, to_ns)` up to `now_ns`: the reports received and expected of the
/// sensors `sees` keeps (by owner and maintainer department), after `excluded`.
pub fn per_day(
    dir: &dyn ComponentDirectory,
    from_ns: i64,
    to_ns: i64,
    now_ns: i64,
    excluded: &Exclusions,
    sees: &dyn Fn(&str) -> bool,
) -> Counts {
    let mut out = Counts::new();
    let end = to_ns.min(now_ns);
    let mut day = Period::Day.start(from_ns);
    while day < end {
        let (a, b) = (day.max(from_ns), (day + DAY_NS).min(end));
        for cov in dir.sensor_coverage(a, b, now_ns) {
            let (owner, maintainer) = (
                cov.component.owner_department.clone(),
                cov.component.maintainer_department.clone(),
            );
            if !sees(&owner) && !sees(&maintainer) {
                continue;
            }
            let maintenance = excluded.maintenance(&cov.component_id);
            let outages = excluded.outages(&cov.edge);
            let s = score(cov, maintenance, outages, |sensor, x, y| {
                dir.reports_between(sensor, x, y)
            });
            let mut keys = vec!["*".to_string(), owner, maintainer];
            keys.dedup();
            for k in keys
                .into_iter()
                .filter(|k| k == "*" || (!k.is_empty() && sees(k)))
            {
                let c = out.entry((day, k)).or_default();
                c.0 += s.received;
                c.1 += s.expected;
            }
        }
        day += DAY_NS;
    }
    out
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
