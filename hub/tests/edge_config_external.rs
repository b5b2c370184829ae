//! Configuration from the hub through an external broker (a real mosquitto): the hub's link
//! publishes an edge's sealed config retained, so an edge subscribing later gets it, and the
//! edge's sealed report reaches the registry through the link's report queue (not ingest).

mod edge_config_support;
mod ingest_support;

use edge_config_support::{edge_client, next_config};
use hub::broker::{self, BrokerConfig, BrokerMode, ExternalBrokerConfig};
use hub::fleet::{FleetMetrics, ReportOutcome};
use hub::registry::{NewConfig, RegistryAdmin};
use hub::supervise::{Backoff, Supervisor};
use ingest_support::seeded_sqlite_registry;
use protocol::edge_config::{document_hash, ConfigOutcome, ConfigReport};
use protocol::uplink::{mac_key, topics, EdgeId};
use rumqttc::QoS;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wangge_testkit::{now_ns, Mosquitto};

const EDGE: &str = "edge-xq-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_broker_keeps_the_sealed_config_retained_and_carries_the_report() {
    let mosq = Mosquitto::start();
    let work = tempfile::tempdir().unwrap();
    let reg = seeded_sqlite_registry(work.path());
    let secret = reg.add_edge(EDGE, None, None).unwrap();
    let cfg = BrokerConfig {
        mode: BrokerMode::External,
        external: Some(ExternalBrokerConfig {
            host: "127.0.0.1".into(),
            port: mosq.port,
            client_id: "wangge-hub-fleet-test".into(),
            username: None,
            password: None,
            provision_dir: None,
            mosquitto_pid_file: None,
        }),
        ..Default::default()
    };
    let link = broker::start(&cfg, reg.clone()).expect("external broker link");
    let sup = Supervisor::new(
        CancellationToken::new(),
        Backoff::default(),
        Duration::from_secs(1),
    );
    let metrics = Arc::new(FleetMetrics::default());
    let admin: Arc<dyn RegistryAdmin> = reg.clone();
    let kick = hub::fleet::spawn(&sup, admin, &link, None, metrics.clone());
    let doc = "[buffer]\n";
    reg.put_edge_config(&NewConfig {
        edge_id: EDGE,
        document: doc,
        base_version: None,
        created_by: "test",
        created_ns: now_ns(),
    })
    .unwrap();
    kick.edge(EDGE);
    // Once a watcher (mosquitto here lets anyone subscribe) got it, the broker holds it: the
    // edge, subscribing after, is handed the retained copy first.
    let key = mac_key(&secret);
    let (_watcher, mut watched) =
        edge_client(mosq.port, "watcher", "-", &topics::config(EDGE)).await;
    assert_eq!(next_config(&mut watched, EDGE, &key).await.0.version, 1);
    let (edge, mut seen) = edge_client(mosq.port, EDGE, &secret, &topics::config(EDGE)).await;
    let (c, retained) = next_config(&mut seen, EDGE, &key).await;
    assert_eq!((c.version, c.document.as_str(), retained), (1, doc, true));

    let report = ConfigReport {
        edge_id: EdgeId(EDGE.into()),
        applied_version: 1,
        applied_hash: document_hash(doc),
        version: 1,
        outcome: ConfigOutcome::Applied,
        error: None,
        ts_ns: now_ns(),
    };
    // Like an edge: report again until it is seen (the hub's subscription may still be on its way).
    let stored = || {
        reg.edge_config(EDGE)
            .unwrap()
            .and_then(|s| s.applied)
            .is_some_and(|a| a.applied_version == 1)
    };
    for attempt in 1..=150 {
        if stored() {
            break;
        }
        let r = ConfigReport {
            ts_ns: report.ts_ns + attempt,
            ..report.clone()
        };
        edge.publish(
            topics::config_report(EDGE),
            QoS::AtLeastOnce,
            false,
            r.seal(&key),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(stored(), "the report was not stored within 30 s");
    assert!(metrics.reports(ReportOutcome::Applied) >= 1);
    sup.stop().await;
}
