//! firmware-sim → edge → hub, all real processes: every reading the simulator recorded is
//! readable through the hub's API exactly once — also across crashes and outages.

use std::thread::JoinHandle;
use std::time::Duration;
use wangge_testkit::record::Recorded;
use wangge_testkit::{now_ns, wait_for, Mosquitto, VictoriaMetrics};
use wangge_tests::system::{
    assert_hub_has_exactly, assert_stream_recorded, sim_stream_args, simulate, start_hours_ago,
    Edge, Hub,
};

/// A firmware-sim run on a thread of its own: join for (record, summary).
type SimRun = JoinHandle<anyhow::Result<(Vec<Recorded>, serde_json::Value)>>;

/// A running hub (seeded, with `hub_config` appended to its config), site broker and edge in
/// one temp dir, and when they started; dropping it kills the edge and the hub.
struct System {
    hub: Hub,
    site: Mosquitto,
    edge: Edge,
    started: i64,
    dir: tempfile::TempDir,
}

impl System {
    fn start(hub_config: &str) -> System {
        let dir = tempfile::tempdir().unwrap();
        let mut hub = Hub::prepare(dir.path(), hub_config).unwrap();
        hub.start().unwrap();
        let site = Mosquitto::start();
        let mut edge = Edge::prepare(dir.path(), &hub, &site).unwrap();
        edge.start().unwrap();
        System {
            hub,
            site,
            edge,
            started: now_ns(),
            dir,
        }
    }

    /// firmware-sim arguments for a fast stream of the whole site, then `extra`.
    fn sim_args(&self, extra: &[&str]) -> Vec<String> {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        sim_stream_args(self.dir.path(), self.site.port, &extra)
    }

    /// Runs firmware-sim with `args` (its files tagged `tag`) to the end.
    fn simulate(&self, tag: &str, args: &[String]) -> (Vec<Recorded>, serde_json::Value) {
        simulate(self.dir.path(), tag, args).unwrap()
    }

    /// Starts firmware-sim with `args` on a thread, for the test to break things meanwhile.
    fn simulate_meanwhile(&self, tag: &'static str, args: Vec<String>) -> SimRun {
        let d = self.dir.path().to_path_buf();
        std::thread::spawn(move || simulate(&d, tag, &args))
    }

    /// Waits until the hub holds exactly `record`, failing with the differences after `timeout`.
    fn assert_stored(&self, record: &[Recorded], timeout: Duration) {
        assert_hub_has_exactly(&self.hub, record, self.started, timeout);
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.edge.kill9();
        self.hub.kill9();
    }
}

#[test]
fn every_reading_the_simulator_sent_is_stored_exactly_once_in_both_stores() {
    let vm = VictoriaMetrics::start();
    let influx = format!(
        "[influx]\nurl = \"http://127.0.0.1:{}\"\norg = \"wangge\"\nbucket = \"readings\"\ntoken = \"t\"\n",
        vm.port
    );
    let s = System::start(&influx);
    let args = s.sim_args(&[
        "--count",
        "3",
        "--seed",
        "11",
        "--scenario",
        "config/scenarios/faults.toml",
    ]);
    let (record, summary) = s.simulate("all", &args);
    assert_stream_recorded(&record, &summary, 1500, "the run covers all 200 sensors");
    s.assert_stored(&record, Duration::from_secs(120));

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
}

#[test]
fn a_hub_killed_mid_stream_loses_and_duplicates_nothing() {
    let mut s = System::start("");
    let sim = s.simulate_meanwhile("crash", s.sim_args(&["--count", "6", "--seed", "12"]));
    // Let readings flow, then pull the plug on the hub twice.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(4));
        s.hub.kill9();
        std::thread::sleep(Duration::from_secs(2));
        s.hub.start().unwrap();
    }
    let (record, _) = sim.join().unwrap().unwrap();
    s.assert_stored(&record, Duration::from_secs(120));
}

#[test]
fn an_edge_killed_mid_stream_loses_nothing_and_stores_nothing_twice() {
    let mut s = System::start("");
    // MQTT sensors: the edge's persistent session at the site broker keeps what was received
    // but not yet durable at the kill, and what is published while the edge is down.
    // Not lumen: its readings carry the edge's receive time, so they could not be told apart
    // from the second run's by time window.
    let before_args = vec![
        "--profiles".to_string(),
        "canonical,acme,gridsense".into(),
        "--mqtt".to_string(),
        format!("127.0.0.1:{}", s.site.port),
        "--interval-scale".into(),
        "0.02".into(),
        "--count".into(),
        "6".into(),
        "--seed".into(),
        "13".into(),
        "--start".into(),
        start_hours_ago(4),
    ];
    let sim = s.simulate_meanwhile("before", before_args);
    std::thread::sleep(Duration::from_secs(4));
    s.edge.kill9();
    let (before, _) = sim.join().unwrap().unwrap();
    s.edge.start().unwrap();
    // After the restart, serial lines too.
    let (after, _) = s.simulate("after", &s.sim_args(&["--count", "3", "--seed", "14"]));
    s.assert_stored(&after, Duration::from_secs(120));
    s.assert_stored(&before, Duration::from_secs(120));
}

#[test]
fn a_hub_unreachable_for_60_s_gets_the_whole_backlog_when_it_returns() {
    let mut s = System::start("");
    s.hub.kill9();
    let sim = s.simulate_meanwhile("outage", s.sim_args(&["--count", "4", "--seed", "15"]));
    std::thread::sleep(Duration::from_secs(60));
    s.hub.start().unwrap();
    let (record, _) = sim.join().unwrap().unwrap();
    s.assert_stored(&record, Duration::from_secs(180));
}
