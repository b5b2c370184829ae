//! The `hub` binary of these tests bound to the test kit's CLI runner and `hub serve` guard; the
//! config and start of a cluster member; the readings that raise the seed's manhole event.
#![allow(dead_code)]

use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use std::path::{Path, PathBuf};
use wangge_testkit::hub::{HubServe, HubServeConfig};
use wangge_testkit::now_ns;

/// The `hub` binary cargo built for these tests.
pub const HUB: &str = env!("CARGO_BIN_EXE_hub");

/// Runs `hub --data-dir <data> <args>`, asserts success (showing stderr) and returns stdout,
/// trimmed — e.g. the secret `edge add` prints once.
pub fn hub_cli(data: &Path, args: &[&str]) -> String {
    wangge_testkit::hub::cli(Path::new(HUB), data, args)
}

/// `hub serve` on free ports in `dir` (its working directory), output appended to `dir/log`,
/// with `admin` as the bootstrap admin token.
pub fn serve(dir: &Path, log: &str, admin: &str) -> HubServeConfig {
    HubServe::config(Path::new(HUB), &dir.join(log))
        .cwd(dir)
        .admin_token(admin)
}

/// Runs `hub --config <config> <args>`, asserts success (showing stderr) and returns stdout,
/// trimmed: a CLI command against the database a cluster member's config names.
pub fn hub_cli_config(config: &Path, args: &[&str]) -> String {
    let out = wangge_testkit::process::run_ok(
        std::process::Command::new(HUB)
            .arg("--config")
            .arg(config)
            .args(args),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The seed registry of the repository (`config/registry`).
pub fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry")
}

/// Writes `dir/<id>.toml`, the config of cluster member `id`: data dir `dir/<id>`, mosquitto on
/// `mqtt` as its broker (client id `wangge-<id>`), VictoriaMetrics at `vm` for readings,
/// PostgreSQL at `postgres_url`, a 2 s lease renewed every 400 ms; the seed registry as its
/// `seed_dir` when `seeded`. Returns the file's path.
pub fn member_config(
    dir: &Path,
    id: &str,
    postgres_url: &str,
    mqtt: u16,
    vm: &str,
    seeded: bool,
) -> PathBuf {
    let registry = if seeded {
        format!(
            "[registry]\nseed_dir = {:?}\n",
            seed_dir().display().to_string()
        )
    } else {
        String::new()
    };
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(
        &path,
        format!(
            "data_dir = {data:?}\n{registry}\
             [broker]\nmode = \"external\"\n[broker.external]\nhost = \"127.0.0.1\"\nport = {mqtt}\n\
             client_id = \"wangge-{id}\"\n\
             [influx]\nurl = \"{vm}\"\norg = \"wangge\"\nbucket = \"readings\"\ntoken = \"t\"\n\
             [victoria]\nurl = \"{vm}\"\n\
             [cluster]\npostgres_url = \"{postgres_url}\"\nhub_id = \"{id}\"\nlease_ttl_ms = 2000\nheartbeat_ms = 400\n",
            data = dir.join(id).display().to_string(),
        ),
    )
    .expect("write the member's config");
    path
}

/// `hub --config <config> serve` with `admin` as the bootstrap token, its HTTP API on a free
/// port and no MQTT listener of its own (its broker is the mosquitto on `mqtt`), its output in
/// `<config>.log`; returns once it is healthy.
pub fn serve_member(config: &Path, admin: &str, mqtt: u16) -> HubServe {
    let dir = config.parent().expect("the config's dir");
    let stem = config
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("utf-8 name");
    serve(dir, &format!("{stem}.log"), admin)
        .config_file(config)
        .ports(wangge_testkit::free_port(), mqtt)
        .start()
        .expect("start the cluster member")
}

/// 21 readings of MH-0001, one a second from a minute ago (whole seconds), tilt 25°: over 15°
/// for 10 s, the catalogue's `manhole.displaced` rule raises it (critical). Returns (t0, them).
pub fn displaced_cover_tilt() -> (i64, Vec<Reading>) {
    let t0 = (now_ns() / 1_000_000_000 - 60) * 1_000_000_000;
    let readings = (0..21)
        .map(|i| Reading {
            sensor: "MH-0001".into(),
            quantity: Quantity::Tilt,
            value: Value::Float(25.0),
            ts_ns: t0 + i * 1_000_000_000,
            quality: Quality::Good,
            flags: ReadingFlags::default(),
        })
        .collect();
    (t0, readings)
}

/// `GET http://127.0.0.1:<http><path>` with `token`: the JSON body (null when it is not JSON).
pub async fn get_json(http: u16, path: &str, token: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{http}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the hub answers")
        .json()
        .await
        .unwrap_or(serde_json::Value::Null)
}

/// Sends `req`, asserts a 2xx answer (showing the status and body otherwise), and returns its
/// JSON body (null when it is not JSON).
pub async fn ok_json(req: reqwest::RequestBuilder) -> serde_json::Value {
    let r = req.send().await.expect("the hub answers");
    let status = r.status();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    assert!(status.is_success(), "{status} {body}");
    body
}
