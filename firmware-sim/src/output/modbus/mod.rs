//! Modbus slaves: several simulated devices on one RTU line (a pty we create, paced at the
//! line's baud rate) and devices behind a Modbus TCP listener. `frame` is the wire, `device` one
//! slave's register map and faults, `played` the registry sensor and scenario a slave plays and
//! the `--record` file, `rtu` and `tcp` the two servers.

pub mod device;
pub mod frame;
pub mod played;
pub mod rtu;
pub mod tcp;

use device::{Device, DeviceStats};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The devices one server answers for, shared with the summary, and the record their intact
/// answers go to.
#[derive(Clone, Default)]
pub struct Bus {
    pub devices: Arc<Mutex<Vec<Device>>>,
    record: played::Record,
    /// Set at the end of a run: no more answers, so the record can be closed with every answer
    /// that went out in it.
    closed: Arc<AtomicBool>,
}

/// How long in-flight answers get to reach the wire once the servers close (the slowest slave's
/// delay on top).
const CLOSE_DRAIN: Duration = Duration::from_millis(500);

impl Bus {
    pub fn new(devices: Vec<Device>) -> Bus {
        Bus {
            devices: Arc::new(Mutex::new(devices)),
            ..Bus::default()
        }
    }

    /// Intact answers of played slaves are written to `record`.
    pub fn recording(mut self, record: played::Record) -> Bus {
        self.record = record;
        self
    }

