//! Reports counted per sensor for data completeness (the evaluation report), from the store
//! that holds every hub's readings: the embedded store on a single node, VictoriaMetrics in a
//! cluster (each member's embedded store holds only the edges it owned).

use super::embedded::EmbeddedStore;
use super::victoria::VictoriaQuery;
use super::TsError;
use std::collections::HashMap;

pub trait ReportCounts: Send + Sync {
    /// Reports per sensor in `[from_ns, to_ns)` (a report carrying several quantities counts
    /// once), asked at `now_ns`.
    fn report_counts(
        &self,
        from_ns: i64,
        to_ns: i64,
        now_ns: i64,
    ) -> Result<HashMap<String, u64>, TsError>;

    /// Reports of one sensor in `[from_ns, to_ns)` (the short windows the report excludes).
    fn report_count(&self, sensor: &str, from_ns: i64, to_ns: i64) -> Result<u64, TsError>;

    /// Reports per sensor in each of `windows` (the daily trend's days): sensor → one count
    /// per window, in order. The default asks [`Self::report_counts`] once per window.
    fn report_counts_per_window(
        &self,
        windows: &[(i64, i64)],
        now_ns: i64,
    ) -> Result<HashMap<String, Vec<u64>>, TsError> {
        let mut out: HashMap<String, Vec<u64>> = HashMap::new();
        for (i, &(a, b)) in windows.iter().enumerate() {
            for (sensor, n) in self.report_counts(a, b, now_ns)? {
                out.entry(sensor).or_insert_with(|| vec![0; windows.len()])[i] += n;
            }
        }
        Ok(out)
    }

    /// The first report of every sensor that has one, ns.
    fn first_reports(&self, now_ns: i64) -> Result<HashMap<String, i64>, TsError>;
}

impl ReportCounts for EmbeddedStore {
    fn report_counts(
        &self,
        from_ns: i64,
        to_ns: i64,
        now_ns: i64,
    ) -> Result<HashMap<String, u64>, TsError> {
        EmbeddedStore::report_counts(self, from_ns, to_ns, now_ns)
    }

    fn report_count(&self, sensor: &str, from_ns: i64, to_ns: i64) -> Result<u64, TsError> {
        EmbeddedStore::report_count(self, sensor, from_ns, to_ns)
    }

    fn report_counts_per_window(
        &self,
        windows: &[(i64, i64)],
        now_ns: i64,
    ) -> Result<HashMap<String, Vec<u64>>, TsError> {
        EmbeddedStore::report_counts_per_window(self, windows, now_ns)
    }

    fn first_reports(&self, _now_ns: i64) -> Result<HashMap<String, i64>, TsError> {
        EmbeddedStore::first_reports(self)
    }
}

impl ReportCounts for VictoriaQuery {
    fn report_counts(
        &self,
        from_ns: i64,
        to_ns: i64,
        now_ns: i64,
    ) -> Result<HashMap<String, u64>, TsError> {
        VictoriaQuery::report_counts(self, from_ns, to_ns.min(now_ns))
    }

    fn report_count(&self, sensor: &str, from_ns: i64, to_ns: i64) -> Result<u64, TsError> {
        VictoriaQuery::report_count(self, sensor, from_ns, to_ns)
    }

    fn first_reports(&self, now_ns: i64) -> Result<HashMap<String, i64>, TsError> {
        VictoriaQuery::first_reports(self, now_ns)
    }
}
