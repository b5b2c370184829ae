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
