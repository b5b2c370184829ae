//! `hub migrate --from DATA_DIR --to postgres://…`: a real single-node hub gathers state through
//! its CLI, MQTT and API (seed, edge, token, MQTT user, a batch that raises an event, a webhook
//! subscription, a transition, a photo), is stopped, and its state moved into a fresh
//! PostgreSQL; the PostgreSQL stores then hold every item with equal values, ids and cursors. A second migration
//! into the same database, a running hub and a bad URL are refused, never showing the password.

mod hub_cli_support;
mod ingest_support;

use hub::registry::seed::export_dir;
use hub::registry::{PgRegistry, RegistryAdmin, RegistryStore};
use hub_cli_support::{
    displaced_cover_tilt, hub_cli, member_config, ok_json, serve, serve_member, HUB,
};
use protocol::uplink::{mac_key, Ack};
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wangge_events::lifecycle::Deadlines;
use wangge_events::store::{
    Attachments, EventLog, Outbox, PgStore, SqliteStore, Subscription, SubscriptionSpec,
    Subscriptions,
};
use wangge_pg::Pg;
use wangge_testkit::postgres::PASSWORD;
use wangge_testkit::{now_ns, Postgres};

const ADMIN: &str = "migrate-admin-5be0c2d9a4f17e3608b1c7d2e9f4";
const EDGE: &str = "edge-xq-01";
const COMPONENT: &str = "1201110101000001"; // manhole cover of sw, sensor MH-0001 on edge-xq-01

fn migrate(data: &Path, url: &str) -> Output {
    Command::new(HUB)
        .args(["migrate", "--from"])
        .arg(data)
        .args(["--to", url])
        .env_remove("WANGGE_POSTGRES_URL")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What the single node handed out, to check against PostgreSQL.
struct Issued {
    edge_secret: String,
    sw_write: String,
    mqtt_user: (String, String),
    event_id: i64,
    subscription_id: i64,
    /// A photo uploaded to the event (its bytes under `<data_dir>/attachments/`).
    attachment_id: i64,
}

/// The photo uploaded to the event: a repaired manhole cover (PNG, no metadata).
const PHOTO_PNG: &[u8] = include_bytes!("../events/tests/fixtures/after-repair.png");

/// Uploads [`PHOTO_PNG`] to event `event_id` as `token`; the attachment's id.
async fn upload_photo(http: &reqwest::Client, api: &str, event_id: i64, token: &str) -> i64 {
    let boundary = "----wangge-migrate-boundary-4f1c";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"after.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(PHOTO_PNG);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let a = ok_json(
        http.post(format!("{api}/events/{event_id}/attachments"))
            .bearer_auth(token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body),
    )
    .await;
    a["id"].as_i64().expect("attachment id")
}

/// Publishes one sealed batch as the edge (21 readings of tilt 25°: manhole.displaced) and
/// waits for its ack, which it returns.
async fn send_batch(mqtt_port: u16, secret: &str) -> Ack {
    let mut edge = ingest_support::login(mqtt_port, EDGE, secret).await;
    let (_, readings) = displaced_cover_tilt();
    let batch = ingest_support::batch(EDGE, 1, 1, readings);
    let ack = edge.deliver(&batch, &mac_key(secret)).await;
    assert_eq!((ack.epoch, ack.seq), (1, 1));
    let _ = edge.client.disconnect().await;
    ack
}

