//! One PostgreSQL 15 cluster per test binary, a fresh database per test in it, and new
//! [`PgStore`]s on that database (each one a hub of its own: its own pool).
//!
//! The cluster lives in a static and is stopped (killed by its PID, its temp dir removed) by an
//! `atexit` handler when the test binary exits, since statics are never dropped.

#![allow(dead_code)] // Each test binary uses a part.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use wangge_events::lifecycle::Deadlines;
use wangge_events::store::PgStore;
use wangge_pg::Pg;
use wangge_testkit::Postgres;

/// Connections each store's pool may open.
pub const POOL_SIZE: usize = 4;

static CLUSTER: OnceLock<Mutex<Option<Postgres>>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn stop_cluster() {
    if let Some(cluster) = CLUSTER.get() {
        let taken = cluster.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(taken);
    }
}

/// Runs `f` with the binary's cluster, starting it on first use.
fn with_cluster<R>(f: impl FnOnce(&Postgres) -> R) -> R {
    let cluster = CLUSTER.get_or_init(|| {
        // SAFETY: registers a plain function with no arguments, as atexit(3) expects.
        let registered = unsafe { libc::atexit(stop_cluster) };
        assert_eq!(registered, 0, "atexit");
        Mutex::new(Some(Postgres::start()))
    });
    let guard = cluster.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.as_ref().expect("the cluster runs until exit"))
}

/// A new, empty database in the binary's cluster: its URL.
pub fn fresh_database() -> String {
    let n = DATABASES.fetch_add(1, Ordering::Relaxed);
    let name = format!("events_{}_{n}", std::process::id());
    with_cluster(|c| c.create_database(&name))
}

/// A hub's pool on `url`.
pub fn connect(url: &str) -> Arc<Pg> {
    Arc::new(Pg::connect(url, POOL_SIZE).expect("connect to the test cluster"))
}

/// A store on `url`, as one hub opens it.
pub fn open(url: &str, deadlines: Deadlines) -> PgStore {
    PgStore::open(connect(url), deadlines).expect("open the PostgreSQL events store")
}
