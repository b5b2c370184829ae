//! External-broker mode: edge → mosquitto → hub (rumqttc client) → ingest → store → ack.

mod ingest_support;

use hub::broker::{self, BrokerConfig, BrokerMode, ExternalBrokerConfig};
use hub::ingest::RejectReason;
use hub::registry::RegistryAdmin;
use ingest_support::mosquitto_clients::{publish_once, sub};
use ingest_support::*;
use protocol::uplink::topics;
use protocol::uplink::{mac_key, AckOutcome};
use std::sync::Arc;
use std::time::Duration;
use wangge_testkit::Mosquitto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_through_an_external_broker_are_verified_stored_and_acked() {
    let mosq = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let reg = Arc::new(MemRegistry::default());
    let secret = reg.add_edge("edge-x");
    let cfg = BrokerConfig {
        mode: BrokerMode::External,
        external: Some(ExternalBrokerConfig {
            host: "127.0.0.1".into(),
            port: mosq.port,
            client_id: "wangge-hub-test".into(),
            username: None,
            password: None,
            provision_dir: None,
            mosquitto_pid_file: None,
        }),
        ..Default::default()
    };
    let b = broker::start(&cfg, reg.clone()).expect("external broker link");
    let (store, ing) = store_and_ingest(dir.path(), &b, reg.clone());
    // mosquitto allows anonymous clients here (the password is not checked); the HMAC still
    // decides, and the edge opens the hub's sealed acks with the key of its secret.
    let mut edge = login(mosq.port, "edge-x", &secret).await;
    let t0 = now_ns() - 60_000_000_000;
    let forged = batch("edge-x", 1, 1, readings("FORGED-X", t0, 10));
    let good = batch("edge-x", 1, 2, readings("EXT-1", t0, 40));
    // Like a real edge: resend until acked (the hub may not have subscribed yet).
    let ack = edge
        .publish_until_acked(&[(&forged, &mac_key("wrong")), (&good, &mac_key(&secret))])
        .await;
    assert_eq!(ack.seq, 2);
    assert_eq!(stored(&store, "EXT-1"), 40);
    assert!(ing.metrics().rejected(RejectReason::BadMac) >= 1);
    assert_eq!(stored(&store, "FORGED-X"), 0);
    // A resend is acked as a duplicate.
    edge.publish_batch("edge-x", &good, &mac_key(&secret)).await;
    loop {
        let a = edge.next_ack().await;
        if a.outcome == AckOutcome::Duplicate {
            break;
        }
    }
}

