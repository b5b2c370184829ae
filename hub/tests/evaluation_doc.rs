//! The evaluation routes are in the hub's one OpenAPI document as they behave: the JSON report's
//! paging parameters (`limit`, `offset`, `table`) next to its range, and the announced edge
//! outages that data completeness excludes (`POST|GET edges/{id}/outages`, `DELETE …/{oid}`)
//! with their refusals. Read without a server: the same value `GET openapi.json` serves.

mod openapi_support;

use openapi_support::{doc, props};

/// The names of the query parameters of `method path` in `doc`.
fn query_params(doc: &serde_json::Value, path: &str, method: &str) -> Vec<String> {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} has no parameters"))
        .iter()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_report_documents_its_paging_and_range() {
    let doc = doc();
    let params = query_params(&doc, "/api/v1/reports/evaluation", "get");
    for p in ["from", "to", "limit", "offset", "table"] {
        assert!(params.iter().any(|q| q == p), "no `{p}`: {params:?}");
    }
    let csv = query_params(&doc, "/api/v1/reports/evaluation.csv", "get");
    assert!(csv.iter().any(|q| q == "table"), "{csv:?}");
}

#[test]
fn every_outage_route_is_documented_with_its_refusals() {
    let doc = doc();
    let list = "/api/v1/edges/{id}/outages";
    let one = "/api/v1/edges/{id}/outages/{oid}";
    for (path, method, statuses) in [
        (list, "post", &["201", "400", "403", "404", "409"][..]),
        (list, "get", &["200", "404"][..]),
        (one, "delete", &["200", "403", "404"][..]),
    ] {
        let op = &doc["paths"][path][method];
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
    // The bodies are the handlers' own types.
    assert_eq!(props(&doc, "NewOutageBody"), ["from", "reason", "until"]);
    let outage = props(&doc, "OutageJson");
    for k in ["id", "edge_id", "from", "until", "reason", "announced_by"] {
        assert!(
            outage.iter().any(|p| p == k),
            "OutageJson lacks {k}: {outage:?}"
        );
    }
}
