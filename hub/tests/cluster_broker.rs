//! Two cluster members on one mosquitto the hubs provision (`use_username_as_clientid`,
//! `allow_anonymous false`): each hub logs in with its own account (every member's provisioner
//! writes every member's account, published in PostgreSQL), subscribes to the edges whose
//! leases it holds, and lets go of them when the lease moves.

mod ingest_support;

use hub::broker::{self, BrokerConfig, BrokerMode, ExternalBrokerConfig};
use hub::cluster::{Cluster, ClusterConfig};
use hub::registry::RegistryAdmin;
use ingest_support::*;
use protocol::uplink::mac_key;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wangge_testkit::{Mosquitto, Postgres};

fn member(url: &str, id: &str) -> Cluster {
    Cluster::connect(ClusterConfig {
        postgres_url: Some(url.into()),
        postgres_url_file: None,
        hub_id: id.into(),
        http_url: String::new(),
        lease_ttl_ms: 1200,
        heartbeat_ms: 200,
        pool_size: 2,
    })
    .unwrap()
}

fn until(what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_member_logs_in_as_itself_and_subscribes_only_to_the_edges_it_leases() {
    let pg = Postgres::start();
    let url = pg.create_database("broker");
    let work = tempfile::tempdir().unwrap();
    let reg = seeded_sqlite_registry(work.path());
    let secret = reg.add_edge("edge-a", None, None).unwrap();
    let mosq_dir = tempfile::tempdir().unwrap();
    let files = mosq_dir.path().join("wangge");
    let pid_file = mosq_dir.path().join("mosquitto.pid");
    let (a, b) = (member(&url, "hub-a"), member(&url, "hub-b"));
    let external = |user: &str, port: u16| ExternalBrokerConfig {
        host: "127.0.0.1".into(),
        port,
        client_id: user.into(),
        username: Some(user.into()),
        password: Some(format!("{user}-secret-5f2e9b")),
        provision_dir: Some(files.clone()),
        mosquitto_pid_file: Some(pid_file.clone()),
    };
    // The files exist before mosquitto starts (it refuses to start without them).
    use hub::broker::mosquitto::{password_hash, HubAccount, HubAccounts, Provisioner};
    let first = HubAccount {
        username: "hub-a".into(),
        broker_hash: password_hash("hub-a-secret-5f2e9b"),
    };
    a.hub_accounts().publish(&first).unwrap();
    Provisioner::new(files.clone(), None, first)
        .with_peers(Arc::new(a.hub_accounts()))
        .sync(&*reg)
        .unwrap();
    let mosq = Mosquitto::config()
        .dir(mosq_dir)
        .anonymous(false)
        .settings(&format!(
            "user root\nuse_username_as_clientid true\npassword_file {}\nacl_file {}\npid_file {}\n",
            files.join("passwd").display(),
            files.join("acl").display(),
            pid_file.display()
        ))
        .start();
    let cfg = |user: &str| BrokerConfig {
        mode: BrokerMode::External,
        revocation_check_ms: 200,
        external: Some(external(user, mosq.port)),
        ..Default::default()
    };
    let stop_a = Arc::new(AtomicBool::new(false));
    let rounds_a = a
        .spawn_rounds(reg.clone() as Arc<dyn RegistryAdmin>, stop_a.clone())
        .unwrap();
    until("hub-a leases edge-a", || {
        a.ownership.fence("edge-a").is_some()
    });
    let link_a = broker::start_for_edges(
        &cfg("hub-a"),
        reg.clone(),
        a.ownership.subscribe(),
        Arc::new(a.hub_accounts()),
    )
    .unwrap();
    let (store_a, ing_a) = store_and_ingest(&work.path().join("a"), &link_a, reg.clone());
    let mut edge = login(mosq.port, "edge-a", &secret).await;
    let t0 = now_ns() - 60_000_000_000;
    let first_batch = batch("edge-a", 1, 1, readings("CL-1", t0, 10));
    edge.publish_until_acked(&[(&first_batch, &mac_key(&secret))])
        .await;
    assert_eq!(stored(&store_a, "CL-1"), 10);

    // hub-b joins with its own account: its provisioner rewrites the files with both hubs'
    // accounts, so neither is locked out (with one account per file, the later writer would
    // lock the other hub out at mosquitto's reload).
    let stop_b = Arc::new(AtomicBool::new(false));
    let rounds_b = b
        .spawn_rounds(reg.clone() as Arc<dyn RegistryAdmin>, stop_b.clone())
        .unwrap();
    let link_b = broker::start_for_edges(
        &cfg("hub-b"),
        reg.clone(),
        b.ownership.subscribe(),
        Arc::new(b.hub_accounts()),
    )
    .unwrap();
    let (store_b, _ing_b) = store_and_ingest(&work.path().join("b"), &link_b, reg.clone());
    until("both accounts provisioned", || {
        std::fs::read_to_string(files.join("passwd"))
            .is_ok_and(|p| p.contains("hub-a:$7$") && p.contains("hub-b:$7$"))
    });
    let passwd = std::fs::read_to_string(files.join("passwd")).unwrap();
    assert!(!passwd.contains("hub-b-secret"), "hashes only: {passwd}");

    // hub-a leaves: hub-b takes the lease, subscribes, and acks the edge's next batch; hub-a
    // (still connected as itself) has unsubscribed and sees nothing more.
    stop_a.store(true, Relaxed);
    rounds_a.join().unwrap();
    until("hub-b leases edge-a", || {
        b.ownership.fence("edge-a").is_some()
    });
    let received_a = ing_a.metrics().batches_received.load(Relaxed);
    let second = batch("edge-a", 1, 2, readings("CL-2", t0 + 1_000_000_000, 10));
    let ack = edge
        .publish_until_acked(&[(&second, &mac_key(&secret))])
        .await;
    assert_eq!(ack.seq, 2);
    assert_eq!(stored(&store_b, "CL-2"), 10, "hub-b stored the batch");
    assert_eq!(
        stored(&store_a, "CL-2"),
        0,
        "hub-a no longer handles edge-a"
    );
    assert_eq!(
        ing_a.metrics().batches_received.load(Relaxed),
        received_a,
        "hub-a unsubscribed from edge-a's topics when its lease moved"
    );
    stop_b.store(true, Relaxed);
    rounds_b.join().unwrap();
    drop((link_a, link_b));
}
