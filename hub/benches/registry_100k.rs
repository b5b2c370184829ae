//! Registry at district scale: 100k components (and one sensor each) in the SQLite registry.
//! Prints figures; no assertions. Run: `cargo bench -p hub --bench registry_100k`.
//!
//! Measures (1) bulk load time, (2) in-process lookup latency of `sensor_assignment` (the
//! ingest path's call) and `component` (the API's), (3) a filtered page of 100, and (4) the RSS
//! of a real `hub serve` process over that registry plus HTTP latency of `GET components/{id}`.

mod bench_support;

use bench_support::{
    component_id, load_registry, runtime, seeded_registry, sensor_id, serve, Load, COMPONENTS,
};
use hub::registry::{ComponentFilter, RegistryAdmin, RegistryStore};
use std::time::{Duration, Instant};

const LOOKUPS: usize = 100_000;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    (at(0.5), at(0.99), *v.last().unwrap())
}

/// Prints the p50, p99 and max of `lat` after `what`.
fn report(what: &str, lat: Vec<Duration>) {
    let (p50, p99, max) = percentiles(lat);
    println!("{what}: p50 {p50:?}, p99 {p99:?}, max {max:?}");
}

/// The time of `find` for each of `ids` (each must be found).
fn timed_finds(
    ids: impl Iterator<Item = String>,
    mut find: impl FnMut(&str) -> bool,
) -> Vec<Duration> {
    ids.map(|id| {
        let t = Instant::now();
        let found = find(&id);
        let took = t.elapsed();
        assert!(found, "{id} not found");
        took
    })
    .collect()
}

/// `GET url` with `token`, answered.
async fn get_with(http: &reqwest::Client, url: String, token: &str) -> reqwest::Response {
    http.get(url).bearer_auth(token).send().await.unwrap()
}

/// A deterministic spread of ids over the registry.
fn pick(i: usize) -> usize {
    (i.wrapping_mul(2_654_435_761)) % COMPONENTS
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let reg = seeded_registry(&data);
    let t = Instant::now();
    let load = Load {
        cells_per_street: 3,
        place: |i| {
            (
                format!("天津市西青区测试路{i}号"),
                Some(39.1 + (i % 1000) as f64 * 1e-4),
                Some(117.0 + (i % 997) as f64 * 1e-4),
            )
        },
        interval_s: 60,
        registered_ns: None,
    };
    load_registry(&reg, &load).unwrap();
    let load_s = t.elapsed().as_secs_f64();
    println!(
        "load: {COMPONENTS} components + {COMPONENTS} sensors in one transaction: {load_s:.2} s ({:.0} components/s)",
        COMPONENTS as f64 / load_s
    );
    let db_bytes = std::fs::metadata(data.join("registry.sqlite"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "registry.sqlite: {:.1} MiB",
        db_bytes as f64 / (1 << 20) as f64
    );

    let lat = timed_finds((0..LOOKUPS).map(|i| sensor_id(pick(i))), |id| {
        reg.sensor_assignment(id).unwrap().is_some()
    });
    report(
        &format!("sensor_assignment (ingest lookup), {LOOKUPS} random"),
        lat,
    );

    let lat = timed_finds((0..LOOKUPS).map(|i| component_id(pick(i))), |id| {
        reg.component(id).unwrap().is_some()
    });
    report(&format!("component(id), {LOOKUPS} random"), lat);

    let mut lat = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..200 {
        let t = Instant::now();
        let page = reg
            .list_components(&ComponentFilter {
                component_type: Some("street_light".into()),
                department: Some("zm".into()),
                after: after.clone(),
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        lat.push(t.elapsed());
        after = page.next;
    }
    report(
        "list_components type+department page of 100 (200 pages)",
        lat,
    );
    let token = reg
        .add_token(Some("sw"), hub::registry::Scope::Read)
        .unwrap();
    drop(reg);

    // A real hub over that registry.
    let hub = serve(dir.path(), &data, None);
    let rt = runtime();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let base = hub.base();
        println!(
            "hub serve RSS after start: {} MiB",
            rss_kib(hub.proc.pid()) / 1024
        );
        let mut lat = Vec::new();
        for i in 0..5000 {
            let id = component_id(pick(i));
            let t = Instant::now();
            let r = get_with(&http, format!("{base}/api/v1/components/{id}"), &token).await;
            let _ = r.bytes().await.unwrap();
            lat.push(t.elapsed());
        }
        report(
            "HTTP GET components/{id} (token check + lookup), 5000 sequential",
            lat,
        );
        let mut lat = Vec::new();
        let mut cursor = String::new();
        for _ in 0..200 {
            let t = Instant::now();
            let url = format!("{base}/api/v1/components?limit=100{cursor}");
            let r: serde_json::Value = get_with(&http, url, &token).await.json().await.unwrap();
            lat.push(t.elapsed());
            cursor = r["next"]
                .as_str()
                .map(|n| format!("&cursor={n}"))
                .unwrap_or_default();
        }
        report("HTTP GET components?limit=100 (200 pages)", lat);
        println!(
            "hub serve RSS after queries: {} MiB",
            rss_kib(hub.proc.pid()) / 1024
        );
    });
}
