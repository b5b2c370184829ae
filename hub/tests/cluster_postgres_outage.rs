//! A cluster member that loses PostgreSQL: it owns nothing and acks nothing (the edge keeps its
//! batch and resends it), `GET /api/v1/health` answers 503 naming `postgres`; when the database
//! is back on its address the member takes its lease again and acks, without anyone's help.
//! Real processes: the `hub` binary in cluster mode, PostgreSQL 15, mosquitto, VictoriaMetrics.

mod hub_cli_support;
mod ingest_support;

use hub_cli_support::{get_json, hub_cli_config, member_config, serve_member};
use ingest_support::*;
use protocol::uplink::{mac_key, AckOutcome};
use std::time::{Duration, Instant};
use wangge_testkit::http::http_request;
use wangge_testkit::{free_port, metric_sum, Mosquitto, Postgres, VictoriaMetrics};

const ADMIN: &str = "pg-outage-admin-0c4d8e2a7b91f3e6";

fn health(http: u16) -> Option<(u16, String)> {
    http_request(http, "/api/v1/health")
}

fn wait(what: &str, secs: u64, f: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_without_postgres_acks_nothing_says_so_and_resumes_when_it_returns() {
    let pg_dir = tempfile::tempdir().unwrap();
    let pg_port = free_port();
    let pg = Postgres::start_on(pg_dir.path(), pg_port);
    let url = pg.create_database("outage");
    let mosq = Mosquitto::start();
    let vm = VictoriaMetrics::start();
    let work = tempfile::tempdir().unwrap();
    let config = member_config(work.path(), "hub-a", &url, mosq.port, &vm.url(), false);
    let secret = hub_cli_config(&config, &["edge", "add", "edge-a"]);
    let hub = serve_member(&config, ADMIN, mosq.port);
    let http = hub.http;
    wait("edge-a leased", 30, || {
        metric_sum(
            &http_request(http, "/metrics")
                .map(|r| r.1)
                .unwrap_or_default(),
            "wangge_cluster_edges_owned",
            &[],
        ) == 1.0
    });
    let mut edge = login(mosq.port, "edge-a", &secret).await;
    let key = mac_key(&secret);
    let t0 = now_ns() - 60_000_000_000;
    let first = batch("edge-a", 1, 1, readings("PGX-1", t0, 10));
    assert_eq!(edge.publish_until_acked(&[(&first, &key)]).await.seq, 1);

    // PostgreSQL dies.
    pg.kill9();
    wait("health degraded naming postgres", 30, || {
        health(http).is_some_and(|(s, b)| s == 503 && b.contains("postgres"))
    });
    let second = batch("edge-a", 1, 2, readings("PGX-1", t0 + 10_000_000_000, 10));
    let acked = tokio::time::timeout(
        Duration::from_secs(6),
        edge.publish_until_acked(&[(&second, &key)]),
    )
    .await;
    assert!(
        acked.is_err(),
        "a member without its database acked a batch: {acked:?}"
    );

    // It comes back on its address: the member resumes by itself.
    let _pg = Postgres::start_on(pg_dir.path(), pg_port);
    wait("health ok again", 60, || {
        health(http).is_some_and(|(s, _)| s == 200)
    });
    let ack = tokio::time::timeout(
        Duration::from_secs(60),
        edge.publish_until_acked(&[(&second, &key)]),
    )
    .await
    .expect("acked once PostgreSQL is back");
    assert_eq!((ack.seq, ack.outcome), (2, AckOutcome::Stored));
    let stored = metric_sum(
        &http_request(http, "/metrics")
            .map(|r| r.1)
            .unwrap_or_default(),
        "wangge_ingest_batches_stored_total",
        &[],
    );
    assert!(stored >= 2.0, "both batches stored: {stored}");
    // What the member owns, on /metrics and in the cluster status with its ingest lag.
    let metrics = http_request(http, "/metrics")
        .map(|r| r.1)
        .unwrap_or_default();
    assert!(
        metrics.contains("wangge_cluster_edge_owned{edge_id=\"edge-a\"} 1")
            && metrics.contains("wangge_cluster_member{hub_id=\"hub-a\"} 1"),
        "{metrics}"
    );
    let status = get_json(http, "/api/v1/cluster", ADMIN).await;
    let lag = status["members"][0]["last_commit_age_s"].as_f64();
    assert!(lag.is_some_and(|l| (0.0..60.0).contains(&l)), "{status:#}");
    assert_eq!(status["members"][0]["edges"][0], "edge-a", "{status:#}");
}