/// The hub writes mosquitto's password and ACL files from its registry and has mosquitto reload
/// them: each principal is confined by mosquitto itself, as by the embedded broker's gate
/// (`hub/tests/broker_gate.rs`), except what mosquitto cannot express (SECURITY.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mosquitto_provisioned_by_the_hub_confines_every_principal() {
    let work = tempfile::tempdir().unwrap();
    let reg = seeded_sqlite_registry(work.path());
    let a = reg.add_edge("edge-a", None, None).unwrap();
    let b = reg.add_edge("edge-b", None, None).unwrap();
    let (cg, cg_secret) = reg.add_mqtt_user("cg").unwrap();
    let mosq_dir = tempfile::tempdir().unwrap();
    let files = mosq_dir.path().join("wangge");
    let pid_file = mosq_dir.path().join("mosquitto.pid");
    let external = ExternalBrokerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        client_id: "wangge-hub".into(),
        username: Some("wangge-hub".into()),
        password: Some(hub::registry::secrets::generate()),
        provision_dir: Some(files.clone()),
        mosquitto_pid_file: Some(pid_file.clone()),
    };
    // The files exist before mosquitto starts (it refuses to start without them).
    let mut first = hub::broker::mosquitto::Provisioner::new(
        files.clone(),
        None,
        hub::broker::mosquitto::HubAccount {
            username: "wangge-hub".into(),
            broker_hash: hub::broker::mosquitto::password_hash(external.password.as_ref().unwrap()),
        },
    );
    first.sync(&*reg).unwrap();
    let settings = format!(
        "user root\nuse_username_as_clientid true\npassword_file {}\nacl_file {}\npid_file {}\n",
        files.join("passwd").display(),
        files.join("acl").display(),
        pid_file.display()
    );
    let mosq = Mosquitto::config()
        .dir(mosq_dir)
        .anonymous(false)
        .settings(&settings)
        .start();
    let cfg = BrokerConfig {
        mode: BrokerMode::External,
        revocation_check_ms: 200,
        external: Some(ExternalBrokerConfig {
            port: mosq.port,
            ..external
        }),
        ..Default::default()
    };
    let link = broker::start(&cfg, reg.clone()).expect("external broker link");
    let (store, ing) = store_and_ingest(work.path(), &link, reg.clone());

    // B's spies on A's topics and on every department's events; cg on its own subtree.
    let spies = [
        sub(
            mosq.port,
            "edge-b",
            &b,
            "edge-b",
            &["wangge/v1/edges/edge-a/#"],
        ),
        sub(mosq.port, "edge-b", &b, "edge-b-2", &["wangge/v1/events/#"]),
        sub(mosq.port, "edge-b", &b, "edge-b-3", &["#"]),
    ];
    let cg_sub = sub(mosq.port, &cg, &cg_secret, &cg, &["wangge/v1/events/cg/#"]);
    // B connecting with A's client id gets its own username as id (use_username_as_clientid):
    // A's session is not taken over.
    let _takeover = sub(mosq.port, "edge-b", &b, "edge-a", &["x"]);
    let mut edge_a = login(mosq.port, "edge-a", &a).await;
    let t0 = now_ns() - 60_000_000_000;
    // B publishes on A's topic: mosquitto drops it, ingest never sees it.
    let forged = batch("edge-a", 1, 1, readings("FORGED-M", t0, 10)).seal(&mac_key(&b));
    let f = work.path().join("forged.bin");
    std::fs::write(&f, forged).unwrap();
    let _ = publish_once(
        mosq.port,
        "edge-b",
        &b,
        &topics::batches("edge-a"),
        false,
        Some(&f),
    );
    let good = batch("edge-a", 1, 2, readings("MOSQ-A", t0, 20));
    let ack = edge_a.publish_until_acked(&[(&good, &mac_key(&a))]).await;
    assert_eq!(ack.seq, 2);
    // Events from the hub: cg's reaches cg, sw's reaches nobody here.
    for t in [
        "wangge/v1/events/cg/fire.smoke",
        "wangge/v1/events/sw/flood.warning",
    ] {
        link.outbound()
            .send(hub::broker::Outbound {
                topic: t.into(),
                payload: bytes::Bytes::from_static(b"{}"),
            })
            .await
            .unwrap();
    }
    eventually("cg got its event", Duration::from_secs(10), || {
        cg_sub
            .lines()
            .iter()
            .any(|l| l.starts_with("wangge/v1/events/cg/"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cg_sub
        .lines()
        .iter()
        .all(|l| l.starts_with("wangge/v1/events/cg/")));
    for s in &spies {
        let seen: Vec<String> = s
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("wangge/"))
            .collect();
        assert!(seen.is_empty(), "edge-b read {seen:?}");
    }
    assert_eq!(
        ing.metrics().rejected(RejectReason::BadMac),
        0,
        "the forged batch reached ingest"
    );
    assert_eq!(stored(&store, "FORGED-M"), 0);

    // Revoking B: the hub rewrites the files and has mosquitto reload; B's sessions end and B
    // cannot log in again.
    // B's session: listening to its own acks, as an edge does.
    let b_session = || {
        sub(
            mosq.port,
            "edge-b",
            &b,
            "edge-b",
            &[&topics::acks("edge-b")],
        )
    };
    let mut first_session = b_session();
    assert!(first_session
        .exited_within(Duration::from_secs(1))
        .is_none());
    reg.revoke_edge("edge-b").unwrap();
    assert!(
        first_session
            .exited_within(Duration::from_secs(15))
            .is_some(),
        "a revoked edge stayed connected to mosquitto"
    );
    let mut again = b_session();
    assert!(
        again.exited_within(Duration::from_secs(10)).is_some(),
        "a revoked edge logged in again"
    );
    let passwd = std::fs::read_to_string(files.join("passwd")).unwrap();
    assert!(!passwd.contains("edge-b:"), "{passwd}");
    assert!(!passwd.contains(&b), "the password file holds hashes only");
}
