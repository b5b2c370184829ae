//! The real `edge` binary against real mosquitto brokers and an acking hub stub.
//!
//! Two brokers: the *site* broker sensors publish to, and the *hub* broker the stub listens
//! on, so the hub side can go away without the sensors noticing.

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn setup(extra: &str) -> (tempfile::TempDir, Mosquitto, Mosquitto, EdgeConfig) {
    let dir = tempfile::tempdir().unwrap();
    let site = broker();
    let hub = broker();
    let cfg = EdgeConfig::new(site.port, hub.port, dir.path(), extra);
    (dir, site, hub, cfg)
}

fn publish_range(p: &mut Publisher, sensors: usize, from: u64, to: u64) {
    for n in from..to {
        let (topic, payload) = canonical((n as usize) % sensors, n);
        p.publish(&topic, payload);
    }
    p.flush();
}

#[test]
fn readings_published_in_canonical_json_arrive_exactly_once_at_the_hub() {
    let (dir, site, hub, cfg) = setup("");
    let (store, _stub) = acking_hub(hub.port);
    let edge = EdgeProc::start_site_up(dir.path(), &cfg, "a");
    wait_until("uplink connected", Duration::from_secs(20), || {
        edge.metric("edge_uplink_connected", "") >= 1.0
    });

    let mut p = Publisher::connect(site.port);
    publish_range(&mut p, 20, 0, 3000);
    // Malformed payloads: counted by reason, nothing else disturbed.
    p.publish("sensors/T-0001/readings", b"{not json".to_vec());
    p.publish("acme/HY-9/data", br#"{"sn":1,"data":{}}"#.to_vec());
    p.flush();

    let want = 3000 * 2;
    wait_until("all readings at the hub", Duration::from_secs(30), || {
        store.lock().unwrap().unique() >= want
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let st = store.lock().unwrap();
    assert_eq!(st.unique(), want);
    assert_eq!(st.readings.len(), want, "no reading stored twice");
    assert_eq!(st.bad_mac, 0);
    drop(st);
    wait_until("rejects counted", Duration::from_secs(10), || {
        edge.metric("edge_rejects_total", "reason=\"syntax\"") >= 1.0
            && edge.metric("edge_rejects_total", "reason=\"missing_sensor\"") >= 1.0
    });
    // Unregistered sensors are forwarded and flagged (only T-0000 is registered here).
    assert!(edge.metric("edge_unregistered_readings_total", "") > 0.0);
    wait_until("backlog acked", Duration::from_secs(10), || {
        edge.get("/buffer")
            .is_some_and(|b| b.contains("\"backlog_readings\":0"))
    });
}

#[test]
fn kill_9_mid_stream_then_restart_loses_nothing_and_resends_no_acked_batch() {
    let (dir, site, hub, cfg) = setup("");
    let (store, _stub) = acking_hub(hub.port);
    let mut edge = EdgeProc::start_site_up(dir.path(), &cfg, "1");

    let mut p = Publisher::connect(site.port);
    publish_range(&mut p, 50, 0, 4000);
    // Mid-stream: some of it acked by the hub, some in flight, some only on disk.
    edge.kill9();
    let before = store.lock().unwrap().unique();

    let cfg2 = EdgeConfig {
        api_port: free_port(),
        ..cfg
    };
    let edge = EdgeProc::start(dir.path(), &cfg2, "2");
    let recovery = edge.recovery_line();
    assert!(recovery.contains("epoch=2"), "{recovery}");
    let unacked: usize = recovery
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("unacked="))
        .and_then(|v| v.parse().ok())
        .expect("recovery line names unacked");
    edge.wait_source_up("site");
    publish_range(&mut p, 50, 10_000, 12_000);

    // Epoch 2 sends the recovered backlog, what came after the restart, and what the site
    // broker redelivers: messages received before the kill but not yet PUBACKed (not durable),
    // kept by the edge's persistent session.
    let want_epoch2 = unacked + 2000 * 2;
    wait_until(
        "backlog and new readings at the hub",
        Duration::from_secs(30),
        || {
            store
                .lock()
                .unwrap()
                .per_epoch()
                .get(&2)
                .copied()
                .unwrap_or(0)
                >= want_epoch2
        },
    );
    // Nothing published before the kill is lost either, even what was in flight.
    let all_before = (0..4000u64).map(|n| {
        let (topic, _) = canonical((n as usize) % 50, n);
        let sensor = topic.split('/').nth(1).unwrap().to_string();
        (sensor, 0, (1_732_500_000_000 + n as i64) * 1_000_000)
    });
    let all_before: Vec<_> = all_before.collect();
    wait_until(
        "every reading published before the kill at the hub",
        Duration::from_secs(30),
        || {
            let keys = store.lock().unwrap().keys();
            all_before.iter().all(|k| keys.contains(k))
        },
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let st = store.lock().unwrap();
    let epoch2 = st.per_epoch().get(&2).copied().unwrap_or(0);
    assert!(
        epoch2 >= want_epoch2,
        "epoch 2 carried {epoch2} readings, fewer than the recovered {unacked} + 4000 new"
    );
    let redelivered = epoch2 - want_epoch2;
    let keys = st.keys();
    for n in 10_000..12_000u64 {
        let (topic, _) = canonical((n as usize) % 50, n);
        let sensor = topic.split('/').nth(1).unwrap().to_string();
        assert!(
            keys.contains(&(sensor, 0, (1_732_500_000_000 + n as i64) * 1_000_000)),
            "reading {n} after restart lost"
        );
    }
    // Only readings in flight at the kill (acked by the hub, cursor not yet persisted) and
    // the broker's redeliveries may come again: never "everything".
    eprintln!(
        "kill -9: before={before} {recovery} epochs={:?} repeats={}",
        st.per_epoch(),
        st.repeats()
    );
    let window = 16 * 500;
    assert!(
        st.repeats() <= window + redelivered,
        "{} readings resent (window {window}, {redelivered} redelivered by the broker)",
        st.repeats()
    );
    assert!(st.unique() >= before);
}

#[test]
fn hub_broker_down_for_a_while_backlog_grows_then_drains_completely() {
    let (dir, site, hub, cfg) = setup("");
    let hub_port = hub.port;
    let (store, stub) = acking_hub(hub_port);
    let edge = EdgeProc::start_site_up(dir.path(), &cfg, "a");
    let mut p = Publisher::connect(site.port);
    publish_range(&mut p, 20, 0, 500);
    wait_until("first readings at the hub", Duration::from_secs(30), || {
        store.lock().unwrap().unique() >= 1000
    });

    // The hub (its broker and the stub) goes away while sensors keep reporting.
    drop(stub);
    drop(hub);
    publish_range(&mut p, 20, 500, 3500);
    wait_until(
        "backlog holds the readings",
        Duration::from_secs(30),
        || edge.metric("edge_buffer_records", "") >= 6000.0,
    );
    assert_eq!(edge.metric("edge_uplink_connected", ""), 0.0);

    let _hub = broker_config().port(hub_port).start();
    let _stub = HubStub::start(hub_port, store.clone());
    wait_until(
        "backlog drained to the hub",
        Duration::from_secs(60),
        || store.lock().unwrap().unique() >= 7000,
    );
    wait_until("buffer empty", Duration::from_secs(30), || {
        edge.metric("edge_buffer_records", "") == 0.0
    });
    let st = store.lock().unwrap();
    eprintln!(
        "hub down: stored {} unique, {} total, {} duplicate batches",
        st.unique(),
        st.readings.len(),
        st.duplicate_batches
    );
    assert_eq!(st.unique(), 7000, "every reading arrived");
    assert_eq!(st.readings.len(), 7000, "none stored twice");
}

#[test]
fn edge_check_fails_loudly_when_the_hub_is_unreachable_and_passes_when_it_is_up() {
    let (dir, _site, hub, cfg) = setup("");
    let run = |cfg: &EdgeConfig, tag: &str| {
        let path = write_config(dir.path(), &format!("check-{tag}.toml"), &cfg.render());
        edge_on_config(&["check", "--timeout-s", "3"], &path)
    };
    let out = run(&cfg, "up");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK   hub ("), "{text}");

    let down = EdgeConfig {
        hub_port: free_port(),
        ..cfg
    };
    drop(hub);
    let out = run(&down, "down");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("FAIL hub ("))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("fix:"), "{line}");
}

#[test]
fn a_config_typo_is_reported_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let typo = "[edge]\nid = \"e\"\n[hub]\nsecret = \"s\"\nprot = 1883\n";
    let out = edge_on_config(&["check"], &write_config(dir.path(), "edge.toml", typo));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("edge.toml:5:") && text.contains("prot") && text.contains("fix:"),
        "{text}"
    );
}

