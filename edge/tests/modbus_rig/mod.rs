//! What the Modbus process tests share: `firmware-sim modbus` slaves on a pty it creates and on
//! TCP, device profiles polled every second, and an `edge run` whose uplink goes to an acking
//! hub stub. Every process is killed by PID when its guard drops.
#![allow(dead_code)]

use crate::common::{acking_hub, broker, EdgeConfig, EdgeProc, HubStub, Mosquitto, Store};
use protocol::Quantity;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wangge_testkit::paths::{bin, workspace_root};
use wangge_testkit::{free_port, Proc};

/// `config/profiles` copied to `dir/profiles`, the Modbus profiles polled every second.
pub fn fast_profiles(dir: &Path) -> PathBuf {
    let out = dir.join("profiles");
    std::fs::create_dir_all(&out).unwrap();
    for e in std::fs::read_dir(workspace_root().join("config/profiles")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let text = text.replace("poll = \"5s\"", "poll = \"1s\"");
        std::fs::write(out.join(p.file_name().unwrap()), text).unwrap();
    }
    out
}

/// A test's directory with the fast profiles, and the path the simulator's pty link goes to.
pub fn workdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    fast_profiles(dir.path());
    let link = dir.path().join("link");
    (dir, link)
}

/// A running `firmware-sim modbus`: RTU slaves on the pty `link`, TCP slaves on `tcp`.
pub struct Sim {
    pub proc: Proc,
    pub link: PathBuf,
    pub tcp: u16,
    pub summary: PathBuf,
}

impl Sim {
    /// Starts the simulator (devices as `UNIT:PROFILE[:FAULT]`; TCP only with TCP devices),
    /// waits for its pty and port.
    pub fn start(dir: &Path, link: &Path, tcp: u16, rtu: &[&str], tcp_devices: &[&str]) -> Sim {
        let summary = dir.join(format!("summary-{}.json", free_port()));
        let mut c = Command::new(bin("firmware-sim"));
        c.args(["modbus", "--baud", "19200", "--seed", "7", "--profiles"])
            .arg(dir.join("profiles"))
            .arg("--rtu-pty")
            .arg(link)
            .arg("--summary")
            .arg(&summary);
        for d in rtu {
            c.args(["--rtu-device", d]);
        }
        if !tcp_devices.is_empty() {
            c.args(["--tcp", &format!("127.0.0.1:{tcp}")]);
        }
        for d in tcp_devices {
            c.args(["--tcp-device", d]);
        }
        let log = dir.join("sim.log");
        let proc = Proc::spawn("firmware-sim", c, &log).unwrap();
        let up = || {
            link.exists()
                && (tcp_devices.is_empty()
                    || std::net::TcpStream::connect(("127.0.0.1", tcp)).is_ok())
        };
        wangge_testkit::wait_for("the simulator's pty", Duration::from_secs(20), || {
            up().then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default()));
        Sim {
            proc,
            link: link.to_path_buf(),
            tcp,
            summary,
        }
    }

    /// SIGTERM; returns the summary it wrote (per line, per device).
    pub fn stop(mut self) -> serde_json::Value {
        self.proc.terminate(Duration::from_secs(10));
        serde_json::from_str(&std::fs::read_to_string(&self.summary).unwrap()).unwrap()
    }
}

/// A device's count in a simulator summary (`values`, `requests`, `corrupted`, ...).
pub fn summary_count(summary: &serde_json::Value, line: &str, unit: u8, field: &str) -> u64 {
    summary[line]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["unit"] == unit)
        .and_then(|d| d[field].as_u64())
        .unwrap_or(0)
}

/// A `[[modbus]]` line: `transport` is `rtu = {...}` or `tcp = "..."`; slaves are
/// (unit, profile, sensor).
pub fn line_toml(name: &str, transport: &str, extra: &str, slaves: &[(u8, &str, &str)]) -> String {
    let mut s = format!("\n[[modbus]]\nname = \"{name}\"\n{transport}\n{extra}\n");
    for (unit, profile, sensor) in slaves {
        s += &format!(
            "[[modbus.slave]]\nunit = {unit}\nprofile = \"{profile}\"\nsensor = \"{sensor}\"\n"
        );
    }
    s
}

/// `rtu = { path = LINK, baud = 19200 }`.
pub fn rtu(link: &Path) -> String {
    format!(
        "rtu = {{ path = {:?}, baud = 19200 }}",
        link.display().to_string()
    )
}

/// The edge test config with `modbus` appended, its profiles from `dir/profiles`.
pub fn edge_config(site: u16, hub: u16, dir: &Path, modbus: &str) -> EdgeConfig {
    EdgeConfig::new(site, hub, dir, modbus)
}

/// [`EdgeConfig::render`] with the fast profiles directory.
pub fn render(cfg: &EdgeConfig, dir: &Path) -> String {
    let stock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles");
    cfg.render().replace(
        &format!("profiles_dir = \"{}\"", stock.display()),
        &format!("profiles_dir = \"{}\"", dir.join("profiles").display()),
    )
}

/// An edge polling `modbus` lines, its uplink acked by a hub stub.
pub struct Rig {
    pub edge: EdgeProc,
    pub store: Arc<Mutex<Store>>,
    pub config: PathBuf,
    /// The hub broker's port (its retained status topic tells what the edge reports).
    pub hub_port: u16,
    _stub: HubStub,
    _site: Mosquitto,
    _hub: Mosquitto,
}

impl Rig {
    pub fn start(dir: &Path, modbus: &str, tag: &str) -> Rig {
        let (site, hub) = (broker(), broker());
        let (store, stub) = acking_hub(hub.port);
        let cfg = edge_config(site.port, hub.port, dir, modbus);
        let edge = EdgeProc::start_text(dir, &render(&cfg, dir), cfg.api_port, tag);
        Rig {
            config: dir.join(format!("edge-{tag}.toml")),
            hub_port: hub.port,
            edge,
            store,
            _stub: stub,
            _site: site,
            _hub: hub,
        }
    }

    /// An `edge_modbus_*` value of one slave (`extra`: more labels, e.g. `reason="crc"`).
    pub fn slave(&self, family: &str, line: &str, unit: u8, extra: &str) -> f64 {
        let labels = format!("line=\"{line}\",unit=\"{unit}\"");
        let text = self.edge.get("/metrics").unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .filter(|l| l.contains(&labels) && l.contains(extra))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Readings of `sensor` the hub stub stored, (quantity, value, ts) in time order.
    pub fn readings(&self, sensor: &str) -> Vec<(Quantity, f64, i64)> {
        let store = self.store.lock().unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<(Quantity, f64, i64)> = store
            .readings
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.sensor.0 == sensor)
            .filter(|r| seen.insert((r.quantity.code(), r.ts_ns)))
            .map(|r| (r.quantity, r.value.as_f64(), r.ts_ns))
            .collect();
        out.sort_by_key(|r| r.2);
        out
    }
}
