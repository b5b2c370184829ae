//! A hub cluster as real processes, shared by the cluster end-to-end test
//! (`tests/tests/cluster.rs`) and the cluster bench (`src/bin/cluster_bench.rs`): N hubs in
//! cluster mode on one PostgreSQL 15, one mosquitto (the edges' and the hubs' broker) and one
//! VictoriaMetrics (the hubs' InfluxDB-API sink); three edges on one site broker forward the
//! demo scenario's MQTT sensors, split between them in the registry ([`split_seed`]).

use crate::proxy::Proxy;
use crate::system::{Hub, EDGE_ID};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wangge_testkit::{
    bin, free_port, metric_sum, workspace_root, Mosquitto, Postgres, Proc, VictoriaMetrics,
};

/// The edges of every cluster: the seed's edge and two more.
pub const EDGES: [&str; 3] = [EDGE_ID, "edge-xq-02", "edge-xq-03"];
/// The edges wait this long for an ack before resending.
pub const ACK_TIMEOUT_MS: u64 = 3000;
/// How long a lease lasts without renewal (a dead hub's edges move on after it).
pub const LEASE_TTL_MS: u64 = 3000;
/// How often each hub heartbeats, renews and rebalances.
pub const HEARTBEAT_MS: u64 = 500;

/// A copy of the demo registry whose MQTT sensors are split between the three edges.
pub fn split_seed(dir: &Path) -> PathBuf {
    let seed = dir.join("seed");
    wangge_testkit::paths::copy_seed(&seed);
    let mut edges = String::from("id,name,site\n");
    for e in EDGES {
        edges.push_str(&format!("{e},{e},cluster test site\n"));
    }
    std::fs::write(seed.join("edges.csv"), edges).unwrap();
    let text = std::fs::read_to_string(seed.join("sensors.csv")).unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let mut fields: Vec<&str> = line.split(',').collect();
        if i > 0 && !fields[3].starts_with("serial") {
            fields[6] = EDGES[i % EDGES.len()];
        }
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    std::fs::write(seed.join("sensors.csv"), out).unwrap();
    seed
}

/// One cluster member's config: its own account on the cluster's broker, which it provisions
/// with every member's and every edge's account in `broker_files` ([`start_broker`]); with
/// `None`, the broker is open (anonymous) and the member logs in as nobody.
pub fn hub_config(
    i: usize,
    pg_url: &str,
    mqtt: u16,
    vm: u16,
    http: u16,
    broker_files: Option<&Path>,
) -> String {
    let account = broker_files.map_or(String::new(), |files| {
        format!(
            "username = \"hub-{i}\"\npassword = \"hub-{i}-{HUB_PASSWORD}\"\n\
             provision_dir = {:?}\nmosquitto_pid_file = {:?}\n",
            files.display().to_string(),
            files.join("mosquitto.pid").display().to_string(),
        )
    });
    format!(
        "[broker]\nmode = \"external\"\n[broker.external]\nhost = \"127.0.0.1\"\nport = {mqtt}\n\
         client_id = \"hub-{i}\"\n{account}\
         [influx]\nurl = \"http://127.0.0.1:{vm}\"\norg = \"wangge\"\nbucket = \"readings\"\ntoken = \"t\"\n\
         [victoria]\nurl = \"http://127.0.0.1:{vm}\"\n\
         [events.webhooks]\ninsecure_allow_loopback = true\n\
         [cluster]\npostgres_url = \"{pg_url}\"\nhub_id = \"hub-{i}\"\n\
         http_url = \"http://127.0.0.1:{http}\"\nlease_ttl_ms = {LEASE_TTL_MS}\nheartbeat_ms = {HEARTBEAT_MS}\n"
    )
}

/// The tail of every member's broker password (`hub-<i>-…`).
const HUB_PASSWORD: &str = "cluster-test-7d41c2";

/// The cluster's mosquitto on `port`, as production runs it: no anonymous clients, client id
/// = username, the passwords and ACLs the hubs write to `files` (empty until the first hub
/// provisions them; the hubs signal it through the pid file there). `None`: open to anyone.
pub fn start_broker(port: u16, files: Option<&Path>) -> Mosquitto {
    let Some(files) = files else {
        return Mosquitto::config().port(port).start();
    };
    std::fs::create_dir_all(files).unwrap();
    for f in ["passwd", "acl"] {
        if !files.join(f).exists() {
            std::fs::write(files.join(f), "").unwrap();
        }
    }
    Mosquitto::config()
        .port(port)
        .anonymous(false)
        .settings(&format!(
            "user root\nuse_username_as_clientid true\npassword_file {}\nacl_file {}\npid_file {}\n",
            files.join("passwd").display(),
            files.join("acl").display(),
            files.join("mosquitto.pid").display()
        ))
        .start()
}

