//! The attachment routes are in the hub's one OpenAPI document, with their hostile answers
//! (413, 415, 404) documented, and the `Attachment` schema names exactly the keys the handlers
//! write (it derives from `AttachmentJson`, the type they serialize). Read without a server:
//! the same value `GET openapi.json` serves (the browser test reads it from a running hub).

mod openapi_support;

use openapi_support::{doc, props};
use wangge_events::http::bodies::AttachmentJson;
use wangge_events::store::Attachment;

#[test]
fn every_attachment_route_is_documented_with_its_refusals() {
    let doc = doc();
    let paths = &doc["paths"];
    let list = "/api/v1/events/{id}/attachments";
    let one = "/api/v1/events/{id}/attachments/{att}";
    for (path, method, statuses) in [
        (
            list,
            "post",
            &["201", "400", "403", "404", "409", "413", "415", "422"][..],
        ),
        (list, "get", &["200", "404"][..]),
        (one, "get", &["200", "404"][..]),
        (one, "delete", &["200", "403", "404", "409"][..]),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        for s in statuses {
            assert!(
                op["responses"][s].is_object(),
                "{method} {path} does not document {s}: {}",
                op["responses"]
            );
        }
        assert_eq!(
            op["security"][0]["bearer"],
            serde_json::json!([]),
            "{method} {path}"
        );
    }
    let upload = &paths[list]["post"]["requestBody"]["content"]["multipart/form-data"];
    assert!(upload.is_object(), "the upload is multipart/form-data");
}

#[test]
fn the_attachment_schemas_name_the_fields_the_handlers_write() {
    let doc = doc();
    let a = Attachment {
        id: 1,
        event_id: 2,
        sha256: "ab".repeat(32),
        content_type: "image/png".into(),
        bytes: 3,
        filename: None,
        uploaded_by: "sw/wang".into(),
        uploaded_at_ns: 0,
        location_removed: false,
        history_id: None,
        deleted_by: None,
        deleted_at_ns: None,
    };
    let written = serde_json::to_value(AttachmentJson::from(&a)).unwrap();
    let mut keys: Vec<String> = written.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(props(&doc, "Attachment"), keys);
    assert!(props(&doc, "TransitionBody").contains(&"attachments".to_string()));
    assert!(props(&doc, "HistoryItem").contains(&"attachments".to_string()));
    // EventDetail flattens the Event: its own keys are in one part of an allOf.
    let detail = &doc["components"]["schemas"]["EventDetail"];
    let parts = detail["allOf"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![detail.clone()]);
    assert!(
        parts
            .iter()
            .any(|p| p["properties"]["attachments"].is_object()),
        "EventDetail lists the event's attachments: {detail}"
    );
}
