//! The `hub` binary of these tests bound to the test kit's CLI runner and `hub serve` guard.
#![allow(dead_code)]

use std::path::Path;
use wangge_testkit::hub::{HubServe, HubServeConfig};

/// The `hub` binary cargo built for these tests.
pub const HUB: &str = env!("CARGO_BIN_EXE_hub");

/// Runs `hub --data-dir <data> <args>`, asserts success (showing stderr) and returns stdout,
/// trimmed — e.g. the secret `edge add` prints once.
pub fn hub_cli(data: &Path, args: &[&str]) -> String {
    wangge_testkit::hub::cli(Path::new(HUB), data, args)
}

/// `hub serve` on free ports in `dir` (its working directory), output appended to `dir/log`,
/// with `admin` as the bootstrap admin token.
pub fn serve(dir: &Path, log: &str, admin: &str) -> HubServeConfig {
    HubServe::config(Path::new(HUB), &dir.join(log))
        .cwd(dir)
        .admin_token(admin)
}
