//! Child processes that cannot outlive their test: a [`Proc`] is killed (SIGKILL, by its PID)
//! and reaped when it drops, however the test ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A child process killed by its PID and reaped when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    /// Where its stdout/stderr go, for failure messages (none for an adopted child).
    log: Option<PathBuf>,
}

impl Proc {
    /// Spawns `cmd` (stdin closed) with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let mut p = Proc::start(name, cmd)?;
        p.log = Some(log.to_path_buf());
        Ok(p)
    }

    /// Spawns `cmd` as it is configured (e.g. with piped stdout).
    pub fn start(name: &str, mut cmd: Command) -> anyhow::Result<Proc> {
        let child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {name}: {e}"))?;
        Ok(Proc::adopt(name, child))
    }

    /// Guards a child spawned elsewhere.
    pub fn adopt(name: &str, child: Child) -> Proc {
        Proc {
            name: name.to_string(),
            child,
            log: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child itself (to take its piped stdout, say).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// `kill -9`, as a power cut or crash would, and reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` to the process (by its PID).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), signal);
    }

    /// SIGTERM: asks it to stop.
    pub fn sigterm(&self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }

    /// SIGTERM, then wait up to `grace` before SIGKILL. Returns the exit status if it exited.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = self.exited_within(grace);
        if status.is_none() {
            self.kill9();
        }
        status
    }

    /// The exit status once it exits within `limit`, `None` if it still runs.
    pub fn exited_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Where its output goes.
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// Its whole log (empty without one).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|l| std::fs::read_to_string(l).ok())
            .unwrap_or_default()
    }

    /// The last `n` bytes of its log, for assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log(), n)
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

/// Runs `cmd` to completion and asserts it exited 0 (showing its stderr); returns its output.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The last `n` bytes of `s` (from a char boundary).
pub fn tail(s: &str, n: usize) -> String {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s[start..].to_string()
}
