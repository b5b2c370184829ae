//! Cluster coordination against a real PostgreSQL 15: members share the edges fairly, a member
//! that leaves or stops renewing loses its edges to the others under new fences, and the batch
//! ledger commits only under a lease this hub still holds.

use hub::cluster::leases::Leases;
use hub::cluster::{Cluster, ClusterConfig};
use hub::ingest::ledger::{BatchLedger, Commit};
use hub::registry::{RegistryAdmin, SqliteRegistry};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wangge_testkit::Postgres;

fn config(url: &str, hub_id: &str) -> ClusterConfig {
    ClusterConfig {
        postgres_url: Some(url.to_string()),
        postgres_url_file: None,
        hub_id: hub_id.to_string(),
        http_url: format!("http://127.0.0.1/{hub_id}"),
        lease_ttl_ms: 1200,
        heartbeat_ms: 200,
        pool_size: 2,
    }
}

/// A registry with `n` edges (the cluster leases the registry's edges).
fn registry(dir: &std::path::Path, n: usize) -> Arc<dyn RegistryAdmin> {
    let reg = SqliteRegistry::open(&dir.join("registry.sqlite")).unwrap();
    for i in 0..n {
        reg.add_edge(&format!("edge-{i:02}"), None, None).unwrap();
    }
    Arc::new(reg)
}

struct Member {
    cluster: Cluster,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Member {
    fn start(url: &str, id: &str, reg: &Arc<dyn RegistryAdmin>) -> Member {
        let cluster = Cluster::connect(config(url, id)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = Some(cluster.spawn_rounds(reg.clone(), stop.clone()).unwrap());
        Member {
            cluster,
            stop,
            thread,
        }
    }

    /// A clean shutdown: hands every lease back.
    fn leave(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
    }
}

/// Waits until the members' owned sets satisfy `ok` (or panics after `secs`).
fn settle(members: &[&Member], secs: u64, ok: impl Fn(&[Vec<String>]) -> bool) -> Vec<Vec<String>> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let owned: Vec<Vec<String>> = members
            .iter()
            .map(|m| m.cluster.ownership.edges())
            .collect();
        if ok(&owned) {
            return owned;
        }
        assert!(Instant::now() < until, "did not settle: {owned:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn partition_of(owned: &[Vec<String>], n: usize) -> bool {
    let all: BTreeSet<&String> = owned.iter().flatten().collect();
    let total: usize = owned.iter().map(Vec::len).sum();
    total == n && all.len() == n
}

#[test]
fn members_share_the_edges_and_take_over_a_leaver_and_a_silent_member() {
    let pg = Postgres::start();
    let url = pg.create_database("leases");
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path(), 9);
    let a = Member::start(&url, "hub-a", &reg);
    let b = Member::start(&url, "hub-b", &reg);
    let c = Member::start(&url, "hub-c", &reg);
    let owned = settle(&[&a, &b, &c], 20, |o| {
        partition_of(o, 9) && o.iter().all(|s| s.len() == 3)
    });
    let members = a.cluster.members().unwrap();
    assert_eq!(members.len(), 3);
    assert!(
        members.iter().all(|m| m.live && m.edges.len() == 3),
        "{members:?}"
    );

    // hub-a leaves cleanly: its three edges go to b and c, nothing is orphaned for long.
    assert_eq!(owned[0].len(), 3);
    a.leave();
    settle(&[&b, &c], 20, |o| partition_of(o, 9));
    assert!(b.cluster.orphaned_edges().unwrap().is_empty());

    // A silent member (it acquired leases, then stopped renewing, as a SIGSTOPped hub does):
    // its leases expire after the TTL and the live members take them, under new fences.
    let silent = Leases::new(wangge_pg::Pg::connect(&url, 1).unwrap(), "hub-silent", 1200);
    silent.heartbeat("").unwrap();
    let before = b.cluster.members().unwrap();
    assert!(before.iter().any(|m| m.hub_id == "hub-silent" && m.live));
    // Let b and c hand edges back for the newcomer, then grab what is free in its name.
    let mut grabbed = Vec::new();
    let until = Instant::now() + Duration::from_secs(20);
    while grabbed.is_empty() {
        silent.heartbeat("").unwrap();
        grabbed = silent.acquire(3).unwrap();
        assert!(Instant::now() < until, "the newcomer never got a share");
        std::thread::sleep(Duration::from_millis(100));
    }
    let fences: BTreeMap<String, i64> = grabbed
        .iter()
        .map(|h| (h.edge_id.clone(), h.fence))
        .collect();
    // Now silence: no heartbeat, no renewal. b and c end up holding every edge again.
    settle(&[&b, &c], 20, |o| partition_of(o, 9));
    for m in b.cluster.members().unwrap() {
        if m.hub_id == "hub-silent" {
            assert!(!m.live && m.edges.is_empty(), "{m:?}");
        }
    }
    // The silent member's renewals now fail: it holds nothing, whatever it thinks.
    assert!(silent.renew().unwrap().is_empty());
    for (edge, fence) in &fences {
        let now_fence = [&b, &c]
            .iter()
            .find_map(|m| m.cluster.ownership.fence(edge))
            .expect("a live member holds the silent member's edge");
        assert!(now_fence > *fence, "{edge}: taken over under a new fence");
    }
    b.leave();
    c.leave();
}

#[test]
fn the_ledger_commits_a_batch_once_and_only_under_the_edges_current_lease() {
    let pg = Postgres::start();
    let url = pg.create_database("ledger");
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path(), 1);
    let a = Member::start(&url, "hub-a", &reg);
    settle(&[&a], 20, |o| o[0].len() == 1);
    let mut ledger = a.cluster.ledger(7);
    let now = protocol::time::now_ns();
    let batch = [("edge-00", 1u64, 1u64)];
    assert_eq!(ledger.commit(&batch, now).unwrap(), vec![Commit::Stored]);
    assert!(ledger.contains("edge-00", 1, 1).unwrap());
    assert_eq!(ledger.commit(&batch, now).unwrap(), vec![Commit::Duplicate]);
    // Unknown edges are never committed.
    assert_eq!(
        ledger.commit(&[("edge-zz", 1, 1)], now).unwrap(),
        vec![Commit::NotOwner]
    );

    // A stale owner: hub-a stops renewing while its ownership view still names the old
    // fence; hub-b takes the lease; hub-a's commit is refused by the database.
    let stale = Cluster::connect(config(&url, "hub-stale")).unwrap();
    let fence = a.cluster.ownership.fence("edge-00").unwrap();
    a.leave(); // hands the lease back (as an expiry would, sooner)
    stale.ownership.set(
        BTreeMap::from([("edge-00".to_string(), fence)]),
        Instant::now(),
        Duration::from_secs(60),
    );
    let b = Member::start(&url, "hub-b", &reg);
    settle(&[&b], 20, |o| o[0].len() == 1);
    let mut stale_ledger = stale.ledger(7);
    assert_eq!(
        stale_ledger.commit(&[("edge-00", 1, 2)], now).unwrap(),
        vec![Commit::NotOwner],
        "a hub whose lease moved on must not record (and so must not ack)"
    );
    let mut b_ledger = b.cluster.ledger(7);
    assert_eq!(
        b_ledger
            .commit(&[("edge-00", 1, 1), ("edge-00", 1, 2)], now)
            .unwrap(),
        vec![Commit::Duplicate, Commit::Stored]
    );
    assert!(!b_ledger.ack_when_unrecorded());
    b.leave();
}
