//! Configuration from the hub, the edge's side: the real `edge` binary, real mosquitto brokers,
//! the acking hub stub, and a hub-side client that publishes sealed desired configurations
//! (retained, as the hub does) and reads the edge's sealed reports.

mod common;

use common::*;
use protocol::edge_config::{ConfigOutcome, ConfigReport, DesiredConfig};
use protocol::uplink::{mac_key, topics, ReadingFlags};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The hub's side of the configuration plane: publishes desired configurations, collects
/// reports that open under the edge's key.
struct HubConfig {
    rt: tokio::runtime::Runtime,
    client: AsyncClient,
    reports: Arc<Mutex<Vec<ConfigReport>>>,
}

impl HubConfig {
    fn connect(port: u16) -> HubConfig {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let o = MqttOptions::new(format!("hub-config-{}", free_port()), "127.0.0.1", port);
        let (client, mut el) = AsyncClient::new(o, 64);
        let reports = Arc::new(Mutex::new(Vec::new()));
        let (r, c) = (reports.clone(), client.clone());
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rd = ready.clone();
        rt.spawn(async move {
            let key = mac_key(SECRET);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let topic = topics::config_report(EDGE_ID);
                        let _ = c.subscribe(topic, QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => rd.store(true, SEQ),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Ok(rep) = ConfigReport::open(&p.payload, &key, EDGE_ID) {
                            r.lock().unwrap().push(rep);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        wait_until("hub config client", Duration::from_secs(10), || {
            ready.load(SEQ)
        });
        HubConfig {
            rt,
            client,
            reports,
        }
    }

    /// Publishes version `version` of `document`, sealed under `secret`'s key, retained.
    fn publish_with(&self, secret: &str, version: u64, document: &str) {
        let c = DesiredConfig::new(EDGE_ID, version, document.to_string(), 1);
        let sealed = c.seal(&mac_key(secret));
        let client = self.client.clone();
        self.rt
            .block_on(async move {
                client
                    .publish(topics::config(EDGE_ID), QoS::AtLeastOnce, true, sealed)
                    .await
            })
            .unwrap();
    }

    fn publish(&self, version: u64, document: &str) {
        self.publish_with(SECRET, version, document);
    }

    /// Waits for a report on `version` and returns it.
    fn report_on(&self, version: u64, within: Duration) -> ConfigReport {
        let mut found = None;
        wait_until(&format!("a report on v{version}"), within, || {
            found = self
                .reports
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|r| r.version == version)
                .cloned();
            found.is_some()
        });
        found.unwrap()
    }
}

const SEQ: std::sync::atomic::Ordering = std::sync::atomic::Ordering::SeqCst;

fn setup(uplink_extra: &str) -> (tempfile::TempDir, Mosquitto, Mosquitto, EdgeConfig) {
    let dir = tempfile::tempdir().unwrap();
    let (site, hub) = (broker(), broker());
    let mut cfg = EdgeConfig::new(site.port, hub.port, dir.path(), "");
    cfg.uplink_extra = uplink_extra.to_string();
    (dir, site, hub, cfg)
}

/// The version the edge's state file says it runs on.
fn running_version(cfg: &EdgeConfig) -> u64 {
    let Ok(text) = std::fs::read_to_string(cfg.data_dir.join("hub-config/state.json")) else {
        return 0; // none stored yet
    };
    let v: serde_json::Value = serde_json::from_str(&text).expect("the state file is whole");
    v["current"]["version"].as_u64().unwrap_or(0)
}

fn log_of(edge: &EdgeProc) -> String {
    std::fs::read_to_string(&edge.log).unwrap_or_default()
}

fn publish_range(p: &mut Publisher, sensors: usize, from: u64, to: u64) {
    for n in from..to {
        let (topic, payload) = canonical((n as usize) % sensors, n);
        p.publish(&topic, payload);
    }
    p.flush();
}

/// Every reading published (2 quantities per message) is at the hub exactly once.
fn assert_exactly_once(store: &Arc<Mutex<Store>>, messages: usize) {
    let want = messages * 2;
    wait_until("every reading at the hub", Duration::from_secs(60), || {
        store.lock().unwrap().unique() >= want
    });
    let st = store.lock().unwrap();
    assert_eq!(st.unique(), want, "nothing lost, nothing extra");
    assert_eq!(st.bad_mac, 0);
}

#[test]
fn a_config_from_the_hub_applies_in_place_and_a_broken_or_forged_one_changes_nothing() {
    let (dir, site, hub, cfg) = setup("");
    let (store, _stub) = acking_hub(hub.port);
    let edge = EdgeProc::start_site_up(dir.path(), &cfg, "a");
    let hubcfg = HubConfig::connect(hub.port);
    wait_until("uplink connected", Duration::from_secs(20), || {
        edge.metric("edge_uplink_connected", "") >= 1.0
    });
    let mut p = Publisher::connect(site.port);
    publish_range(&mut p, 2, 0, 200);

    // v1 adds sensor T-0001 and a validation limit: applied without restarting anything.
    hubcfg.publish(
        1,
        "[edge]\nsensors = [\"T-0000\", \"T-0001\"]\n[validate.limits.tilt]\nmax = 80.0\n",
    );
    let r = hubcfg.report_on(1, Duration::from_secs(20));
    assert_eq!((r.outcome, r.applied_version), (ConfigOutcome::Applied, 1));
    assert_eq!(running_version(&cfg), 1);
    assert!(
        log_of(&edge).contains("restarted=[]"),
        "no source restarted"
    );
    assert_eq!(
        edge.metric("edge_uplink_connects_total", ""),
        1.0,
        "uplink untouched"
    );
    publish_range(&mut p, 2, 200, 400);
    assert_exactly_once(&store, 400);
    let registered_after = store
        .lock()
        .unwrap()
        .readings
        .iter()
        .filter(|(_, r)| r.sensor.0 == "T-0001" && r.ts_ns >= (1_732_500_000_200 * 1_000_000))
        .all(|(_, r)| !r.flags.has(ReadingFlags::UNREGISTERED));
    assert!(
        registered_after,
        "the new sensor is registered once v1 runs"
    );

    // v2 does not validate: refused with the field named, the running config stays.
    hubcfg.publish(2, "[uplink]\nbatch_readings_max = 0\n");
    let r = hubcfg.report_on(2, Duration::from_secs(20));
    assert_eq!((r.outcome, r.applied_version), (ConfigOutcome::Refused, 1));
    let e = r.error.unwrap();
    assert!(
        e.contains("hub config v2") && e.contains("uplink.batch_readings_max"),
        "{e}"
    );
    assert_eq!(running_version(&cfg), 1);

    // v3 sealed with another key, then a replay of v1: ignored, counted, nothing changes.
    hubcfg.publish_with("not-the-edges-secret", 3, "[edge]\nsensors = []\n");
    wait_until("forged config counted", Duration::from_secs(20), || {
        edge.metric("edge_configs_rejected_total", "") >= 1.0
    });
    hubcfg.publish(1, "[edge]\nsensors = []\n");
    publish_range(&mut p, 2, 400, 600);
    assert_exactly_once(&store, 600);
    assert_eq!(running_version(&cfg), 1);
    assert!(hubcfg
        .reports
        .lock()
        .unwrap()
        .iter()
        .all(|r| r.version != 3));
    assert_eq!(edge.metric("edge_uplink_connects_total", ""), 1.0);
}

#[test]
fn a_config_that_breaks_the_uplink_rolls_back_within_the_confirm_window() {
    let (dir, site, hub, cfg) = setup("config_confirm_ms = 3000");
    let (store, _stub) = acking_hub(hub.port);
    let edge = EdgeProc::start_site_up(dir.path(), &cfg, "b");
    let hubcfg = HubConfig::connect(hub.port);
    let pid = edge.pid();
    let mut p = Publisher::connect(site.port);
    publish_range(&mut p, 2, 0, 100);

    // A good uplink change: the agent restarts on it (same process), the uplink comes back,
    // the change is confirmed.
    hubcfg.publish(1, "[uplink]\nbatch_age_ms = 50\nconfig_confirm_ms = 3000\n");
    let r = hubcfg.report_on(1, Duration::from_secs(30));
    assert_eq!((r.outcome, r.applied_version), (ConfigOutcome::Applied, 1));
    assert_eq!(edge.pid(), pid);

    // A CA the hub's broker does not speak: TLS to a plain port never connects.
    let certs = TestCerts::make(dir.path());
    let pem = String::from_utf8(certs.ca_pem()).unwrap();
    hubcfg.publish(2, &format!("[hub]\nca_pem = '''\n{pem}'''\n"));
    publish_range(&mut p, 2, 100, 300);
    let r = hubcfg.report_on(2, Duration::from_secs(40));
    assert_eq!(
        (r.outcome, r.applied_version),
        (ConfigOutcome::RolledBack, 1)
    );
    assert!(r.error.unwrap().contains("config_confirm_ms"));
    assert_eq!(
        running_version(&cfg),
        1,
        "back on the last known good version"
    );
    edge.wait_source_up("site");
    publish_range(&mut p, 2, 300, 400);
    assert_exactly_once(&store, 400);
}

#[test]
fn kill_9_mid_apply_boots_on_the_old_or_the_new_config_never_a_torn_one() {
    let (dir, site, hub, cfg) = setup("");
    let (store, _stub) = acking_hub(hub.port);
    let hubcfg = HubConfig::connect(hub.port);
    let mut p = Publisher::connect(site.port);
    let (mut sent, mut prev) = (0, 0);
    for round in 1..=4u64 {
        let mut edge = EdgeProc::start_site_up(dir.path(), &cfg, &format!("c{round}"));
        publish_range(&mut p, 2, sent, sent + 50);
        sent += 50;
        // Each version changes the uplink: the agent stores it, then restarts on it. The kill
        // lands before, during or after that, a little later each round.
        hubcfg.publish(round, &format!("[uplink]\nbatch_age_ms = {}\n", 40 + round));
        std::thread::sleep(Duration::from_millis(20 * round));
        edge.kill9();
        let v = running_version(&cfg);
        assert!(
            (prev..=round).contains(&v),
            "round {round}: state on v{v} after v{prev}"
        );
        prev = v;
    }
    // The last start comes up on a whole config and ends on the newest version.
    let edge = EdgeProc::start_site_up(dir.path(), &cfg, "c-final");
    let r = hubcfg.report_on(4, Duration::from_secs(30));
    assert_eq!((r.outcome, r.applied_version), (ConfigOutcome::Applied, 4));
    assert!(log_of(&edge).contains("starting"));
    publish_range(&mut p, 2, sent, sent + 50);
    assert_exactly_once(&store, (sent + 50) as usize);
}

#[test]
fn only_the_sources_a_config_changes_restart() {
    let (dir, site, hub, cfg) = setup("");
    let site2 = broker();
    let (store, _stub) = acking_hub(hub.port);
    let edge = EdgeProc::start_site_up(dir.path(), &cfg, "d");
    let hubcfg = HubConfig::connect(hub.port);
    let mut p = Publisher::connect(site.port);
    publish_range(&mut p, 2, 0, 100);
    let mqtt = |name: &str, port: u16| {
        format!("[[mqtt]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\n")
    };
    // v1 keeps `site` as it is and adds `site2`: only `site2` starts.
    let doc = format!("{}{}", mqtt("site", site.port), mqtt("site2", site2.port));
    hubcfg.publish(1, &doc);
    let r = hubcfg.report_on(1, Duration::from_secs(20));
    assert_eq!(r.outcome, ConfigOutcome::Applied);
    edge.wait_source_up("site2");
    assert!(
        log_of(&edge).contains(r#"restarted=["mqtt:site2"]"#),
        "{}",
        log_of(&edge)
    );
    let mut p2 = Publisher::connect(site2.port);
    for n in 100..200 {
        let (topic, payload) = canonical(0, n);
        p2.publish(&topic, payload);
    }
    p2.flush();
    publish_range(&mut p, 2, 200, 300);
    assert_exactly_once(&store, 300);
    // `site` never reconnected: one connect in the whole log.
    let connects = log_of(&edge)
        .matches("site broker connected source=site\n")
        .count();
    assert_eq!(connects, 1, "the unchanged source kept its connection");
    assert_eq!(edge.metric("edge_uplink_connects_total", ""), 1.0);
}

#[test]
fn with_the_hub_unreachable_the_edge_boots_on_its_stored_config() {
    let (dir, site, hub, cfg) = setup("");
    let site2 = broker();
    let (_store, stub) = acking_hub(hub.port);
    let mut edge = EdgeProc::start_site_up(dir.path(), &cfg, "e");
    let hubcfg = HubConfig::connect(hub.port);
    let doc = format!(
        "[[mqtt]]\nname = \"site\"\nhost = \"127.0.0.1\"\nport = {}\n\
         [[mqtt]]\nname = \"site2\"\nhost = \"127.0.0.1\"\nport = {}\n",
        site.port, site2.port
    );
    hubcfg.publish(1, &doc);
    assert_eq!(
        hubcfg.report_on(1, Duration::from_secs(20)).outcome,
        ConfigOutcome::Applied
    );
    edge.kill9();
    drop((hubcfg, stub, hub)); // the hub and its broker are gone
    let edge = EdgeProc::start(dir.path(), &cfg, "e2");
    edge.wait_source_up("site2");
    assert_eq!(edge.metric("edge_uplink_connected", ""), 0.0);
    assert!(log_of(&edge).contains("running on the hub's configuration version=1"));
}