/// GET `url` with `token` until `found` picks something out of the body (30 s at most).
async fn poll_for(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    found: impl Fn(&Json) -> Option<Json>,
) -> Json {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http.get(url).bearer_auth(token).send().await.unwrap();
        let body: Json = r.json().await.unwrap_or(Json::Null);
        if let Some(v) = found(&body) {
            return v;
        }
        assert!(Instant::now() < deadline, "nothing found at {url}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A single node in `data` that knows a seed, an edge, a token, an MQTT user, an event with a
/// transition, and a webhook subscription with a delivery; stopped when this returns.
async fn single_node_with_state(dir: &Path, data: &Path) -> Issued {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry");
    hub_cli(data, &["registry", "import", seed.to_str().unwrap()]);
    let edge_secret = hub_cli(data, &["edge", "add", EDGE]);
    let sw_write = hub_cli(
        data,
        &["token", "add", "--department", "sw", "--scope", "write"],
    );
    let issued = hub_cli(data, &["mqtt-user", "add", "--department", "sw"]);
    let (user, secret) = issued.split_once('\n').expect("username and password");
    let mqtt_user = (user.to_string(), secret.trim().to_string());

    let mut hub = serve(dir, "hub.log", ADMIN)
        .data_dir(data)
        .answering()
        .start()
        .unwrap();
    let api = format!("{}/api/v1", hub.base());
    let http = reqwest::Client::new();
    // A webhook subscription first, so the event's changes fan out to it (a public literal
    // address: allowed by the SSRF guard, unreachable here, so its delivery is retried).
    let sub = ok_json(
        http.post(format!("{api}/subscriptions"))
            .bearer_auth(ADMIN)
            .json(&json!({"url": "https://93.184.216.34/wangge-hook", "secret": "0123456789abcdef0123"})),
    )
    .await;
    let subscription_id = sub["id"].as_i64().expect("subscription id");

    send_batch(hub.mqtt, &edge_secret).await;
    let event = poll_for(
        &http,
        &format!("{api}/events?component={COMPONENT}"),
        ADMIN,
        |b| {
            b["items"]
                .as_array()?
                .iter()
                .find(|e| e["type"] == "manhole.displaced")
                .cloned()
        },
    )
    .await;
    let event_id = event["id"].as_i64().expect("event id");
    let r = http
        .post(format!("{api}/events/{event_id}/transitions"))
        .bearer_auth(&sw_write)
        .json(&json!({"action": "acknowledge", "note": "on our way"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let attachment_id = upload_photo(&http, &api, event_id, &sw_write).await;
    poll_for(
        &http,
        &format!("{api}/subscriptions/{subscription_id}/deliveries"),
        ADMIN,
        |b| {
            b["items"]
                .as_array()
                .filter(|a| !a.is_empty())
                .cloned()
                .map(Json::Array)
        },
    )
    .await;
    let stopped = hub.proc.terminate(Duration::from_secs(15));
    assert!(
        stopped.is_some(),
        "the hub stops on SIGTERM:\n{}",
        hub.log()
    );
    Issued {
        edge_secret,
        sw_write,
        mqtt_user,
        event_id,
        subscription_id,
        attachment_id,
    }
}

/// The single node's events as its own store reads them (closed again before the migration).
struct EventsBefore {
    event: wangge_events::model::Event,
    history: Vec<wangge_events::model::HistoryEntry>,
    changes: Vec<(i64, String)>,
    subscription: Subscription,
    deliveries: Vec<(
        wangge_events::store::Delivery,
        Vec<wangge_events::store::DeliveryAttempt>,
    )>,
    last_cursor: i64,
    attachments: Vec<wangge_events::store::Attachment>,
}

fn events_before(data: &Path, issued: &Issued) -> EventsBefore {
    let store = SqliteStore::open(&data.join("events.db"), Deadlines::default()).unwrap();
    EventsBefore {
        event: store.get(issued.event_id).unwrap().expect("the event"),
        history: store.history(issued.event_id).unwrap(),
        changes: store
            .changes_after(0, 1000)
            .unwrap()
            .into_iter()
            .map(|c| (c.cursor, c.body))
            .collect(),
        subscription: store
            .subscription(issued.subscription_id)
            .unwrap()
            .expect("the subscription"),
        deliveries: store.deliveries(issued.subscription_id, 100).unwrap(),
        last_cursor: store.last_cursor().unwrap(),
        attachments: store.attachments(issued.event_id).unwrap(),
    }
}

/// [`single_node_with_state`] in a fresh temp dir: (the dir, the node's data dir, what it issued).
fn stopped_single_node(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, PathBuf, Issued) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let issued = rt.block_on(single_node_with_state(dir.path(), &data));
    (dir, data, issued)
}

fn same_files(a: &Path, b: &Path) {
    let mut names: Vec<PathBuf> = std::fs::read_dir(a)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(names.len() >= 5, "exported {names:?}");
    for f in names {
        let name = f.file_name().unwrap();
        assert_eq!(
            std::fs::read(&f).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
            "{name:?} differs"
        );
    }
}

#[test]
fn a_stopped_single_node_moves_into_postgres_with_ids_cursors_and_secrets_intact() {
    // The hub's clients are async; the PostgreSQL stores (like the hub's) are blocking calls
    // with a runtime of their own, so they run outside this one.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (dir, data, issued) = stopped_single_node(&rt);
    drop(rt);
    let before = events_before(&data, &issued);
    assert!(before.history.len() >= 2, "{:?}", before.history);
    let exported = dir.path().join("export-sqlite");
    hub_cli(&data, &["registry", "export", exported.to_str().unwrap()]);

    let server = Postgres::start();
    let url = server.create_database("cluster");
    let out = migrate(&data, &url);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));
    for line in [
        "events ",
        "changes ",
        "stored_batches ",
        "edges ",
        "api_tokens ",
        "attachments ",
        "attachment_blobs ",
    ] {
        assert!(
            stdout.contains(line),
            "no {line:?} in the summary:\n{stdout}"
        );
    }

    let pg = Arc::new(Pg::connect(&url, 2).unwrap());
    let reg = PgRegistry::open(pg.clone()).unwrap();
    // The registry: the same seed export byte for byte, and every credential still verifies.
    let exported_pg = dir.path().join("export-pg");
    export_dir(&reg, &exported_pg).unwrap();
    same_files(&exported, &exported_pg);
    let creds = reg.edge_credentials(EDGE).unwrap().expect("the edge");
    assert!(creds.verify_password(&issued.edge_secret));
    assert_eq!(
        creds.mac_key,
        protocol::uplink::mac_key(&issued.edge_secret)
    );
    let principal = reg
        .verify_token(&issued.sw_write)
        .unwrap()
        .expect("the token");
    assert_eq!(principal.department.as_deref(), Some("sw"));
    let (user, secret) = &issued.mqtt_user;
    let mqtt = reg
        .mqtt_user_credentials(user)
        .unwrap()
        .expect("the MQTT user");
    assert!(mqtt.verify_password(secret));
    assert_eq!(reg.edge_credentials("edge-unknown").unwrap(), None);

    // The events: the same event, history, outbox cursors and bodies, subscription, deliveries.
    let store = PgStore::open(pg.clone(), Deadlines::default()).unwrap();
    assert_eq!(
        store.get(issued.event_id).unwrap(),
        Some(before.event.clone())
    );
    assert_eq!(store.history(issued.event_id).unwrap(), before.history);
    let changes: Vec<(i64, String)> = store
        .changes_after(0, 1000)
        .unwrap()
        .into_iter()
        .map(|c| (c.cursor, c.body))
        .collect();
    assert_eq!(changes, before.changes);
    assert_eq!(store.last_cursor().unwrap(), before.last_cursor);
    let sub = store.subscription(issued.subscription_id).unwrap();
    assert_eq!(
        sub.as_ref().map(|s| (&s.url, &s.secret, s.cursor)),
        Some((
            &before.subscription.url,
            &before.subscription.secret,
            before.subscription.cursor
        ))
    );
    assert_eq!(
        store.deliveries(issued.subscription_id, 100).unwrap(),
        before.deliveries
    );
    // The photo: its row as it was, its bytes served by the cluster's blob store.
    assert_eq!(
        store.attachments(issued.event_id).unwrap(),
        before.attachments
    );
    let photo = &before.attachments[0];
    assert_eq!(photo.id, issued.attachment_id);
    let blobs = wangge_events::attachments::PgBlobStore::new(pg.clone());
    use wangge_events::attachments::BlobStore;
    assert_eq!(
        blobs.get(&photo.sha256).unwrap().as_deref(),
        Some(PHOTO_PNG)
    );
    // The batch ledger: the single node's stored batch, so a resend is acked as a duplicate.
    let ledger = pg
        .query("SELECT edge, epoch, seq, hub_id FROM stored_batches", &[])
        .unwrap();
    let batches: Vec<(String, i64, i64, String)> = ledger
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        batches,
        vec![(
            EDGE.to_string(),
            1,
            1,
            hub::migrate_to_pg::SINGLE_NODE_HUB_ID.to_string()
        )]
    );

    // The sequences moved past the copied ids: new rows get new ids, the next change a cursor
    // after the last one.
    let next = store
        .create_subscription(SubscriptionSpec {
            url: "https://93.184.216.34/second",
            secret: "fedcba9876543210fedc",
            department: None,
            event_types: &[],
            created_at_ns: now_ns(),
        })
        .unwrap();
    assert!(
        next.id > issued.subscription_id,
        "{} after {}",
        next.id,
        issued.subscription_id
    );
    let dispatch = wangge_events::store::TransitionRequest {
        action: wangge_events::lifecycle::Action::Dispatch,
        department: Some("sw".into()),
        note: None,
    };
    let t = wangge_events::store::Transition {
        id: issued.event_id,
        actor: "admin",
        req: &dispatch,
        now_ns: now_ns(),
    };
    let change = store.transition(t).unwrap();
    assert!(
        change.cursor > before.last_cursor,
        "{} after {}",
        change.cursor,
        before.last_cursor
    );
    let history = store.history(issued.event_id).unwrap();
    assert_eq!(history.len(), before.history.len() + 1);

    // Into the same database again: refused, nothing added.
    let again = migrate(&data, &url);
    let err = text(&again.stderr);
    assert!(!again.status.success());
    assert!(err.contains("not empty"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    assert_eq!(
        store.changes_after(0, 1000).unwrap().len(),
        before.changes.len() + 1
    );
}

#[test]
fn a_running_hub_and_a_bad_url_are_refused_without_showing_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry");
    hub_cli(&data, &["registry", "import", seed.to_str().unwrap()]);
    let unreachable = format!("postgres://wangge:{PASSWORD}@127.0.0.1:1/nowhere");
    let out = migrate(&data, &unreachable);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("127.0.0.1:1/nowhere"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    let malformed = format!("postgres://wangge:{PASSWORD}@127.0.0.1:port/x");
    let out = migrate(&data, &malformed);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad URL"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");

    // The URL from the environment (the password stays out of the command line).
    let out = Command::new(HUB)
        .args(["migrate", "--from"])
        .arg(&data)
        .env(
            "WANGGE_POSTGRES_URL",
            format!("postgres://wangge:{PASSWORD}@127.0.0.1:1/from_env"),
        )
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("127.0.0.1:1/from_env"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");

    let hub = serve(dir.path(), "hub.log", ADMIN)
        .data_dir(&data)
        .answering()
        .start()
        .unwrap();
    let out = migrate(&data, &unreachable);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("open in another process"), "{err}");
    drop(hub);
}

/// A fresh single node in `dir` (seed only), then `change` applied to its registry file as a
/// future schema or a damaged file would have it.
fn single_node_changed(dir: &Path, change: &str) -> PathBuf {
    let data = dir.join("data");
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry");
    hub_cli(&data, &["registry", "import", seed.to_str().unwrap()]);
    hub_cli(&data, &["edge", "add", EDGE]);
    let conn = rusqlite::Connection::open(data.join("registry.sqlite")).unwrap();
    conn.execute_batch(change).unwrap();
    drop(conn);
    data
}

/// Rows the target holds in the tables the migration writes first and last.
fn target_rows(server: &Postgres, db: &str) -> String {
    server
        .psql_in(
            db,
            "SELECT (SELECT COUNT(*) FROM regions) + (SELECT COUNT(*) FROM edges) \
             + (SELECT COUNT(*) FROM sensors)",
        )
        .unwrap_or_else(|| "no tables".into())
}

#[test]
fn schema_drift_a_bad_value_or_a_refused_row_fails_naming_it_and_leaves_the_target_empty() {
    let server = Postgres::start();
    let cases: &[(&str, &str, &str)] = &[
        (
            "column",
            "ALTER TABLE edges ADD COLUMN firmware_channel TEXT",
            "SQLite edges.firmware_channel has no PostgreSQL column",
        ),
        (
            "table",
            "CREATE TABLE maintenance_windows (id TEXT PRIMARY KEY)",
            "has table maintenance_windows, which the migration does not know",
        ),
        (
            "value",
            "UPDATE edges SET revoked = 2",
            "table edges, column revoked, row 1: integer 2 does not fit a Boolean column",
        ),
        // A row SQLite took with its foreign keys off; PostgreSQL refuses it, after the parent
        // tables were inserted in the same transaction.
        (
            "refused",
            "PRAGMA foreign_keys = OFF; \
             UPDATE sensors SET edge = 'edge-nowhere' WHERE id = 'MH-0001'",
            "sensors_edge_fkey",
        ),
    ];
    for (name, change, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let data = single_node_changed(dir.path(), change);
        let url = server.create_database(name);
        let out = migrate(&data, &url);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{name}: migrated despite {change}");
        assert!(err.contains(want), "{name}: {err}");
        assert!(!err.contains(PASSWORD), "{name}: {err}");
        let rows = target_rows(&server, name);
        assert!(
            rows == "0" || rows == "no tables",
            "{name}: target holds {rows} rows"
        );
    }
}

/// The migrated database, served: a cluster member started on it (mosquitto as its broker,
/// VictoriaMetrics for readings) serves the single node's event to the single node's token, and
/// acks the edge's resend of the batch the single node stored as a `duplicate` (the batch ledger
/// came along).
#[test]
fn a_cluster_member_serves_what_a_single_node_wrote_after_the_migration() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (dir, data, issued) = stopped_single_node(&rt);
    let server = Postgres::start();
    let url = server.create_database("served");
    let out = migrate(&data, &url);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mosq = wangge_testkit::Mosquitto::start();
    let vm = wangge_testkit::VictoriaMetrics::start();
    let config = member_config(dir.path(), "hub-a", &url, mosq.port, &vm.url(), false);
    let member = serve_member(&config, ADMIN, mosq.port);
    let http = member.http;
    let base = format!("http://127.0.0.1:{http}/api/v1");
    rt.block_on(async {
        let client = reqwest::Client::new();
        // The single node's department token, on the cluster: its event, same id.
        let event = poll_for(
            &client,
            &format!("{base}/events/{}", issued.event_id),
            &issued.sw_write,
            |b| (b["id"].as_i64() == Some(issued.event_id)).then(|| b.clone()),
        )
        .await;
        assert_eq!(event["component_id"], COMPONENT, "{event}");
        // The member leases the migrated edge, then acks its resend of batch (1, 1) as a
        // duplicate: it was stored by the single node.
        poll_for(&client, &format!("{base}/cluster"), ADMIN, |b| {
            let owned = b["members"][0]["edges"].as_array()?;
            owned.iter().any(|e| e == EDGE).then(|| b.clone())
        })
        .await;
        let ack = send_batch(mosq.port, &issued.edge_secret).await;
        assert_eq!(ack.outcome, protocol::uplink::AckOutcome::Duplicate);
    });
}
