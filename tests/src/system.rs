//! The whole system on loopback: a hub, a site broker (mosquitto), an edge, and firmware-sim,
//! each a real process in one temp dir. Tests kill and restart pieces and compare what the hub
//! stored with what the simulator recorded.

use anyhow::{bail, Context};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use wangge_testkit::hub::HubServe;
use wangge_testkit::record::{read_record, Recorded};
use wangge_testkit::{bin, free_port, now_ms, now_ns, wait_for, workspace_root, Mosquitto, Proc};

pub const EDGE_ID: &str = "edge-xq-01";
pub const ADMIN_TOKEN: &str = "e2e-admin-4f1c9a7be03d25c6a8e1f0b7d4c39a52";

/// A hub process on free ports with its data dir; restartable on the same ports and data.
pub struct Hub {
    pub proc: Option<Proc>,
    pub data: PathBuf,
    pub http: u16,
    pub mqtt: u16,
    pub config: PathBuf,
    pub edge_secret: String,
    /// `RUST_LOG` for the next `start` (default `info`).
    pub rust_log: String,
    log: PathBuf,
    http_client: reqwest::blocking::Client,
}

impl Hub {
    /// Imports the seed registry and issues the edge's secret (no process yet).
    /// `extra_config` is appended to the hub's TOML config (e.g. an `[influx]` section).
    pub fn prepare(dir: &Path, extra_config: &str) -> anyhow::Result<Hub> {
        Self::prepare_seeded(dir, extra_config, &workspace_root().join("config/registry"))
    }

