//! `edge.toml`: the one file a field technician edits.
//!
//! Parsed with `deny_unknown_fields` so a typo is an error naming the file, line and field,
//! never a silently ignored setting. Relative paths are resolved against the directory of the
//! config file, so `edge run --config /etc/wangge/edge.toml` works from any working directory.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod error;
pub use error::{read_text, toml_error, ConfigError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub edge: EdgeSection,
    pub hub: HubSection,
    /// Site brokers to subscribe to (sensors publish there).
    #[serde(default)]
    pub mqtt: Vec<MqttSource>,
    /// Run an MQTT broker inside the edge for sensors to publish to (sites without one).
    #[serde(default)]
    pub site_broker: Option<SiteBrokerSection>,
    /// Serial lines with sensors on them.
    #[serde(default)]
    pub serial: Vec<SerialSource>,
    /// Modbus lines (RTU or TCP) and the slaves on them.
    #[serde(default)]
    pub modbus: Vec<crate::source::modbus::line::ModbusLineConfig>,
    #[serde(default)]
    pub buffer: BufferSection,
    #[serde(default)]
    pub uplink: UplinkSection,
    #[serde(default)]
    pub validate: ValidateSection,
    #[serde(default)]
    pub local_api: LocalApiSection,
    /// Per-sensor calibration applied after unit conversion, whatever the dialect:
    /// `[calibration."HY-0001"] pressure = { scale = 1.0, offset = 0.01 }`.
    #[serde(default)]
    pub calibration:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, Calibration>>,
    /// The file this came from (set by [`Config::load`]).
    #[serde(skip)]
    pub source_path: PathBuf,
    /// `modbus` with the slaves' profiles loaded and read plans made (set by [`Config::parse`]).
    #[serde(skip)]
    modbus_lines: Vec<crate::source::modbus::line::Line>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSection {
    /// The edge id the hub issued; also the MQTT username.
    pub id: String,
    /// Buffer and state directory. Default `data/edge` next to the config file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Registry seed CSV (`id,component_id,type,profile,address,interval_s,edge`): the sensors
    /// this edge knows; others are forwarded flagged `unregistered`.
    #[serde(default)]
    pub registry: Option<PathBuf>,
    /// Extra registered sensor ids (in addition to `registry`).
    #[serde(default)]
    pub sensors: Vec<String>,
    /// Directory of sensor profiles (`*.toml`). Default `profiles` next to the config file.
    #[serde(default = "default_profiles_dir")]
    pub profiles_dir: PathBuf,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data/edge")
}
fn default_profiles_dir() -> PathBuf {
    PathBuf::from("profiles")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSection {
    #[serde(default = "default_host")]
    pub host: String,
    /// 1883 plain, 8883 TLS by convention.
    #[serde(default = "default_hub_port")]
    pub port: u16,
    /// The secret the hub issued to this edge: MQTT password and batch MAC key.
    #[serde(default)]
    pub secret: Option<String>,
    /// A file holding the secret (first line), instead of `secret`.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// PEM CA certificate(s): when set, the uplink uses TLS (rustls) and verifies the hub.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The same CA certificate(s) inline, as PEM text (what the hub's document can carry: a
    /// file path would have to exist on the box already). `ca_pem` wins over `ca_file`.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// MQTT keep-alive, seconds. Default 10.
    #[serde(default = "default_keepalive_s")]
    pub keepalive_s: u64,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_hub_port() -> u16 {
    1883
}
fn default_keepalive_s() -> u64 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSource {
    /// A short name for metrics and logs.
    pub name: String,
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_hub_port")]
    pub port: u16,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Log in with the edge's own id and secret (e.g. when the site broker is the hub's
    /// embedded broker, which only admits registered edges). Overrides username/password.
    #[serde(default)]
    pub use_hub_credentials: bool,
    /// Topic filters to subscribe; default: every profile's topic plus `sensors/+/readings`.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Longest wait between reconnect attempts, ms. Default 5000.
    #[serde(default = "default_backoff_max_ms")]
    pub reconnect_backoff_max_ms: u64,
}

fn default_backoff_max_ms() -> u64 {
    5000
}

/// `[site_broker]`: the embedded rumqttd sensors publish to; the agent subscribes to it with
/// every profile's topic, like to a `[[mqtt]]` source named `embedded`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteBrokerSection {
    /// Listen address. Default 0.0.0.0:1884 (1883 is the hub's).
    #[serde(default = "default_site_listen")]
    pub listen: SocketAddr,
    /// Sensor login; when unset the broker admits anyone who can reach it.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Default 1000.
    #[serde(default = "default_site_max_connections")]
    pub max_connections: usize,
    /// Default 262144.
    #[serde(default = "default_site_max_payload_bytes")]
    pub max_payload_bytes: usize,
}

fn default_site_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 1884))
}
fn default_site_max_connections() -> usize {
    1000
}
fn default_site_max_payload_bytes() -> usize {
    256 * 1024
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SerialFormat {
    /// COBS + CRC-32 + postcard frames (`protocol/README.md`).
    Binary,
    /// One `key=value` line per report (the `serial-text` profile).
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialSource {
    /// The line's name (`A`, `B`): the `address` column of sensors.csv.
    pub name: String,
    /// Device path, e.g. `/dev/ttyUSB0` or a pty symlink.
    pub path: PathBuf,
    pub format: SerialFormat,
    #[serde(default = "default_baud")]
    pub baud: u32,
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    #[serde(default = "default_parity")]
    pub parity: Parity,
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// Longest wait between attempts to reopen a vanished port, ms. Default 5000.
    #[serde(default = "default_backoff_max_ms")]
    pub reopen_backoff_max_ms: u64,
}

fn default_baud() -> u32 {
    115_200
}
fn default_data_bits() -> u8 {
    8
}
fn default_parity() -> Parity {
    Parity::None
}
fn default_stop_bits() -> u8 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferSection {
    /// Disk bound of the buffer, bytes. Default 1 GiB. When full, oldest non-urgent readings
    /// are evicted (and reported as gaps).
    #[serde(default = "default_buffer_bytes_max")]
    pub buffer_bytes_max: u64,
    /// Size at which a segment file is closed and a new one started. Default 8 MiB.
    #[serde(default = "default_segment_bytes_max")]
    pub segment_bytes_max: u64,
    /// Group commit: fdatasync at least this often while data is pending, ms. Default 5.
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// Group commit: fdatasync as soon as this many records are pending. Default 4096.
    #[serde(default = "default_flush_records")]
    pub flush_records: u64,
}

fn default_buffer_bytes_max() -> u64 {
    1 << 30
}
fn default_segment_bytes_max() -> u64 {
    8 << 20
}
fn default_flush_interval_ms() -> u64 {
    5
}
fn default_flush_records() -> u64 {
    4096
}

impl Default for BufferSection {
    fn default() -> Self {
        BufferSection {
            buffer_bytes_max: default_buffer_bytes_max(),
            segment_bytes_max: default_segment_bytes_max(),
            flush_interval_ms: default_flush_interval_ms(),
            flush_records: default_flush_records(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkSection {
    /// A batch closes at this many readings. Default 500.
    #[serde(default = "default_batch_readings_max")]
    pub batch_readings_max: usize,
    /// ... or when its oldest reading has waited this long, ms. Default 200. Urgent: at once.
    #[serde(default = "default_batch_age_ms")]
    pub batch_age_ms: u64,
    /// Batches published and not yet acked by the hub. Default 16.
    #[serde(default = "default_inflight_batches_max")]
    pub inflight_batches_max: usize,
    /// Resend an unacked batch after this long, ms (the hub may have missed it). Default 10000.
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    /// Retained status (backlog) every this often, ms. Default 5000.
    #[serde(default = "default_status_interval_ms")]
    pub status_interval_ms: u64,
    /// After a configuration from the hub changed the uplink or the buffer, the uplink must be
    /// back within this long, ms, or the edge returns to its last known good configuration.
    /// Default 60000 (1000..=600000).
    #[serde(default = "default_config_confirm_ms")]
    pub config_confirm_ms: u64,
}

fn default_batch_readings_max() -> usize {
    500
}
fn default_batch_age_ms() -> u64 {
    200
}
fn default_inflight_batches_max() -> usize {
    16
}
fn default_ack_timeout_ms() -> u64 {
    10_000
}
fn default_status_interval_ms() -> u64 {
    5000
}
fn default_config_confirm_ms() -> u64 {
    60_000
}

impl Default for UplinkSection {
    fn default() -> Self {
        UplinkSection {
            batch_readings_max: default_batch_readings_max(),
            batch_age_ms: default_batch_age_ms(),
            inflight_batches_max: default_inflight_batches_max(),
            ack_timeout_ms: default_ack_timeout_ms(),
            status_interval_ms: default_status_interval_ms(),
            config_confirm_ms: default_config_confirm_ms(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateSection {
    /// A sensor timestamp further ahead of the edge clock than this is replaced, ms. Default 300000.
    #[serde(default = "default_future_skew_max_ms")]
    pub future_skew_max_ms: u64,
    /// Urgent quantities for sensors without a profile (canonical JSON, serial binary).
    #[serde(default = "default_urgent")]
    pub urgent: Vec<String>,
    /// Overrides of the built-in physical range / plausible step per quantity:
    /// `[validate.limits] pressure = { min = 0.0, max = 2.5, jump = 1.0 }`.
    #[serde(default)]
    pub limits: std::collections::BTreeMap<String, LimitSpec>,
    /// Flood guard: reports one sensor may send per second, sustained (token bucket). Reports
    /// beyond it are dropped and counted (`edge_rejects_total{reason="rate_limited"}`). Default 20.
    #[serde(default = "default_sensor_reports_per_s_max")]
    pub sensor_reports_per_s_max: f64,
    /// Flood guard: reports one sensor may send back to back before the rate applies — large
    /// enough for a store-and-forward sensor emptying its memory. Default 2000.
    #[serde(default = "default_sensor_burst_reports_max")]
    pub sensor_burst_reports_max: u32,
}

/// Range and plausible step of one quantity (canonical units); an unset bound keeps the
/// built-in default.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Largest plausible change from the last good value; larger is `suspect`.
    pub jump: Option<f64>,
}

fn default_future_skew_max_ms() -> u64 {
    300_000
}
fn default_sensor_reports_per_s_max() -> f64 {
    20.0
}
fn default_sensor_burst_reports_max() -> u32 {
    2000
}
fn default_urgent() -> Vec<String> {
    ["alarm", "opened", "trapped", "leak"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl Default for ValidateSection {
    fn default() -> Self {
        ValidateSection {
            future_skew_max_ms: default_future_skew_max_ms(),
            urgent: default_urgent(),
            limits: Default::default(),
            sensor_reports_per_s_max: default_sensor_reports_per_s_max(),
            sensor_burst_reports_max: default_sensor_burst_reports_max(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalApiSection {
    /// `/health`, `/metrics`, `/tail`, `/buffer`. Default 127.0.0.1:9700.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9700))
}

impl Default for LocalApiSection {
    fn default() -> Self {
        LocalApiSection {
            listen: default_listen(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
}

fn one() -> f64 {
    1.0
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_text(path, "check the path given to --config")?;
        Config::parse(path, &text)
    }

    /// Parses `text` as if read from `path` (relative paths resolve against its directory).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        cfg.source_path = path.to_path_buf();
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        cfg.edge.data_dir = resolve(&cfg.edge.data_dir);
        cfg.edge.profiles_dir = resolve(&cfg.edge.profiles_dir);
        cfg.edge.registry = cfg.edge.registry.as_deref().map(resolve);
        cfg.hub.ca_file = cfg.hub.ca_file.as_deref().map(resolve);
        cfg.hub.secret_file = cfg.hub.secret_file.as_deref().map(resolve);
        for line in &mut cfg.modbus {
            if let Some(rtu) = &mut line.rtu {
                rtu.path = resolve(&rtu.path);
            }
        }
        cfg.validate_fields()?;
        cfg.modbus_lines = cfg.compile_modbus()?;
        Ok(cfg)
    }

    /// Every `[[modbus]]` line with its slaves' profiles loaded and read plans made.
    pub fn modbus_lines(&self) -> &[crate::source::modbus::line::Line] {
        &self.modbus_lines
    }

    fn compile_modbus(&self) -> Result<Vec<crate::source::modbus::line::Line>, ConfigError> {
        let mut names = std::collections::HashSet::new();
        let mut lines = Vec::with_capacity(self.modbus.len());
        for (i, l) in self.modbus.iter().enumerate() {
            if !names.insert(l.name.as_str()) {
                return Err(self.invalid(
                    &format!("modbus[{i}].name"),
                    format!("line name {:?} is used twice", l.name),
                    "give each Modbus line its own name",
                ));
            }
            lines.push(l.compile(&self.source_path, i, &self.edge.profiles_dir)?);
        }
        Ok(lines)
    }

    fn invalid(&self, field: &str, message: impl Into<String>, fix: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.source_path.display().to_string(),
            field: field.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    fn validate_fields(&self) -> Result<(), ConfigError> {
        if self.edge.id.is_empty() || self.edge.id.contains(['/', '+', '#']) {
            return Err(self.invalid(
                "edge.id",
                format!(
                    "{:?} is empty or contains an MQTT wildcard or '/'",
                    self.edge.id
                ),
                "use the edge id the hub issued, e.g. \"edge-xq-01\"",
            ));
        }
        if self.hub.secret.is_none()
            && self.hub.secret_file.is_none()
            && std::env::var_os("WANGGE_EDGE_SECRET").is_none()
        {
            return Err(self.invalid(
                "hub.secret",
                "no secret configured",
                "set hub.secret (or hub.secret_file) to the secret the hub issued for this edge",
            ));
        }
        if self.buffer.buffer_bytes_max < 64 * 1024 {
            return Err(self.invalid(
                "buffer.buffer_bytes_max",
                format!("{} bytes is too small", self.buffer.buffer_bytes_max),
                "use at least 65536 (default 1073741824 = 1 GiB)",
            ));
        }
        if self.buffer.segment_bytes_max < 4096
            || self.buffer.segment_bytes_max > self.buffer.buffer_bytes_max / 4
        {
            return Err(self.invalid(
                "buffer.segment_bytes_max",
                format!(
                    "{} must be ≥ 4096 and ≤ buffer_bytes_max / 4",
                    self.buffer.segment_bytes_max
                ),
                "use a value like buffer_bytes_max / 128 (default 8 MiB)",
            ));
        }
        if self.buffer.flush_interval_ms == 0 || self.buffer.flush_records == 0 {
            return Err(self.invalid(
                "buffer.flush_interval_ms",
                "flush_interval_ms and flush_records must be > 0",
                "use the defaults (5 ms, 4096 records)",
            ));
        }
        if self.uplink.batch_readings_max == 0 || self.uplink.batch_readings_max > 5000 {
            return Err(self.invalid(
                "uplink.batch_readings_max",
                format!("{} is outside 1..=5000", self.uplink.batch_readings_max),
                "use 500",
            ));
        }
        if self.uplink.inflight_batches_max == 0 || self.uplink.inflight_batches_max > 1024 {
            return Err(self.invalid(
                "uplink.inflight_batches_max",
                "must be within 1..=1024",
                "use 16",
            ));
        }
        if !(1000..=600_000).contains(&self.uplink.config_confirm_ms) {
            return Err(self.invalid(
                "uplink.config_confirm_ms",
                format!("{} is outside 1000..=600000", self.uplink.config_confirm_ms),
                "use 60000",
            ));
        }
        for q in &self.validate.urgent {
            if protocol::Quantity::from_name(q).is_err() {
                return Err(self.invalid(
                    "validate.urgent",
                    format!("unknown quantity {q:?}"),
                    "use canonical quantity names (tilt, alarm, opened, ...)",
                ));
            }
        }
        for (q, l) in &self.validate.limits {
            if protocol::Quantity::from_name(q).is_err() {
                return Err(self.invalid(
                    &format!("validate.limits.{q}"),
                    format!("unknown quantity {q:?}"),
                    "use canonical quantity names",
                ));
            }
            if let (Some(lo), Some(hi)) = (l.min, l.max) {
                if lo > hi {
                    return Err(self.invalid(
                        &format!("validate.limits.{q}"),
                        format!("min {lo} > max {hi}"),
                        "swap min and max",
                    ));
                }
            }
        }
        for (sensor, per_q) in &self.calibration {
            for q in per_q.keys() {
                if protocol::Quantity::from_name(q).is_err() {
                    return Err(self.invalid(
                        &format!("calibration.{sensor}.{q}"),
                        format!("unknown quantity {q:?}"),
                        "use canonical quantity names",
                    ));
                }
            }
        }
        for s in &self.serial {
            let field = format!("serial[{}]", s.name);
            if !(5..=8).contains(&s.data_bits) {
                return Err(self.invalid(&format!("{field}.data_bits"), "must be 5..=8", "use 8"));
            }
            if !(1..=2).contains(&s.stop_bits) {
                return Err(self.invalid(&format!("{field}.stop_bits"), "must be 1 or 2", "use 1"));
            }
            if s.baud == 0 {
                return Err(self.invalid(
                    &format!("{field}.baud"),
                    "must be > 0",
                    "use 115200 or 9600",
                ));
            }
        }
        Ok(())
    }

    /// The edge's secret: `$WANGGE_EDGE_SECRET` if set, else `hub.secret`, else the first
    /// line of `hub.secret_file`.
    pub fn secret(&self) -> Result<String, ConfigError> {
        if let Ok(s) = std::env::var("WANGGE_EDGE_SECRET") {
            if !s.is_empty() {
                return Ok(s);
            }
        }
        if let Some(s) = &self.hub.secret {
            return Ok(s.clone());
        }
        let path = self.hub.secret_file.clone().unwrap_or_default();
        let text = read_text(
            &path,
            "write the secret the hub issued (`hub edge add ID`) to hub.secret_file, or set hub.secret / $WANGGE_EDGE_SECRET",
        )?;
        Ok(text.lines().next().unwrap_or("").trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[edge]
id = "edge-1"
[hub]
secret = "s"
"#;

    #[test]
    fn a_minimal_config_gets_documented_defaults() {
        let c = Config::parse(Path::new("/etc/w/edge.toml"), MINIMAL).unwrap();
        assert_eq!(c.buffer.buffer_bytes_max, 1 << 30);
        assert_eq!(c.uplink.batch_readings_max, 500);
        assert_eq!(c.uplink.batch_age_ms, 200);
        assert_eq!(c.edge.data_dir, PathBuf::from("/etc/w/data/edge"));
        assert_eq!(c.hub.port, 1883);
    }

    #[test]
    fn a_typo_names_file_line_and_field() {
        let text = format!("{MINIMAL}\n[buffer]\nbuffer_byte_max = 5\n");
        let e = Config::parse(Path::new("edge.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("edge.toml:8:"), "{e}");
        assert!(e.contains("buffer_byte_max"), "{e}");
        assert!(e.contains("fix:"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_the_line() {
        let text = "[edge]\nid = \"e\"\n[hub]\nsecret = \"s\"\nport = \"x\"\n";
        let e = Config::parse(Path::new("edge.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("edge.toml:5:"), "{e}");
    }

    #[test]
    fn a_missing_secret_says_how_to_fix_it() {
        let e = Config::parse(Path::new("edge.toml"), "[edge]\nid=\"e\"\n[hub]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hub.secret") && e.contains("fix:"), "{e}");
    }
}
