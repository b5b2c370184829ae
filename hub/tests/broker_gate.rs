//! The broker gate against stock MQTT clients (mosquitto_sub / mosquitto_pub) holding one
//! edge's or one department's real credentials: every forbidden thing of SECURITY.md's
//! principal table is tried and refused, the allowed ones still work. Real SQLite registry,
//! real embedded broker, real ingest.

mod ingest_support;

use hub::broker::{self, BrokerConfig, BrokerHandle};
use hub::ingest::IngestHandle;
use hub::registry::{RegistryAdmin, SqliteRegistry};
use ingest_support::mosquitto_clients::{publish_once, sub, Sub};
use ingest_support::{
    batch, eventually, loopback_broker, now_ns, readings, seeded_sqlite_registry, store_and_ingest,
};
use protocol::uplink::{mac_key, topics};
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Hub {
    broker: BrokerHandle,
    _ingest: IngestHandle,
    registry: Arc<SqliteRegistry>,
    port: u16,
    _dir: tempfile::TempDir,
}

fn start_hub() -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let registry = seeded_sqlite_registry(dir.path());
    let cfg = BrokerConfig {
        revocation_check_ms: 200,
        ..loopback_broker()
    };
    let broker = broker::start(&cfg, registry.clone()).expect("broker starts");
    let (_store, ingest) = store_and_ingest(dir.path(), &broker, registry.clone());
    let port = broker.listen.expect("plain listener").port();
    Hub {
        broker,
        _ingest: ingest,
        registry,
        port,
        _dir: dir,
    }
}

fn publish(port: u16, user: &str, password: &str, topic: &str, retain: bool) -> bool {
    publish_once(port, user, password, topic, retain, None)
}

