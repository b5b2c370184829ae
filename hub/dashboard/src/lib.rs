//! The facility managers' dashboard (设施管理看板): a single-page app the hub serves at `/`.
//!
//! Everything is embedded in the binary with `include_str!`/`include_bytes!` because the
//! district's machines are offline: no CDN, no build step, no files to deploy next to `hub`.
//! The app is plain HTML, CSS and ES modules talking to the hub's `/api/v1` with the bearer
//! token the user signs in with, so what it shows always follows that token's scope: the
//! dashboard holds no data and no authority of its own.
//!
//! [`router`] has no state and no fallback, so the hub can `merge` it into its own router
//! (axum refuses to merge two routers that both have a fallback).

mod assets;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use assets::{Asset, ASSETS};

/// The dashboard's routes: `/` (the app shell) and `/assets/{*path}`.
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
}

async fn index() -> Response {
    serve(assets::INDEX)
}

async fn asset(Path(path): Path<String>) -> Response {
    match assets::find(&path) {
        Some(a) => serve(a),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"error": {"code": "not_found", "message": format!("no dashboard asset {path}")}})
                .to_string(),
        )
            .into_response(),
    }
}

fn serve(a: &Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, a.content_type),
            // Assets change only with the binary; `no-cache` makes the browser revalidate after
            // an upgrade instead of running an old app against a new API.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        a.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use std::collections::BTreeSet;
    use std::path::Path as FsPath;
    use tower::ServiceExt;

    async fn fetch(path: &str) -> (StatusCode, String, Vec<u8>) {
        let resp = router()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = to_bytes(resp.into_body(), 1 << 22).await.expect("body");
        (status, ct, body.to_vec())
    }

    fn text(a: &Asset) -> &'static str {
        std::str::from_utf8(a.body).expect("utf-8 asset")
    }

    #[tokio::test]
    async fn the_app_shell_is_served_at_root() {
        let (status, ct, body) = fetch("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.starts_with("text/html"), "{ct}");
        let html = String::from_utf8(body).expect("utf-8");
        assert!(html.contains("id=\"app\""));
        assert!(html.contains("/assets/js/main.js"));
    }

    #[tokio::test]
    async fn every_embedded_asset_is_served_with_its_content_type() {
        for a in ASSETS {
            let (status, ct, body) = fetch(&format!("/assets/{}", a.path)).await;
            assert_eq!(status, StatusCode::OK, "{}", a.path);
            assert_eq!(ct, a.content_type, "{}", a.path);
            assert_eq!(body, a.body, "{}", a.path);
        }
    }

    #[tokio::test]
    async fn an_unknown_asset_is_a_json_404() {
        let (status, ct, body) = fetch("/assets/js/nope.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"]["code"], "not_found");
    }

    #[test]
    fn every_file_in_the_assets_folder_is_embedded() {
        let root = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        for (_, rel) in wangge_testkit::paths::files_under(&root) {
            assert!(
                assets::find(&rel).is_some(),
                "assets/{rel} exists but is not in assets::ASSETS"
            );
        }
    }

    /// The quoted strings in `s` that follow `prefix` up to the next `"`.
    fn quoted_after<'a>(s: &'a str, prefix: &str) -> Vec<&'a str> {
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + prefix.len()..];
            if let Some(end) = rest.find('"') {
                out.push(&rest[..end]);
            }
        }
        out
    }

    /// Keys passed as literals to the dictionary functions `t("…")`, `row("…")` and range tables
    /// (`key: "…"`); `t` only where it is a whole identifier (not `get(`, `split(`…), and not
    /// dynamic prefixes such as `t("nav." + n)`.
    fn dictionary_keys(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for prefix in ["t(\"", "row(\"", "key: \""] {
            let mut at = 0;
            while let Some(i) = s[at..].find(prefix) {
                let start = at + i;
                at = start + prefix.len();
                let before = s[..start].chars().next_back().unwrap_or(' ');
                if before.is_alphanumeric() || before == '_' || before == '.' {
                    continue;
                }
                if let Some(end) = s[at..].find('"') {
                    let key = &s[at..at + end];
                    if !key.ends_with('.') {
                        out.push(key);
                    }
                }
            }
        }
        out
    }

    /// Resolves a module specifier relative to the asset at `from`.
    fn resolve(from: &str, spec: &str) -> String {
        if let Some(abs) = spec.strip_prefix("/assets/") {
            return abs.to_string();
        }
        let mut parts: Vec<&str> = from.split('/').collect();
        parts.pop();
        for seg in spec.split('/') {
            match seg {
                "." => {}
                ".." => {
                    parts.pop();
                }
                s => parts.push(s),
            }
        }
        parts.join("/")
    }

    #[test]
    fn every_file_the_app_references_is_embedded() {
        let mut refs = Vec::new();
        for a in ASSETS {
            if a.path.ends_with(".html") {
                for r in quoted_after(text(a), "=\"/assets/") {
                    refs.push((a.path, format!("/assets/{r}")));
                }
            }
            if a.path.starts_with("js/") {
                for r in quoted_after(text(a), " from \"") {
                    refs.push((a.path, r.to_string()));
                }
                for r in quoted_after(text(a), "fetch(\"/assets/") {
                    refs.push((a.path, format!("/assets/{r}")));
                }
            }
        }
        assert!(refs.len() > 20, "found only {} references", refs.len());
        for (from, spec) in refs {
            let target = resolve(from, &spec);
            assert!(
                assets::find(&target).is_some(),
                "{from} references {spec} ({target}), which is not embedded"
            );
        }
    }

    #[test]
    fn both_languages_have_every_string_the_app_uses() {
        let dict: serde_json::Value =
            serde_json::from_slice(assets::find("i18n.json").expect("dictionary").body)
                .expect("i18n.json is JSON");
        let keys = |lang: &str| -> BTreeSet<String> {
            dict[lang]
                .as_object()
                .unwrap_or_else(|| panic!("no {lang} dictionary"))
                .keys()
                .cloned()
                .collect()
        };
        let (zh, en) = (keys("zh"), keys("en"));
        assert_eq!(
            zh.symmetric_difference(&en).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "zh and en differ"
        );
        let mut used = BTreeSet::new();
        for a in ASSETS.iter().filter(|a| a.path.starts_with("js/")) {
            for k in dictionary_keys(text(a)) {
                used.insert(k.to_string());
            }
        }
        assert!(used.len() > 50, "found only {} keys", used.len());
        let missing: Vec<_> = used.iter().filter(|k| !zh.contains(*k)).collect();
        assert!(
            missing.is_empty(),
            "keys missing from i18n.json: {missing:?}"
        );
    }
}
