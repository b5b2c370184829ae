//! External-broker mode: edge → mosquitto → hub (rumqttc client) → ingest → store → ack.

mod ingest_support;

use hub::broker::{self, BrokerConfig, BrokerMode, ExternalBrokerConfig};
use hub::ingest::{self, IngestConfig, RejectReason};
use hub::timeseries::embedded::{EmbeddedConfig, EmbeddedStore};
use hub::timeseries::{TimeSeriesQuery, TimeSeriesSink};
use ingest_support::*;
use protocol::uplink::{mac_key, AckOutcome};
use protocol::Quantity;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// A mosquitto process on a free port, killed by its pid when dropped.
struct Mosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn start() -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (scripts/install-test-deps)");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Mosquitto {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
        }),
        ..Default::default()
    };
    let b = broker::start(&cfg, reg.clone()).expect("external broker link");
    let store = Arc::new(
        EmbeddedStore::open(&EmbeddedConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        })
        .unwrap(),
    );
    let sinks: Vec<Arc<dyn TimeSeriesSink>> = vec![store.clone()];
    let ing = ingest::spawn(
        &IngestConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        },
        &b,
        reg.clone(),
        sinks,
    )
    .unwrap();
    // mosquitto allows anonymous clients here: any password logs in; the HMAC still decides.
    let mut edge = match connect_edge(mosq.port, "edge-x", "anything", None).await {
        Login::Ok(e) => e,
        Login::Refused(e) => panic!("{e}"),
    };
    let t0 = now_ns() - 60_000_000_000;
    let forged = batch("edge-x", 1, 1, readings("FORGED-X", t0, 10));
    let good = batch("edge-x", 1, 2, readings("EXT-1", t0, 40));
    // Like a real edge: resend until acked (the hub may not have subscribed yet).
    let ack = loop {
        edge.publish_batch("edge-x", &forged, &mac_key("wrong"))
            .await;
        edge.publish_batch("edge-x", &good, &mac_key(&secret)).await;
        match tokio::time::timeout(Duration::from_secs(1), edge.acks.recv()).await {
            Ok(Some(a)) => break a,
            _ => continue,
        }
    };
    assert_eq!(ack.seq, 2);
    let n = store
        .points("EXT-1", Quantity::Tilt, 0, i64::MAX, 1000)
        .unwrap()
        .len();
    assert_eq!(n, 40);
    assert!(ing.metrics().rejected(RejectReason::BadMac) >= 1);
    assert!(store
        .points("FORGED-X", Quantity::Tilt, 0, i64::MAX, 1000)
        .unwrap()
        .is_empty());
    // A resend is acked as a duplicate.
    edge.publish_batch("edge-x", &good, &mac_key(&secret)).await;
    loop {
        let a = edge.next_ack().await;
        if a.outcome == AckOutcome::Duplicate {
            break;
        }
    }
}
