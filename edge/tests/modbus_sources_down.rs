//! What the edge's status says of its Modbus sources, with real processes: `firmware-sim
//! modbus` slaves behind a Modbus TCP connection, polled by the real `edge run`, whose sealed
//! status is read off the hub broker. A mute slave is listed down (`modbus:<line>/<unit>`, its
//! sensor only); the simulator stopping makes the whole line down (`modbus:<line>`, every
//! sensor on it); its return, with the slave answering again, empties the list.

mod common;
mod modbus_rig;

use common::StatusWatch;
use modbus_rig::{line_toml, workdir, Rig, Sim};
use protocol::uplink::SourceDown;
use std::time::Duration;
use wangge_testkit::{free_port, wait_until};

/// The sources the edge's newest status lists down.
fn listed(watch: &StatusWatch) -> Vec<SourceDown> {
    watch
        .last
        .lock()
        .unwrap()
        .as_ref()
        .map(|s| s.sources_down.clone())
        .unwrap_or_default()
}

fn down(source: &str, sensors: &[&str]) -> SourceDown {
    SourceDown {
        source: source.into(),
        sensors: sensors.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn a_stopped_slave_and_line_are_listed_down_in_the_status_and_cleared_on_return() {
    let (dir, link) = workdir();
    let fl = "modbus-flood-level";
    let tcp = free_port();
    let devices = |unit4: &str| vec![format!("1:{fl}"), format!("4:{fl}{unit4}")];
    let start = |unit4: &str| {
        let d = devices(unit4);
        let d: Vec<&str> = d.iter().map(String::as_str).collect();
        Sim::start(dir.path(), &link, tcp, &[&format!("9:{fl}")], &d)
    };
    let sim = start(":mute");
    let modbus = line_toml(
        "gw",
        &format!("tcp = \"127.0.0.1:{tcp}\""),
        "timeout = \"300ms\"\nbackoff_max = \"1s\"",
        &[(1, fl, "FL-1"), (4, fl, "FL-4")],
    );
    let rig = Rig::start(dir.path(), &modbus, "sources-down");
    let watch = StatusWatch::start(rig.hub_port);

    // The mute unit: after two failed polls, only it, with only its sensor.
    wait_until(
        "the mute slave listed down",
        Duration::from_secs(30),
        || listed(&watch) == vec![down("modbus:gw/4", &["FL-4"])],
    );
    assert_eq!(rig.edge.metric("edge_sources_down", ""), 1.0);

    // The gateway goes away: the line cannot be reopened, so it is down with every sensor.
    sim.stop();
    wait_until("the line listed down", Duration::from_secs(30), || {
        listed(&watch).contains(&down("modbus:gw", &["FL-1", "FL-4"]))
    });

    // Back, with unit 4 answering too: nothing is down any more.
    let _sim = start("");
    wait_until("nothing listed down", Duration::from_secs(60), || {
        watch.online() == Some(true) && listed(&watch).is_empty()
    });
    assert_eq!(rig.edge.metric("edge_sources_down", ""), 0.0);
    assert_eq!(rig.edge.metric("edge_status_sources_dropped", ""), 0.0);
}
