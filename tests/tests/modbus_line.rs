//! firmware-sim's Modbus slaves → edge → hub, all real processes: an RTU line (a pty) with three
//! slaves — one answering, one slow, one mute — and a Modbus TCP device. Every value the
//! answering slaves sent is stored exactly once; the mute slave is reported by the edge (metric,
//! and down in its status) and by the hub as ONE `source.offline` for that slave, seen by the
//! department its sensor serves and no other, with no `device.offline` for its component; when
//! the simulator stops, each line is one `source.offline` and none of its sensors raises its
//! own; each poll cycle sends exactly the read plan's requests (the merge holds on the wire).

use serde_json::Value as Json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use wangge_testkit::http::metric_sum;
use wangge_testkit::paths::{bin, copy_seed, workspace_root};
use wangge_testkit::process::Proc;
use wangge_testkit::{free_port, now_ns, wait_for, Mosquitto};
use wangge_tests::system::{Edge, Hub};

/// (sensor, component, profile, unit, line, simulator fault) of each simulated device.
const DEVICES: &[(&str, &str, &str, u8, &str, &str)] = &[
    (
        "FL-9001",
        "1201110650009001",
        "modbus-flood-level",
        1,
        "rtu",
        "",
    ),
    (
        "EF-9002",
        "1201110656009002",
        "modbus-electrical-fire",
        2,
        "rtu",
        ":slow=150ms",
    ),
    (
        "EF-9003",
        "1201110656009003",
        "modbus-electrical-fire",
        3,
        "rtu",
        ":mute",
    ),
    (
        "HY-9101",
        "1201110113009101",
        "modbus-hydrant-pressure",
        1,
        "tcp",
        "",
    ),
];

/// The seed registry plus one component and sensor per simulated device (5 s interval).
fn seed_with_devices(dir: &Path) -> std::path::PathBuf {
    let seed = dir.join("seed");
    copy_seed(&seed);
    let mut components = std::fs::read_to_string(seed.join("components.csv")).unwrap();
    let mut sensors = std::fs::read_to_string(seed.join("sensors.csv")).unwrap();
    for (sensor, component, profile, unit, line, _) in DEVICES {
        let kind = match &profile[7..] {
            "flood-level" => "flood_gauge",
            "electrical-fire" => "electrical_fire",
            _ => "fire_hydrant",
        };
        components += &format!(
            "{component},{kind},Modbus {sensor},天津市西青区测试路1号,39.15,117.05,120111001001,xf,xf\n"
        );
        sensors += &format!("{sensor},{component},{kind},{profile},{line}:{unit},5,edge-xq-01\n");
    }
    std::fs::write(seed.join("components.csv"), components).unwrap();
    std::fs::write(seed.join("sensors.csv"), sensors).unwrap();
    seed
}

/// The edge's `[[modbus]]` lines for the simulator's pty and TCP port.
fn modbus_lines(pty: &Path, tcp: u16) -> String {
    let mut s = format!(
        "[[modbus]]\nname = \"rs485-1\"\nrtu = {{ path = {:?}, baud = 19200 }}\ntimeout = \"400ms\"\n",
        pty.display().to_string()
    );
    let slaves = |s: &mut String, line: &str| {
        for (sensor, _, profile, unit, l, _) in DEVICES.iter().filter(|d| d.4 == line) {
            let _ = l;
            *s += &format!(
                "[[modbus.slave]]\nunit = {unit}\nprofile = \"{profile}\"\nsensor = \"{sensor}\"\n"
            );
        }
    };
    slaves(&mut s, "rtu");
    s += &format!("[[modbus]]\nname = \"tcp-1\"\ntcp = \"127.0.0.1:{tcp}\"\n");
    slaves(&mut s, "tcp");
    s
}

/// Starts `firmware-sim modbus` serving DEVICES; its summary lands in `summary`.
fn start_simulator(dir: &Path, pty: &Path, tcp: u16, summary: &Path) -> Proc {
    let mut c = Command::new(bin("firmware-sim"));
    c.current_dir(workspace_root())
        .args(["modbus", "--baud", "19200", "--seed", "7"])
        .arg("--rtu-pty")
        .arg(pty)
        .args(["--tcp", &format!("127.0.0.1:{tcp}")])
        .arg("--summary")
        .arg(summary);
    for (_, _, profile, unit, line, fault) in DEVICES {
        c.arg(format!("--{line}-device"))
            .arg(format!("{unit}:{profile}{fault}"));
    }
    Proc::spawn("firmware-sim", c, &dir.join("sim.log")).unwrap()
}

