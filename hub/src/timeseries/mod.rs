//! Time-series storage of readings: the embedded store (default) and the InfluxDB v2 API sink.
//!
//! Readings are identified by (sensor, quantity, ts_ns) in every store: writing one twice
//! stores it once. Both sinks can run at once (embedded for the dashboard, InfluxDB for analysts).

mod buckets;
pub mod embedded;
pub mod influx;
pub mod report_counts;
pub mod victoria;

use protocol::uplink::{Quality, Reading};

/// A reading with the registry context it is stored under (tags in InfluxDB).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReading {
    pub reading: Reading,
    pub edge_id: String,
    pub component_id: Option<String>,
    pub grid_cell: Option<String>,
    pub department: Option<String>,
}

/// One raw point of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub ts_ns: i64,
    pub value: f64,
    pub quality: Quality,
}

/// One step of a downsampled series (for charts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Start of the step.
    pub ts_ns: i64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub count: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TsError {
    #[error("time-series store: {0}")]
    Store(String),
    #[error("time-series server unavailable: {0}")]
    Unavailable(String),
}

/// Where readings are written. `write` returns only once the readings are durable in this
/// sink (or in its durable spill): the ingest path acks the edge after every sink returned Ok.
pub trait TimeSeriesSink: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn write(&self, readings: &[StoredReading]) -> Result<(), TsError>;
}

/// Range queries for the API and the dashboard.
pub trait TimeSeriesQuery: Send + Sync + 'static {
    /// Raw points of (sensor, quantity) with `from_ns <= ts < to_ns`, oldest first, at most `limit`.
    fn points(
        &self,
        sensor: &str,
        quantity: protocol::Quantity,
        from_ns: i64,
        to_ns: i64,
        limit: usize,
    ) -> Result<Vec<Point>, TsError>;
    /// min/max/mean per `step_ns` of (sensor, quantity) over `[from_ns, to_ns)`.
    fn downsample(
        &self,
        sensor: &str,
        quantity: protocol::Quantity,
        from_ns: i64,
        to_ns: i64,
        step_ns: i64,
    ) -> Result<Vec<Bucket>, TsError>;
    /// Latest point per quantity of a sensor.
    fn latest(&self, sensor: &str) -> Result<Vec<(protocol::Quantity, Point)>, TsError>;
}
