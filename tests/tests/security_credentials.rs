//! Security against the real processes: edge credentials at the hub's broker (wrong password,
//! revoked edge), API tokens (none → 401, department outside its scope → 403 and audited),
//! secrets stored only hashed, and never written to the logs, even at `RUST_LOG=debug`.
//!
//! "Edge A cannot publish as edge B" is proven at the broker level by
//! `hub/tests/ingest_broker.rs::edge_a_cannot_publish_as_edge_b` (not repeated here).

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wangge_testkit::{wait_for, Mosquitto};
use wangge_tests::system::{Edge, Hub, ADMIN_TOKEN, EDGE_ID};

/// Connects to the hub's broker as `user`/`password` and publishes one message; true if the
/// broker let it in.
fn mqtt_login(port: u16, user: &str, password: &str) -> bool {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv311"])
        .args(["-i", user, "-u", user, "-P", password])
        // Its own batch topic: the only one an edge may publish on besides its status (the
        // junk is then refused by ingest, counted as malformed).
        .args([
            "-t",
            &format!("wangge/v1/edges/{user}/batches"),
            "-m",
            "x",
            "-q",
            "1",
        ])
        .output()
        .expect("mosquitto_pub installed")
        .status
        .success()
}

fn http(
    hub: &Hub,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let c = reqwest::blocking::Client::new();
    let url = format!("http://127.0.0.1:{}{path}", hub.http);
    let mut r = match method {
        "POST" => c.post(url),
        "PUT" => c.put(url),
        _ => c.get(url),
    };
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = r.send().expect("hub answers");
    let status = resp.status().as_u16();
    (status, resp.text().unwrap_or_default())
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

#[test]
fn edge_credentials_tokens_and_secrets_hold_against_the_real_hub() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = Hub::prepare(dir.path(), "").unwrap();
    let dept_token = hub.add_token("sw", "read").unwrap();
    hub.rust_log = "debug".into();
    hub.start().unwrap();
    let site = Mosquitto::start();
    let mut edge = Edge::prepare(dir.path(), &hub, &site).unwrap();
    edge.rust_log = "debug".into();
    edge.start().unwrap();
    let secret = hub.edge_secret.clone();

    // A real edge logs in and delivers (with debug logging on both sides).
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    let pub_ok = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &site.port.to_string(), "-q", "1"])
        .args(["-t", "sensors/MH-0031/readings"])
        .args([
            "-m",
            &format!(r#"{{"ts":{ts},"seq":1,"values":{{"water_level":3.0}}}}"#),
        ])
        .status()
        .unwrap()
        .success();
    assert!(pub_ok);
    wait_for(
        "the edge to deliver a batch",
        Duration::from_secs(30),
        || {
            edge.metrics()
                .ok()
                .filter(|m| wangge_testkit::metric_sum(m, "edge_batches_acked_total", &[]) >= 1.0)
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nedge: {}\nhub: {}", edge.log_tail(), hub.log_tail()));

    // Edge credentials at the hub's broker.
    assert!(
        mqtt_login(hub.mqtt, EDGE_ID, &secret),
        "the right secret logs in"
    );
    assert!(
        !mqtt_login(hub.mqtt, EDGE_ID, "wrong-password"),
        "a wrong password is refused"
    );
    assert!(
        !mqtt_login(hub.mqtt, EDGE_ID, ""),
        "an empty password is refused"
    );
    assert!(
        !mqtt_login(hub.mqtt, "edge-nobody", &secret),
        "another id with this secret is refused"
    );

    // API tokens.
    let (s, _) = http(&hub, "GET", "/api/v1/components", None, None);
    assert_eq!(s, 401, "no token");
    let (s, _) = http(
        &hub,
        "GET",
        "/api/v1/components",
        Some("wgt_forged.0123456789"),
        None,
    );
    assert_eq!(s, 401, "a forged token");
    let (s, _) = http(&hub, "GET", "/api/v1/components", Some(&dept_token), None);
    assert_eq!(s, 200, "the department token reads");
    let (s, body) = http(&hub, "GET", "/api/v1/audit", Some(&dept_token), None);
    assert_eq!(s, 403, "the audit log is admin only: {body}");
    let (s, body) = http(
        &hub,
        "POST",
        "/api/v1/subscriptions",
        Some(&dept_token),
        Some(r#"{"url":"http://127.0.0.1:9/hook","kinds":[]}"#),
    );
    assert_eq!(s, 403, "a read-only token cannot subscribe: {body}");
    let (s, audit) = http(&hub, "GET", "/api/v1/audit", Some(ADMIN_TOKEN), None);
    assert_eq!(s, 200, "{audit}");
    assert!(
        audit.contains("admin only") && audit.contains("subscribe"),
        "both refusals are in the audit log: {audit}"
    );

    // A revoked edge cannot log in again (and its running agent is cut off).
    let out = hub.cli(&["edge", "revoke", EDGE_ID]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "the revoked edge to be refused",
        Duration::from_secs(20),
        || (!mqtt_login(hub.mqtt, EDGE_ID, &secret)).then_some(()),
    )
    .unwrap();

    // Secrets: stored only hashed, never logged.
    edge.kill9();
    hub.kill9();
    let secrets = [
        ("edge secret", secret.as_str()),
        ("department token", dept_token.as_str()),
        ("admin token", ADMIN_TOKEN),
    ];
    for (what, s) in &secrets[..2] {
        let hits = files_containing(&hub.data, s);
        assert!(
            hits.is_empty(),
            "the {what} is stored in plain text in {hits:?}"
        );
    }
    let logs = [hub.log_path().to_path_buf(), edge.log_path().to_path_buf()];
    let total: u64 = logs
        .iter()
        .map(|l| std::fs::metadata(l).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(total > 1000, "debug logs were written ({total} bytes)");
    for (what, s) in &secrets {
        for l in &logs {
            let text = std::fs::read_to_string(l).unwrap_or_default();
            assert!(!text.contains(s), "the {what} appears in {}", l.display());
        }
    }
    println!("debug logs checked: {total} bytes, no secret in them");
}
