//! The hub's HTTP API fuzzed from its own OpenAPI document by schemathesis (PyPI), against a
//! real `hub serve`: with the admin token, a department read token, and an invalid token, no
//! request may get a 5xx. Skips (saying so) only when schemathesis is not installed
//! (`scripts/install-test-deps` installs it with pip).

use std::process::Command;
use std::time::Duration;
use wangge_testkit::{wait_for, Proc};
use wangge_tests::system::{Hub, ADMIN_TOKEN};

fn schemathesis() -> Option<String> {
    let ok = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| "schemathesis".to_string())
}

/// One bounded schemathesis run (`max_time_s` of generation); returns (passed, output).
fn fuzz(
    dir: &std::path::Path,
    hub: &Hub,
    tag: &str,
    token: &str,
    max_time_s: u64,
) -> (bool, String) {
    let log = dir.join(format!("schemathesis-{tag}.log"));
    let mut c = Command::new("schemathesis");
    // Its cache (`.schemathesis/`) goes into the temp dir, not the checkout.
    c.current_dir(dir)
        .arg("run")
        .arg(format!("http://127.0.0.1:{}/api/v1/openapi.json", hub.http))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-c", "not_a_server_error"])
        .args(["--max-time", &max_time_s.to_string()])
        // Server-sent events never end: a request to it would only time out.
        .args(["--exclude-path-regex", "events/stream"])
        // One worker: schemathesis 4.32's case generation is not thread-safe under CPython 3.11
        // ("AST constructor recursion depth mismatch", KeyErrors in its coverage module).
        .args(["-w", "1", "--suppress-health-check", "all", "--no-color"])
        .args(["--seed", "20261126"])
        .env("NO_COLOR", "1");
    let mut p = Proc::spawn("schemathesis", c, &log).expect("start schemathesis");
    let status = wait_for(
        "schemathesis to finish",
        Duration::from_secs(max_time_s + 60),
        || p.try_wait(),
    );
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    (status.is_ok_and(|s| s.success()), out)
}

/// The run failed only because schemathesis raised inside its own code: no server error, no
/// failed check, but a Python exception from schemathesis' modules.
fn tool_error_only(out: &str) -> bool {
    let server_side = out.contains("Server error") || out.contains("not_a_server_error");
    let tool_side = out.contains("site-packages/schemathesis")
        && (out.contains("Error:") || out.contains("Traceback"));
    tool_side && !server_side
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

#[test]
fn the_api_answers_no_5xx_to_schemathesis_with_valid_and_invalid_tokens() {
    if schemathesis().is_none() {
        eprintln!(
            "SKIPPED: schemathesis is not installed (scripts/install-test-deps installs it: \
             python3 -m pip install schemathesis)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut hub = Hub::prepare(dir.path(), "").unwrap();
    let dept_token = hub.add_token("sw", "read").unwrap();
    hub.start().unwrap();

    let runs = [
        ("admin", ADMIN_TOKEN.to_string(), 40),
        ("department", dept_token, 20),
        ("invalid", "wgt_nosuch.0000000000000000".to_string(), 15),
    ];
    let mut failed = Vec::new();
    for (tag, token, secs) in &runs {
        let (mut ok, mut out) = fuzz(dir.path(), &hub, tag, token, *secs);
        if !ok && tool_error_only(&out) {
            // schemathesis crashed inside its own generator without any server error: run it
            // again rather than report its bug as ours (a 5xx in either run still fails).
            println!("schemathesis ({tag} token) failed inside itself; running it again");
            (ok, out) = fuzz(dir.path(), &hub, tag, token, *secs);
        }
        let summary = out
            .lines()
            .filter(|l| l.contains("generated") || l.contains("passed") || l.contains("failed"))
            .collect::<Vec<_>>()
            .join(" | ");
        println!("schemathesis ({tag} token, {secs} s): {summary}");
        if !ok {
            failed.push(format!("--- {tag} token ---\n{}", tail(&out, 6000)));
        }
    }
    assert!(
        hub.proc.as_mut().unwrap().try_wait().is_none(),
        "the hub died: {}",
        hub.log_tail()
    );
    assert!(
        failed.is_empty(),
        "schemathesis found server errors:\n{}\nhub log: {}",
        failed.join("\n"),
        hub.log_tail()
    );
    hub.kill9();
}
