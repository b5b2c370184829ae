//! `edge run` for tests: starts the agent on a config file and returns once its local API
//! answers `/health`. The binary is the caller's (`env!("CARGO_BIN_EXE_edge")` in the edge's
//! tests, [`crate::bin`] elsewhere).

use crate::http::http_get;
use crate::process::Proc;
use crate::wait::wait_for;
use anyhow::Context;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Spawns `bin run --config <config>` (`RUST_LOG` set when given) with its output appended to
/// `log`, and waits up to `timeout` for `/health` on 127.0.0.1:`api_port`; the error carries its
/// log.
pub fn start(
    bin: &Path,
    config: &Path,
    log: &Path,
    api_port: u16,
    rust_log: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Proc> {
    let mut c = Command::new(bin);
    c.arg("run").arg("--config").arg(config);
    if let Some(l) = rust_log {
        c.env("RUST_LOG", l);
    }
    let proc = Proc::spawn("edge", c, log)?;
    wait_for("the edge's local API", timeout, || {
        http_get(api_port, "/health")
    })
    .with_context(|| proc.log_tail(3000))?;
    Ok(proc)
}
