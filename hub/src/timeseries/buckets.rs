//! Downsampling's running groups, the same for every query back end: bucket index → (min, max,
//! sum, count), merged from partial groups (the embedded store's per-day SQL groups, since a
//! bucket can span two day tables) or built point by point (VictoriaMetrics' exported points).

use super::{Bucket, TsError};
use std::collections::BTreeMap;

/// The buckets of `step_ns` from `from_ns` on, as they fill.
pub(crate) struct Buckets {
    from_ns: i64,
    step_ns: i64,
    groups: BTreeMap<i64, (f64, f64, f64, u64)>,
}

impl Buckets {
    /// No buckets yet; a step of 0 or less is refused (it would make no buckets, or infinitely many).
    pub(crate) fn new(from_ns: i64, step_ns: i64) -> Result<Buckets, TsError> {
        if step_ns <= 0 {
            return Err(TsError::Store("downsample step must be > 0".into()));
        }
        Ok(Buckets {
            from_ns,
            step_ns,
            groups: BTreeMap::new(),
        })
    }

    /// Merges a group of `count` values into bucket `index`.
    pub(crate) fn add_group(&mut self, index: i64, min: f64, max: f64, sum: f64, count: u64) {
        let e = self
            .groups
            .entry(index)
            .or_insert((f64::INFINITY, f64::NEG_INFINITY, 0.0, 0));
        e.0 = e.0.min(min);
        e.1 = e.1.max(max);
        e.2 += sum;
        e.3 += count;
    }

    /// Adds one point to the bucket its time falls in.
    pub(crate) fn add_point(&mut self, ts_ns: i64, value: f64) {
        let index = (ts_ns - self.from_ns) / self.step_ns;
        self.add_group(index, value, value, value, 1);
    }

    /// The buckets that have values, oldest first.
    pub(crate) fn into_buckets(self) -> Vec<Bucket> {
        let (from_ns, step_ns) = (self.from_ns, self.step_ns);
        self.groups
            .into_iter()
            .map(|(index, (min, max, sum, count))| Bucket {
                ts_ns: from_ns + index * step_ns,
                min,
                max,
                mean: sum / count as f64,
                count,
            })
            .collect()
    }
}
