//! The events routes answer exactly what the hub's OpenAPI document says: real responses of a
//! real `hub serve` (subscriptions, deliveries, event pages) are checked against the schemas the
//! document derives from the handlers' body types — every key documented, every required key
//! present, every value of the documented type.

mod hub_cli_support;
mod openapi_support;

use hub_cli_support::serve;
use serde_json::{json, Value as Json};

const ADMIN: &str = "schema-admin-4f1c9b2e7a0d63e8c5b94a1f02d7";
/// The test's webhook receiver address is loopback, refused by default.
const WEBHOOKS_TO_LOOPBACK: &str = "[events.webhooks]\ninsecure_allow_loopback = true\n";

/// Why `value` does not conform to `schema` (resolving `$ref`s in `doc`), or None.
fn mismatch(doc: &Json, schema: &Json, value: &Json, at: &str) -> Option<String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return mismatch(doc, &doc["components"]["schemas"][name], value, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            let fits = options
                .iter()
                .any(|o| mismatch(doc, o, value, at).is_none());
            return (!fits).then(|| format!("{at}: {value} fits none of {key} {schema}"));
        }
    }
    if let Some(parts) = schema["allOf"].as_array() {
        // A flattened struct: each part checks its own keys; together they cover the object.
        let mut known = Vec::new();
        for part in parts {
            let part = resolve(doc, part);
            known.extend(
                part["properties"]
                    .as_object()
                    .into_iter()
                    .flat_map(|p| p.keys().cloned()),
            );
            let mut own = value.clone();
            if let (Some(o), Some(props)) = (own.as_object_mut(), part["properties"].as_object()) {
                o.retain(|k, _| props.contains_key(k));
            }
            if let Some(m) = mismatch(doc, &part, &own, at) {
                return Some(m);
            }
        }
        let stray = value.as_object()?.keys().find(|k| !known.contains(k));
        return stray.map(|k| format!("{at}.{k}: not in the schema"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Json::String(t) => vec![t.as_str()],
        Json::Array(ts) => ts.iter().filter_map(Json::as_str).collect(),
        _ => return None, // `{}`: anything
    };
    let actual = match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    };
    let fits = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
    if !fits {
        return Some(format!("{at}: {value} is {actual}, documented {types:?}"));
    }
    match value {
        Json::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| mismatch(doc, &schema["items"], item, &format!("{at}[{i}]"))),
        Json::Object(fields) => object_mismatch(doc, schema, fields, at),
        _ => None,
    }
}

fn object_mismatch(
    doc: &Json,
    schema: &Json,
    fields: &serde_json::Map<String, Json>,
    at: &str,
) -> Option<String> {
    let props = schema["properties"].as_object()?;
    let required = schema["required"].as_array().cloned().unwrap_or_default();
    if let Some(k) = required
        .iter()
        .filter_map(Json::as_str)
        .find(|k| !fields.contains_key(*k))
    {
        return Some(format!("{at}.{k}: required by the schema, missing"));
    }
    fields.iter().find_map(|(k, v)| match props.get(k) {
        None => Some(format!("{at}.{k}: not in the schema")),
        Some(s) => mismatch(doc, s, v, &format!("{at}.{k}")),
    })
}

fn resolve(doc: &Json, schema: &Json) -> Json {
    match schema["$ref"].as_str() {
        Some(r) => {
            doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")].clone()
        }
        None => schema.clone(),
    }
}

/// The schema of the `status` answer of `method path` in the document.
fn response_schema(doc: &Json, path: &str, method: &str, status: &str) -> Json {
    let s =
        &doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"];
    assert!(s.is_object(), "no {status} schema for {method} {path}");
    s.clone()
}

fn assert_conforms(doc: &Json, path: &str, method: &str, status: &str, body: &Json) {
    let schema = response_schema(doc, path, method, status);
    if let Some(m) = mismatch(doc, &schema, body, "body") {
        panic!("{method} {path} → {status} differs from its OpenAPI schema: {m}\nbody: {body}");
    }
}

#[tokio::test]
async fn events_and_subscription_answers_match_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, WEBHOOKS_TO_LOOPBACK).unwrap();
    let hub = serve(dir.path(), "hub.log", ADMIN)
        .config_file(&config)
        .data_dir(&dir.path().join("data"))
        .start()
        .unwrap();
    let api = format!("{}/api/v1", hub.base());
    let http = reqwest::Client::new();
    let call = |req: reqwest::RequestBuilder| async move {
        let r = req.bearer_auth(ADMIN).send().await.unwrap();
        (r.status().as_u16(), r.json::<Json>().await.unwrap())
    };
    let (_, doc) = call(http.get(format!("{api}/openapi.json"))).await;

    let created = json!({ "url": "http://127.0.0.1:9/hook", "event_types": ["fire.*"] });
    let (s, sub) = call(http.post(format!("{api}/subscriptions")).json(&created)).await;
    assert_eq!(s, 201, "{sub}");
    assert!(sub["secret"].is_string(), "the secret is shown at creation");
    assert_conforms(&doc, "/api/v1/subscriptions", "post", "201", &sub);

    let id = sub["id"].as_i64().unwrap();
    let (s, one) = call(http.get(format!("{api}/subscriptions/{id}"))).await;
    assert_eq!(s, 200);
    assert!(one.get("secret").is_none(), "the secret is shown only once");
    assert_conforms(&doc, "/api/v1/subscriptions/{id}", "get", "200", &one);

    let (s, list) = call(http.get(format!("{api}/subscriptions"))).await;
    assert_eq!(s, 200);
    assert_eq!(list["items"][0]["id"], id);
    assert_conforms(&doc, "/api/v1/subscriptions", "get", "200", &list);

    let (s, deliveries) = call(http.get(format!("{api}/subscriptions/{id}/deliveries"))).await;
    assert_eq!(s, 200);
    assert_conforms(
        &doc,
        "/api/v1/subscriptions/{id}/deliveries",
        "get",
        "200",
        &deliveries,
    );

    let (s, events) = call(http.get(format!("{api}/events"))).await;
    assert_eq!(s, 200);
    assert_conforms(&doc, "/api/v1/events", "get", "200", &events);

    // The checker itself: a key the document does not name, or a missing required one, fails.
    let mut stray = one.clone();
    stray["subscription_id"] = json!(1);
    let schema = response_schema(&doc, "/api/v1/subscriptions/{id}", "get", "200");
    assert!(mismatch(&doc, &schema, &stray, "body").is_some());
    let mut missing = one.clone();
    missing.as_object_mut().unwrap().remove("created_at");
    assert!(mismatch(&doc, &schema, &missing, "body").is_some());
}

#[test]
fn every_event_body_schema_names_the_fields_the_handlers_write() {
    // The hub's document, read without a server: the same value `GET openapi.json` serves.
    let doc = openapi_support::doc();
    let props = |name: &str| openapi_support::props(&doc, name);
    assert_eq!(
        props("Subscription"),
        [
            "created_at",
            "department",
            "event_types",
            "id",
            "secret",
            "url"
        ]
    );
    assert_eq!(
        props("Delivery"),
        [
            "attempts",
            "cursor",
            "delivered_at",
            "event_id",
            "history",
            "id",
            "last_error",
            "last_status",
            "next_attempt",
            "status",
            "version"
        ]
    );
    assert_eq!(
        props("DeliveryAttempt"),
        ["at", "delivery", "error", "http_status"]
    );
    assert_eq!(
        props("TransitionBody"),
        ["action", "attachments", "department", "note"]
    );
}