/// Edge A's side, published with its own credentials the way an edge does: sealed batches.
async fn edge_a_publishes(hub: &Hub, secret: &str, seq: u64) {
    let mut a = ingest_support::login(hub.port, "edge-a", secret).await;
    let b = batch(
        "edge-a",
        1,
        seq,
        readings("GATE-A", now_ns() - 10_000_000_000, 5),
    );
    a.publish_batch("edge-a", &b, &mac_key(secret)).await;
    assert_eq!(a.next_ack().await.seq, seq, "edge-a's batch is acked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_b_cannot_subscribe_to_edge_as_topics_or_to_any_events() {
    let hub = start_hub();
    let a = hub.registry.add_edge("edge-a", None, None).unwrap();
    let b = hub.registry.add_edge("edge-b", None, None).unwrap();
    let mut spies = Vec::new();
    for f in [
        "wangge/v1/edges/edge-a/batches",
        "wangge/v1/edges/edge-a/acks",
        "wangge/v1/edges/edge-a/status",
        "wangge/v1/edges/+/batches",
        "wangge/v1/events/#",
        "#",
    ] {
        spies.push(sub(hub.port, "edge-b", &b, "edge-b", &[f]));
        // One at a time: each takes over the previous one's client id (its own, which is fine).
        eventually(
            "the subscription was refused",
            Duration::from_secs(10),
            || hub.broker.metrics.refused_subscribe.load(Relaxed) as usize == spies.len(),
        )
        .await;
    }
    // B may still subscribe to its own acks.
    let own = sub(
        hub.port,
        "edge-b",
        &b,
        "edge-b",
        &["wangge/v1/edges/edge-b/acks"],
    );
    edge_a_publishes(&hub, &a, 1).await;
    // The hub also publishes an event-like message; nobody but a department may see it.
    hub.broker
        .outbound()
        .send(hub::broker::Outbound {
            topic: "wangge/v1/events/cg/fire.smoke".into(),
            payload: bytes::Bytes::from_static(b"{}"),
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for s in spies.iter().chain([&own]) {
        let seen = s.messages("wangge/");
        assert!(seen.is_empty(), "edge-b received {seen:?}");
    }
    assert_eq!(hub.broker.metrics.refused_subscribe.load(Relaxed), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_one_can_take_over_another_edges_or_the_hubs_client_id() {
    let hub = start_hub();
    let a = hub.registry.add_edge("edge-a", None, None).unwrap();
    let b = hub.registry.add_edge("edge-b", None, None).unwrap();
    for client_id in ["edge-a", "wangge-hub-ingest", "wangge-hub", "edge-b-2"] {
        let mut s = sub(hub.port, "edge-b", &b, client_id, &["x"]);
        let status = s
            .exited_within(Duration::from_secs(10))
            .expect("refused at CONNECT, not kept open");
        assert!(!status.success(), "client id {client_id:?} must be refused");
    }
    assert_eq!(hub.broker.metrics.refused_client_id.load(Relaxed), 4);
    // The hub's ingest link is still there: A's batches are still stored and acked.
    edge_a_publishes(&hub, &a, 1).await;
    // No edge may be registered under a hub client id either.
    assert!(hub
        .registry
        .add_edge("wangge-hub-ingest", None, None)
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_b_cannot_publish_on_foreign_event_unknown_topics_nor_retain_junk() {
    let hub = start_hub();
    let a = hub.registry.add_edge("edge-a", None, None).unwrap();
    let b = hub.registry.add_edge("edge-b", None, None).unwrap();
    let (dept_user, dept_secret) = hub.registry.add_mqtt_user("cg").unwrap();
    let watcher = sub(
        hub.port,
        &dept_user,
        &dept_secret,
        &dept_user,
        &["wangge/v1/events/cg/#"],
    );
    let metrics = hub.broker.metrics.clone();
    let refused = |n: u64| {
        let metrics = metrics.clone();
        move || metrics.refused_publish.load(Relaxed) == n
    };
    let counted = |n: u64| {
        eventually(
            "the gate counted the refusal",
            Duration::from_secs(10),
            refused(n),
        )
    };
    let b_publishes = |topic: &str, retain: bool| publish(hub.port, "edge-b", &b, topic, retain);
    let mut n = 0;
    for (topic, retain) in [
        (topics::batches("edge-a"), false),
        (topics::status("edge-a"), true),
        (topics::acks("edge-a"), false),
        (topics::acks("edge-b"), false),
        ("wangge/v1/events/cg/fire.smoke".to_string(), false),
        ("some/unknown/topic".to_string(), false),
        (topics::batches("edge-b"), true),
    ] {
        assert!(
            !b_publishes(&topic, retain),
            "{topic} (retain {retain}) must be refused"
        );
        n += 1;
        counted(n).await;
    }
    // A department may publish nothing, not even inside its own subtree.
    assert!(!publish(
        hub.port,
        &dept_user,
        &dept_secret,
        "wangge/v1/events/cg/fire.smoke",
        false
    ));
    counted(n + 1).await;
    // What an edge may publish still goes through: its own batches and retained status.
    assert!(b_publishes(&topics::batches("edge-b"), false));
    assert!(b_publishes(&topics::status("edge-b"), true));
    edge_a_publishes(&hub, &a, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = watcher.messages("wangge/");
    assert!(
        got.is_empty(),
        "forged events reached a department: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_will_on_someone_elses_topic_is_refused_at_connect() {
    let hub = start_hub();
    let b = hub.registry.add_edge("edge-b", None, None).unwrap();
    let out = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &hub.port.to_string(),
            "-V",
            "mqttv311",
        ])
        .args([
            "-u", "edge-b", "-P", &b, "-i", "edge-b", "-t", "x", "-W", "3",
        ])
        .args([
            "--will-topic",
            &topics::status("edge-a"),
            "--will-payload",
            "offline",
        ])
        .args(["--will-retain"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(hub.broker.metrics.refused_will.load(Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_user_receives_exactly_its_own_events() {
    let hub = start_hub();
    let (cg, cg_secret) = hub.registry.add_mqtt_user("cg").unwrap();
    let (sw, sw_secret) = hub.registry.add_mqtt_user("sw").unwrap();
    let cg_sub = sub(hub.port, &cg, &cg_secret, &cg, &["wangge/v1/events/cg/#"]);
    let sw_sub = sub(hub.port, &sw, &sw_secret, &sw, &["wangge/v1/events/sw/#"]);
    // cg reaching into sw's subtree, or everything, is refused.
    let mut spy = sub(hub.port, &cg, &cg_secret, &cg, &["wangge/v1/events/#"]);
    eventually(
        "cg's wide subscription was refused",
        Duration::from_secs(10),
        || hub.broker.metrics.refused_subscribe.load(Relaxed) == 1,
    )
    .await;
    assert!(
        spy.exited_within(Duration::from_secs(5)).is_some()
            || spy.lines().iter().all(|l| !l.starts_with("wangge/"))
    );
    // spy took over cg's client id (its own), so start cg's real consumer again.
    drop(cg_sub);
    let cg_sub = sub(hub.port, &cg, &cg_secret, &cg, &["wangge/v1/events/cg/#"]);
    let out = hub.broker.outbound();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Publish until both consumers see one message each (subscriptions take a moment).
    loop {
        for t in [
            "wangge/v1/events/cg/fire.smoke",
            "wangge/v1/events/sw/flood.warning",
        ] {
            out.send(hub::broker::Outbound {
                topic: t.into(),
                payload: bytes::Bytes::from_static(b"{\"probe\":1}"),
            })
            .await
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let seen = |s: &Sub, prefix: &str| s.lines().iter().any(|l| l.starts_with(prefix));
        if seen(&cg_sub, "wangge/v1/events/cg/") && seen(&sw_sub, "wangge/v1/events/sw/") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "consumers never saw their events"
        );
    }
    for (s, own) in [
        (&cg_sub, "wangge/v1/events/cg/"),
        (&sw_sub, "wangge/v1/events/sw/"),
    ] {
        for l in s.lines().iter().filter(|l| l.starts_with("wangge/")) {
            assert!(l.starts_with(own), "a department saw another's event: {l}");
        }
    }
    // A department user's password does not log in as another user, nor as an edge.
    let mut wrong = sub(hub.port, &sw, &cg_secret, &sw, &["wangge/v1/events/sw/#"]);
    assert!(!wrong
        .exited_within(Duration::from_secs(10))
        .expect("refused")
        .success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_principals_open_connection_is_closed() {
    let hub = start_hub();
    let b = hub.registry.add_edge("edge-b", None, None).unwrap();
    let (cg, cg_secret) = hub.registry.add_mqtt_user("cg").unwrap();
    let mut edge = sub(hub.port, "edge-b", &b, "edge-b", &[&topics::acks("edge-b")]);
    let mut dept = sub(hub.port, &cg, &cg_secret, &cg, &["wangge/v1/events/cg/#"]);
    eventually("both connected", Duration::from_secs(10), || {
        hub.broker.metrics.connections_open.load(Relaxed) == 2
    })
    .await;
    assert!(
        edge.exited_within(Duration::from_secs(1)).is_none()
            && dept.exited_within(Duration::from_secs(1)).is_none()
    );
    hub.registry.revoke_edge("edge-b").unwrap();
    hub.registry.revoke_mqtt_user(&cg).unwrap();
    // mosquitto_sub reconnects after a lost connection; the reconnect is refused, so it exits.
    assert!(
        edge.exited_within(Duration::from_secs(10)).is_some(),
        "revoked edge still connected"
    );
    assert!(
        dept.exited_within(Duration::from_secs(10)).is_some(),
        "revoked department user still connected"
    );
    assert_eq!(hub.broker.metrics.closed_revoked.load(Relaxed), 2);
    // Re-issuing a secret also ends the sessions of the old one.
    let old = hub.registry.add_edge("edge-b", None, None).unwrap();
    let mut s = sub(
        hub.port,
        "edge-b",
        &old,
        "edge-b",
        &[&topics::acks("edge-b")],
    );
    eventually("connected", Duration::from_secs(10), || {
        hub.broker.metrics.connections_open.load(Relaxed) == 1
    })
    .await;
    let _new = hub.registry.add_edge("edge-b", None, None).unwrap();
    assert!(
        s.exited_within(Duration::from_secs(10)).is_some(),
        "old secret's session survived a re-issue"
    );
}
