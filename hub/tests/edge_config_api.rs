//! Configuration from the hub over the API and the CLI, against a real `hub serve` (free ports,
//! temp dir, killed by PID): versions, every refusal naming its field, who may (admin, the
//! edge's maintaining department with the write scope) and who gets 404.

mod hub_cli_support;

use hub_cli_support::{hub_cli, serve, HUB};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use wangge_testkit::hub::HubServe;
use wangge_testkit::paths::seed_dir;

const ADMIN: &str = "edge-config-admin-3c1f9a7e5b2d4f60a8c9e1b7";
const EDGE: &str = "edge-xq-01";
/// An edge whose only sensor is on a component the department `sw` maintains.
const SW_EDGE: &str = "edge-sw-01";

struct Hub {
    serve: HubServe,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Hub {
    /// A seeded hub with `SW_EDGE` registered and its sensor attached to a `sw` component.
    async fn start() -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        hub_cli(&data, &["registry", "import", seed_dir().to_str().unwrap()]);
        hub_cli(&data, &["edge", "add", SW_EDGE]);
        let serve = serve(dir.path(), "hub.log", ADMIN)
            .data_dir(&data)
            .start()
            .unwrap();
        let hub = Hub {
            serve,
            dir,
            http: reqwest::Client::new(),
        };
        let sensor = json!({"component_id": "1201110101000001", "edge": SW_EDGE});
        let (s, b) = hub
            .call(Method::PUT, "/sensors/SW-T-1", ADMIN, Some(sensor))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        hub
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn token(&self, department: &str, scope: &str) -> String {
        hub_cli(
            &self.data(),
            &["token", "add", "--department", department, "--scope", scope],
        )
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Json>,
    ) -> (StatusCode, Json) {
        let url = format!("{}/api/v1{path}", self.serve.base());
        let mut req = self.http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Json::Null))
    }

    async fn put(&self, edge: &str, token: &str, body: Json) -> (StatusCode, Json) {
        let path = format!("/edges/{edge}/config");
        self.call(Method::PUT, &path, token, Some(body)).await
    }

    async fn get(&self, edge: &str, token: &str) -> (StatusCode, Json) {
        self.call(Method::GET, &format!("/edges/{edge}/config"), token, None)
            .await
    }
}