#[test]
fn edge_tail_streams_normalized_readings_and_edge_buffer_reports_the_backlog() {
    use std::io::BufRead;
    let (dir, site, hub, cfg) = setup("");
    let edge = EdgeProc::start_site_up(dir.path(), &cfg, "tail");
    let api = format!("127.0.0.1:{}", edge.api_port);
    let mut tail = edge_command(&["tail", "--sensor", "T-0003", "--api", &api])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // No hub stub: everything stays in the backlog.
    let mut p = Publisher::connect(site.port);
    let mut line = None;
    for round in 0..50u64 {
        publish_range(&mut p, 10, round * 10, round * 10 + 10);
        if let Ok(l) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            line = Some(l);
            break;
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
    let line = line.expect("edge tail printed a reading");
    assert!(
        line.contains("T-0003") && (line.contains("tilt=") || line.contains("battery=")),
        "{line}"
    );
    assert!(!line.contains("T-0004"), "{line}");

    wait_until("backlog visible", Duration::from_secs(10), || {
        edge.metric("edge_buffer_records", "") > 0.0
    });
    let out = edge_command(&["buffer", "--api", &api]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "backlog:",
        "oldest:",
        "drain rate:",
        "time to drain:",
        "uplink:",
    ] {
        assert!(text.contains(want), "{want} missing in:\n{text}");
    }
    assert!(!text.contains("backlog:      0 readings"), "{text}");
    drop(hub);
}

#[test]
fn the_hub_sees_a_retained_online_status_with_backlog_and_the_last_will_when_the_edge_dies() {
    let (dir, site, hub, cfg) = setup("");
    let watch = StatusWatch::start(hub.port);
    let mut edge = EdgeProc::start(dir.path(), &cfg, "will");
    wait_until("online status", Duration::from_secs(20), || {
        watch.online() == Some(true)
    });
    // No stub: readings pile up and the periodic status reports the backlog.
    edge.wait_source_up("site");
    let mut p = Publisher::connect(site.port);
    publish_range(&mut p, 5, 0, 100);
    wait_until("status with backlog", Duration::from_secs(20), || {
        watch.last.lock().unwrap().as_ref().is_some_and(|s| {
            s.online && s.backlog_readings == 200 && s.oldest_unacked_ns.is_some() && s.epoch == 1
        })
    });
    edge.kill9();
    wait_until("last will: offline", Duration::from_secs(20), || {
        watch.online() == Some(false)
    });
}

/// What an edge with its own site broker needs kept alive, in drop order: the edge process,
/// the acking hub stub, the hub and site brokers, the temp dir.
type Running = (EdgeProc, HubStub, Mosquitto, Mosquitto, tempfile::TempDir);

/// An edge running its own site broker (`[site_broker]` on a free port) in front of an acking
/// hub stub, once its embedded source is up: the broker's port, the hub's store, the guards.
fn edge_with_its_own_broker(tag: &str) -> (u16, Arc<Mutex<Store>>, Running) {
    let broker_port = free_port();
    let (dir, site, hub, cfg) = setup(&format!(
        "[site_broker]\nlisten = \"127.0.0.1:{broker_port}\"\n"
    ));
    let (store, stub) = acking_hub(hub.port);
    let edge = EdgeProc::start(dir.path(), &cfg, tag);
    edge.wait_source_up("embedded");
    (broker_port, store, (edge, stub, hub, site, dir))
}

#[test]
fn sensors_can_publish_to_the_edges_own_embedded_broker() {
    let (broker_port, store, _running) = edge_with_its_own_broker("embedded");
    let mut p = Publisher::connect(broker_port);
    publish_range(&mut p, 10, 0, 500);
    wait_until("readings at the hub", Duration::from_secs(30), || {
        store.lock().unwrap().unique() >= 1000
    });
    assert_eq!(store.lock().unwrap().unique(), 1000);
}

#[test]
fn sensors_with_an_empty_client_id_are_admitted_by_the_embedded_broker() {
    let (broker_port, store, _running) = edge_with_its_own_broker("embedded-anon");
    // MQTT 3.1.1 §3.1.3.1: an empty client id with clean session is the server's to name.
    let mut first = Publisher::connect_as(broker_port, "");
    let mut second = Publisher::connect_as(broker_port, "");
    publish_range(&mut first, 5, 0, 100);
    publish_range(&mut second, 5, 100, 200);
    // Two readings a message.
    wait_until(
        "readings of both anonymous sensors at the hub",
        Duration::from_secs(30),
        || store.lock().unwrap().unique() >= 400,
    );
    assert_eq!(store.lock().unwrap().unique(), 400);

    // Without clean session the server must refuse it: CONNACK 0x02, identifier rejected.
    use std::io::{Read, Write};
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", broker_port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"\x10\x0c\x00\x04MQTT\x04\x00\x00\x1e\x00\x00")
        .unwrap();
    let mut connack = [0u8; 4];
    raw.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x02]);
}

