//! Helpers for the end-to-end tests: start the real binaries and real servers (mosquitto,
//! VictoriaMetrics) on free loopback ports in temp dirs, and kill them by PID when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL, by its PID) and reaped when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    /// Where its stdout/stderr go, for the failure message.
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {name}: {e}"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`, as a power cut or crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `grace` before SIGKILL. Returns the exit status if it exited.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        None
    }

    /// Exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `n` bytes of its log, for assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = s.len().saturating_sub(n);
        let start = (start..s.len())
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(s.len());
        s[start..].to_string()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The workspace root (where `target/` lives).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Path of a workspace binary built by `cargo build --workspace --bins` (the test command does it).
pub fn bin(name: &str) -> PathBuf {
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    for profile in ["debug", "release"] {
        let p = target.join(profile).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "binary {name} not built: run `cargo build --workspace --bins` first (scripts/test does)"
    )
}

/// Polls `f` every 100 ms until it returns `Some`, or fails with `what` after `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True once something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_ok()
}

/// A mosquitto broker on a free port, configured not to drop QoS 1 messages for slow subscribers.
pub struct Mosquitto {
    pub port: u16,
    pub proc: Proc,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start() -> anyhow::Result<Mosquitto> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\npersistence false\n"
            ),
        )?;
        let exe = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| {
                anyhow::anyhow!("mosquitto not installed (scripts/install-test-deps installs it)")
            })?;
        let mut cmd = Command::new(exe);
        cmd.arg("-c").arg(&conf);
        let proc = Proc::spawn("mosquitto", cmd, &dir.path().join("mosquitto.log"))?;
        wait_for("mosquitto to listen", Duration::from_secs(10), || {
            port_open(port).then_some(())
        })?;
        Ok(Mosquitto {
            port,
            proc,
            _dir: dir,
        })
    }
}

/// A VictoriaMetrics server (InfluxDB v2 write API at `/api/v2/write`) on a free port, with
/// deduplication on (`-dedup.minScrapeInterval=1ms`).
pub struct VictoriaMetrics {
    pub port: u16,
    pub proc: Proc,
    pub data: tempfile::TempDir,
}

impl VictoriaMetrics {
    pub fn start() -> anyhow::Result<VictoriaMetrics> {
        let data = tempfile::tempdir()?;
        let port = free_port();
        Self::start_on(data, port)
    }

    /// Starts (or restarts) on a given data dir and port.
    pub fn start_on(data: tempfile::TempDir, port: u16) -> anyhow::Result<VictoriaMetrics> {
        let exe = ["/usr/bin/victoria-metrics", "/usr/sbin/victoria-metrics"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "victoria-metrics not installed (scripts/install-test-deps installs it)"
                )
            })?;
        let mut cmd = Command::new(exe);
        cmd.arg(format!(
            "-storageDataPath={}",
            data.path().join("vm").display()
        ))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg("-retentionPeriod=100y")
        .arg("-search.disableCache")
        // One sample per series and millisecond, as InfluxDB overwrites a rewritten point: the
        // hub's sink resends its replay window after a server failure and a batch after a hub
        // crash, and those must collapse (VictoriaMetrics applies it when answering queries and
        // exports, and in its merges).
        .arg("-dedup.minScrapeInterval=1ms");
        let proc = Proc::spawn("victoria-metrics", cmd, &data.path().join("vm.log"))?;
        wait_for(
            "victoria-metrics to listen",
            Duration::from_secs(20),
            || port_open(port).then_some(()),
        )?;
        Ok(VictoriaMetrics { port, proc, data })
    }
}

pub mod proxy;
pub mod system;

/// SplitMix64: a tiny, well-mixed seeded generator, so a seed means the same schedule on every
/// machine and in every run (the crash matrix, the proxy's flapping, the delivery simulation).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True `percent` times in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}
