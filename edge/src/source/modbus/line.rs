//! `[[modbus]]` in edge.toml: one Modbus line (an RS-485 port or a TCP device) and the slaves on
//! it, each with a device profile and the sensor id its readings are reported under.

use super::plan::{plan, Request};
use super::profile::DeviceProfile;
use crate::config::{ConfigError, Parity};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusLineConfig {
    /// Names the line in logs, metrics and `edge modbus scan --line`.
    pub name: String,
    /// Modbus RTU over a serial port (RS-485 adapter) ...
    #[serde(default)]
    pub rtu: Option<RtuConfig>,
    /// ... or Modbus TCP: `host:port` of the device or gateway.
    #[serde(default)]
    pub tcp: Option<SocketAddr>,
    /// How long one request may wait for its answer.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Further attempts of a failed request before the slave counts as not answering.
    #[serde(default = "default_retries")]
    pub retries: u8,
    /// Longest wait before a slave that stopped answering is tried again (backoff doubles).
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
    /// A slave whose requests failed (timeouts, exceptions, garbled answers; retries included)
    /// in this many consecutive polls is reported down in the edge's status. Default 2: with
    /// the backoff starting at the poll interval, a dead slave is reported about one interval
    /// after its first miss, before the hub's `device.offline` allowance (3 intervals) runs out.
    #[serde(default = "default_down_after_polls")]
    pub down_after_polls: u32,
    #[serde(rename = "slave")]
    pub slaves: Vec<SlaveConfig>,
}

fn default_timeout() -> Duration {
    Duration::from_millis(500)
}
fn default_retries() -> u8 {
    1
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(60)
}
fn default_down_after_polls() -> u32 {
    2
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtuConfig {
    pub path: PathBuf,
    #[serde(default = "default_baud")]
    pub baud: u32,
    #[serde(default = "default_parity")]
    pub parity: Parity,
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// Silence after every frame; default t3.5 for the baud rate (1.75 ms above 19200 baud).
    #[serde(default, with = "humantime_serde")]
    pub frame_gap: Option<Duration>,
}

fn default_baud() -> u32 {
    9600
}
fn default_parity() -> Parity {
    Parity::Even
}
fn default_stop_bits() -> u8 {
    1
}

impl RtuConfig {
    /// The inter-frame silence: 3.5 character times of 11 bits, or 1.75 ms above 19200 baud
    /// (Modbus over serial line 1.02, 2.5.1.1).
    pub fn frame_gap(&self) -> Duration {
        self.frame_gap.unwrap_or_else(|| t35(self.baud))
    }
}

/// 3.5 character times at `baud` (11 bits a character), 1.75 ms above 19200 baud.
pub fn t35(baud: u32) -> Duration {
    if baud > 19200 {
        Duration::from_micros(1750)
    } else {
        Duration::from_secs_f64(3.5 * 11.0 / f64::from(baud.max(1)))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaveConfig {
    /// Unit id (slave address), 1..=247.
    pub unit: u8,
    /// Device profile: `<profiles_dir>/<profile>.toml` with `kind = "modbus"`.
    pub profile: String,
    /// The sensor id this device's readings are reported under (its row in sensors.csv).
    pub sensor: String,
}

/// How a line is reached.
#[derive(Debug, Clone)]
pub enum Transport {
    Rtu(RtuConfig),
    Tcp(SocketAddr),
}

/// A slave with its profile compiled and its read plan made.
#[derive(Debug, Clone)]
pub struct Slave {
    pub unit: u8,
    pub sensor: String,
    pub profile: DeviceProfile,
    pub plan: Vec<Request>,
}

/// A line ready to run.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub transport: Transport,
    pub timeout: Duration,
    pub retries: u8,
    pub backoff_max: Duration,
    /// Consecutive failed polls after which a slave is reported down (≥ 1).
    pub down_after_polls: u32,
    pub slaves: Vec<Slave>,
}

impl Line {
    /// This line as a source of the edge's status (`modbus:<line>`).
    pub fn source(&self) -> String {
        protocol::sources_down::modbus_line_source(&self.name)
    }

    /// Every sensor on the line, in slave order.
    pub fn sensors(&self) -> Vec<String> {
        self.slaves.iter().map(|s| s.sensor.clone()).collect()
    }

    /// The silence kept after every frame (zero on TCP).
    pub fn frame_gap(&self) -> Duration {
        match &self.transport {
            Transport::Rtu(r) => r.frame_gap(),
            Transport::Tcp(_) => Duration::ZERO,
        }
    }
}

impl ModbusLineConfig {
    /// Checks the line and loads every slave's profile from `profiles_dir`; `config` is the
    /// edge.toml path errors name, `index` the line's position in it.
    pub fn compile(
        &self,
        config: &Path,
        index: usize,
        profiles_dir: &Path,
    ) -> Result<Line, ConfigError> {
        let field = |f: &str| format!("modbus[{index}].{f}");
        let transport =
            match (&self.rtu, self.tcp) {
                (Some(r), None) => Transport::Rtu(r.clone()),
                (None, Some(a)) => Transport::Tcp(a),
                _ => return Err(ConfigError::invalid(
                    config,
                    field("rtu"),
                    format!("line `{}` needs exactly one of `rtu` and `tcp`", self.name),
                    "set rtu = { path = \"/dev/ttyUSB0\", baud = 9600 } or tcp = \"10.0.0.5:502\"",
                )),
            };
        if self.down_after_polls == 0 {
            return Err(ConfigError::invalid(
                config,
                field("down_after_polls"),
                "zero".into(),
                "count at least one failed poll before a slave is reported down, e.g. 2",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::invalid(
                config,
                field("timeout"),
                "zero".into(),
                "give requests time to answer, e.g. \"500ms\"",
            ));
        }
        let mut slaves = Vec::with_capacity(self.slaves.len());
        for (i, s) in self.slaves.iter().enumerate() {
            let f = |name: &str| format!("modbus[{index}].slave[{i}].{name}");
            if !(1..=247).contains(&s.unit) {
                return Err(ConfigError::invalid(
                    config,
                    f("unit"),
                    format!("{} is not a slave address", s.unit),
                    "use the device's unit id, 1..=247 (edge modbus scan finds them)",
                ));
            }
            if slaves.iter().any(|o: &Slave| o.unit == s.unit) {
                return Err(ConfigError::invalid(
                    config,
                    f("unit"),
                    format!("unit {} appears twice on line `{}`", s.unit, self.name),
                    "give each device on a line its own unit id",
                ));
            }
            let path = profiles_dir.join(format!("{}.toml", s.profile));
            if !path.exists() {
                return Err(ConfigError::invalid(
                    config,
                    f("profile"),
                    format!("no profile `{}` ({} does not exist)", s.profile, path.display()),
                    "name a device profile in edge.profiles_dir, without .toml (e.g. modbus-flood-level)",
                ));
            }
            let profile = DeviceProfile::load(&path)?;
            slaves.push(Slave {
                unit: s.unit,
                sensor: s.sensor.clone(),
                plan: plan(&profile),
                profile,
            });
        }
        Ok(Line {
            name: self.name.clone(),
            transport,
            timeout: self.timeout,
            retries: self.retries,
            backoff_max: self.backoff_max,
            down_after_polls: self.down_after_polls,
            slaves,
        })
    }
}
