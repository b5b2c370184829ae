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

/// The registry seed CSVs, `config/registry`.
pub fn seed_dir() -> PathBuf {
    repo("config/registry")
}

/// Copies the registry seed CSVs (`config/registry/*.csv`) into `to`, created if missing.
pub fn copy_seed(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(seed_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv") {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Copies the registry seed into `to` and reads `file` of the copy: its path and its lines.
pub fn copied_seed_lines(to: &Path, file: &str) -> (PathBuf, Vec<String>) {
    copy_seed(to);
    let path = to.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text.lines().map(str::to_string).collect())
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

/// Every file below `root`, recursively, as (path, path relative to `root` with `/`), sorted.
pub fn files_under(root: &Path) -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).expect("below root");
            let rel = rel.to_string_lossy().replace('\\', "/");
            (p, rel)
        })
        .collect()
}