/// The field a 400 names, after checking it is one.
fn refused_field((status, body): (StatusCode, Json)) -> (String, String) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let e = &body["error"];
    (
        e["field"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn versions_count_from_one_a_stale_base_is_409_and_each_bad_document_names_its_field() {
    let hub = Hub::start().await;
    let (s, before) = hub.get(EDGE, ADMIN).await;
    assert_eq!(s, StatusCode::OK, "{before}");
    assert_eq!(before["desired"], Json::Null);
    assert_eq!(before["applied"], Json::Null);
    assert_eq!(before["in_sync"], true);

    let doc = "[uplink]\nbatch_age_ms = 100\n";
    let (s, v1) = hub
        .put(EDGE, ADMIN, json!({"document": doc, "base_version": 0}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v1}");
    assert_eq!(v1["desired"]["version"], 1);
    assert_eq!(v1["desired"]["document"], doc);
    assert_eq!(v1["desired"]["created_by"], "admin");
    assert_eq!(
        v1["desired"]["hash"],
        protocol::edge_config::document_hash(doc)
    );
    assert_eq!(v1["in_sync"], false, "no report from the edge yet");
    let doc2 = "[edge]\nsensors = [\"MH-0001\"]\n\n[uplink]\nbatch_age_ms = 200\n";
    let (s, v2) = hub
        .put(EDGE, ADMIN, json!({"document": doc2, "base_version": 1}))
        .await;
    assert_eq!(
        (s, v2["desired"]["version"].clone()),
        (StatusCode::OK, json!(2))
    );
    let (s, stale) = hub
        .put(EDGE, ADMIN, json!({"document": doc, "base_version": 1}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{stale}");
    assert_eq!(hub.get(EDGE, ADMIN).await.1["desired"]["version"], 2);

    let put = |doc: String| hub.put(EDGE, ADMIN, json!({ "document": doc }));
    let (field, message) =
        refused_field(put("[uplink]\nbatch_age_ms = 1\n[edge]\nid = \"x\"\n".into()).await);
    assert_eq!(field, "edge.id");
    assert!(
        message.starts_with("edge.id: identity comes from the edge's own edge.toml")
            && message.contains("line 4"),
        "{message}"
    );
    assert_eq!(
        refused_field(put("[hub]\nsecret = \"x\"\n".into()).await).0,
        "hub.secret"
    );
    assert_eq!(
        refused_field(put("[local_api]\nlisten = \"0.0.0.0:9\"\n".into()).await).0,
        "local_api"
    );
    assert_eq!(
        refused_field(put("[bogus]\na = 1\n".into()).await).0,
        "bogus"
    );
    let (field, message) = refused_field(put("[uplink]\nbatch_age_ms = = 3\n".into()).await);
    assert_eq!(field, "document");
    assert!(message.contains("line 2"), "{message}");
    let big = format!(
        "# {}\n",
        "x".repeat(protocol::edge_config::CONFIG_DOCUMENT_BYTES_MAX)
    );
    assert_eq!(refused_field(put(big).await).0, "document");
    let (field, message) = refused_field(put("[edge]\nsensors = [\"SW-T-1\"]\n".into()).await);
    assert_eq!(field, "edge.sensors[0]");
    assert!(
        message.contains("registered to edge edge-sw-01"),
        "{message}"
    );
    let (s, body) = hub
        .call(
            Method::PUT,
            &format!("/edges/{EDGE}/config"),
            ADMIN,
            Some(json!({"document": "", "extra": 1})),
        )
        .await;
    assert!(
        s.is_client_error() && body.to_string().contains("extra"),
        "{s} {body}"
    );
    assert_eq!(
        hub.get(EDGE, ADMIN).await.1["desired"]["version"],
        2,
        "nothing refused was stored"
    );

    let (s, _) = hub.get("edge-nowhere", ADMIN).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = hub
        .put("edge-nowhere", ADMIN, json!({"document": doc}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The document (it may hold passwords) never reaches the log.
    assert!(
        !hub.serve.log().contains("batch_age_ms"),
        "the document was logged"
    );
}

#[tokio::test]
async fn the_maintaining_department_may_with_write_scope_and_everyone_else_gets_404() {
    let hub = Hub::start().await;
    let doc = json!({"document": "[edge]\nsensors = [\"SW-T-1\"]\n"});
    let (sw_write, sw_read, ga_write) = (
        hub.token("sw", "write"),
        hub.token("sw", "read"),
        hub.token("ga", "write"),
    );
    let (s, body) = hub.put(SW_EDGE, &sw_read, doc.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "read scope may not PUT: {body}");
    let (s, body) = hub.put(SW_EDGE, &sw_write, doc.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["desired"]["created_by"].as_str().map(|t| t != "admin"),
        Some(true)
    );
    let (s, body) = hub.get(SW_EDGE, &sw_read).await;
    assert_eq!(
        (s, body["desired"]["version"].clone()),
        (StatusCode::OK, json!(1))
    );
    // Another department learns nothing, not even that the edge exists.
    for (s, body) in [
        hub.get(SW_EDGE, &ga_write).await,
        hub.put(SW_EDGE, &ga_write, doc.clone()).await,
    ] {
        assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
        assert!(!body.to_string().contains("sensors"), "{body}");
    }
    // sw maintains only some of the components behind the seed's edge: not its to configure.
    assert_eq!(hub.get(EDGE, &sw_write).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        hub.put(EDGE, &sw_write, doc.clone()).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        hub.get(SW_EDGE, "wgt_nobody.secret").await.0,
        StatusCode::UNAUTHORIZED
    );
    // The admin may too.
    let (s, body) = hub
        .put(SW_EDGE, ADMIN, json!({"document": "[buffer]\n"}))
        .await;
    assert_eq!(
        (s, body["desired"]["version"].clone()),
        (StatusCode::OK, json!(2))
    );
}

/// `hub` with `args`, not asserting success: (success, stdout, stderr).
fn hub_run(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(HUB)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_sets_and_gets_with_the_same_checks_naming_the_file_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    hub_cli(&data, &["registry", "import", seed_dir().to_str().unwrap()]);
    let file = dir.path().join("edge-config.toml");
    std::fs::write(&file, "[uplink]\nbatch_age_ms = 250\n").unwrap();
    let f = file.to_str().unwrap();
    let (ok, _, err) = hub_run(
        &data,
        &["edge", "config", "set", EDGE, f, "--base-version", "0"],
    );
    assert!(ok, "{err}");
    assert!(err.contains("version 1"), "{err}");
    let (ok, out, err) = hub_run(&data, &["edge", "config", "get", EDGE]);
    assert!(ok, "{err}");
    assert!(out.contains("desired version 1"), "{out}");
    assert!(out.contains("# applied: no report"), "{out}");
    assert!(out.contains("batch_age_ms = 250"), "{out}");

    let (ok, _, err) = hub_run(
        &data,
        &["edge", "config", "set", EDGE, f, "--base-version", "0"],
    );
    assert!(
        !ok && err.contains("base_version 0 is not the current version 1"),
        "{err}"
    );
    std::fs::write(
        &file,
        "[uplink]\nbatch_age_ms = 1\n\n[hub]\nhost = \"elsewhere\"\n",
    )
    .unwrap();
    let (ok, _, err) = hub_run(&data, &["edge", "config", "set", EDGE, f]);
    assert!(!ok, "identity must be refused");
    assert!(
        err.contains(&format!(
            "{f}: hub.host: identity comes from the edge's own edge.toml (line 5)"
        )),
        "{err}"
    );
    let (ok, _, err) = hub_run(&data, &["edge", "config", "get", "edge-nowhere"]);
    assert!(!ok && err.contains("edge-nowhere"), "{err}");
    let (ok, out, _) = hub_run(&data, &["edge", "config", "--help"]);
    assert!(ok && out.contains("get") && out.contains("set"), "{out}");
}
