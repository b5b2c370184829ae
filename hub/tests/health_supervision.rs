//! `GET /api/v1/health` follows the supervisor: 503 `degraded` naming the failing parts while a
//! supervised task is down or a watched thread is dead, 200 `ok` again once it is back.

use hub::api::{self, AppState};
use hub::registry::{RegistryAdmin, SqliteRegistry};
use hub::supervise::{Backoff, Supervisor};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

async fn health(base: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}/api/v1/health")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn until_status(base: &str, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, body) = health(base).await;
        if s == want {
            return body;
        }
        assert!(Instant::now() < deadline, "health stayed {s}: {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn health_is_degraded_while_a_part_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let registry = SqliteRegistry::open(&dir.path().join("registry.sqlite")).unwrap();
    let sup = Supervisor::new(
        CancellationToken::new(),
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_millis(400),
        },
        Duration::from_secs(1),
    );
    // A task that panics whenever `broken` is set (the test's way to kill it), at once or
    // within 10 ms of it.
    let broken = Arc::new(AtomicBool::new(false));
    let b = broken.clone();
    sup.spawn("webhooks", move |_| {
        let b = b.clone();
        async move {
            loop {
                assert!(!b.load(Ordering::SeqCst), "test: webhook worker dies");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    // A thread-like part that can only be reported.
    let thread_alive = Arc::new(AtomicBool::new(true));
    let t = thread_alive.clone();
    sup.watch("ingest", move || t.load(Ordering::SeqCst));

    let mut state = AppState::new(Arc::new(registry) as Arc<dyn RegistryAdmin>);
    state.supervisor = Some(sup.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });

    let ok = until_status(&base, 200).await;
    assert_eq!(ok["status"], "ok");
    assert_eq!(ok["failing"], serde_json::json!([]));
    assert!(ok["version"].is_string() && ok["uptime_s"].is_u64(), "{ok}");

    // The watched thread dies: degraded, named.
    thread_alive.store(false, Ordering::SeqCst);
    let (s, body) = health(&base).await;
    assert_eq!(s, 503);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["failing"], serde_json::json!(["ingest"]));
    thread_alive.store(true, Ordering::SeqCst);
    until_status(&base, 200).await;

    // The supervised task keeps dying: degraded while it waits for its restart.
    broken.store(true, Ordering::SeqCst);
    let body = until_status(&base, 503).await;
    assert_eq!(body["failing"], serde_json::json!(["webhooks"]));
    assert!(sup.restarts("webhooks") >= 1);
    broken.store(false, Ordering::SeqCst);
    until_status(&base, 200).await;
    sup.stop().await;
}
