//! The HTTP API contract (`docs/contracts.md` "Public interfaces"), tested against a real
//! `hub serve` process on free ports in a temp dir, killed by PID when the test ends.

mod hub_cli_support;

use hub_cli_support::{hub_cli, serve};
use protocol::uplink::{Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use reqwest::StatusCode;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wangge_testkit::hub::HubServe;

const ADMIN: &str = "contract-admin-6b2e9f04c7a15d38e0f9a2c4b71d";

fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry")
}

/// A running `hub serve`; killed by PID on drop.
struct Hub {
    _serve: HubServe,
    base: String,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// A temp dir whose `data` holds a registry with the repo's seed imported.
fn seeded_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    hub_cli(
        &dir.path().join("data"),
        &["registry", "import", seed_dir().to_str().unwrap()],
    );
    dir
}

impl Hub {
    /// A hub with the repo's seed imported.
    async fn seeded() -> Hub {
        Hub::start(seeded_dir()).await
    }

    async fn start(dir: tempfile::TempDir) -> Hub {
        Hub::start_with(dir, "").await
    }

    /// Starts with a config file holding `config` (plus the test's ports and data dir).
    async fn start_with(dir: tempfile::TempDir, config: &str) -> Hub {
        let data = dir.path().join("data");
        let config_path = dir.path().join("hub.toml");
        std::fs::write(&config_path, config).unwrap();
        let serve = serve(dir.path(), "hub.log", ADMIN)
            .config_file(&config_path)
            .data_dir(&data)
            .start()
            .unwrap();
        Hub {
            base: serve.base(),
            _serve: serve,
            dir,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A new token of `department` with `scope`, as the caller holding it.
    fn caller(&self, department: &str, scope: &str) -> Caller<'_> {
        let token = hub_cli(
            &self.data(),
            &["token", "add", "--department", department, "--scope", scope],
        );
        self.with(token.trim())
    }

    /// The caller sending `token`.
    fn with(&self, token: &str) -> Caller<'_> {
        Caller {
            hub: self,
            token: Some(token.to_string()),
        }
    }

    /// The caller sending no token.
    fn anonymous(&self) -> Caller<'_> {
        Caller {
            hub: self,
            token: None,
        }
    }

    /// The `/metrics` text (public, no token).
    async fn metrics(&self) -> String {
        let resp = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }
}

/// A request of these tests: method, path (below the base URL) and JSON body.
struct Req {
    method: reqwest::Method,
    path: String,
    body: Option<Json>,
}

fn get(path: impl Into<String>) -> Req {
    Req {
        method: reqwest::Method::GET,
        path: path.into(),
        body: None,
    }
}

fn post(path: impl Into<String>, body: Json) -> Req {
    Req {
        method: reqwest::Method::POST,
        path: path.into(),
        body: Some(body),
    }
}

fn put(path: impl Into<String>, body: Json) -> Req {
    Req {
        method: reqwest::Method::PUT,
        path: path.into(),
        body: Some(body),
    }
}

fn delete(path: impl Into<String>) -> Req {
    Req {
        method: reqwest::Method::DELETE,
        path: path.into(),
        body: None,
    }
}

/// The hub as one caller sees it: with its bearer token, or with none.
struct Caller<'a> {
    hub: &'a Hub,
    token: Option<String>,
}

impl Caller<'_> {
    /// The answer's status and JSON body (`null` when empty).
    async fn send(&self, req: Req) -> (StatusCode, Json) {
        let mut http = self.hub.http.request(req.method, self.hub.url(&req.path));
        if let Some(t) = &self.token {
            http = http.bearer_auth(t);
        }
        if let Some(b) = req.body {
            http = http.json(&b);
        }
        let resp = http.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Json::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, json)
    }

    /// Sends `req`, asserting the answer is `want` (naming the request and showing the body
    /// otherwise); the body.
    async fn expect(&self, req: Req, want: StatusCode) -> Json {
        let what = format!("{} {} {:?}", req.method, req.path, req.body);
        let (status, body) = self.send(req).await;
        assert_eq!(status, want, "{what} with token {:?} → {body}", self.token);
        body
    }
}

