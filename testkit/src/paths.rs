//! Where the workspace and its built binaries are.

use std::path::{Path, PathBuf};

/// The workspace root (where `config/` and `target/` live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ has a parent")
        .to_path_buf()
}

/// A path below the workspace root, e.g. `repo("config/registry")`.
pub fn repo(path: &str) -> PathBuf {
    workspace_root().join(path)
}

/// Path of a workspace binary built by `cargo build --workspace --bins` (the test command does
/// it); a crate's own tests use `env!("CARGO_BIN_EXE_…")` instead.
pub fn bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
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

/// The first of `candidates` that exists, else `name` (looked up on PATH).
pub fn installed(name: &str, candidates: &[&str]) -> PathBuf {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}