/// An edge that forwards the site broker's MQTT sensors to mosquitto (the cluster's broker).
pub struct ClusterEdge {
    pub proc: Option<Proc>,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Its local API (health, metrics).
    pub api: u16,
}

impl ClusterEdge {
    /// Writes the edge's config in `dir/<id>/` (no process yet).
    pub fn prepare(
        dir: &Path,
        id: &str,
        secret: &str,
        sensors: &Path,
        site: u16,
        uplink: u16,
    ) -> ClusterEdge {
        let dir = dir.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let api = free_port();
        let config = dir.join("edge.toml");
        std::fs::write(
            &config,
            format!(
                "[edge]\nid = \"{id}\"\ndata_dir = {data:?}\nregistry = {sensors:?}\nprofiles_dir = {profiles:?}\n\
                 [hub]\nhost = \"127.0.0.1\"\nport = {uplink}\nsecret = \"{secret}\"\n\
                 [[mqtt]]\nname = \"site\"\nhost = \"127.0.0.1\"\nport = {site}\n\
                 [uplink]\nack_timeout_ms = {ACK_TIMEOUT_MS}\n\
                 [local_api]\nlisten = \"127.0.0.1:{api}\"\n",
                data = dir.join("data").display().to_string(),
                sensors = sensors.display().to_string(),
                profiles = workspace_root().join("config/profiles").display().to_string(),
            ),
        )
        .unwrap();
        ClusterEdge {
            proc: None,
            config,
            log: dir.join("edge.log"),
            api,
        }
    }

    pub fn start(&mut self) {
        self.proc = Some(
            wangge_testkit::edge::start(
                &bin("edge"),
                &self.config,
                &self.log,
                self.api,
                Some("info"),
                Duration::from_secs(30),
            )
            .unwrap(),
        );
    }
}

