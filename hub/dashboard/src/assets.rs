//! The embedded files of the app, addressed by their path under `assets/`.
//!
//! One table, so tests can check that every file the app references is embedded and that
//! every embedded file is served with the right content type.

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Path under `assets/` (and under the URL prefix `/assets/`).
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $ct:expr) => {
        Asset {
            path: $path,
            content_type: $ct,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The app shell served at `/`.
pub const INDEX: &Asset = &asset!("index.html", "text/html; charset=utf-8");

/// Everything served under `/assets/`.
pub static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("i18n.json", "application/json"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/main.js", JS),
    asset!("js/api.js", JS),
    asset!("js/i18n.js", JS),
    asset!("js/util.js", JS),
    asset!("js/catalogue.js", JS),
    asset!("js/live.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/views/common.js", JS),
    asset!("js/views/overview.js", JS),
    asset!("js/views/map.js", JS),
    asset!("js/views/component.js", JS),
    asset!("js/views/events.js", JS),
    asset!("js/views/attachments.js", JS),
    asset!("js/views/edges.js", JS),
    asset!("js/views/evaluation.js", JS),
    asset!("vendor/uplot/uPlot.iife.min.js", JS),
    asset!("vendor/uplot/uPlot.min.css", "text/css; charset=utf-8"),
    asset!("vendor/uplot/LICENSE", "text/plain; charset=utf-8"),
];

/// The asset at `path` (relative to `assets/`), if embedded.
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}
