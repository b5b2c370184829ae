//! The `hub` command line: help, config errors, seed import/export, edge and token issuing.

use std::path::Path;
use std::process::{Command, Output};
use wangge_testkit::paths::{copied_seed_lines, seed_dir};

const HUB: &str = env!("CARGO_BIN_EXE_hub");

/// `hub <args>`, run to its end.
fn run(args: &[&str]) -> Output {
    Command::new(HUB).args(args).output().unwrap()
}

fn hub(args: &[&str], data: &Path) -> Output {
    run(&[args, &["--data-dir", data.to_str().unwrap()]].concat())
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["registry", "import", "--help"],
        vec!["registry", "export", "--help"],
        vec!["edge", "add", "--help"],
        vec!["edge", "revoke", "--help"],
        vec!["token", "add", "--help"],
    ] {
        let o = run(&args);
        assert!(o.status.success(), "hub {args:?}");
        assert!(
            stdout(&o).contains("Usage: hub"),
            "hub {args:?}: {}",
            stdout(&o)
        );
    }
    let o = run(&["serve", "--help"]);
    for flag in ["--config", "--data-dir", "--http", "--mqtt"] {
        assert!(stdout(&o).contains(flag), "serve --help lacks {flag}");
    }
}

/// A hub config whose line 4 holds a field `[http]` does not have.
const BODY_SIZE_ON_LINE_4: &str =
    "data_dir = \"d\"\n[http]\nlisten = \"127.0.0.1:0\"\nbody_size = 1\n";

#[test]
fn a_bad_config_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hub.toml");
    std::fs::write(&cfg, BODY_SIZE_ON_LINE_4).unwrap();
    let o = run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("hub.toml:4:1: unknown field `body_size`"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn import_errors_name_file_line_and_field_and_import_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed");
    let (path, mut lines) = copied_seed_lines(&seed, "components.csv");
    // Line 51: class 9999 does not exist.
    let id = lines[50].split(',').next().unwrap().to_string();
    lines[50] = lines[50].replacen(&id, &format!("{}99{}", &id[..6], &id[8..]), 1);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let data = dir.path().join("data");
    let o = hub(&["registry", "import", seed.to_str().unwrap()], &data);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("components.csv:51: id: unknown component class 99"),
        "{err}"
    );

    // Nothing half-imported.
    let out = dir.path().join("out");
    let o = hub(&["registry", "export", out.to_str().unwrap()], &data);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "regions.csv",
        "departments.csv",
        "components.csv",
        "sensors.csv",
    ] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert_eq!(
            text.lines().count(),
            1,
            "{f} should hold only its header: {text}"
        );
    }
}

#[test]
fn export_and_import_round_trip_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let o = hub(&["registry", "import", seed_dir().to_str().unwrap()], &a);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("components.csv: 200"), "{}", stdout(&o));
    let ex1 = dir.path().join("ex1");
    assert!(hub(&["registry", "export", ex1.to_str().unwrap()], &a)
        .status
        .success());
    let b = dir.path().join("b");
    assert!(hub(&["registry", "import", ex1.to_str().unwrap()], &b)
        .status
        .success());
    let ex2 = dir.path().join("ex2");
    assert!(hub(&["registry", "export", ex2.to_str().unwrap()], &b)
        .status
        .success());
    for f in [
        "regions.csv",
        "classes.csv",
        "grid_cells.csv",
        "components.csv",
        "sensors.csv",
        "edges.csv",
        "departments.csv",
    ] {
        assert_eq!(
            std::fs::read(ex1.join(f)).unwrap(),
            std::fs::read(ex2.join(f)).unwrap(),
            "{f}"
        );
    }
    // The seed's sensors come back identically (export adds only the optional calibration column).
    let seed = std::fs::read_to_string(seed_dir().join("sensors.csv")).unwrap();
    let exported = std::fs::read_to_string(ex1.join("sensors.csv")).unwrap();
    assert_eq!(seed.lines().count(), exported.lines().count());
    assert!(
        exported.contains("MH-0001,1201110101000001,manhole_cover,gridsense,GW-01,60,edge-xq-01,")
    );
}

#[test]
fn edge_secrets_and_tokens_are_printed_once_and_stored_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(
        hub(&["registry", "import", seed_dir().to_str().unwrap()], &data)
            .status
            .success()
    );
    let o = hub(&["edge", "add", "edge-xq-01"], &data);
    assert!(o.status.success(), "{}", stderr(&o));
    let secret = stdout(&o).trim().to_string();
    assert_eq!(secret.len(), 48, "{secret}");
    assert!(stderr(&o).contains("shown once"));

    let o = hub(
        &["token", "add", "--department", "sw", "--scope", "write"],
        &data,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_string();
    assert!(token.starts_with("wgt_"), "{token}");
    let token_secret = token.split_once('.').unwrap().1.to_string();

    // Neither secret is anywhere in the data dir.
    for e in std::fs::read_dir(&data).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap_or_default();
        for s in [&secret, &token_secret] {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "a secret was stored in clear"
            );
        }
    }
    // Library view of the same registry: the secret verifies.
    {
        use hub::registry::{RegistryAdmin, RegistryStore, SqliteRegistry};
        let reg = SqliteRegistry::open(&data.join("registry.sqlite")).unwrap();
        assert!(reg
            .edge_credentials("edge-xq-01")
            .unwrap()
            .unwrap()
            .verify_password(&secret));
        assert!(reg.verify_token(&token).unwrap().is_some());
    }
    let o = hub(&["edge", "revoke", "edge-xq-01"], &data);
    assert!(o.status.success());
    let o = hub(&["edge", "revoke", "edge-nope"], &data);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("edge-nope"));
    let o = hub(
        &["token", "add", "--department", "nowhere", "--scope", "read"],
        &data,
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("department: unknown department"),
        "{}",
        stderr(&o)
    );
    let o = hub(
        &["token", "add", "--department", "sw", "--scope", "root"],
        &data,
    );
    assert!(!o.status.success());
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn edge_add_out_writes_a_0600_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("edge-07.secret");
    // A stale world-readable file at the path is tightened, not trusted.
    std::fs::write(&file, "old").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let o = hub(
        &["edge", "add", "edge-07", "--out", file.to_str().unwrap()],
        &data,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = stdout(&o).trim().to_string();
    assert!(!printed.is_empty(), "stdout still carries the secret");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), printed);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&data), 0o700, "the data dir the command created");
    assert_eq!(mode(&data.join("registry.sqlite")), 0o600);
}

/// `hub serve` with `token` as `WANGGE_ADMIN_TOKEN`: it must exit at once, non-zero.
fn serve_with_admin_token(token: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let mut child = Command::new(HUB)
        .args(["serve", "--http"])
        .arg(free().to_string())
        .arg("--mqtt")
        .arg(free().to_string())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("WANGGE_ADMIN_TOKEN", token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hub serve kept running with admin token {token:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn serve_refuses_a_short_admin_token() {
    let o = serve_with_admin_token("0123456789abcdef0123456789");
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("admin_token") && e.contains("at least 32"),
        "{e}"
    );
}

#[test]
fn serve_refuses_the_example_admin_token() {
    let o = serve_with_admin_token("demo-admin-token-change-me");
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("admin_token") && e.contains("example"), "{e}");
}
