//! VictoriaMetrics for tests: the InfluxDB v2 write API at `/api/v2/write`, on a free port (or a
//! given one, to restart where a sink expects it) with its data in a temp dir.

use crate::http::http_get;
use crate::paths::installed;
use crate::ports::free_port;
use crate::process::Proc;
use crate::wait::wait_until;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A victoria-metrics process, killed by its PID when dropped.
pub struct VictoriaMetrics {
    pub port: u16,
    pub proc: Proc,
    /// Its storage and log directory.
    pub data: PathBuf,
    _own: Option<tempfile::TempDir>,
}

impl VictoriaMetrics {
    /// On a free port with a temp dir of its own; returns once `/health` answers.
    pub fn start() -> VictoriaMetrics {
        let dir = tempfile::tempdir().unwrap();
        let mut vm = VictoriaMetrics::start_on(dir.path(), free_port());
        vm._own = Some(dir);
        vm
    }

    /// Starts (or restarts) on `data` and `port`; returns once `/health` answers.
    pub fn start_on(data: &Path, port: u16) -> VictoriaMetrics {
        let vm = VictoriaMetrics::spawn_on(data, port);
        wait_until("victoria-metrics health", Duration::from_secs(30), || {
            http_get(port, "/health").is_some_and(|b| b.contains("OK"))
        });
        vm
    }

    /// Starts on `data` and `port` without waiting for it.
    pub fn spawn_on(data: &Path, port: u16) -> VictoriaMetrics {
        let mut cmd = Command::new(installed(
            "victoria-metrics",
            &["/usr/bin/victoria-metrics", "/usr/sbin/victoria-metrics"],
        ));
        cmd.arg(format!("-storageDataPath={}", data.join("vm").display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-retentionPeriod=100y")
            .arg("-search.disableCache")
            // One sample per series and millisecond, as InfluxDB overwrites a rewritten point: a
            // sink resends its replay window after a server failure and a batch after a hub
            // crash, and those must collapse (VictoriaMetrics applies it when answering queries
            // and exports, and in its merges).
            .arg("-dedup.minScrapeInterval=1ms");
        let proc = Proc::spawn("victoria-metrics", cmd, &data.join("vm.log"))
            .expect("victoria-metrics is installed (scripts/install-test-deps)");
        VictoriaMetrics {
            port,
            proc,
            data: data.to_path_buf(),
            _own: None,
        }
    }

    /// Graceful stop (SIGTERM, SIGKILL after 15 s): VictoriaMetrics flushes what it acknowledged.
    pub fn stop(mut self) {
        self.proc.terminate(Duration::from_secs(15));
    }

    /// `kill -9`: VictoriaMetrics loses the points it acknowledged but still held in memory.
    pub fn kill9(mut self) {
        self.proc.kill9();
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
