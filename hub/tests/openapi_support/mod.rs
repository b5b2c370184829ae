//! The hub's OpenAPI document as the tests read it: built without a server, the same value
//! `GET openapi.json` serves.
#![allow(dead_code)]

use serde_json::Value as Json;

/// The hub's one OpenAPI document, as JSON.
pub fn doc() -> Json {
    serde_json::to_value(<hub::api::ApiDoc as utoipa::OpenApi>::openapi()).unwrap()
}

/// The property names of schema `name` in `doc`, sorted; fails the test when there is no such
/// schema (or it has no properties).
pub fn props(doc: &Json, name: &str) -> Vec<String> {
    let mut keys: Vec<String> = doc["components"]["schemas"][name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {name}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}
