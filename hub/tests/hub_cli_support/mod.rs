//! Running the real `hub` binary from the API and rules tests: free ports and one-shot CLI
//! commands (`registry import`, `edge add`, `token add`, …) on a data dir.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// The `hub` binary cargo built for these tests.
pub const HUB: &str = env!("CARGO_BIN_EXE_hub");

/// A port the OS had free a moment ago (for processes that need it on their command line).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `hub <args> --data-dir <data>`, asserts success (showing stderr) and returns stdout,
/// trimmed — e.g. the secret `edge add` prints once.
pub fn hub_cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(HUB)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
