//! Small in-memory stand-ins for what the hub provides: its registry and its token store.
#![allow(dead_code)]

pub mod behind;

use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use wangge_events::model::{Actor, ComponentCtx, Scope, Trigger};
use wangge_events::rules::{Condition, ConditionKind};
use wangge_events::{Authorizer, ComponentDirectory, ReadingCount};

pub const S: i64 = 1_000_000_000;

pub struct Directory(pub HashMap<String, ComponentCtx>);

impl ComponentDirectory for Directory {
    fn component(&self, id: &str) -> Option<ComponentCtx> {
        self.0.get(id).cloned()
    }
    fn reading_counts(&self, _from: i64, _to: i64) -> Vec<ReadingCount> {
        vec![ReadingCount {
            component_id: "1201110101000001".into(),
            received: 90,
            expected: 100,
        }]
    }
    fn department_exists(&self, d: &str) -> bool {
        DEPARTMENTS.contains(&d)
    }
}

/// The registered departments of these tests.
pub const DEPARTMENTS: [&str; 3] = ["sw", "xf", "hb"];

fn ctx(t: &str, grid: &str, owner: &str, maintainer: &str) -> ComponentCtx {
    ComponentCtx {
        component_type: t.into(),
        grid_cell: grid.into(),
        owner_department: owner.into(),
        maintainer_department: maintainer.into(),
    }
}

/// Two components from the registry seed: a water-supply manhole cover (sw) and a smoke detector (xf).
pub fn directory() -> Arc<Directory> {
    let mut m = HashMap::new();
    m.insert(
        "1201110101000001".into(),
        ctx("manhole_cover", "120111001001", "sw", "sw"),
    );
    m.insert(
        "1201110651000001".into(),
        ctx("smoke_detector", "120111002001", "xf", "xf"),
    );
    Arc::new(Directory(m))
}

pub const MANHOLE: &str = "1201110101000001";
pub const SMOKE: &str = "1201110651000001";

pub struct Tokens(pub HashMap<String, Actor>);

impl Authorizer for Tokens {
    fn authorize(&self, bearer: &str) -> Option<Actor> {
        self.0.get(bearer).cloned()
    }
}

/// A good reading of the manhole cover's sensor (`MH-0001`, every 60 s) at `ts_ns`.
pub fn manhole_reading(
    quantity: protocol::Quantity,
    value: f64,
    ts_ns: i64,
) -> wangge_events::rules::RuleInput<'static> {
    wangge_events::rules::RuleInput {
        component_id: MANHOLE,
        component_type: "manhole_cover",
        sensor_id: "MH-0001",
        interval_s: 60,
        quantity,
        value,
        ts_ns,
        quality: protocol::uplink::Quality::Good,
    }
}

pub fn tokens() -> Arc<Tokens> {
    let mut m = HashMap::new();
    let mut add = |tok: &str, name: &str, dept: Option<&str>, scope| {
        m.insert(
            tok.to_string(),
            Actor {
                name: name.into(),
                department: dept.map(str::to_string),
                scope,
            },
        );
    };
    add("admin-token", "admin", None, Scope::Admin);
    add("sw-write", "wang", Some("sw"), Scope::Write);
    add("sw-read", "li", Some("sw"), Scope::Read);
    add("xf-write", "zhao", Some("xf"), Scope::Write);
    add("hb-write", "chen", Some("hb"), Scope::Write);
    Arc::new(Tokens(m))
}

pub fn raised(component: &str, event_type: &str, ts_s: i64) -> Condition {
    Condition {
        kind: ConditionKind::Raised,
        component_id: component.into(),
        event_type: event_type.into(),
        severity: wangge_events::model::Severity::Critical,
        trigger: Trigger {
            quantity: "tilt".into(),
            value: json!(40.0),
            threshold: Some(15.0),
            ts_ns: ts_s * S,
        },
        late: false,
    }
}

pub fn cleared(component: &str, event_type: &str, ts_s: i64) -> Condition {
    Condition {
        kind: ConditionKind::Cleared,
        ..raised(component, event_type, ts_s)
    }
}

/// Serves a router on 127.0.0.1:0; the server task ends with the runtime.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// The events API of one [`Events`](wangge_events::Events) served on 127.0.0.1:0 under
/// `/api/v1` with the test [`tokens`], and a client that calls it with a bearer token.
#[derive(Clone)]
pub struct Api {
    /// `http://127.0.0.1:<port>/api/v1`.
    pub base: String,
    pub client: reqwest::Client,
}

impl Api {
    pub async fn start(events: &wangge_events::Events) -> Api {
        let app =
            axum::Router::new().nest("/api/v1", wangge_events::router(events.clone(), tokens()));
        Api {
            base: format!("http://{}/api/v1", serve(app).await),
            client: reqwest::Client::new(),
        }
    }

    /// `GET path` (below `/api/v1`): the status and the JSON body (`null` if none).
    pub async fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        self.send(self.client.get(self.url(path)), token).await
    }

    /// `POST path` of a JSON body: the status and the JSON body (`null` if none).
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.send(self.client.post(self.url(path)).json(&body), token)
            .await
    }

    /// `DELETE path`: the status.
    pub async fn delete(&self, path: &str, token: &str) -> u16 {
        self.send(self.client.delete(self.url(path)), token).await.0
    }

    /// `POST /events/{id}/transitions` of `body` (`{"action": …}`).
    pub async fn transition(
        &self,
        id: i64,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.post(&format!("/events/{id}/transitions"), token, body)
            .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder, token: &str) -> (u16, serde_json::Value) {
        let r = req.bearer_auth(token).send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(serde_json::Value::Null))
    }
}

#[allow(unused_imports)]
pub use wangge_testkit::eventually_some;

/// The `error.message` of an API error body; "" when there is none, so a `contains` check on it
/// fails.
pub fn error_message(body: &serde_json::Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}
