//! Modbus slaves: several simulated devices on one RTU line (a pty we create, paced at the
//! line's baud rate) and devices behind a Modbus TCP listener. `frame` is the wire, `device` one
//! slave's register map and faults, `rtu` and `tcp` the two servers.

pub mod device;
pub mod frame;
pub mod rtu;
pub mod tcp;

use device::{Device, DeviceStats};
use std::sync::{Arc, Mutex};

/// The devices one server answers for, shared with the summary.
#[derive(Clone, Default)]
pub struct Bus(pub Arc<Mutex<Vec<Device>>>);

impl Bus {
    pub fn new(devices: Vec<Device>) -> Bus {
        Bus(Arc::new(Mutex::new(devices)))
    }
    /// The answer of the device at `unit` to `req`; None if no device has that unit id.
    pub fn answer(&self, req: frame::ReadRequest) -> Option<device::Reply> {
        let mut devices = self.0.lock().ok()?;
        let d = devices.iter_mut().find(|d| d.stats.unit == req.unit)?;
        d.answer(req)
    }
    /// Counts a data answer of `unit` carrying `values` as written (intact answers only).
    pub fn delivered(&self, unit: u8, values: u64) {
        if values == 0 {
            return;
        }
        if let Ok(mut devices) = self.0.lock() {
            if let Some(d) = devices.iter_mut().find(|d| d.stats.unit == unit) {
                d.delivered(values);
            }
        }
    }

    pub fn stats(&self) -> Vec<DeviceStats> {
        self.0
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
    let rtu_bus = Bus::new(devices(&cfg.profiles_dir, &cfg.rtu_devices, cfg.seed)?);
    let tcp_bus = Bus::new(devices(&cfg.profiles_dir, &cfg.tcp_devices, cfg.seed)?);
    let _rtu = match &cfg.rtu {
        Some((link, baud)) => {
            let line = rtu::RtuLine::start(link, *baud, rtu_bus.clone())?;
            tracing::info!(link = %line.link.display(), baud, devices = cfg.rtu_devices.len(), "modbus rtu line ready");
            Some(line)
        }
        None => None,
    };
    if let Some(addr) = cfg.tcp {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, devices = cfg.tcp_devices.len(), "modbus tcp listening");
        tokio::spawn(tcp::serve(listener, tcp_bus.clone()));
    }
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    Ok(ModbusSummary {
        rtu: rtu_bus.stats(),
        tcp: tcp_bus.stats(),
    })
}
