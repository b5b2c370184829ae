//! The evaluation report at district scale: 100k components (one sensor each, reporting every
//! 6 h) and a month of their readings in the embedded store (≈ 12.4 M reports), answered by a
//! real `hub serve` over HTTP. Prints figures; no assertions (the figure is in BENCHMARKS.md).
//! Run: `cargo bench -p hub --bench evaluation_100k`.
//!
//! Measures a 30-day `GET reports/evaluation` cold (the first report counts each whole past
//! day once and keeps the counts) and warm, the CSV of the components table and the XLSX.

mod bench_support;

use bench_support::{load_registry, runtime, seeded_registry, sensor_id, serve, Load, COMPONENTS};

use hub::timeseries::embedded::{EmbeddedConfig, EmbeddedStore};
use hub::timeseries::{StoredReading, TimeSeriesSink};
use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use std::time::{Duration, Instant};

const INTERVAL_S: i64 = 6 * 3600;
const DAYS: i64 = 30;
const S: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * S;
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
                        sensor: sensor_id(i).as_str().into(),
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

/// [`timed_get`] of `url`, printed after `what`: seconds, HTTP status and size.
async fn print_download(http: &reqwest::Client, what: &str, url: &str, token: &str) {
    let (took, bytes, code) = timed_get(http, url, token).await;
    println!(
        "{what}: {:.2} s, HTTP {code}, {:.1} MiB",
        took.as_secs_f64(),
        bytes as f64 / (1 << 20) as f64
    );
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
        let reg = seeded_registry(&data);
        let t = Instant::now();
        // 100k components, one sensor each, registered 40 days ago.
        let load = Load {
            cells_per_street: 2,
            place: |_| (String::new(), None, None),
            interval_s: INTERVAL_S,
            registered_ns: Some(now - 40 * DAY),
        };
        load_registry(&reg, &load).unwrap();
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
    let hub = serve(dir.path(), &data, Some(token));
    let rt = runtime();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let base = format!("{}/api/v1", hub.base());
        let range = format!("from={}&to={}", from / 1_000_000, now / 1_000_000);
        let url = format!("{base}/reports/evaluation?{range}");
        print_download(
            &http,
            "30-day report (JSON), cold (counts each past day once)",
            &url,
            token,
        )
        .await;
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
        print_download(&http, "30-day CSV (components)", &csv, token).await;
        let xlsx = format!("{base}/reports/evaluation.xlsx?{range}");
        print_download(&http, "30-day XLSX (every table)", &xlsx, token).await;
    });
}
