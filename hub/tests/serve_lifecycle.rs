//! A real `hub serve` process: it reports every supervised part on `/metrics`, stops every
//! task and exits 0 on SIGTERM within a bound, and keeps its data private.

mod hub_cli_support;

use hub_cli_support::{free_port, HUB};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "lifecycle-admin-0f3a9c2e71b84d56a0c9e3f1";
/// How long the hub may take to stop after SIGTERM (task grace 5 s + HTTP drain 5 s + slack).
const STOP_BOUND: Duration = Duration::from_secs(15);

struct Serving {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start() -> Serving {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
    let child = Command::new(HUB)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--http")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--mqtt")
        .arg(format!("127.0.0.1:{}", free_port()))
        .env("WANGGE_ADMIN_TOKEN", ADMIN)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let s = Serving {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/api/v1/health", s.base)).await {
            if r.status() == 200 {
                return s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "hub did not become healthy: {}",
            log_of(&s)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log_of(s: &Serving) -> String {
    std::fs::read_to_string(s.dir.path().join("hub.log")).unwrap_or_default()
}

/// Sends SIGTERM and waits for the exit; panics past [`STOP_BOUND`].
fn terminate(s: &mut Serving) -> std::process::ExitStatus {
    let pid = libc::pid_t::try_from(s.child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + STOP_BOUND;
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "hub still running {STOP_BOUND:?} after SIGTERM: {}",
            log_of(s)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
