//! The evaluation report at district scale: 100k components (one sensor each, reporting every
//! 6 h) and a month of their readings in the embedded store (≈ 12.4 M reports), answered by a
//! real `hub serve` over HTTP. Prints figures; no assertions (the figure is in BENCHMARKS.md).
//! Run: `cargo bench -p hub --bench evaluation_100k`.
//!
//! Measures a 30-day `GET reports/evaluation` cold (the first report counts each whole past
//! day once and keeps the counts) and warm, the CSV of the components table and the XLSX.

use hub::registry::upsert_component;
use hub::registry::{seed, Component, ComponentStatus, RegistryError, SqliteRegistry};
use hub::timeseries::embedded::{EmbeddedConfig, EmbeddedStore};
use hub::timeseries::{StoredReading, TimeSeriesSink};
use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COMPONENTS: usize = 100_000;
const INTERVAL_S: i64 = 6 * 3600;
const DAYS: i64 = 30;
const S: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * S;
const CLASSES: [(&str, &str, &str); 4] = [
    ("0101", "manhole_cover", "sw"),
    ("0118", "street_light", "zm"),
    ("0113", "fire_hydrant", "xf"),
    ("0650", "flood_gauge", "sw"),
];

fn component_id(i: usize) -> String {
    let (class, _, _) = CLASSES[i % CLASSES.len()];
    format!("120111{class}{:06}", i / CLASSES.len())
}

/// 100k components, one sensor each, registered 40 days ago.
fn load_registry(reg: &SqliteRegistry, registered_ns: i64) -> Result<(), RegistryError> {
    let grids = [
        "120111001001",
        "120111001002",
        "120111002001",
        "120111002002",
    ];
    reg.write(|tx| {
        for i in 0..COMPONENTS {
            let (_, ty, owner) = CLASSES[i % CLASSES.len()];
            let c = Component {
                id: component_id(i),
                component_type: ty.to_string(),
                name: format!("bench component {i}"),
                address: String::new(),
                lat: None,
                lon: None,
                grid_cell: Some(grids[i % grids.len()].to_string()),
                owner_department: Some(owner.to_string()),
                maintainer_department: Some(owner.to_string()),
                status: ComponentStatus::Normal,
            };
            upsert_component(tx, &c)?;
            tx.execute(
                "INSERT INTO sensors(id, component_id, type, profile, address, interval_s, edge,
                                     registered_at_ns)
                 VALUES (?1, ?2, ?3, 'bench', '', ?4, 'edge-xq-01', ?5)",
                rusqlite::params![format!("B-{i:06}"), c.id, ty, INTERVAL_S, registered_ns],
            )
            .map_err(|e| RegistryError::Db(e.to_string()))?;
        }
        Ok::<_, RegistryError>(())
    })
}

/// Every sensor's reports from `from` to `now`, one store write per day.
fn load_readings(store: &EmbeddedStore, from: i64, now: i64) -> usize {
    let mut total = 0;
    let mut day = from;
    while day < now {
        let mut rows = Vec::with_capacity(COMPONENTS * 4);
        for i in 0..COMPONENTS {
            // Spread the sensors' phases over the interval.
            let mut t = day + (i as i64 % INTERVAL_S) * S;
            while t < (day + DAY).min(now) {
                rows.push(StoredReading {
                    reading: Reading {
                        sensor: format!("B-{i:06}").as_str().into(),
                        quantity: Quantity::WaterLevel,
                        value: Value::Float(1.0),
                        ts_ns: t,
                        quality: Quality::Good,
                        flags: ReadingFlags::default(),
                    },
                    edge_id: "edge-xq-01".into(),
                    component_id: None,
                    grid_cell: None,
                    department: None,
                });
                t += INTERVAL_S * S;
            }
        }
        total += rows.len();
        store.write(&rows).unwrap();
        day += DAY;
    }
    total
}

async fn timed_get(http: &reqwest::Client, url: &str, token: &str) -> (Duration, usize, u16) {
    let t = Instant::now();
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    let code = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    (t.elapsed(), body.len(), code)
}

fn main() {
    // EVAL_BENCH_DIR keeps the loaded data for the next run (loading takes minutes).
    let kept = std::env::var_os("EVAL_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = tempfile::tempdir().unwrap();
    let data = kept
        .clone()
        .unwrap_or_else(|| dir.path().to_path_buf())
        .join("data");
    let now = protocol::time::now_ns();
    let from = now - DAYS * DAY;
    if kept.is_some() && data.join("timeseries.sqlite").exists() {
        println!("reusing {}", data.display());
    } else {
        let reg = SqliteRegistry::open(&data.join("registry.sqlite")).unwrap();
        seed::import_dir(
            &reg,
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry"),
        )
        .unwrap();
        let t = Instant::now();
        load_registry(&reg, now - 40 * DAY).unwrap();
        println!(
            "registry: {COMPONENTS} components + sensors in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let store = EmbeddedStore::open(&EmbeddedConfig::in_dir(&data)).unwrap();
        let t = Instant::now();
        let n = load_readings(&store, from - DAY, now);
        println!(
            "readings: {n} reports over {} days in {:.1} s",
            DAYS + 1,
            t.elapsed().as_secs_f64()
        );
    }
    let token = "bench-admin-token-0123456789abcdef";
    let (port, mqtt) = (wangge_testkit::free_port(), wangge_testkit::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--http", &format!("127.0.0.1:{port}")])
        .args(["--mqtt", &format!("127.0.0.1:{mqtt}")])
        .env("WANGGE_ADMIN_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}/api/v1");
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(format!("{base}/health")).send().await.is_err() {
            assert!(Instant::now() < deadline, "hub did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let range = format!("from={}&to={}", from / 1_000_000, now / 1_000_000);
        let url = format!("{base}/reports/evaluation?{range}");
        let (took, bytes, code) = timed_get(&http, &url, token).await;
        println!(
            "30-day report, cold (counts each past day once): {:.2} s, HTTP {code}, {:.1} MiB JSON",
            took.as_secs_f64(),
            bytes as f64 / (1 << 20) as f64
        );
        for run in 1..=3 {
            let (took, _, code) = timed_get(&http, &url, token).await;
            println!(
                "30-day report, warm run {run}: {:.2} s, HTTP {code}",
                took.as_secs_f64()
            );
        }
        let r: serde_json::Value = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // The JSON holds the first page (1000 rows) of each table; `totals` counts them all.
        let rows = r["components"].as_array().map_or(0, Vec::len);
        let total = &r["totals"]["components"];
        let c = r["completeness_by_type"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["key"] == "street_light"))
            .cloned()
            .unwrap_or_default();
        println!(
            "components in the report: {rows} of {total}; {} completeness {}",
            c["key"], c["completeness"]
        );
        let csv = format!("{base}/reports/evaluation.csv?table=components&{range}");
        let (took, bytes, code) = timed_get(&http, &csv, token).await;
        println!(
            "30-day CSV (components): {:.2} s, HTTP {code}, {:.1} MiB",
            took.as_secs_f64(),
            bytes as f64 / (1 << 20) as f64
        );
        let xlsx = format!("{base}/reports/evaluation.xlsx?{range}");
        let (took, bytes, code) = timed_get(&http, &xlsx, token).await;
        println!(
            "30-day XLSX (every table): {:.2} s, HTTP {code}, {:.1} MiB",
            took.as_secs_f64(),
            bytes as f64 / (1 << 20) as f64
        );
    });
    let _ = child.kill();
    let _ = child.wait();
}
