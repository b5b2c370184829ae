//! A real `hub serve` process: it reports every supervised part on `/metrics`, stops every
//! task and exits 0 on SIGTERM within a bound, and keeps its data private.

mod hub_cli_support;

use hub_cli_support::serve;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};
use wangge_testkit::hub::HubServe;

const ADMIN: &str = "lifecycle-admin-0f3a9c2e71b84d56a0c9e3f1";
/// How long the hub may take to stop after SIGTERM (task grace 5 s + HTTP drain 5 s + slack).
const STOP_BOUND: Duration = Duration::from_secs(15);

struct Serving {
    serve: HubServe,
    base: String,
    dir: tempfile::TempDir,
}

async fn start() -> Serving {
    let dir = tempfile::tempdir().unwrap();
    let serve = serve(dir.path(), "hub.log", ADMIN)
        .data_dir(&dir.path().join("data"))
        .start()
        .unwrap();
    Serving {
        base: serve.base(),
        serve,
        dir,
    }
}

fn log_of(s: &Serving) -> String {
    s.serve.log()
}

/// Sends SIGTERM and waits for the exit; panics past [`STOP_BOUND`].
fn terminate(s: &mut Serving) -> std::process::ExitStatus {
    s.serve.proc.sigterm();
    s.serve.proc.exited_within(STOP_BOUND).unwrap_or_else(|| {
        panic!(
            "hub still running {STOP_BOUND:?} after SIGTERM: {}",
            log_of(s)
        )
    })
}

#[tokio::test]
async fn sigterm_stops_every_task() {
    let mut s = start().await;
    let metrics = reqwest::get(format!("{}/metrics", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for task in [
        "retention",
        "mqtt_events",
        "events_ticker",
        "webhooks",
        "status_sync",
    ] {
        assert!(
            metrics.contains(&format!("wangge_task_restarts_total{{task=\"{task}\"}} 0")),
            "{task} is supervised: {metrics}"
        );
    }
    for part in ["ingest", "rules", "broker_link"] {
        assert!(
            metrics.contains(&format!("wangge_task_up{{task=\"{part}\"}} 1")),
            "{part} is watched: {metrics}"
        );
    }
    // An open SSE stream must not hold the shutdown forever.
    let sse = reqwest::Client::new()
        .get(format!("{}/api/v1/events/stream", s.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let started = Instant::now();
    let status = terminate(&mut s);
    assert!(status.success(), "exit {status:?}: {}", log_of(&s));
    let log = log_of(&s);
    assert!(log.contains("hub stopped"), "{log}");
    assert!(
        !log.contains("ended unexpectedly"),
        "a shutdown is not a task failure: {log}"
    );
    drop(sse);
    eprintln!("stopped in {:?}", started.elapsed());
}

fn assert_private(dir: &Path) {
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            assert_private(&p);
        } else {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

#[tokio::test]
async fn data_dir_and_secret_files_are_private() {
    let mut s = start().await;
    let data = s.dir.path().join("data");
    // While running: the SQLite files and their -wal/-shm siblings exist now.
    let names: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "registry.sqlite") && names.iter().any(|n| n == "events.db"),
        "{names:?}"
    );
    assert_private(&data);
    assert!(terminate(&mut s).success());
    assert_private(&data);
}
