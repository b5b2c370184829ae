//! Real parts for the edge's end-to-end tests: an acking hub stub that speaks exactly the
//! `protocol/README.md` §2 contract, the real `edge` binary, and a tiny HTTP client for its
//! local API. Brokers, ports, waits and process guards come from `wangge-testkit`; every
//! process is killed by PID when its guard drops.
#![allow(dead_code)]

use protocol::uplink::{mac_key, topics, Ack, AckOutcome, Reading, UplinkBatch};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wangge_testkit::mosquitto::MosquittoConfig;
#[allow(unused_imports)]
pub use wangge_testkit::{free_port, http_get, wait_until, Mosquitto, Proc, TestCerts};

pub const SECRET: &str = "test-secret";
pub const EDGE_ID: &str = "edge-test";

/// The edge tests' broker: anonymous, unlimited queues and in-flight messages.
pub fn broker() -> Mosquitto {
    broker_config().start()
}

/// [`broker`]'s configuration, to change before starting (a fixed port, say).
pub fn broker_config<'a>() -> MosquittoConfig<'a> {
    Mosquitto::config().settings("max_inflight_messages 0\n")
}

/// What the stub hub stored: batches deduplicated by (epoch, seq), like the real hub.
#[derive(Default)]
pub struct Store {
    pub batches: HashSet<(u64, u64)>,
    pub duplicate_batches: u64,
    pub bad_mac: u64,
    /// Every reading from every distinct batch, in arrival order, with its epoch.
    pub readings: Vec<(u64, Reading)>,
    pub gaps: u64,
}

impl Store {
    /// Distinct (sensor, quantity, ts) stored.
    pub fn unique(&self) -> usize {
        self.keys().len()
    }
    pub fn keys(&self) -> HashSet<(String, u8, i64)> {
        self.readings
            .iter()
            .map(|(_, r)| (r.sensor.0.clone(), r.quantity.code(), r.ts_ns))
            .collect()
    }
    /// Readings stored more than once (resent by a new epoch).
    pub fn repeats(&self) -> usize {
        self.readings.len() - self.unique()
    }
    pub fn per_epoch(&self) -> HashMap<u64, usize> {
        let mut m = HashMap::new();
        for (e, _) in &self.readings {
            *m.entry(*e).or_default() += 1;
        }
        m
    }
}