/// The cluster: PostgreSQL, mosquitto, VictoriaMetrics, N hubs, three edges, a site broker.
/// Every process is killed by its PID when this is dropped.
pub struct Cluster {
    // Field order is drop order: edges and hubs go before the servers they use.
    pub edges: Vec<ClusterEdge>,
    pub hubs: Vec<Hub>,
    /// With [`Cluster::start_behind_links`], each hub reaches the broker through its own proxy
    /// (`Pass` unless a test says otherwise), so a test can lose one hub's acks while it still
    /// receives batches; empty with [`Cluster::start`] (the bench measures no proxy).
    pub hub_links: Vec<Proxy>,
    pub site: Mosquitto,
    pub mosquitto: Option<Mosquitto>,
    pub mqtt_port: u16,
    pub vm: VictoriaMetrics,
    pub pg: Postgres,
    /// Configs, data dirs and logs of every process.
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts everything with `hubs` members and returns once every process answers (the
    /// edges' leases may still be on their way: [`Cluster::wait_every_edge_owned`]).
    pub fn start(hubs: usize) -> Cluster {
        Cluster::start_inner(hubs, false, false)
    }

    /// [`Cluster::start`] with every hub's broker link through its own proxy ([`Cluster::hub_links`]).
    pub fn start_behind_links(hubs: usize) -> Cluster {
        Cluster::start_inner(hubs, true, false)
    }

    /// [`Cluster::start`] on a broker open to anonymous clients, for a bench that watches the
    /// edges' ack topics from outside (no account may read another's acks on the real one).
    pub fn start_open_broker(hubs: usize) -> Cluster {
        Cluster::start_inner(hubs, false, true)
    }

    fn start_inner(hubs: usize, links: bool, open_broker: bool) -> Cluster {
        assert!(hubs > 0, "a cluster has at least one member");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pg = Postgres::start();
        let pg_url = pg.create_database("cluster");
        let mqtt_port = free_port();
        let broker_files = (!open_broker).then(|| d.join("broker"));
        let mosquitto = start_broker(mqtt_port, broker_files.as_deref());
        let vm = VictoriaMetrics::start();
        let seed = split_seed(d);
        let hub_links: Vec<Proxy> = (0..if links { hubs } else { 0 })
            .map(|_| Proxy::start(mqtt_port).unwrap())
            .collect();
        let mut members = Vec::new();
        for i in 0..hubs {
            let hd = d.join(format!("hub-{i}"));
            std::fs::create_dir_all(&hd).unwrap();
            let http = free_port();
            let link = hub_links.get(i).map_or(mqtt_port, |p| p.port);
            let cfg = hub_config(i, &pg_url, link, vm.port, http, broker_files.as_deref());
            // The first prepares the shared registry (PostgreSQL); the others find it.
            let mut hub = Hub::prepare_seeded(&hd, &cfg, &seed).unwrap();
            hub.http = http;
            // No MQTT listener of its own: "the hub's MQTT listener" is the cluster's broker.
            hub.mqtt = mqtt_port;
            members.push(hub);
        }
        let site = Mosquitto::start();
        let sensors = seed.join("sensors.csv");
        let mut edges = Vec::new();
        for (i, id) in EDGES.iter().enumerate() {
            // Every `prepare_seeded` re-issued the first edge's secret: the last one holds.
            let secret = if i == 0 {
                members[hubs - 1].edge_secret.clone()
            } else {
                let out = members[0].cli(&["edge", "add", id]).output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8(out.stdout).unwrap().trim().to_string()
            };
            edges.push(ClusterEdge::prepare(
                d, id, &secret, &sensors, site.port, mqtt_port,
            ));
        }
        let mut c = Cluster {
            edges,
            hubs: members,
            hub_links,
            site,
            mosquitto: Some(mosquitto),
            mqtt_port,
            vm,
            pg,
            dir,
        };
        for h in &mut c.hubs {
            h.start().unwrap();
        }
        for e in &mut c.edges {
            e.start();
        }
        c
    }

    /// A running hub that answers its health check.
    pub fn live_hub(&self) -> &Hub {
        self.hubs
            .iter()
            .find(|h| h.proc.is_some() && h.get("/api/v1/health").is_ok())
            .expect("a live hub")
    }

    /// The cluster status (`GET /api/v1/cluster`) from any live hub.
    pub fn status(&self) -> Option<Json> {
        self.hubs
            .iter()
            .filter(|h| h.proc.is_some())
            .find_map(|h| h.get("/api/v1/cluster").ok())
    }

    /// The index of the hub whose member holds `edge`'s lease, per the cluster status.
    pub fn owner_of(&self, edge: &str) -> Option<usize> {
        let s = self.status()?;
        let member = s["members"].as_array()?.iter().find(|m| {
            m["edges"]
                .as_array()
                .is_some_and(|es| es.iter().any(|e| e.as_str() == Some(edge)))
        })?;
        let id = member["hub_id"].as_str()?;
        id.strip_prefix("hub-")?.parse().ok()
    }

    /// Waits until every edge is leased by a member and none is orphaned.
    pub fn wait_every_edge_owned(&self, limit: Duration) -> anyhow::Result<()> {
        crate::system::wait_every(
            "every edge leased by a member",
            limit,
            Duration::from_millis(200),
            || {
                let s = self.status()?;
                let owned: usize = s["members"]
                    .as_array()?
                    .iter()
                    .map(|m| m["edges"].as_array().map_or(0, Vec::len))
                    .sum();
                (owned == EDGES.len() && s["orphaned_edges"].as_array()?.is_empty()).then_some(())
            },
        )
    }

    /// The sum of a metric on a hub's `/metrics` (0 when it does not answer).
    pub fn hub_metric(hub: &Hub, name: &str) -> f64 {
        let text = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{}/metrics", hub.http))
            .timeout(Duration::from_secs(5))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        metric_sum(&text, name, &[])
    }

    /// Kills mosquitto and starts it again on the same port (every client reconnects).
    pub fn restart_broker(&mut self) {
        drop(self.mosquitto.take());
        let files = self.dir.path().join("broker");
        let files = files.exists().then_some(files.as_path());
        self.mosquitto = Some(start_broker(self.mqtt_port, files));
    }

    /// The tails of every hub's and edge's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for (i, h) in self.hubs.iter().enumerate() {
            s.push_str(&format!("\n--- hub-{i}:\n{}", h.log_tail()));
        }
        for e in &self.edges {
            s.push_str(&format!(
                "\n--- {}:\n{}",
                e.config.display(),
                wangge_testkit::process::tail(
                    &std::fs::read_to_string(&e.log).unwrap_or_default(),
                    1500
                )
            ));
        }
        s
    }

    /// Stops the edges, then the hubs, then the servers (all by PID).
    pub fn stop(mut self) {
        for e in &mut self.edges {
            if let Some(mut p) = e.proc.take() {
                p.kill9();
            }
        }
        for h in &mut self.hubs {
            h.kill9();
        }
        drop(self);
    }
}
