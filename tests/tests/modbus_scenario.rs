//! firmware-sim plays the Modbus registry `config/modbus-demo` (an RS-485 line with a flood gauge
//! and an electrical-fire monitor, a Modbus TCP hydrant transmitter) with its scenario
//! (`config/modbus-demo/scenario.toml`, ten times faster: incidents, a slow slave, CRC-corrupted
//! answers, a mute window) → edge → hub, all real processes. The incidents on Modbus devices raise
//! their events at the hub, the edge sees the mute slave go and come back, and every reading the
//! simulator's `--record` says an intact answer carried is stored exactly once, with its value.

use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use wangge_testkit::paths::{bin, workspace_root};
use wangge_testkit::process::{run_ok, Proc};
use wangge_testkit::record::read_record;
use wangge_testkit::{free_port, now_ns, wait_for, Mosquitto};
use wangge_tests::system::{Edge, Hub};

/// The registry the simulator plays and the hub imports on top of the seed.
fn modbus_demo() -> PathBuf {
    workspace_root().join("config/modbus-demo")
}

/// sensor id → component id, from `config/modbus-demo/sensors.csv`.
fn components() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(modbus_demo().join("sensors.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect()
}

/// The seed's sensors plus the Modbus ones, for the edge's registry.
fn edge_sensors(dir: &Path) -> PathBuf {
    let mut text =
        std::fs::read_to_string(workspace_root().join("config/registry/sensors.csv")).unwrap();
    let modbus = std::fs::read_to_string(modbus_demo().join("sensors.csv")).unwrap();
    for l in modbus.lines().skip(1) {
        text += &format!("{l}\n");
    }
    let path = dir.join("sensors.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// The edge's `[[modbus]]` lines as in config/edge.toml, on the test's pty and TCP port.
fn modbus_lines(pty: &Path, tcp: u16) -> String {
    format!(
        r#"[[modbus]]
name = "rs485-1"
rtu = {{ path = {:?}, baud = 19200, parity = "even" }}
timeout = "500ms"
[[modbus.slave]]
unit = 1
profile = "modbus-flood-level"
sensor = "FL-M001"
[[modbus.slave]]
unit = 2
profile = "modbus-electrical-fire"
sensor = "EF-M001"
[[modbus]]
name = "tcp-1"
tcp = "127.0.0.1:{tcp}"
timeout = "500ms"
[[modbus.slave]]
unit = 1
profile = "modbus-hydrant-pressure"
sensor = "HY-M001"
"#,
        pty.display().to_string()
    )
}

/// `firmware-sim modbus --registry config/modbus-demo --scenario … --record …`.
fn start_simulator(dir: &Path, pty: &Path, tcp: u16) -> Proc {
    let mut c = Command::new(bin("firmware-sim"));
    c.current_dir(workspace_root())
        .arg("modbus")
        .arg("--registry")
        .arg(modbus_demo())
        .arg("--scenario")
        .arg(modbus_demo().join("scenario.toml"))
        .arg("--record")
        .arg(dir.join("record.jsonl"))
        .arg("--summary")
        .arg(dir.join("summary.json"))
        // Scenario time 10× wall time: the mute window (240–300 s) comes after 24 s.
        .args(["--interval-scale", "0.1"])
        .args(["--baud", "19200", "--rtu-pty"])
        .arg(pty)
        .args(["--tcp", &format!("127.0.0.1:{tcp}")]);
    Proc::spawn("firmware-sim", c, &dir.join("sim.log")).unwrap()
}

/// Whether the hub has an event of `kind` for `component`.
fn has_event(hub: &Hub, kind: &str, component: &str) -> bool {
    hub.get("/api/v1/events?limit=1000").is_ok_and(|j| {
        j["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|e| e["type"] == kind && e["component_id"] == component)
        })
    })
}

#[test]
fn a_modbus_scenario_raises_its_events_and_every_recorded_reading_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = Hub::prepare(dir.path(), "").unwrap();
    run_ok(hub.cli(&["registry", "import"]).arg(modbus_demo()));
    hub.start().unwrap();
    let site = Mosquitto::start();
    let (pty, tcp) = (dir.path().join("rs485"), free_port());
    let mut sim = start_simulator(dir.path(), &pty, tcp);
    wait_for("the simulator's pty", Duration::from_secs(20), || {
        pty.exists().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", sim.log()));
    let started = now_ns();
    let sensors = edge_sensors(dir.path());
    let lines = modbus_lines(&pty, tcp);
    let mut edge = Edge::prepare_seeded(dir.path(), &hub, &site, &sensors, &lines).unwrap();
    edge.start().unwrap();

    // The scenario's incidents reach the hub as events: the flood gauge's water rises at 15 s
    // (flood.warning), the electrical-fire monitor's residual current goes to 350 mA at 30 s.
    let c = components();
    for (kind, sensor) in [
        ("flood.warning", "FL-M001"),
        ("electrical.leakage", "EF-M001"),
    ] {
        wait_for(
            &format!("{kind} for {sensor}'s component"),
            Duration::from_secs(90),
            || has_event(&hub, kind, &c[sensor]).then_some(()),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", edge.log_tail(), sim.log()));
    }

    // The flood gauge goes mute (scenario 240–300 s): the edge counts its timeouts and takes it
    // down, then it answers again.
    let slave = |line: &str, unit: &str, metric: &str, reason: Option<&str>| {
        let t = edge.metrics().unwrap_or_default();
        let mut l = vec![("line", line), ("unit", unit)];
        if let Some(r) = reason {
            l.push(("reason", r));
        }
        wangge_testkit::metric_sum(&t, metric, &l)
    };
    let timeouts = "edge_modbus_failures_total";
    wait_for("the mute flood gauge down", Duration::from_secs(90), || {
        (slave("rs485-1", "1", timeouts, Some("timeout")) >= 1.0
            && slave("rs485-1", "1", "edge_modbus_slave_up", None) == 0.0)
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.log_tail()));
    wait_for("the flood gauge back", Duration::from_secs(90), || {
        (slave("rs485-1", "1", "edge_modbus_slave_up", None) == 1.0).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.log_tail()));

    // Stop the simulator: it closes its servers and its record. Every reading recorded is at the
    // hub once, with its value, in the order the slaves answered.
    assert!(sim.terminate(Duration::from_secs(20)).is_some());
    let record = read_record(&dir.path().join("record.jsonl")).unwrap();
    let summary: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    let mut want: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for r in &record {
        assert_eq!(r.ts_ms, None, "a Modbus reading is stamped by the edge");
        want.entry((r.sensor.clone(), r.quantity.clone()))
            .or_default()
            .push(r.value_f64());
    }
    for sensor in ["FL-M001", "EF-M001", "HY-M001"] {
        let n = record.iter().filter(|r| r.sensor == sensor).count() as u64;
        let served: u64 = ["rtu", "tcp"]
            .iter()
            .flat_map(|l| summary[l].as_array().cloned().unwrap_or_default())
            .filter(|d| d["sensor"] == sensor)
            .map(|d| d["values"].as_u64().unwrap())
            .sum();
        assert!(n >= 6, "{sensor}: only {n} readings recorded");
        assert_eq!(n, served, "{sensor}: the summary and the record agree");
    }
    let device = |sensor: &str| {
        ["rtu", "tcp"]
            .iter()
            .flat_map(|l| summary[l].as_array().cloned().unwrap_or_default())
            .find(|d| d["sensor"] == sensor)
            .unwrap()
    };
    assert!(
        device("FL-M001")["muted"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    assert!(
        device("HY-M001")["delayed"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    // Each CRC-corrupted answer is one CRC failure at the edge, never a reading.
    assert_eq!(
        slave("rs485-1", "2", timeouts, Some("crc")),
        device("EF-M001")["corrupted"].as_f64().unwrap(),
        "{summary}"
    );
    let window = (started - 60_000_000_000, now_ns() + 60_000_000_000);
    for ((sensor, quantity), values) in &want {
        let got = wait_for(
            &format!("{sensor} {quantity}: {} readings at the hub", values.len()),
            Duration::from_secs(60),
            || {
                let mut pts = hub.points(&c[sensor], quantity, window.0, window.1).ok()?;
                pts.sort_by_key(|p| p.0);
                (pts.len() >= values.len()).then_some(pts)
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", edge.log_tail()));
        let stored: Vec<f64> = got.iter().map(|p| p.1).collect();
        assert_eq!(
            stored.len(),
            values.len(),
            "{sensor} {quantity}: stored {stored:?}, recorded {values:?}"
        );
        for (s, w) in stored.iter().zip(values) {
            assert!(
                (s - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{sensor} {quantity}: stored {stored:?}, recorded {values:?}"
            );
        }
    }
    edge.kill9();
    hub.kill9();
}
