//! Edge (rumqttc) → embedded rumqttd → ingest → embedded store, with real parts.

mod ingest_support;

use hub::broker::{BrokerConfig, TlsListenerConfig};
use hub::ingest::{IngestConfig, RejectReason};
use ingest_support::mosquitto_clients::publish_once;
use ingest_support::*;
use protocol::uplink::{mac_key, topics, AckOutcome, EdgeStatus};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// `edge`, the site's, delivers its first batch: `n` readings of `sensor` from a minute ago.
/// Asserts the batch is acked as stored and its readings are in the store.
async fn first_batch_stored(
    site: &Site,
    hub: &EmbeddedHub,
    edge: &mut Edge,
    sensor: &str,
    n: usize,
) {
    let t0 = now_ns() - 60_000_000_000;
    let b = batch(&site.edge, 1, 1, readings(sensor, t0, n));
    assert_eq!(
        edge.deliver(&b, &site.key).await.outcome,
        AckOutcome::Stored
    );
    assert_eq!(stored(&hub.store, sensor), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_batch_is_stored_before_it_is_acked() {
    let site = Site::with_edge("edge-1");
    let reg = &site.reg;
    reg.assign("MH-0001", "3205080101000001");
    let hub = site.start();
    let mut edge = site.login(&hub).await;
    let mut events = hub.ingest.subscribe();

    let t0 = now_ns() - 3_600_000_000_000;
    let mut rs = readings("MH-0001", t0, 300);
    rs.extend(readings("NEW-SENSOR", t0, 200));
    let ack = edge.deliver(&batch("edge-1", 1, 1, rs), &site.key).await;
    assert_eq!(
        (ack.epoch, ack.seq, ack.outcome),
        (1, 1, AckOutcome::Stored)
    );
    // The ack is published only after the store's transaction committed.
    assert_eq!(stored(&hub.store, "MH-0001"), 300);
    assert_eq!(
        stored(&hub.store, "NEW-SENSOR"),
        200,
        "unassigned sensors are stored"
    );
    assert!(reg
        .unassigned
        .lock()
        .unwrap()
        .contains(&("NEW-SENSOR".to_string(), "edge-1".to_string())));
    assert!(reg.seen.lock().unwrap().iter().any(|(e, _)| e == "edge-1"));

    let group = events.recv().await.expect("stored readings are broadcast");
    assert_eq!(group.readings.len(), 500);
    assert!(group
        .readings
        .windows(2)
        .all(|w| w[0].reading.ts_ns <= w[1].reading.ts_ns));
    let assigned = group
        .readings
        .iter()
        .find(|r| r.reading.sensor.as_str() == "MH-0001")
        .unwrap();
    assert_eq!(assigned.component_id.as_deref(), Some("3205080101000001"));
    let m = hub.ingest.metrics();
    assert_eq!(m.readings_stored.load(Relaxed), 500);
    assert_rendered(&m, "wangge_ingest_readings_stored_total 500");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_batch_is_stored_once_even_after_a_hub_restart() {
    let site = Site::with_edge("edge-1");
    let t0 = now_ns() - 60_000_000_000;
    let b = batch("edge-1", 7, 42, readings("MH-0002", t0, 250));
    {
        let hub = site.start();
        let mut edge = site.login(&hub).await;
        assert_eq!(
            edge.deliver(&b, &site.key).await.outcome,
            AckOutcome::Stored
        );
        assert_eq!(
            edge.deliver(&b, &site.key).await.outcome,
            AckOutcome::Duplicate
        );
        assert_eq!(stored(&hub.store, "MH-0002"), 250);
    }
    // A new hub (broker, ingest, store) on the same data dir.
    let hub = site.start();
    let mut edge = site.login(&hub).await;
    let ack = edge.deliver(&b, &site.key).await;
    assert_eq!(
        (ack.epoch, ack.seq, ack.outcome),
        (7, 42, AckOutcome::Duplicate)
    );
    assert_eq!(stored(&hub.store, "MH-0002"), 250);
    let m = hub.ingest.metrics();
    assert_eq!(m.batches_duplicate.load(Relaxed), 1);
    assert_eq!(m.readings_stored.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_a_cannot_publish_as_edge_b() {
    let site = Site::with_edge("edge-a");
    let _secret_b = site.reg.add_edge("edge-b");
    let hub = site.start();
    let (secret_a, key_a) = (&site.secret, &site.key);
    let t0 = now_ns() - 60_000_000_000;
    let m = hub.ingest.metrics();

    // On B's topic: the broker gate cuts A's connection before the batch reaches ingest.
    let forged = batch("edge-b", 1, 1, readings("FORGED-1", t0, 10)).seal(key_a);
    let forged_file = site.dir.path().join("forged.bin");
    std::fs::write(&forged_file, forged).unwrap();
    assert!(
        !publish_once(
            hub.port(),
            "edge-a",
            secret_a,
            &topics::batches("edge-b"),
            false,
            Some(&forged_file)
        ),
        "the forged publish must not be acknowledged"
    );
    eventually(
        "the gate refused the publish",
        Duration::from_secs(10),
        || hub.broker.metrics.refused_publish.load(Relaxed) == 1,
    )
    .await;

    // On its own topic, the batch is still checked: ingest trusts neither the topic alone nor
    // the broker (defence in depth).
    let mut a = site.login(&hub).await;
    // Naming B on A's own topic.
    let claims_b = batch("edge-b", 1, 3, readings("FORGED-3", t0, 10));
    a.publish_batch("edge-a", &claims_b, key_a).await;
    // Sealed with a key that is not A's.
    let wrong_key = batch("edge-a", 1, 2, readings("FORGED-2", t0, 10));
    a.publish_batch("edge-a", &wrong_key, &mac_key("not-edge-a's-secret"))
        .await;
    // A legitimate batch after them proves the forged ones were processed (in order) first.
    let ok = batch("edge-a", 1, 4, readings("REAL-1", t0, 10));
    let ack = a.deliver(&ok, key_a).await;
    assert_eq!((ack.seq, ack.outcome), (4, AckOutcome::Stored));

    assert_eq!(m.rejected(RejectReason::BadMac), 1);
    assert_eq!(m.rejected(RejectReason::WrongEdge), 1);
    for s in ["FORGED-1", "FORGED-2", "FORGED-3"] {
        assert_eq!(stored(&hub.store, s), 0, "{s} must not be stored");
    }
    assert_eq!(stored(&hub.store, "REAL-1"), 10);
    assert_rendered(&m, "wangge_ingest_rejected_total{reason=\"wrong_edge\"} 1");
    assert_rendered(
        &hub.broker.metrics,
        "wangge_broker_refused_total{what=\"publish\"} 1",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bad_mac_oversize_and_nan_are_rejected_and_counted() {
    let site = Site::with_edge("edge-1");
    let hub = site.start();
    let mut edge = site.login(&hub).await;
    let t0 = now_ns() - 60_000_000_000;
    let m = hub.ingest.metrics();

    edge.publish_raw(
        &topics::batches("edge-1"),
        b"not a batch at all, just garbage bytes....".to_vec(),
    )
    .await;
    // A valid batch cut short (e.g. a torn write on the edge).
    let whole = batch("edge-1", 1, 9, readings("TORN-1", t0, 5)).seal(&site.key);
    edge.publish_raw(
        &topics::batches("edge-1"),
        whole[..whole.len() / 2].to_vec(),
    )
    .await;
    let wrong_key = mac_key("not-the-secret");
    edge.publish_batch(
        "edge-1",
        &batch("edge-1", 1, 1, readings("BAD-1", t0, 5)),
        &wrong_key,
    )
    .await;
    edge.publish_status(b"\x02garbage".to_vec()).await;
    edge.publish_batch(
        "edge-1",
        &batch("edge-1", 1, 2, readings("BIG-1", t0, 10_001)),
        &site.key,
    )
    .await;
    // Two NaN/inf values among valid readings: dropped and counted, the rest stored and acked.
    let mut ok = readings("OK-1", t0, 7);
    ok[2].value = protocol::Value::Float(f64::NAN);
    ok[4].value = protocol::Value::Float(f64::INFINITY);
    let ack = edge.deliver(&batch("edge-1", 1, 3, ok), &site.key).await;
    assert_eq!(ack.seq, 3, "only the valid batch is acked");
    assert_eq!(m.readings_dropped_non_finite.load(Relaxed), 2);
    // The status topic is a different subscription: it may be processed after the ack.
    eventually(
        "malformed messages counted",
        Duration::from_secs(30),
        || m.rejected(RejectReason::Malformed) == 2,
    )
    .await;
    // The garbage's first byte is not a known message version.
    assert_eq!(m.rejected(RejectReason::UnknownVersion), 1);
    assert_eq!(m.rejected(RejectReason::BadMac), 1);
    assert_eq!(m.rejected(RejectReason::Oversize), 1);
    assert_eq!(stored(&hub.store, "BAD-1"), 0);
    assert_eq!(stored(&hub.store, "BIG-1"), 0);
    assert_eq!(stored(&hub.store, "OK-1"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_at_login() {
    let site = Site::with_edge("edge-1");
    let (reg, secret) = (&site.reg, &site.secret);
    let hub = site.start();
    assert!(matches!(
        connect_edge(hub.port(), "edge-1", "wrong-secret", None).await,
        Login::Refused(_)
    ));
    assert!(matches!(
        connect_edge(hub.port(), "no-such-edge", secret, None).await,
        Login::Refused(_)
    ));
    // Revoked credentials no longer log in.
    let revoked_secret = reg.add_edge("edge-r");
    reg.edges.lock().unwrap().get_mut("edge-r").unwrap().revoked = true;
    assert!(matches!(
        connect_edge(hub.port(), "edge-r", &revoked_secret, None).await,
        Login::Refused(_)
    ));
    assert!(matches!(
        connect_edge(hub.port(), "edge-1", secret, None).await,
        Login::Ok(_)
    ));
    let m = &hub.broker.metrics;
    assert_eq!(m.logins_refused.load(Relaxed), 3);
    assert_eq!(m.logins_accepted.load(Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_status_is_recorded_in_the_registry() {
    let site = Site::with_edge("edge-1");
    let reg = &site.reg;
    let hub = site.start();
    let edge = site.login(&hub).await;
    let status = EdgeStatus {
        edge_id: "edge-1".into(),
        online: true,
        version: "0.1.0".into(),
        epoch: 3,
        counter: 1,
        will_counter: 0,
        backlog_readings: 1234,
        backlog_bytes: 56789,
        oldest_unacked_ns: Some(1),
        ts_ns: now_ns(),
        sources_down: Vec::new(),
    };
    let key = site.key;
    edge.publish_status(status.seal(&key)).await;
    // Another edge's status on edge-1's topic is refused.
    let other = EdgeStatus {
        edge_id: "edge-2".into(),
        ..status.clone()
    };
    edge.publish_status(other.seal(&key)).await;
    // So is edge-1's topic with a status edge-2 sealed (the broker has no per-topic ACL: only
    // the tag tells who sent it), and an untagged one.
    let secret_2 = reg.add_edge("edge-2");
    let forged = EdgeStatus {
        online: false,
        ..status.clone()
    };
    edge.publish_status(forged.seal(&mac_key(&secret_2))).await;
    edge.publish_status(forged.encode()).await;
    let m = hub.ingest.metrics();
    eventually(
        "status recorded and forgeries counted",
        Duration::from_secs(30),
        || {
            !reg.statuses.lock().unwrap().is_empty()
                && m.rejected(RejectReason::WrongEdge) == 1
                && m.rejected(RejectReason::BadMac) + m.rejected(RejectReason::Malformed) == 2
        },
    )
    .await;
    assert_eq!(reg.statuses.lock().unwrap()[0], status);
    assert_eq!(reg.statuses.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_delivers_over_the_tls_listener() {
    let certs = tempfile::tempdir().unwrap();
    let c = wangge_testkit::TestCerts::make(certs.path());
    let (cert_path, key_path, ca) = (c.cert.clone(), c.key.clone(), c.ca_pem());
    let site = Site::with_edge("edge-tls");
    let tls = TlsListenerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        cert_path,
        key_path,
    };
    let broker_cfg = BrokerConfig {
        tls: Some(tls),
        ..loopback_broker()
    };
    let hub = site.start_with(&broker_cfg, IngestConfig::default(), None);
    let tls_port = hub.broker.tls_listen.expect("tls listener").port();
    assert_eq!(
        hub.broker.listen, None,
        "with TLS configured the plain listener is off (broker.keep_plain = false)"
    );
    assert!(matches!(
        connect_edge(tls_port, "edge-tls", "wrong", Some(ca.clone())).await,
        Login::Refused(_)
    ));
    let mut edge = connect_edge(tls_port, "edge-tls", &site.secret, Some(ca))
        .await
        .expect_ok("edge-tls over TLS");
    first_batch_stored(&site, &hub, &mut edge, "TLS-1", 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_publishes_on_other_topics_do_not_cut_the_edges_off() {
    let site = Site::with_edge("edge-1");
    let hub = site.start();
    let mut edge = site.login(&hub).await;
    let out = hub.broker.outbound();
    // An event nobody subscribed to, and a topic outside the hub's filters: rumqttd would
    // disconnect the hub's link for the latter if it were published.
    for topic in ["wangge/v1/events/water/manhole.displaced", "somewhere/else"] {
        out.send(hub::broker::Outbound {
            topic: topic.into(),
            payload: bytes::Bytes::from_static(b"{}"),
        })
        .await
        .unwrap();
    }
    first_batch_stored(&site, &hub, &mut edge, "AFTER-1", 5).await;
}