/// A hub stand-in: verifies each batch's MAC, stores it once, then acks it.
pub struct HubStub {
    pub store: Arc<Mutex<Store>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl HubStub {
    pub fn start(port: u16, store: Arc<Mutex<Store>>) -> HubStub {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let s = store.clone();
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = ready.clone();
        rt.spawn(async move {
            let mut o = MqttOptions::new(format!("hub-stub-{}", free_port()), "127.0.0.1", port);
            o.set_max_packet_size(1 << 20, 1 << 20);
            o.set_keep_alive(Duration::from_secs(5));
            let (client, mut el) = AsyncClient::new(o, 1024);
            let key = mac_key(SECRET);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client
                            .subscribe(topics::ALL_BATCHES, QoS::AtLeastOnce)
                            .await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        r.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let batch = match UplinkBatch::open(&p.payload).and_then(|u| u.verify(&key))
                        {
                            Ok(b) => b,
                            Err(_) => {
                                s.lock().unwrap().bad_mac += 1;
                                continue;
                            }
                        };
                        let outcome = {
                            let mut st = s.lock().unwrap();
                            if st.batches.insert((batch.epoch, batch.seq)) {
                                st.gaps += batch.gaps.iter().map(|g| g.count).sum::<u64>();
                                for r in batch.readings {
                                    st.readings.push((batch.epoch, r));
                                }
                                AckOutcome::Stored
                            } else {
                                st.duplicate_batches += 1;
                                AckOutcome::Duplicate
                            }
                        };
                        let ack = Ack {
                            edge_id: batch.edge_id.clone(),
                            epoch: batch.epoch,
                            seq: batch.seq,
                            outcome,
                        };
                        let _ = client
                            .publish(
                                topics::acks(batch.edge_id.as_str()),
                                QoS::AtLeastOnce,
                                false,
                                ack.seal(&key),
                            )
                            .await;
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        wait_until("hub stub subscribed", Duration::from_secs(10), || {
            ready.load(std::sync::atomic::Ordering::SeqCst)
        });
        HubStub {
            store,
            rt: Some(rt),
        }
    }
}

/// A [`HubStub`] acking on `port` into a new, empty store: the store, and the stub (it acks
/// while it lives).
pub fn acking_hub(port: u16) -> (Arc<Mutex<Store>>, HubStub) {
    let store = Arc::new(Mutex::new(Store::default()));
    let stub = HubStub::start(port, store.clone());
    (store, stub)
}

impl Drop for HubStub {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

pub struct EdgeConfig {
    pub site_port: u16,
    pub hub_port: u16,
    pub api_port: u16,
    pub data_dir: PathBuf,
    /// Appended at the end (new sections).
    pub extra: String,
    /// Appended inside `[uplink]`.
    pub uplink_extra: String,
}

impl EdgeConfig {
    /// The edge of these tests on a free API port, its data in `dir/data`, `extra` appended.
    pub fn new(site_port: u16, hub_port: u16, dir: &Path, extra: &str) -> EdgeConfig {
        EdgeConfig {
            site_port,
            hub_port,
            api_port: free_port(),
            data_dir: dir.join("data"),
            extra: extra.to_string(),
            uplink_extra: String::new(),
        }
    }

    pub fn render(&self) -> String {
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles");
        let profiles = profiles.display();
        let data = self.data_dir.display();
        let EdgeConfig {
            site_port,
            hub_port,
            api_port,
            extra,
            uplink_extra,
            ..
        } = self;
        format!(
            r#"
[edge]
id = "{EDGE_ID}"
data_dir = "{data}"
profiles_dir = "{profiles}"
sensors = ["T-0000"]

[hub]
host = "127.0.0.1"
port = {hub_port}
secret = "{SECRET}"
keepalive_s = 5

[[mqtt]]
name = "site"
host = "127.0.0.1"
port = {site_port}

[uplink]
ack_timeout_ms = 1500
status_interval_ms = 500
{uplink_extra}

[local_api]
listen = "127.0.0.1:{api_port}"
{extra}
"#
        )
    }
}

/// The real `edge run` process.
pub struct EdgeProc {
    proc: Proc,
    pub api_port: u16,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl EdgeProc {
    /// `edge run` on `cfg`, written to `dir/edge-{tag}.toml` (log in `dir/edge-{tag}.log`),
    /// once its local API answers.
    pub fn start(dir: &Path, cfg: &EdgeConfig, tag: &str) -> EdgeProc {
        EdgeProc::start_text(dir, &cfg.render(), cfg.api_port, tag)
    }

    /// [`EdgeProc::start`] with a config text of one's own, its local API on `api_port`.
    pub fn start_text(dir: &Path, config: &str, api_port: u16, tag: &str) -> EdgeProc {
        let path = write_config(dir, &format!("edge-{tag}.toml"), config);
        let log = dir.join(format!("edge-{tag}.log"));
        let proc = wangge_testkit::edge::start(
            Path::new(env!("CARGO_BIN_EXE_edge")),
            &path,
            &log,
            api_port,
            None,
            Duration::from_secs(20),
        )
        .unwrap();
        EdgeProc {
            proc,
            api_port,
            log,
        }
    }

    /// [`EdgeProc::start`], then waits until its `site` MQTT source is connected.
    pub fn start_site_up(dir: &Path, cfg: &EdgeConfig, tag: &str) -> EdgeProc {
        let edge = EdgeProc::start(dir, cfg, tag);
        edge.wait_source_up("site");
        edge
    }

    /// Waits (20 s at most) until the source `name` is up.
    pub fn wait_source_up(&self, name: &str) {
        wait_until(
            &format!("source {name} up"),
            Duration::from_secs(20),
            || self.source_up(name),
        );
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    pub fn get(&self, path: &str) -> Option<String> {
        http_get(self.api_port, path)
    }

    /// A counter or gauge from `/metrics` (sum over label sets that contain `labels`).
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = self.get("/metrics").unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.starts_with(name)
                    && (l.len() == name.len() || matches!(l.as_bytes()[name.len()], b' ' | b'{'))
            })
            .filter(|l| l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn source_up(&self, name: &str) -> bool {
        self.metric("edge_source_up", &format!("source=\"{name}\"")) >= 1.0
    }

    pub fn recovery_line(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("recovery:"))
            .unwrap_or("")
            .to_string()
    }
}

/// Writes the config `text` to `dir/name`; returns its path.
pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The `edge` binary with `args`, not started yet.
pub fn edge_command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edge"));
    c.args(args);
    c
}

/// Runs `edge <args> --config <config>` to completion.
pub fn edge_on_config(args: &[&str], config: &Path) -> Output {
    edge_command(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// A sensor-side publisher on the site broker (QoS 1, waits for every PUBACK).
pub struct Publisher {
    rt: tokio::runtime::Runtime,
    client: AsyncClient,
    acked: Arc<std::sync::atomic::AtomicU64>,
    sent: u64,
}

impl Publisher {
    pub fn connect(port: u16) -> Publisher {
        Publisher::connect_as(port, &format!("pub-{}", free_port()))
    }

    /// With this client id (may be empty: clean session is on).
    pub fn connect_as(port: u16, client_id: &str) -> Publisher {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_max_packet_size(1 << 20, 1 << 20);
        o.set_inflight(200);
        let (client, mut el) = AsyncClient::new(o, 1000);
        let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let a = acked.clone();
        rt.spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Publisher {
            rt,
            client,
            acked,
            sent: 0,
        }
    }

    pub fn publish(&mut self, topic: &str, payload: Vec<u8>) {
        let c = self.client.clone();
        let t = topic.to_string();
        self.rt
            .block_on(async move { c.publish(t, QoS::AtLeastOnce, false, payload).await })
            .unwrap();
        self.sent += 1;
    }

    /// Waits until the broker acknowledged everything published so far.
    pub fn flush(&self) {
        let want = self.sent;
        wait_until("broker PUBACKs", Duration::from_secs(30), || {
            self.acked.load(std::sync::atomic::Ordering::SeqCst) >= want
        });
    }
}

/// A canonical-JSON reading: 2 quantities per message, unique ts per (sensor, n).
pub fn canonical(sensor_no: usize, n: u64) -> (String, Vec<u8>) {
    let ts_ms = 1_732_500_000_000u64 + n;
    (
        format!("sensors/T-{sensor_no:04}/readings"),
        format!(
            r#"{{"ts":{ts_ms},"seq":{n},"values":{{"tilt":{},"battery":{}}}}}"#,
            n % 90,
            n % 100
        )
        .into_bytes(),
    )
}

/// Watches the retained status topic of the edge on the hub broker.
pub struct StatusWatch {
    pub last: Arc<Mutex<Option<protocol::uplink::EdgeStatus>>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl StatusWatch {
    pub fn start(port: u16) -> StatusWatch {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let last = Arc::new(Mutex::new(None));
        let l = last.clone();
        rt.spawn({
            async move {
                {
                    let o = MqttOptions::new(
                        format!("status-watch-{}", free_port()),
                        "127.0.0.1",
                        port,
                    );
                    let (client, mut el) = AsyncClient::new(o, 16);
                    loop {
                        match el.poll().await {
                            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                                let _ = client
                                    .subscribe(topics::status(EDGE_ID), QoS::AtLeastOnce)
                                    .await;
                            }
                            Ok(Event::Incoming(Packet::Publish(p))) => {
                                if let Ok(s) =
                                    protocol::uplink::EdgeStatus::open(&p.payload, &mac_key(SECRET))
                                {
                                    *l.lock().unwrap() = Some(s);
                                }
                            }
                            Ok(_) => {}
                            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                        }
                    }
                }
            }
        });
        StatusWatch { last, rt: Some(rt) }
    }

    pub fn online(&self) -> Option<bool> {
        self.last.lock().unwrap().as_ref().map(|s| s.online)
    }
}

impl Drop for StatusWatch {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A pty pair in raw mode: a test writes on the master, the edge opens the slave's path.
pub struct Pty {
    pub master: std::fs::File,
    _slave: std::os::fd::OwnedFd,
    pub path: PathBuf,
}

pub fn pty() -> Pty {
    use nix::sys::termios;
    let p = nix::pty::openpty(None, None).unwrap();
    // openpty(3) does not set close-on-exec: without it the edge child would inherit the
    // master and the line could never "go away".
    for fd in [&p.master, &p.slave] {
        use std::os::fd::AsRawFd;
        nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .unwrap();
    }
    let mut t = termios::tcgetattr(&p.slave).unwrap();
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(&p.slave, termios::SetArg::TCSANOW, &t).unwrap();
    let path = nix::unistd::ttyname(&p.slave).unwrap();
    Pty {
        master: std::fs::File::from(p.master),
        _slave: p.slave,
        path,
    }
}

/// What the serial tests share: two pty lines into a real edge — `A` binary frames at
/// 115 200 baud, `B` text lines at 9 600 baud — whose uplink goes to an acking hub stub.
pub struct SerialRig {
    pub a: Pty,
    pub b: Pty,
    /// What the hub stub stored.
    pub store: Arc<Mutex<Store>>,
    pub edge: EdgeProc,
    _stub: HubStub,
    _site: Mosquitto,
    _hub: Mosquitto,
    _dir: tempfile::TempDir,
}

impl SerialRig {
    /// Starts everything and waits until the edge has both ports open.
    pub fn start(tag: &str) -> SerialRig {
        let dir = tempfile::tempdir().unwrap();
        let site = broker();
        let hub = broker();
        let (a, b) = (pty(), pty());
        let cfg = EdgeConfig::new(site.port, hub.port, dir.path(), &format!(
                "[[serial]]\nname = \"A\"\npath = \"{}\"\nformat = \"binary\"\nbaud = 115200\n\n\
                 [[serial]]\nname = \"B\"\npath = \"{}\"\nformat = \"text\"\nbaud = 9600\nparity = \"none\"\nstop_bits = 1\n",
                a.path.display(),
                b.path.display()
            ));
        let store = Arc::new(Mutex::new(Store::default()));
        let stub = HubStub::start(hub.port, store.clone());
        let edge = EdgeProc::start(dir.path(), &cfg, tag);
        wait_until("serial ports open", Duration::from_secs(20), || {
            edge.source_up("A") && edge.source_up("B")
        });
        SerialRig {
            a,
            b,
            store,
            edge,
            _stub: stub,
            _site: site,
            _hub: hub,
            _dir: dir,
        }
    }

    /// Distinct readings the hub stub holds.
    pub fn unique(&self) -> usize {
        self.store.lock().unwrap().unique()
    }

    /// `edge_rejects_total` for one reason.
    pub fn rejects(&self, reason: &str) -> f64 {
        self.edge
            .metric("edge_rejects_total", &format!("reason=\"{reason}\""))
    }
}