#[test]
fn the_uplink_runs_over_tls_verified_with_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::make(dir.path());
    let site = broker();
    let hub = Mosquitto::config().tls(&certs).start();
    let tls_port = hub.tls_port.unwrap();
    let (store, _stub) = acking_hub(hub.port);
    let cfg = EdgeConfig::new(site.port, tls_port, dir.path(), "");
    // hub.ca_file goes into [hub]: render, then insert it there.
    let text = cfg.render().replacen(
        "keepalive_s = 5\n",
        &format!("keepalive_s = 5\nca_file = \"{}\"\n", certs.ca.display()),
        1,
    );
    let path = write_config(dir.path(), "edge-tls.toml", &text);
    let check = edge_on_config(&["check", "--timeout-s", "5"], &path);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(out.contains("OK   hub ("), "{out}");
    let edge = EdgeProc::start_text(dir.path(), &text, cfg.api_port, "tls");
    let mut p = Publisher::connect(site.port);
    edge.wait_source_up("site");
    publish_range(&mut p, 5, 0, 200);
    let ok = (0..600).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        store.lock().unwrap().unique() >= 400
    });
    assert!(ok, "readings over TLS reached the hub");
}

#[test]
fn site_messages_are_acknowledged_to_the_broker_once_durable() {
    // With at most 5 unacknowledged QoS 1 messages towards the edge, 1000 messages only get
    // through if the edge really sends its (post-fsync) PUBACKs.
    let dir = tempfile::tempdir().unwrap();
    let site = Mosquitto::config()
        .settings("max_inflight_messages 5\n")
        .start();
    let hub = broker();
    let cfg = EdgeConfig::new(site.port, hub.port, dir.path(), "");
    let (store, _stub) = acking_hub(hub.port);
    let _edge = EdgeProc::start_site_up(dir.path(), &cfg, "acks");
    let mut p = Publisher::connect(site.port);
    publish_range(&mut p, 10, 0, 1000);
    wait_until("all readings at the hub", Duration::from_secs(30), || {
        store.lock().unwrap().unique() >= 2000
    });
}