/// Values the simulator answered intact, per (line, unit).
fn answered(summary: &Json, line: &str, unit: u8) -> u64 {
    summary[line]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["unit"] == unit)
        .map_or(0, |d| d["values"].as_u64().unwrap())
}

/// Quantities one profile's points carry.
fn quantities(profile: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(workspace_root().join(format!("config/profiles/{profile}.toml")))
            .unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    v["point"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["quantity"].as_str().unwrap().to_string())
        .collect()
}

/// Every point stored for a device's component, per quantity; fails on a repeated timestamp.
fn stored(hub: &Hub, component: &str, profile: &str, from: i64) -> u64 {
    let mut n = 0;
    for q in quantities(profile) {
        let pts = hub
            .points(component, &q, from, now_ns() + 1_000_000_000)
            .unwrap();
        let mut ts: Vec<i64> = pts.iter().map(|p| p.0).collect();
        ts.dedup();
        assert_eq!(ts.len(), pts.len(), "{component} {q}: a point stored twice");
        n += pts.len() as u64;
    }
    n
}

#[test]
fn modbus_slaves_reach_the_hub_exactly_once_and_the_mute_one_is_reported_as_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed_with_devices(dir.path());
    let mut hub = Hub::prepare_seeded(dir.path(), "", &seed).unwrap();
    hub.start().unwrap();
    let site = Mosquitto::start();
    let (pty, tcp, summary_path) = (
        dir.path().join("rs485"),
        free_port(),
        dir.path().join("modbus.json"),
    );
    let mut sim = start_simulator(dir.path(), &pty, tcp, &summary_path);
    wait_for("the simulator's pty", Duration::from_secs(20), || {
        pty.exists().then_some(())
    })
    .unwrap();
    let started = now_ns();
    let lines = modbus_lines(&pty, tcp);
    let sensors = seed.join("sensors.csv");
    let mut edge = Edge::prepare_seeded(dir.path(), &hub, &site, &sensors, &lines).unwrap();
    edge.start().unwrap();

    // Four poll cycles of the answering slaves (5 s profiles), and the mute one backed off.
    let unit =
        |line: &str, unit: &str| vec![("line", line.to_string()), ("unit", unit.to_string())];
    let m = |text: &str, name: &str, labels: &[(&str, String)]| {
        let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        metric_sum(text, name, &l)
    };
    wait_for("four poll cycles", Duration::from_secs(60), || {
        let t = edge.metrics().ok()?;
        (m(&t, "edge_modbus_poll_cycles_total", &unit("rs485-1", "1")) >= 4.0
            && m(&t, "edge_modbus_poll_cycles_total", &unit("tcp-1", "1")) >= 4.0)
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.log_tail()));
    let text = edge.metrics().unwrap();
    // The merge on the wire: a cycle sends the read plan's blocks (1, 2, 2 for 3, 5, 3 points),
    // and no retries were needed.
    let reasons = ["timeout", "crc", "exception", "mismatch", "io"];
    for (line, u, blocks) in [
        ("rs485-1", "1", 1.0),
        ("rs485-1", "2", 2.0),
        ("tcp-1", "1", 2.0),
    ] {
        let plan = m(&text, "edge_modbus_plan_requests", &unit(line, u));
        let last = m(&text, "edge_modbus_last_cycle_requests", &unit(line, u));
        assert_eq!((plan, last), (blocks, blocks), "{line} unit {u}\n{text}");
        let failed: f64 = reasons
            .iter()
            .map(|r| {
                let mut l = unit(line, u);
                l.push(("reason", r.to_string()));
                m(&text, "edge_modbus_failures_total", &l)
            })
            .sum();
        assert_eq!(failed, 0.0, "{line} unit {u}\n{text}");
        assert_eq!(m(&text, "edge_modbus_slave_up", &unit(line, u)), 1.0);
    }
    assert_eq!(
        m(&text, "edge_modbus_slave_up", &unit("rs485-1", "3")),
        0.0,
        "{text}"
    );
    let mut timeouts = unit("rs485-1", "3");
    timeouts.push(("reason", "timeout".into()));
    assert!(
        m(&text, "edge_modbus_failures_total", &timeouts) >= 2.0,
        "{text}"
    );

    // The hub raises one source.offline for the mute slave (its edge reports it down), naming
    // its sensor, and no device.offline for its component past its allowance (3 × 5 s).
    let slave = "edge:edge-xq-01/modbus:rs485-1/3";
    let ev = wait_for(
        "source.offline for the mute slave",
        Duration::from_secs(60),
        || {
            events(&hub)
                .into_iter()
                .find(|e| e["type"] == "source.offline" && e["component_id"] == slave)
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}
{:#?}
{}",
            events(&hub),
            hub.log_tail()
        )
    });
    assert_eq!(
        ev["trigger"]["value"]["sensors"],
        serde_json::json!(["EF-9003"]),
        "{ev:#}"
    );
    std::thread::sleep(Duration::from_secs(20));
    let all = events(&hub);
    assert!(
        devices_offline(&all).is_empty(),
        "the slave reported down raised device.offline: {all:#?}"
    );
    assert_eq!(of_type(&all, "source.offline"), 1, "{all:#?}");
    // Seen by xf (it owns what the slave serves), not by sw (nothing behind the slave is its).
    let id = ev["id"].as_i64().unwrap();
    let xf = hub.add_token("xf", "read").unwrap();
    let sw = hub.add_token("sw", "read").unwrap();
    assert_eq!(get_as(&hub, &xf, &format!("/api/v1/events/{id}")), 200);
    assert_eq!(get_as(&hub, &sw, &format!("/api/v1/events/{id}")), 404);

    // Stop the simulator (it writes what it answered), then every answered value is at the hub once.
    sim.terminate(Duration::from_secs(10));
    let summary: Json =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    for (sensor, component, profile, u, line, _) in DEVICES {
        let want = answered(&summary, line, *u);
        if *sensor == "EF-9003" {
            assert_eq!(want, 0, "the mute slave answered");
            continue;
        }
        assert!(want >= 8, "{sensor}: only {want} values answered");
        let got = wait_for(
            &format!("{sensor}'s {want} values at the hub"),
            Duration::from_secs(60),
            || {
                let n = stored(&hub, component, profile, started);
                (n == want).then_some(n)
            },
        );
        assert!(
            got.is_ok(),
            "{sensor}: hub holds {} of {want}",
            stored(&hub, component, profile, started)
        );
    }
    // The simulator is gone: both lines are down, one event each, and still no device.offline.
    wait_for(
        "source.offline for both lines",
        Duration::from_secs(60),
        || {
            let all = events(&hub);
            let lines = ["modbus:rs485-1", "modbus:tcp-1"].iter().all(|l| {
                let id = format!("edge:edge-xq-01/{l}");
                all.iter()
                    .any(|e| e["type"] == "source.offline" && e["component_id"] == id)
            });
            lines.then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}
{:#?}
{}",
            events(&hub),
            hub.log_tail()
        )
    });
    std::thread::sleep(Duration::from_secs(20));
    let all = events(&hub);
    assert!(
        devices_offline(&all).is_empty(),
        "a sensor behind a line reported down raised its own: {all:#?}"
    );
    assert!(of_type(&all, "source.offline") >= 3, "{all:#?}");
    edge.kill9();
    hub.kill9();
}

/// Every event admin can list.
fn events(hub: &Hub) -> Vec<Json> {
    hub.get("/api/v1/events?limit=1000")
        .ok()
        .and_then(|j| j["items"].as_array().cloned())
        .unwrap_or_default()
}

/// The simulated devices' components with a `device.offline` (the seed's other sensors of the
/// edge are not simulated: theirs are expected).
fn devices_offline(events: &[Json]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "device.offline")
        .filter_map(|e| e["component_id"].as_str())
        .filter(|c| DEVICES.iter().any(|d| d.1 == *c))
        .map(str::to_string)
        .collect()
}

/// How many events of type `t`.
fn of_type(events: &[Json], t: &str) -> usize {
    events.iter().filter(|e| e["type"] == t).count()
}

/// The HTTP status of `GET path` with `token`.
fn get_as(hub: &Hub, token: &str, path: &str) -> u16 {
    reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{}{path}", hub.http))
        .bearer_auth(token)
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}
