//! When one sink cannot store (InfluxDB down and its spill full), nothing is acked even though
//! the other sink stored; when the server returns, the edge's resend is stored and acked, and the
//! embedded store still holds each reading once. Real broker, real VictoriaMetrics.

mod ingest_support;

use hub::broker;
use hub::ingest::{self, IngestConfig};
use hub::timeseries::embedded::{EmbeddedConfig, EmbeddedStore};
use hub::timeseries::influx::{InfluxConfig, InfluxSink};
use hub::timeseries::{TimeSeriesQuery, TimeSeriesSink};
use ingest_support::*;
use protocol::uplink::{mac_key, AckOutcome};
use protocol::Quantity;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use wangge_testkit::{free_port, VictoriaMetrics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spill_stops_acks_until_the_server_returns() {
    let dir = tempfile::tempdir().unwrap();
    let vm_data = tempfile::tempdir().unwrap();
    let port = free_port();
    let reg = Arc::new(MemRegistry::default());
    let secret = reg.add_edge("edge-1");
    let key = mac_key(&secret);
    let b = broker::start(&loopback_broker(), reg.clone()).unwrap();
    let mut cfg = InfluxConfig::new(&format!("http://127.0.0.1:{port}"), "o", "b", "t");
    cfg.spill_dir = dir.path().join("spill");
    cfg.spill_bytes_max = 3_000; // a 30-reading batch is ≈ 2 KB of line protocol
    cfg.retry_backoff_ms_max = 200;
    // Acknowledged lines count toward the bound for the replay window: keep it short here so
    // the spill has room for the resend a second after the server took the first batch.
    cfg.replay_window_ms = 1_000;
    let influx = Arc::new(InfluxSink::start(&cfg).unwrap());
    // Both sinks at once: the embedded store succeeds every time, the InfluxDB sink does not.
    let store = Arc::new(EmbeddedStore::open(&EmbeddedConfig::in_dir(dir.path())).unwrap());
    let sinks: Vec<Arc<dyn TimeSeriesSink>> = vec![store.clone(), influx.clone()];
    let ing = ingest::spawn(&IngestConfig::in_dir(dir.path()), &b, reg.clone(), sinks).unwrap();
    let m = ing.metrics();
    let mut edge = login(b.listen.unwrap().port(), "edge-1", &secret).await;
    let t0 = now_ns() - 600_000_000_000;
    let b1 = batch("edge-1", 1, 1, readings("MH-1", t0, 30));
    let b2 = batch("edge-1", 1, 2, readings("MH-2", t0, 30));

    // No server: the first batch fits in the spill and is acked.
    edge.publish_batch("edge-1", &b1, &key).await;
    assert_eq!(edge.next_ack().await.seq, 1);
    // The second does not fit: not stored, not acked.
    edge.publish_batch("edge-1", &b2, &key).await;
    eventually(
        "the failed group is counted",
        Duration::from_secs(30),
        || m.groups_failed.load(Relaxed) >= 1,
    )
    .await;
    assert_eq!(m.acks_sent.load(Relaxed), 1, "no ack for an unstored batch");
    assert!(edge.acks.try_recv().is_err());

    // The server returns; the spill drains; the edge's resend is stored and acked.
    let _vm = VictoriaMetrics::spawn_on(vm_data.path(), port);
    let ack = edge.publish_until_acked(&[(&b2, &key)]).await;
    assert_eq!((ack.seq, ack.outcome), (2, AckOutcome::Stored));
    eventually("spill drained", Duration::from_secs(60), || {
        influx.backlog_bytes() == 0
    })
    .await;
    assert_eq!(influx.metrics().points_sent.load(Relaxed), 60);
    // The embedded store took MH-2 on every attempt, and holds it once.
    let n = store
        .points("MH-2", Quantity::Tilt, 0, i64::MAX, 1000)
        .unwrap()
        .len();
    assert_eq!(n, 30);
}