/// Subscribes `url` for webhooks as `caller`, asserting the answer is `want`; the body.
async fn subscribe(caller: &Caller<'_>, url: &str, want: StatusCode) -> Json {
    caller
        .expect(post("/api/v1/subscriptions", json!({ "url": url })), want)
        .await
}

const COMPONENTS: &str = "/api/v1/components";
const UNASSIGNED: &str = "/api/v1/sensors/unassigned";
/// A seeded water-supply manhole cover of sw's.
const MH1: &str = "/api/v1/components/1201110101000001";
/// A seeded street lamp owned and maintained by zm.
const LAMP: &str = "/api/v1/components/1201110118000001";

/// The error shape, and the field named in its message.
fn assert_error(body: &Json, code: &str, mentions: &str) {
    let e = &body["error"];
    assert_eq!(e["code"], code, "{body}");
    let msg = e["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(mentions),
        "message {msg:?} should mention {mentions:?}"
    );
}

/// Asserts that `caller` may neither send `write` nor delete `component`: both forbidden, the
/// error of `write` mentioning `why`.
async fn assert_cannot_write(caller: &Caller<'_>, write: Req, component: &str, why: &str) {
    let body = caller.expect(write, StatusCode::FORBIDDEN).await;
    assert_error(&body, "forbidden", why);
    caller
        .expect(delete(component), StatusCode::FORBIDDEN)
        .await;
}

#[tokio::test]
async fn every_route_but_health_and_openapi_needs_a_valid_token() {
    let hub = Hub::seeded().await;
    let (anonymous, forged) = (hub.anonymous(), hub.with("wgt_0000.nope"));
    let body = anonymous
        .expect(get("/api/v1/health"), StatusCode::OK)
        .await;
    assert_eq!(body["status"], "ok");
    for path in [
        COMPONENTS,
        MH1,
        "/api/v1/components/1201110101000001/readings?quantity=tilt",
        "/api/v1/edges",
        "/api/v1/stats",
        "/api/v1/sensors/unassigned",
    ] {
        let body = anonymous.expect(get(path), StatusCode::UNAUTHORIZED).await;
        assert_error(&body, "unauthorized", "Authorization");
        forged.expect(get(path), StatusCode::UNAUTHORIZED).await;
    }
    anonymous
        .expect(post(COMPONENTS, json!({})), StatusCode::UNAUTHORIZED)
        .await;
    // The demo admin token from the environment works.
    let admin = hub.with(ADMIN);
    let body = admin.expect(get("/api/v1/stats"), StatusCode::OK).await;
    assert_eq!(body["registry"]["components"], 200);
}

#[tokio::test]
async fn a_read_token_reads_but_cannot_write() {
    let hub = Hub::seeded().await;
    let read = hub.caller("sw", "read");
    read.expect(get(MH1), StatusCode::OK).await;
    let create = post(COMPONENTS, json!({"id": "1201110101009999"}));
    assert_cannot_write(&read, create, MH1, "needs write").await;
    // A refused delete deleted nothing.
    read.expect(get(MH1), StatusCode::OK).await;
}

