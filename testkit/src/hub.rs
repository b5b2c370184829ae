//! `hub` processes for tests: one-shot CLI commands on a data dir, and a `hub serve` guard on
//! free ports that returns once the API answers `/api/v1/health` and the MQTT listener accepts.
//! The binary is the caller's (`env!("CARGO_BIN_EXE_hub")` in the hub's tests, [`crate::bin`]
//! elsewhere).

use crate::http::http_request;
use crate::ports::{free_port, port_open};
use crate::process::{run_ok, Proc};
use crate::wait::wait_for;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The variable `hub serve` reads its bootstrap admin token from.
pub const ADMIN_TOKEN_ENV: &str = "WANGGE_ADMIN_TOKEN";

/// Runs `hub --data-dir <data> <args>`, asserts success (showing stderr) and returns stdout,
/// trimmed — e.g. the secret `edge add` prints once.
pub fn cli(bin: &Path, data: &Path, args: &[&str]) -> String {
    let out = run_ok(Command::new(bin).arg("--data-dir").arg(data).args(args));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A running `hub serve`, killed by its PID when dropped.
pub struct HubServe {
    pub proc: Proc,
    pub http: u16,
    pub mqtt: u16,
}

/// How to start a [`HubServe`].
pub struct HubServeConfig {
    bin: PathBuf,
    log: PathBuf,
    data: Option<PathBuf>,
    config: Option<PathBuf>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    http: u16,
    mqtt: u16,
    timeout: Duration,
    healthy: bool,
}

impl HubServeConfig {
    /// `--data-dir` (else the config file's `data_dir`).
    pub fn data_dir(mut self, data: &Path) -> Self {
        self.data = Some(data.to_path_buf());
        self
    }

    /// `--config`.
    pub fn config_file(mut self, path: &Path) -> Self {
        self.config = Some(path.to_path_buf());
        self
    }

    /// The working directory.
    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// An environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The bootstrap admin token.
    pub fn admin_token(self, token: &str) -> Self {
        self.env(ADMIN_TOKEN_ENV, token)
    }

    /// Listen on these ports (e.g. to restart where clients expect it) instead of free ones.
    pub fn ports(mut self, http: u16, mqtt: u16) -> Self {
        self.http = http;
        self.mqtt = mqtt;
        self
    }

    /// How long it may take to come up (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Return once `/api/v1/health` answers at all, healthy (200) or degraded (503): for hubs
    /// started with a part held back on purpose.
    pub fn answering(mut self) -> Self {
        self.healthy = false;
        self
    }

    /// Spawns `hub serve` and waits until it answers; the error carries its log.
    pub fn start(self) -> anyhow::Result<HubServe> {
        let mut c = Command::new(&self.bin);
        if let Some(config) = &self.config {
            c.arg("--config").arg(config);
        }
        if let Some(data) = &self.data {
            c.arg("--data-dir").arg(data);
        }
        c.arg("serve")
            .arg("--http")
            .arg(format!("127.0.0.1:{}", self.http))
            .arg("--mqtt")
            .arg(format!("127.0.0.1:{}", self.mqtt));
        if let Some(dir) = &self.cwd {
            c.current_dir(dir);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let proc = Proc::spawn("hub", c, &self.log)?;
        let hub = HubServe {
            proc,
            http: self.http,
            mqtt: self.mqtt,
        };
        let healthy = self.healthy;
        wait_for("the hub's HTTP API", self.timeout, || {
            http_request(hub.http, "/api/v1/health").filter(|(s, _)| *s == 200 || !healthy)
        })
        .and_then(|_| {
            wait_for("the hub's MQTT listener", self.timeout, || {
                port_open(hub.mqtt).then_some(())
            })
        })
        .with_context(|| hub.proc.log_tail(3000))?;
        Ok(hub)
    }
}

impl HubServe {
    /// `bin serve` on free ports, its output appended to `log`.
    pub fn config(bin: &Path, log: &Path) -> HubServeConfig {
        HubServeConfig {
            bin: bin.to_path_buf(),
            log: log.to_path_buf(),
            data: None,
            config: None,
            cwd: None,
            env: Vec::new(),
            http: free_port(),
            mqtt: free_port(),
            timeout: Duration::from_secs(30),
            healthy: true,
        }
    }

    /// `http://127.0.0.1:<http>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    /// Its whole log.
    pub fn log(&self) -> String {
        self.proc.log()
    }
}