#[test]
fn a_full_buffer_while_the_hub_is_away_reports_every_evicted_reading_as_a_gap() {
    let (dir, site, hub, mut cfg) =
        setup("[buffer]\nbuffer_bytes_max = 65536\nsegment_bytes_max = 8192\n");
    // A small in-flight window so most of the backlog is on disk, not in memory.
    cfg.uplink_extra = "inflight_batches_max = 1\nbatch_readings_max = 100\n".into();
    let edge = EdgeProc::start_site_up(dir.path(), &cfg, "full");
    // No hub stub yet: batches go unacked and the disk bound forces evictions.
    let mut p = Publisher::connect(site.port);
    publish_range(&mut p, 10, 0, 3000);
    wait_until("evictions", Duration::from_secs(20), || {
        edge.metric("edge_buffer_evicted_total", "") > 0.0
    });
    assert!(edge.metric("edge_buffer_bytes", "") <= 65536.0);

    let (store, _stub) = acking_hub(hub.port);
    wait_until(
        "survivors and gaps at the hub",
        Duration::from_secs(60),
        || {
            let st = store.lock().unwrap();
            st.unique() as u64 + st.gaps == 6000
        },
    );
    let st = store.lock().unwrap();
    let evicted = edge.metric("edge_buffer_evicted_total", "");
    assert!(st.gaps > 0);
    assert_eq!(st.gaps as f64, evicted, "every eviction reported as a gap");
    assert_eq!(st.readings.len(), st.unique(), "none stored twice");
}

