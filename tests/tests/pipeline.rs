//! firmware-sim → edge → hub, all real processes: every reading the simulator recorded is
//! readable through the hub's API exactly once — also across crashes and outages.

use std::path::Path;
use std::time::Duration;
use wangge_testkit::{now_ns, wait_for, Mosquitto, VictoriaMetrics};
use wangge_tests::system::{
    assert_hub_has_exactly, sim_stream_args, simulate, start_hours_ago, Edge, Hub,
};

/// A running hub (seeded, with `hub_config` appended to its config), site broker and edge.
fn running_system(dir: &Path, hub_config: &str) -> (Hub, Mosquitto, Edge) {
    let mut hub = Hub::prepare(dir, hub_config).unwrap();
    hub.start().unwrap();
    let site = Mosquitto::start();
    let mut edge = Edge::prepare(dir, &hub, &site).unwrap();
    edge.start().unwrap();
    (hub, site, edge)
}

fn sim_args(dir: &Path, site: &Mosquitto, extra: &[&str]) -> Vec<String> {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    sim_stream_args(dir, site.port, &extra)
}

#[test]
fn every_reading_the_simulator_sent_is_stored_exactly_once_in_both_stores() {
    let dir = tempfile::tempdir().unwrap();
    let vm = VictoriaMetrics::start();
    let influx = format!(
        "[influx]\nurl = \"http://127.0.0.1:{}\"\norg = \"wangge\"\nbucket = \"readings\"\ntoken = \"t\"\n",
        vm.port
    );
    let (mut hub, site, mut edge) = running_system(dir.path(), &influx);
    let started = now_ns();
    let (record, summary) = simulate(
        dir.path(),
        "all",
        &sim_args(
            dir.path(),
            &site,
            &[
                "--count",
                "3",
                "--seed",
                "11",
                "--scenario",
                "config/scenarios/faults.toml",
            ],
        ),
    )
    .unwrap();
    assert!(
        record.len() > 1500,
        "the run covers all 200 sensors: {} readings",
        record.len()
    );
    assert_eq!(
        summary["totals"]["readings"].as_u64(),
        Some(record.len() as u64),
        "summary and record agree"
    );
    assert_hub_has_exactly(&hub, &record, started, Duration::from_secs(120));

    // VictoriaMetrics got the same readings, once each.
    let client = reqwest::blocking::Client::new();
    let want = record.len();
    let mut got = 0;
    let counted = wait_for(
        "VictoriaMetrics to hold every reading",
        Duration::from_secs(60),
        || {
            let _ = client
                .get(format!("http://127.0.0.1:{}/internal/force_flush", vm.port))
                .send();
            let body = client
                .get(format!("http://127.0.0.1:{}/api/v1/export", vm.port))
                .query(&[("match[]", "{__name__=~\".+_value\"}")])
                .send()
                .ok()?
                .text()
                .ok()?;
            got = body
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .map(|s| s["timestamps"].as_array().map_or(0, |a| a.len()))
                .sum::<usize>();
            if got == want {
                Some(())
            } else {
                std::thread::sleep(Duration::from_millis(500));
                None
            }
        },
    );
    assert!(
        counted.is_ok(),
        "VictoriaMetrics holds {got} points, {want} were sent"
    );
    edge.kill9();
    hub.kill9();
}

#[test]
fn a_hub_killed_mid_stream_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, site, mut edge) = running_system(dir.path(), "");
    let started = now_ns();
    let args = sim_args(dir.path(), &site, &["--count", "6", "--seed", "12"]);
    let d = dir.path().to_path_buf();
    let sim = std::thread::spawn(move || simulate(&d, "crash", &args));
    // Let readings flow, then pull the plug on the hub twice.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(4));
        hub.kill9();
        std::thread::sleep(Duration::from_secs(2));
        hub.start().unwrap();
    }
    let (record, _) = sim.join().unwrap().unwrap();
    assert_hub_has_exactly(&hub, &record, started, Duration::from_secs(120));
    edge.kill9();
    hub.kill9();
}

#[test]
fn an_edge_killed_mid_stream_loses_nothing_and_stores_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, site, mut edge) = running_system(dir.path(), "");
    let started = now_ns();
    // MQTT sensors: the edge's persistent session at the site broker keeps what was received
    // but not yet durable at the kill, and what is published while the edge is down.
    // Not lumen: its readings carry the edge's receive time, so they could not be told apart
    // from the second run's by time window.
    let before_args = vec![
        "--profiles".to_string(),
        "canonical,acme,gridsense".into(),
        "--mqtt".to_string(),
        format!("127.0.0.1:{}", site.port),
        "--interval-scale".into(),
        "0.02".into(),
        "--count".into(),
        "6".into(),
        "--seed".into(),
        "13".into(),
        "--start".into(),
        start_hours_ago(4),
    ];
    let d = dir.path().to_path_buf();
    let sim = std::thread::spawn(move || simulate(&d, "before", &before_args));
    std::thread::sleep(Duration::from_secs(4));
    edge.kill9();
    let (before, _) = sim.join().unwrap().unwrap();
    edge.start().unwrap();
    // After the restart, serial lines too.
    let (after, _) = simulate(
        dir.path(),
        "after",
        &sim_args(dir.path(), &site, &["--count", "3", "--seed", "14"]),
    )
    .unwrap();
    assert_hub_has_exactly(&hub, &after, started, Duration::from_secs(120));
    assert_hub_has_exactly(&hub, &before, started, Duration::from_secs(120));
    edge.kill9();
    hub.kill9();
}

#[test]
fn a_hub_unreachable_for_60_s_gets_the_whole_backlog_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, site, mut edge) = running_system(dir.path(), "");
    let started = now_ns();
    hub.kill9();
    let args = sim_args(dir.path(), &site, &["--count", "4", "--seed", "15"]);
    let d = dir.path().to_path_buf();
    let sim = std::thread::spawn(move || simulate(&d, "outage", &args));
    std::thread::sleep(Duration::from_secs(60));
    hub.start().unwrap();
    let (record, _) = sim.join().unwrap().unwrap();
    assert_hub_has_exactly(&hub, &record, started, Duration::from_secs(180));
    edge.kill9();
    hub.kill9();
}