    /// Like `prepare`, importing the registry from `seed` (a copy of the seed with rows added).
    pub fn prepare_seeded(dir: &Path, extra_config: &str, seed: &Path) -> anyhow::Result<Hub> {
        let data = dir.join("hub");
        std::fs::create_dir_all(&data)?;
        let config = dir.join("hub.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\n{extra_config}\n",
                data.display().to_string()
            ),
        )?;
        let hub = Hub {
            proc: None,
            data,
            http: free_port(),
            mqtt: free_port(),
            config,
            edge_secret: String::new(),
            rust_log: "info".into(),
            log: dir.join("hub.log"),
            http_client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        let out = hub.command(&["registry", "import"]).arg(seed).output()?;
        if !out.status.success() {
            bail!(
                "hub registry import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = hub.command(&["edge", "add", EDGE_ID]).output()?;
        if !out.status.success() {
            bail!(
                "hub edge add failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let edge_secret = String::from_utf8(out.stdout)?.trim().to_string();
        Ok(Hub { edge_secret, ..hub })
    }

    /// Where the hub's stdout/stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// A `hub --config … <args>` command (admin token set), for CLI tests.
    pub fn cli(&self, args: &[&str]) -> Command {
        self.command(args)
    }

    /// Issues a token for `department` with `scope` (`hub token add`, printed once) and returns it.
    pub fn add_token(&self, department: &str, scope: &str) -> anyhow::Result<String> {
        let out = self
            .command(&["token", "add", "--department", department, "--scope", scope])
            .output()?;
        if !out.status.success() {
            bail!(
                "hub token add failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    /// Issues MQTT credentials for `department`'s event consumer (`hub mqtt-user add`):
    /// (username, password). It may subscribe to `wangge/v1/events/{department}/#` only.
    pub fn add_mqtt_user(&self, department: &str) -> anyhow::Result<(String, String)> {
        let out = self
            .command(&["mqtt-user", "add", "--department", department])
            .output()?;
        if !out.status.success() {
            bail!(
                "hub mqtt-user add failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8(out.stdout)?;
        let mut lines = text.lines();
        match (lines.next(), lines.next()) {
            (Some(u), Some(p)) => Ok((u.trim().to_string(), p.trim().to_string())),
            _ => bail!("hub mqtt-user add printed {text:?}"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("hub"));
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env(wangge_testkit::hub::ADMIN_TOKEN_ENV, ADMIN_TOKEN);
        c
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        let serve = HubServe::config(&bin("hub"), &self.log)
            .config_file(&self.config)
            .admin_token(ADMIN_TOKEN)
            .env("RUST_LOG", &self.rust_log)
            .ports(self.http, self.mqtt)
            .start()?;
        self.proc = Some(serve.proc);
        Ok(())
    }

    /// [`Hub::prepare`] with no extra config, started, and a site broker next to it: what most
    /// single-box stories begin with.
    pub fn started_with_site(dir: &Path) -> anyhow::Result<(Hub, Mosquitto)> {
        let mut hub = Hub::prepare(dir, "")?;
        hub.start()?;
        Ok((hub, Mosquitto::start()))
    }

    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// GET an API path with the admin token.
    pub fn get(&self, path_and_query: &str) -> anyhow::Result<Json> {
        let r = self
            .http_client
            .get(format!("http://127.0.0.1:{}{path_and_query}", self.http))
            .bearer_auth(ADMIN_TOKEN)
            .send()?;
        let status = r.status();
        let body = r.text()?;
        if !status.is_success() {
            bail!("GET {path_and_query}: {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// Raw points of one quantity of one component in [from_ns, to_ns).
    pub fn points(
        &self,
        component: &str,
        quantity: &str,
        from_ns: i64,
        to_ns: i64,
    ) -> anyhow::Result<Vec<(i64, f64)>> {
        // `step=raw`: raw points whatever the range; pages follow `next` (the hub's API).
        let mut pages = Vec::new();
        let mut from = (from_ns / 1_000_000).to_string();
        loop {
            let j = self.get(&format!(
                "/api/v1/components/{component}/readings?quantity={quantity}&step=raw&from={}&to={}",
                from,
                to_ns / 1_000_000 + 1
            ))?;
            let next = j["next"].as_str().map(str::to_string);
            pages.push(j);
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
        let mut points = Vec::new();
        for j in &pages {
            points.extend(j["points"].as_array().context("points array")?.iter());
        }
        points
            .into_iter()
            .map(|p| {
                let ts = match &p["ts"] {
                    Json::Number(n) => n.as_i64().context("ts")? * 1_000_000,
                    Json::String(s) => parse_rfc3339_ns(s)?,
                    other => bail!("ts {other}"),
                };
                let v = match &p["value"] {
                    Json::Bool(b) => f64::from(u8::from(*b)),
                    other => other.as_f64().context("value")?,
                };
                Ok((ts, v))
            })
            .collect()
    }
}

/// Parses `2024-11-25T02:00:00.123456789Z` to Unix ns (UTC only; what the hub emits).
pub fn parse_rfc3339_ns(s: &str) -> anyhow::Result<i64> {
    let s = s.strip_suffix('Z').context("UTC timestamp")?;
    let (date, time) = s.split_once('T').context("T")?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (
        d.next().context("y")??,
        d.next().context("m")??,
        d.next().context("d")??,
    );
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (
        t.next().context("h")??,
        t.next().context("m")??,
        t.next().context("s")??,
    );
    let frac_ns: i64 = format!("{frac:0<9}")[..9].parse()?;
    // days from civil (Howard Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000) + frac_ns)
}

/// The edge agent: config written for this system's ports and paths.
pub struct Edge {
    pub proc: Option<Proc>,
    pub config: PathBuf,
    pub api_port: u16,
    /// `RUST_LOG` for the next `start` (default `info`).
    pub rust_log: String,
    log: PathBuf,
}

impl Edge {
    pub fn prepare(dir: &Path, hub: &Hub, site: &Mosquitto) -> anyhow::Result<Edge> {
        Self::prepare_with(dir, hub, site, "")
    }

    /// Like `prepare`, with `extra` appended to the edge's TOML (e.g. a `[validate]` section).
    pub fn prepare_with(
        dir: &Path,
        hub: &Hub,
        site: &Mosquitto,
        extra: &str,
    ) -> anyhow::Result<Edge> {
        Self::prepare_via(dir, hub, site, hub.mqtt, extra)
    }

    /// Like `prepare_with`, with the uplink pointed at 127.0.0.1:`uplink_port` instead of the
    /// hub's MQTT port: a fault-injecting proxy in front of the hub (`crate::proxy`).
    pub fn prepare_via(
        dir: &Path,
        hub: &Hub,
        site: &Mosquitto,
        uplink_port: u16,
        extra: &str,
    ) -> anyhow::Result<Edge> {
        let sensors = workspace_root().join("config/registry/sensors.csv");
        Self::prepare_full(dir, hub, site, uplink_port, &sensors, extra)
    }

    /// Like `prepare_with`, the edge knowing the sensors of `sensors` (a seed with rows added).
    pub fn prepare_seeded(
        dir: &Path,
        hub: &Hub,
        site: &Mosquitto,
        sensors: &Path,
        extra: &str,
    ) -> anyhow::Result<Edge> {
        Self::prepare_full(dir, hub, site, hub.mqtt, sensors, extra)
    }

    fn prepare_full(
        dir: &Path,
        hub: &Hub,
        site: &Mosquitto,
        uplink_port: u16,
        sensors: &Path,
        extra: &str,
    ) -> anyhow::Result<Edge> {
        let root = workspace_root();
        let api_port = free_port();
        let config = dir.join("edge.toml");
        std::fs::write(
            &config,
            format!(
                r#"[edge]
id = "{EDGE_ID}"
data_dir = {data:?}
registry = {registry:?}
profiles_dir = {profiles:?}

[hub]
host = "127.0.0.1"
port = {hub_port}
secret = "{secret}"

[[mqtt]]
name = "site"
host = "127.0.0.1"
port = {site_port}

[[serial]]
name = "A"
path = {tty_a:?}
format = "binary"
baud = 115200

[[serial]]
name = "B"
path = {tty_b:?}
format = "text"
baud = 9600

[uplink]
ack_timeout_ms = 3000

[local_api]
listen = "127.0.0.1:{api_port}"
{extra}
"#,
                data = dir.join("edge-data").display().to_string(),
                registry = sensors.display().to_string(),
                profiles = root.join("config/profiles").display().to_string(),
                hub_port = uplink_port,
                secret = hub.edge_secret,
                site_port = site.port,
                tty_a = dir.join("ttyA").display().to_string(),
                tty_b = dir.join("ttyB").display().to_string(),
            ),
        )?;
        Ok(Edge {
            proc: None,
            config,
            api_port,
            rust_log: "info".into(),
            log: dir.join("edge.log"),
        })
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        self.proc = Some(wangge_testkit::edge::start(
            &bin("edge"),
            &self.config,
            &self.log,
            self.api_port,
            Some(&self.rust_log),
            Duration::from_secs(30),
        )?);
        Ok(())
    }

    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }

    /// Where the edge's stdout/stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The local API's `/metrics` text (Prometheus exposition).
    pub fn metrics(&self) -> anyhow::Result<String> {
        let r = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?
            .get(format!("http://127.0.0.1:{}/metrics", self.api_port))
            .send()?;
        if !r.status().is_success() {
            bail!("edge /metrics: {}", r.status());
        }
        Ok(r.text()?)
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

/// sensor id → component id, from the seed.
pub fn sensor_components() -> anyhow::Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(workspace_root().join("config/registry/sensors.csv"))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect())
}

/// Runs firmware-sim to completion with `args` (plus record/summary files in `dir`),
/// returning (record, summary).
pub fn simulate(dir: &Path, tag: &str, args: &[String]) -> anyhow::Result<(Vec<Recorded>, Json)> {
    let record = dir.join(format!("{tag}.record.jsonl"));
    let summary = dir.join(format!("{tag}.summary.json"));
    let mut c = Command::new(bin("firmware-sim"));
    c.current_dir(workspace_root())
        .arg("run")
        .args(args)
        .arg("--record")
        .arg(&record)
        .arg("--summary")
        .arg(&summary);
    let log = dir.join(format!("{tag}.sim.log"));
    let mut p = Proc::spawn("firmware-sim", c, &log)?;
    let status = wait_for("firmware-sim to finish", Duration::from_secs(300), || {
        p.try_wait()
    })?;
    if !status.success() {
        bail!("firmware-sim failed: {}", p.log_tail(3000));
    }
    let summary: Json = serde_json::from_str(&std::fs::read_to_string(&summary)?)?;
    Ok((read_record(&record)?, summary))
}

/// How one (sensor, quantity) series at the hub differs from what was recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    pub sensor: String,
    pub quantity: String,
    pub stored: usize,
    pub sent: usize,
    /// The first (ts_ns, value) pair that differs, when the counts agree.
    pub mismatch: Option<((i64, f64), (i64, f64))>,
    /// Timestamps stored but not sent, and sent but not stored (stamped series only).
    pub extra_ts: Vec<i64>,
    pub missing_ts: Vec<i64>,
}

impl Diff {
    /// More stored than sent, or something stored that was never sent: a duplicate or an invention.
    pub fn is_excess(&self) -> bool {
        self.stored > self.sent || self.mismatch.is_some()
    }
}

/// Compares what the hub stored with what was recorded: for each (sensor, quantity), the
/// timestamps and values must be equal (readings whose sensor sent no timestamp — stamped by the
/// edge — are compared by count). Returns the series that differ.
pub fn compare_with_hub(
    hub: &Hub,
    record: &[Recorded],
    window_ns: (i64, i64),
) -> anyhow::Result<Vec<Diff>> {
    let components = sensor_components()?;
    let mut want: BTreeMap<(String, String), Vec<&Recorded>> = BTreeMap::new();
    for r in record {
        want.entry((r.sensor.clone(), r.quantity.clone()))
            .or_default()
            .push(r);
    }
    let mut diffs = Vec::new();
    for ((sensor, quantity), recs) in &want {
        let component = components
            .get(sensor)
            .with_context(|| format!("{sensor}: not in the seed"))?;
        let mut got = hub.points(component, quantity, window_ns.0, window_ns.1)?;
        let stored = got.len();
        let stamped = recs.iter().all(|r| r.ts_ms.is_some());
        let sent_ts: std::collections::BTreeSet<i64> = recs
            .iter()
            .filter_map(|r| r.ts_ms)
            .map(|t| t * 1_000_000)
            .collect();
        let got_ts: std::collections::BTreeSet<i64> = got.iter().map(|p| p.0).collect();
        let diff = |mismatch| Diff {
            sensor: sensor.clone(),
            quantity: quantity.clone(),
            stored,
            sent: recs.len(),
            mismatch,
            extra_ts: if stamped {
                got_ts.difference(&sent_ts).copied().collect()
            } else {
                vec![]
            },
            missing_ts: if stamped {
                sent_ts.difference(&got_ts).copied().collect()
            } else {
                vec![]
            },
        };
        if got.len() != recs.len() {
            diffs.push(diff(None));
            continue;
        }
        if !stamped {
            continue; // edge-stamped: the count is all that can be compared
        }
        let mut sent: Vec<(i64, f64)> = recs
            .iter()
            .map(|r| (r.ts_ms.unwrap_or_default() * 1_000_000, r.value_f64()))
            .collect();
        sent.sort_by_key(|p| p.0);
        got.sort_by_key(|p| p.0);
        if let Some((w, g)) = sent
            .iter()
            .zip(&got)
            .find(|(w, g)| w.0 != g.0 || (w.1 - g.1).abs() > 1e-6 * w.1.abs().max(1.0))
        {
            diffs.push(diff(Some((*w, *g))));
        }
    }
    Ok(diffs)
}

/// The time window that holds every reading of a run (sensor clocks fast-forward; edge-stamped
/// readings carry wall time).
pub fn window(record: &[Recorded], started_ns: i64) -> (i64, i64) {
    let min = record.iter().filter_map(|r| r.ts_ms).min().unwrap_or(0) * 1_000_000;
    let max = record.iter().filter_map(|r| r.ts_ms).max().unwrap_or(0) * 1_000_000;
    if record.iter().all(|r| r.ts_ms.is_some()) {
        // Only this run's sensor-clock range: another run's readings stay outside.
        return (min, max + 1_000_000);
    }
    (
        min.min(started_ns) - 60_000_000_000,
        max.max(now_ns()) + 60_000_000_000,
    )
}

/// Waits until the hub holds exactly what was recorded (or fails listing the differences).
pub fn assert_hub_has_exactly(hub: &Hub, record: &[Recorded], started_ns: i64, timeout: Duration) {
    let w = window(record, started_ns);
    let mut last = Vec::new();
    let res = wait_for(
        "the hub to store every recorded reading",
        timeout,
        || match compare_with_hub(hub, record, w) {
            Ok(d) if d.is_empty() => Some(()),
            Ok(d) => {
                last = d.iter().map(|d| format!("{d:?}")).collect();
                std::thread::sleep(Duration::from_millis(500));
                None
            }
            Err(e) => {
                last = vec![e.to_string()];
                None
            }
        },
    );
    if res.is_err() {
        panic!(
            "{} differences, first: {:#?}\nhub log: {}",
            last.len(),
            &last[..last.len().min(15)],
            hub.log_tail()
        );
    }
}

/// Checks a finished firmware-sim run: its summary counts as many readings as its record holds,
/// and the record holds more than `at_least` (`what` says what that many readings show).
pub fn assert_stream_recorded(record: &[Recorded], summary: &Json, at_least: usize, what: &str) {
    assert_eq!(
        summary["totals"]["readings"].as_u64(),
        Some(record.len() as u64),
        "firmware-sim's summary and record agree"
    );
    assert!(record.len() > at_least, "{what}: {} readings", record.len());
}

/// [`wait_for`] for a condition that is costly to check (it asks a process or takes a lock):
/// after each `None` from `f` it sleeps `every` before asking again.
pub fn wait_every<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    wait_for(what, timeout, || {
        f().or_else(|| {
            std::thread::sleep(every);
            None
        })
    })
}

/// Waits until what `observe` sees satisfies `done`, observing again every `every` (an
/// observation that fails, `None`, is tried again). Returns whether that came within `timeout`,
/// and the last observation made (the default if none was), for the test to assert on or report.
pub fn wait_observing<O: Default>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut observe: impl FnMut() -> Option<O>,
    done: impl Fn(&O) -> bool,
) -> (anyhow::Result<()>, O) {
    let mut last = O::default();
    let res = wait_every(what, timeout, every, || {
        last = observe()?;
        done(&last).then_some(())
    });
    (res, last)
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The latest 22:30 local time (UTC+8, 14:30 UTC) at least two hours before now, as a sensor-clock
/// start for the demo scenario: a run covers under an hour of sensor time, so all of it is night
/// (permitted door hours are 06:00–22:00) and in the past (the edge distrusts future timestamps).
pub fn night_start_ms() -> i64 {
    let latest = now_ms() - 2 * HOUR_MS;
    let day = latest.div_euclid(DAY_MS) * DAY_MS;
    let t = day + 14 * HOUR_MS + 30 * 60_000;
    if t <= latest {
        t
    } else {
        t - DAY_MS
    }
}

/// Sensor clocks start `hours_ago` in the past: at interval scale 0.02 they run 50× faster than
/// the wall clock, and the edge (rightly) distrusts timestamps more than 5 min in the future.
pub fn start_hours_ago(hours_ago: i64) -> String {
    (now_ms() - hours_ago * HOUR_MS).to_string()
}

/// firmware-sim `run` arguments for a fast stream of the whole demo site: MQTT to the site broker
/// on `site_port`, both serial lines as ptys in `dir`, interval scale 0.02, sensor clocks from 2 h
/// ago; `extra` is appended (`--count`, `--duration`, `--seed`, …).
pub fn sim_stream_args(dir: &Path, site_port: u16, extra: &[String]) -> Vec<String> {
    sim_stream_args_since(dir, site_port, 2, extra)
}

/// [`sim_stream_args`] with sensor clocks from `hours_ago`. The clocks run 50× fast, so they
/// pass the wall clock after `hours_ago` / 49 of real time; from then on the edge stamps the
/// readings itself (more than `future_skew_max_ms` ahead). A longer stream starts further back.
pub fn sim_stream_args_since(
    dir: &Path,
    site_port: u16,
    hours_ago: i64,
    extra: &[String],
) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--start".into(),
        start_hours_ago(hours_ago),
        "--mqtt".into(),
        format!("127.0.0.1:{site_port}"),
        "--pty-a".into(),
        dir.join("ttyA").display().to_string(),
        "--pty-b".into(),
        dir.join("ttyB").display().to_string(),
        "--interval-scale".into(),
        "0.02".into(),
    ];
    a.extend_from_slice(extra);
    a
}

/// The last 3000 characters of a log file.
fn log_tail(path: &Path) -> String {
    wangge_testkit::process::tail(&std::fs::read_to_string(path).unwrap_or_default(), 3000)
}