#[tokio::test]
async fn a_component_round_trips_through_create_read_update_delete() {
    let hub = Hub::seeded().await;
    let w = hub.caller("sw", "write");
    let id = "1201110102009001";
    let path = format!("{COMPONENTS}/{id}");
    let new = json!({"id": id, "name": "测试井盖", "grid_cell": "120111001001",
                     "lat": 39.155, "lon": 117.045});
    let created = w.expect(post(COMPONENTS, new), StatusCode::CREATED).await;
    // Type and owner come from class 0102 (sewage manhole cover → sw).
    assert_eq!(created["type"], "manhole_cover");
    assert_eq!(created["owner_department"], "sw");
    assert_eq!(created["status"], "normal");

    assert_eq!(w.expect(get(&path), StatusCode::OK).await, created);

    let again = w
        .expect(post(COMPONENTS, json!({"id": id})), StatusCode::CONFLICT)
        .await;
    assert_error(&again, "conflict", id);

    // Handing maintenance to another department is an admin act (the department's own write
    // token is refused: see a_department_token_cannot_change_a_components_owner_or_maintainer).
    let replacement = json!({"name": "改名井盖", "grid_cell": "120111001002",
                             "maintainer_department": "cg", "status": "maintenance"});
    w.expect(put(&path, replacement.clone()), StatusCode::FORBIDDEN)
        .await;
    let admin = hub.with(ADMIN);
    let updated = admin.expect(put(&path, replacement), StatusCode::OK).await;
    assert_eq!(updated["name"], "改名井盖");
    assert_eq!(updated["maintainer_department"], "cg");

    let query = "/api/v1/components?status=maintenance&grid=120111001002&department=cg";
    let list = w.expect(get(query), StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["items"][0]["id"], id);
    assert_eq!(list["next"], Json::Null);

    w.expect(delete(&path), StatusCode::NO_CONTENT).await;
    let body = w.expect(get(&path), StatusCode::NOT_FOUND).await;
    assert_error(&body, "not_found", id);
    w.expect(delete(&path), StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_field_never_a_5xx() {
    let hub = Hub::seeded().await;
    let w = hub.caller("sw", "write");
    let create = |body: Json| w.send(post(COMPONENTS, body));
    for (body, field, mention) in [
        (json!({"id": "12011101020090"}), "id", "16 digits"),
        (json!({"id": "120111010200900x"}), "id", "digits only"),
        (
            json!({"id": "9999990102009001"}),
            "id",
            "unknown region 999999",
        ),
        (
            json!({"id": "1201119902009001"}),
            "id",
            "unknown component class 9902",
        ),
        (
            json!({"id": "1201110102009001", "type": "street_light"}),
            "type",
            "does not match",
        ),
        (
            json!({"id": "1201110102009001", "grid_cell": "x"}),
            "grid_cell",
            "unknown grid cell",
        ),
        (
            json!({"id": "1201110102009001", "owner_department": "x"}),
            "owner_department",
            "unknown department",
        ),
        (
            json!({"id": "1201110102009001", "lat": 123.0}),
            "lat",
            "outside",
        ),
        (json!({"name": "no id"}), "id", "required"),
    ] {
        let resp = w
            .expect(post(COMPONENTS, body), StatusCode::BAD_REQUEST)
            .await;
        assert_error(&resp, "invalid_field", mention);
        assert_eq!(resp["error"]["field"], field, "{resp}");
    }
    // Unknown and mistyped JSON fields are named; malformed JSON is a 400.
    let (s, resp) = create(json!({"id": "1201110102009001", "colour": "red"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&resp, "invalid_request", "colour");
    let (s, resp) = create(json!({"id": "1201110102009001", "status": "broken"})).await;
    assert!(s.is_client_error());
    assert_error(&resp, "invalid_request", "status");
    let secret = w.token.as_deref().unwrap();
    let resp = hub
        .http
        .post(hub.url(COMPONENTS))
        .bearer_auth(secret)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Bodies are bounded, judged from Content-Length before any of the body is read. (A raw
    // request that sends no body: a client uploading 100 KB races the early 413 against its
    // own upload and may see the connection closed instead.)
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = hub.base.trim_start_matches("http://").to_string();
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /api/v1/components HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {secret}\r\n\
             Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("413 before the body is sent")
            .unwrap();
        let reply = String::from_utf8_lossy(&buf[..n]);
        assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    }
    // PUT: the body's id must match the path's.
    let resp = w
        .expect(
            put(MH1, json!({"id": "1201110101000002"})),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(resp["error"]["field"], "id");

    // Queries: bounded limit, known filters, known quantity, valid times.
    for (path, mention) in [
        ("/api/v1/components?limit=100000", "limit"),
        ("/api/v1/components?limit=0", "limit"),
        ("/api/v1/components?limit=abc", "limit"),
        ("/api/v1/components?status=sleepy", "status"),
        ("/api/v1/components?colour=red", "colour"),
        ("/api/v1/edges?limit=5000", "limit"),
        ("/api/v1/components/1201110101000001/readings", "quantity"),
        ("/api/v1/components/1201110101000001/readings?quantity=warp", "quantity"),
        ("/api/v1/components/1201110101000001/readings?quantity=tilt&from=yesterday", "from"),
        ("/api/v1/components/1201110101000001/readings?quantity=tilt&from=1732500000000&to=1732400000000", "from"),
        ("/api/v1/components/1201110101000001/readings?quantity=tilt&step=soon", "step"),
        ("/api/v1/components/1201110101000001/readings?quantity=tilt&step=1ms", "step"),
    ] {
        let (s, resp) = w.send(get(path)).await;
        assert!(s.is_client_error(), "{path} → {s} {resp}");
        let msg = resp["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(mention), "{path}: {msg:?} should mention {mention}");
    }
    let long = format!("/api/v1/components?type={}", "x".repeat(5000));
    w.expect(get(long), StatusCode::URI_TOO_LONG).await;
    let unknown = "/api/v1/components/1201110101009999/readings?quantity=tilt";
    w.expect(get(unknown), StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn pagination_walks_every_component_once_with_a_bounded_page() {
    let hub = Hub::seeded().await;
    let r = hub.caller("cg", "read");
    let mut ids = Vec::new();
    let mut path = "/api/v1/components?limit=64".to_string();
    let mut pages = 0;
    loop {
        let page = r.expect(get(&path), StatusCode::OK).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 64);
        ids.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_string()));
        pages += 1;
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/components?limit=64&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(ids.len(), 200);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "ordered by id, no repeats");
    // Default page size 100.
    let page = r.expect(get(COMPONENTS), StatusCode::OK).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 100);
    // Type filter.
    let page = r
        .expect(
            get("/api/v1/components?type=fire_hydrant&limit=1000"),
            StatusCode::OK,
        )
        .await;
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|c| c["type"] == "fire_hydrant"));
}

#[tokio::test]
async fn openapi_is_public_and_lists_the_contract_paths() {
    let hub = Hub::seeded().await;
    let doc = hub
        .anonymous()
        .expect(get("/api/v1/openapi.json"), StatusCode::OK)
        .await;
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/components",
        "/api/v1/components/{id}",
        "/api/v1/components/{id}/readings",
        "/api/v1/edges",
        "/api/v1/health",
        "/api/v1/stats",
    ] {
        assert!(
            paths.contains_key(p),
            "openapi lacks {p}: {:?}",
            paths.keys()
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let text = hub.metrics().await;
    assert!(
        text.contains("# TYPE hub_http_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE wangge_ingest"),
        "ingest metrics included: {text}"
    );
}

#[tokio::test]
async fn edges_list_shows_issued_credentials_but_never_secrets() {
    let dir = seeded_dir();
    let data = dir.path().join("data");
    let secret = hub_cli(
        &data,
        &["edge", "add", "edge-xq-02", "--name", "李七庄网关"],
    );
    let secret = secret.trim();
    assert_eq!(secret.len(), 48);
    let hub = Hub::start(dir).await;
    let admin = hub.with(ADMIN);
    let page = admin.expect(get("/api/v1/edges"), StatusCode::OK).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let e = items.iter().find(|e| e["id"] == "edge-xq-02").unwrap();
    assert_eq!(e["name"], "李七庄网关");
    assert_eq!(e["has_credentials"], true);
    assert_eq!(e["online"], false);
    assert!(!page.to_string().contains(secret));
    let page = admin
        .expect(get("/api/v1/sensors/unassigned"), StatusCode::OK)
        .await;
    assert_eq!(page["items"], json!([]));
    // Reference lists for the dashboard: grid cells with bounds, departments.
    let page = admin
        .expect(get("/api/v1/grid_cells?limit=5"), StatusCode::OK)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert!(page["next"].is_string());
    let page = admin
        .expect(
            get("/api/v1/grid_cells?cursor=120111001002&limit=1"),
            StatusCode::OK,
        )
        .await;
    assert_eq!(page["items"][0]["id"], "120111001003");
    assert_eq!(page["items"][0]["lat_min"], 39.162);
    let page = admin
        .expect(get("/api/v1/departments"), StatusCode::OK)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 12);
    hub.anonymous()
        .expect(get("/api/v1/departments"), StatusCode::UNAUTHORIZED)
        .await;
}

#[tokio::test]
async fn readings_come_back_raw_and_downsampled_merged_over_the_components_sensors() {
    let dir = seeded_dir();
    let data = dir.path().join("data");
    // Readings written straight into the embedded store the hub opens.
    // Within retention: a whole hour, 3 to 4 hours ago.
    let hour_ns: i64 = 3_600_000_000_000;
    let base_ns = (hub::registry::now_ns() / hour_ns - 4) * hour_ns;
    {
        use hub::timeseries::{embedded, StoredReading, TimeSeriesSink};
        let store =
            embedded::EmbeddedStore::open(&embedded::EmbeddedConfig::in_dir(&data)).unwrap();
        let readings: Vec<StoredReading> = (0..120)
            .map(|i| StoredReading {
                reading: Reading {
                    sensor: "MH-0001".into(),
                    quantity: Quantity::Tilt,
                    value: Value::Float(i as f64),
                    ts_ns: base_ns + i * 60_000_000_000,
                    quality: if i == 5 {
                        Quality::Suspect
                    } else {
                        Quality::Good
                    },
                    flags: ReadingFlags::default(),
                },
                edge_id: "edge-xq-01".into(),
                component_id: Some("1201110101000001".into()),
                grid_cell: None,
                department: None,
            })
            .collect();
        store.write(&readings).unwrap();
    }
    // Small pages, so raw paging with `next` is exercised.
    let hub = Hub::start_with(dir, "[http]\npoints_max = 50\n").await;
    let r = hub.caller("sw", "read");
    // `to` in +08:00: 10 minutes after `from`.
    let to =
        hub::registry::format_ts(base_ns + 8 * hour_ns + 600_000_000_000).replace('Z', "%2B08:00");
    let path = format!(
        "/api/v1/components/1201110101000001/readings?quantity=tilt&from={}&to={to}",
        hub::registry::format_ts(base_ns)
    );
    let body = r.expect(get(path), StatusCode::OK).await;
    let points = body["points"].as_array().unwrap();
    assert_eq!(points.len(), 10, "from inclusive, to exclusive: {body}");
    assert_eq!(points[0]["ts"], hub::registry::format_ts(base_ns));
    assert_eq!(points[0]["value"], 0.0);
    assert_eq!(points[0]["quality"], "good");
    assert_eq!(points[5]["quality"], "suspect");
    assert_eq!(body["step_ms"], Json::Null);

    // Unix ms and an explicit step: 10-minute buckets of 10 readings each.
    let path = format!(
        "/api/v1/components/1201110101000001/readings?quantity=tilt&from={}&to={}&step=10m",
        base_ns / 1_000_000,
        base_ns / 1_000_000 + 3_600_000
    );
    let body = r.expect(get(path), StatusCode::OK).await;
    let points = body["points"].as_array().unwrap();
    assert_eq!(points.len(), 6, "{body}");
    assert_eq!(points[0]["min"], 0.0);
    assert_eq!(points[0]["max"], 9.0);
    assert_eq!(points[0]["value"], 4.5);
    assert_eq!(points[0]["count"], 10);
    assert_eq!(body["step_ms"], 600_000);

    // `step=raw` over more than `points_max` points: pages cut by `next`, no repeats, no gaps.
    let mut from = (base_ns / 1_000_000).to_string();
    let mut values = Vec::new();
    let mut pages = 0;
    loop {
        let page = format!(
            "{MH1}/readings?quantity=tilt&step=raw&from={}&to={}",
            from.replace('+', "%2B"),
            base_ns / 1_000_000 + 7_200_000
        );
        let body = r.expect(get(page), StatusCode::OK).await;
        pages += 1;
        for p in body["points"].as_array().unwrap() {
            values.push(p["value"].as_f64().unwrap());
            assert_ne!(p["quality"], "aggregate");
        }
        match body["next"].as_str() {
            Some(n) => from = n.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(values, (0..120).map(|i| i as f64).collect::<Vec<_>>());

    // Another quantity of the same component: nothing, not an error.
    let battery = format!(
        "{MH1}/readings?quantity=battery&from={}",
        base_ns / 1_000_000
    );
    let body = r.expect(get(battery), StatusCode::OK).await;
    assert_eq!(body["points"], json!([]));
}

#[tokio::test]
async fn an_unassigned_sensor_is_attached_to_a_component_through_the_api() {
    let dir = seeded_dir();
    let data = dir.path().join("data");
    {
        // What ingest records when an unregistered sensor reports.
        use hub::registry::{RegistryStore, SqliteRegistry};
        let reg = SqliteRegistry::open(&data.join("registry.sqlite")).unwrap();
        reg.note_unassigned_sensor("XX-9", "edge-xq-01", hub::registry::now_ns())
            .unwrap();
    }
    let hub = Hub::start(dir).await;
    let (read, write) = (hub.caller("sw", "read"), hub.caller("sw", "write"));
    let xx9 = "/api/v1/sensors/XX-9";
    let page = read.expect(get(UNASSIGNED), StatusCode::OK).await;
    assert_eq!(page["items"][0]["sensor_id"], "XX-9", "{page}");
    read.expect(get(xx9), StatusCode::NOT_FOUND).await;

    let attach = json!({"component_id": "1201110101000001", "type": "manhole_cover",
                        "profile": "gridsense", "interval_s": 30, "edge": "edge-xq-01"});
    read.expect(put(xx9, attach.clone()), StatusCode::FORBIDDEN)
        .await;
    for (body, field) in [
        (json!({"component_id": "1201110101009999"}), "component_id"),
        (json!({"edge": "edge-nowhere"}), "edge"),
        (json!({"interval_s": 0}), "interval_s"),
    ] {
        let resp = write.expect(put(xx9, body), StatusCode::BAD_REQUEST).await;
        assert_eq!(resp["error"]["field"], field, "{resp}");
    }
    let sensor = write.expect(put(xx9, attach), StatusCode::CREATED).await;
    assert_eq!(sensor["component_id"], "1201110101000001");
    assert_eq!(sensor["interval_s"], 30);
    assert_eq!(read.expect(get(xx9), StatusCode::OK).await, sensor);
    let page = read.expect(get(UNASSIGNED), StatusCode::OK).await;
    assert_eq!(page["items"], json!([]), "attached: no longer listed");
}

#[tokio::test]
async fn a_department_writes_only_the_components_it_owns_or_maintains() {
    let hub = Hub::seeded().await;
    let sw = hub.caller("sw", "write");
    let rename = put(LAMP, json!({"name": "not ours"}));
    assert_cannot_write(&sw, rename, LAMP, "department sw").await;
    // Creating a component whose class gives it to zm: refused; with sw only as maintainer:
    // refused too (a department creates only what it both owns and maintains); as both: allowed.
    for (component, want) in [
        (json!({"id": "1201110118009001"}), StatusCode::FORBIDDEN),
        (
            json!({"id": "1201110118009001", "maintainer_department": "sw"}),
            StatusCode::FORBIDDEN,
        ),
        (
            json!({"id": "1201110118009001", "owner_department": "sw", "maintainer_department": "sw"}),
            StatusCode::CREATED,
        ),
    ] {
        sw.expect(post(COMPONENTS, component), want).await;
    }
    // Attaching a sensor to another department's component: refused.
    let attach = json!({"component_id": "1201110118000001"});
    sw.expect(put("/api/v1/sensors/XX-1", attach), StatusCode::FORBIDDEN)
        .await;
    // Admin may change anything; the lamp is unchanged by the refused calls.
    let admin = hub.with(ADMIN);
    let lamp = admin.expect(get(LAMP), StatusCode::OK).await;
    assert_ne!(lamp["name"], "not ours");
    admin
        .expect(put(LAMP, json!({"name": "admin rename"})), StatusCode::OK)
        .await;
}

#[tokio::test]
async fn a_department_token_cannot_change_a_components_owner_or_maintainer() {
    let hub = Hub::seeded().await;
    let (sw, admin) = (hub.caller("sw", "write"), hub.with(ADMIN));
    let path = "/api/v1/components/1201110118009002";
    let mine = json!({"owner_department": "sw", "maintainer_department": "sw", "name": "ours"});
    sw.expect(put(path, mine.clone()), StatusCode::CREATED)
        .await;
    // Handing it over (owner or maintainer) or claiming it elsewhere: refused, nothing changes.
    for (field, to) in [("owner_department", "zm"), ("maintainer_department", "zm")] {
        let mut body = mine.clone();
        body[field] = json!(to);
        let err = sw.expect(put(path, body), StatusCode::FORBIDDEN).await;
        assert_error(&err, "forbidden", "admin token");
    }
    // A PUT that omits the owner falls back to the class default (zm): a change, refused.
    sw.expect(put(path, json!({"name": "renamed"})), StatusCode::FORBIDDEN)
        .await;
    let c = admin.expect(get(path), StatusCode::OK).await;
    assert_eq!(
        (
            c["owner_department"].clone(),
            c["maintainer_department"].clone(),
            c["name"].clone()
        ),
        (json!("sw"), json!("sw"), json!("ours"))
    );
    // Keeping them, the department edits its component; admin may hand it over.
    let mut renamed = mine.clone();
    renamed["name"] = json!("renamed");
    sw.expect(put(path, renamed), StatusCode::OK).await;
    let mut handed = mine.clone();
    handed["owner_department"] = json!("zm");
    let c = admin.expect(put(path, handed), StatusCode::OK).await;
    assert_eq!(c["owner_department"], "zm");
}

/// hub.toml: a deadline, and webhooks allowed to 10.12.0.0/16 besides public addresses.
const WEBHOOKS_ALLOW: &str = "[events.deadlines]\ncritical_s = 600\n[events.webhooks]\nallow = [\"10.12.0.0/16\"]\ntimeout_ms = 2000\n";
/// hub.toml: the switch that lets webhooks go to loopback.
const WEBHOOKS_LOOPBACK: &str = "[events.webhooks]\ninsecure_allow_loopback = true\n";
/// How the API refuses a subscription to a URL the webhook policy forbids.
const REFUSED: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

#[tokio::test]
async fn events_webhooks_keys_in_hub_toml_take_effect() {
    let hub = Hub::start_with(seeded_dir(), WEBHOOKS_ALLOW).await;
    let sw = hub.caller("sw", "write");
    // The allow-listed CIDR.
    subscribe(&sw, "http://10.12.3.4/hook", StatusCode::CREATED).await;
    let body = subscribe(&sw, "http://10.13.3.4/hook", REFUSED).await;
    assert_eq!(body["error"]["field"], "url");
    // Loopback without the switch.
    subscribe(&sw, "http://127.0.0.1:9/hook", REFUSED).await;
    let metrics = hub.metrics().await;
    for line in [
        "wangge_webhook_refused_total{stage=\"subscribe\",reason=\"private\"} 1",
        "wangge_webhook_refused_total{stage=\"subscribe\",reason=\"loopback\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in /metrics");
    }
    drop(sw);
    drop(hub);

    // The loopback switch from hub.toml: loopback accepted, and a warning at start.
    let hub = Hub::start_with(seeded_dir(), WEBHOOKS_LOOPBACK).await;
    let sw = hub.caller("sw", "write");
    subscribe(&sw, "http://127.0.0.1:9/hook", StatusCode::CREATED).await;
    // Never link-local.
    subscribe(&sw, "http://169.254.169.254/", REFUSED).await;
    let log = std::fs::read_to_string(hub.dir.path().join("hub.log")).unwrap();
    assert!(
        log.contains("WARN") && log.contains("insecure_allow_loopback"),
        "{log}"
    );
}