/// Whoever can publish on the edge's ack topic (a broker without ACLs, a stolen secret of
/// another edge) cannot make it drop readings the hub never stored: unsigned acks, acks sealed
/// with another key, acks the hub sealed for another edge, acks of another protocol version
/// and replayed acks of a batch not in flight are all ignored, counted by reason, and the
/// buffer keeps every record until the real hub acknowledges.
#[test]
fn forged_foreign_and_replayed_acks_leave_the_buffer_intact() {
    use protocol::uplink::{mac_key, topics, Ack, AckOutcome};
    let (dir, site, hub, cfg) = setup("");
    let edge = EdgeProc::start_site_up(dir.path(), &cfg, "a");
    wait_until("uplink up", Duration::from_secs(20), || {
        edge.metric("edge_uplink_connected", "") == 1.0
    });
    let mut p = Publisher::connect(site.port);
    publish_range(&mut p, 10, 0, 100);
    wait_until(
        "readings buffered and sent",
        Duration::from_secs(30),
        || {
            edge.metric("edge_buffer_records", "") >= 200.0
                && edge.metric("edge_batches_sent_total", "") >= 1.0
        },
    );
    let records = edge.metric("edge_buffer_records", "");

    let key = mac_key(SECRET);
    let topic = topics::acks(EDGE_ID);
    let mut attacker = Publisher::connect(hub.port);
    // Every (epoch, seq) the edge can have in flight, three forgeries each.
    for epoch in 0..4 {
        for seq in 0..40 {
            let ack = Ack {
                edge_id: EDGE_ID.into(),
                epoch,
                seq,
                outcome: AckOutcome::Stored,
            };
            attacker.publish(&topic, ack.encode_unsigned());
            attacker.publish(&topic, ack.seal(&mac_key("another edge's secret")));
            let foreign = Ack {
                edge_id: "edge-other".into(),
                ..ack.clone()
            };
            attacker.publish(&topic, foreign.seal(&key));
        }
    }
    let mut old_version = Ack {
        edge_id: EDGE_ID.into(),
        epoch: 1,
        seq: 1,
        outcome: AckOutcome::Stored,
    }
    .seal(&key);
    old_version[0] = 1;
    attacker.publish(&topic, old_version);
    let replayed = Ack {
        edge_id: EDGE_ID.into(),
        epoch: 999_999,
        seq: 1,
        outcome: AckOutcome::Stored,
    };
    attacker.publish(&topic, replayed.seal(&key));
    attacker.flush();
    let rejected =
        |reason: &str| edge.metric("edge_acks_rejected_total", &format!("reason=\"{reason}\""));
    wait_until("every forgery counted", Duration::from_secs(30), || {
        rejected("unsigned") >= 160.0
            && rejected("bad_mac") >= 160.0
            && rejected("foreign") >= 160.0
            && rejected("unknown_version") >= 1.0
            && edge.metric("edge_acks_unexpected_total", "") >= 1.0
    });
    assert_eq!(
        edge.metric("edge_buffer_records", ""),
        records,
        "a forged ack moved the buffer"
    );
    assert_eq!(edge.metric("edge_batches_acked_total", ""), 0.0);

    // The real hub answers: everything is delivered once and the buffer drains.
    let (store, _stub) = acking_hub(hub.port);
    wait_until("buffer drained", Duration::from_secs(60), || {
        edge.metric("edge_buffer_records", "") == 0.0
    });
    assert_eq!(store.lock().unwrap().unique(), 200);
}