    /// Stops answering; returns the longest delay an answer already given may still take.
    fn close(&self) -> Duration {
        self.closed.store(true, Relaxed);
        self.devices
            .lock()
            .map(|d| d.iter().filter_map(|d| d.faults_now().slow).max())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// The answer of the device at `unit` to `req`; None if no device has that unit id (or the
    /// servers are closing).
    pub fn answer(&self, req: frame::ReadRequest) -> Option<device::Reply> {
        if self.closed.load(Relaxed) {
            return None;
        }
        let mut devices = self.devices.lock().ok()?;
        let d = devices.iter_mut().find(|d| d.stats.unit == req.unit)?;
        d.answer(req)
    }
    /// Counts a data answer `reply` of `unit` as written (intact answers only) and records its
    /// readings if the slave plays a registry sensor.
    pub fn delivered(&self, unit: u8, reply: &device::Reply) {
        if reply.values == 0 {
            return;
        }
        if let Ok(mut devices) = self.devices.lock() {
            if let Some(d) = devices.iter_mut().find(|d| d.stats.unit == unit) {
                d.delivered(reply.values);
                if let Some(p) = &mut d.played {
                    let seq = p.take_seq();
                    self.record.write(&p.sensor.id, seq, &reply.readings);
                }
            }
        }
    }

    pub fn stats(&self) -> Vec<DeviceStats> {
        self.devices
            .lock()
            .map(|d| d.iter().map(|d| d.stats.clone()).collect())
            .unwrap_or_default()
    }
}

/// A Modbus simulation: an RTU line and/or a TCP listener, each with its devices.
pub struct ModbusRun {
    pub profiles_dir: std::path::PathBuf,
    pub rtu: Option<(std::path::PathBuf, u32)>,
    pub rtu_devices: Vec<device::DeviceArg>,
    pub tcp: Option<std::net::SocketAddr>,
    pub tcp_devices: Vec<device::DeviceArg>,
    pub seed: u64,
    /// Slaves played from the registry and a scenario, per server.
    pub registry: Option<RegistryRun>,
}

/// `--registry`: the Modbus sensors of a `sensors.csv` on the two servers' lines, their
/// scenario, and the record of what they answered.
pub struct RegistryRun {
    /// The sensors served: those on `rtu_line` (if an RTU line runs) and on `tcp_line`.
    pub sensors: Vec<crate::sensors::Sensor>,
    pub scenario: crate::scenario::Scenario,
    pub rtu_line: String,
    pub tcp_line: String,
    pub clock: Arc<played::ScenarioClock>,
    pub record: Option<std::path::PathBuf>,
}

impl RegistryRun {
    /// The played slaves on `line`, one per sensor there.
    fn devices(&self, dir: &std::path::Path, line: &str, seed: u64) -> anyhow::Result<Vec<Device>> {
        use anyhow::Context as _;
        let mut out: Vec<Device> = Vec::new();
        for (i, s) in self.sensors.iter().enumerate() {
            let Some((l, unit)) = crate::sensors::modbus_address(&s.address) else {
                continue;
            };
            if l != line {
                continue;
            }
            if out.iter().any(|d| d.stats.unit == unit) {
                anyhow::bail!("{}: unit {unit} on line {line} twice in the registry", s.id);
            }
            let path = dir.join(format!("{}.toml", s.profile));
            let p = edge::source::modbus::profile::DeviceProfile::load(&path)
                .with_context(|| format!("sensor {} (unit {unit})", s.id))?;
            let played = played::Played::new(
                s.clone(),
                i,
                &self.scenario.incidents,
                &self.scenario.faults,
                seed,
                self.clock.clone(),
            );
            out.push(
                Device::new(unit, &s.profile, p, device::Faults::default(), seed).playing(played),
            );
        }
        Ok(out)
    }
}

/// What the servers did, printed at exit.
#[derive(serde::Serialize)]
pub struct ModbusSummary {
    pub rtu: Vec<DeviceStats>,
    pub tcp: Vec<DeviceStats>,
}

fn devices(
    dir: &std::path::Path,
    args: &[device::DeviceArg],
    seed: u64,
) -> anyhow::Result<Vec<Device>> {
    use anyhow::Context as _;
    args.iter()
        .map(|a| {
            let path = dir.join(format!("{}.toml", a.profile));
            let p = edge::source::modbus::profile::DeviceProfile::load(&path)
                .with_context(|| format!("unit {}", a.unit))?;
            Ok(Device::new(a.unit, &a.profile, p, a.faults.clone(), seed))
        })
        .collect()
}

/// Starts the servers, runs until `stop` turns true, and returns what they did.
pub async fn run(
    cfg: ModbusRun,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<ModbusSummary> {
    let mut rtu_devices = devices(&cfg.profiles_dir, &cfg.rtu_devices, cfg.seed)?;
    let mut tcp_devices = devices(&cfg.profiles_dir, &cfg.tcp_devices, cfg.seed)?;
    let mut record = played::Record::default();
    if let Some(r) = &cfg.registry {
        if cfg.rtu.is_some() {
            rtu_devices.extend(r.devices(&cfg.profiles_dir, &r.rtu_line, cfg.seed)?);
        }
        if cfg.tcp.is_some() {
            tcp_devices.extend(r.devices(&cfg.profiles_dir, &r.tcp_line, cfg.seed)?);
        }
        record = played::Record::create(r.record.as_deref())?;
    }
    for (name, list) in [
        ("--rtu-device", &rtu_devices),
        ("--tcp-device", &tcp_devices),
    ] {
        let mut units: Vec<u8> = list.iter().map(|d| d.stats.unit).collect();
        units.sort_unstable();
        if let Some(w) = units.windows(2).find(|w| w[0] == w[1]) {
            anyhow::bail!(
                "{name}: unit {} is served twice (the command line and the registry?)",
                w[0]
            );
        }
    }
    let (rtu_n, tcp_n) = (rtu_devices.len(), tcp_devices.len());
    let rtu_bus = Bus::new(rtu_devices).recording(record.clone());
    let tcp_bus = Bus::new(tcp_devices).recording(record.clone());
    let _rtu = match &cfg.rtu {
        Some((link, baud)) => {
            let line = rtu::RtuLine::start(link, *baud, rtu_bus.clone())?;
            tracing::info!(link = %line.link.display(), baud, devices = rtu_n, "modbus rtu line ready");
            Some(line)
        }
        None => None,
    };
    if let Some(addr) = cfg.tcp {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, devices = tcp_n, "modbus tcp listening");
        tokio::spawn(tcp::serve(listener, tcp_bus.clone()));
    }
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    // Close both servers, let the answers already given reach the wire (and the record), then
    // close the record: it holds exactly the answers that went out.
    let slowest = rtu_bus.close().max(tcp_bus.close());
    tokio::time::sleep(CLOSE_DRAIN + slowest).await;
    record.flush()?;
    Ok(ModbusSummary {
        rtu: rtu_bus.stats(),
        tcp: tcp_bus.stats(),
    })
}
