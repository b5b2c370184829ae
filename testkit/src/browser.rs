//! A real browser for the dashboard tests: headless Debian Chromium driven over WebDriver
//! (chromedriver + fantoccini). One launcher, one element wait (with click, choose and sign-in
//! on top) and one screenshot helper, so every browser test starts Chromium the same way and
//! cleans it up the same way.
//!
//! Invariant: chromedriver and every Chromium it starts live in a process group of their own,
//! and that group is killed by its id when the [`DriverGroup`] drops — also when the test
//! panics — so no browser outlives its test. Nothing is ever killed by name.

use crate::{free_port, port_open, workspace_root, Proc};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long chromedriver may take to listen, and any one element to appear, before the test
/// fails.
pub const WAIT_S: u64 = 30;

/// Where Debian and Ubuntu put the browser and its driver (`scripts/install-test-deps`
/// installs them); `None` when either is missing, so a test can skip instead of failing.
pub fn chromium() -> Option<(PathBuf, PathBuf)> {
    let find = |c: &[&str]| c.iter().map(PathBuf::from).find(|p| p.exists());
    Some((
        find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"])?,
        find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])?,
    ))
}

/// [`chromium`]'s (browser, driver), failing the test with how to install them when missing.
pub fn require_chromium() -> (PathBuf, PathBuf) {
    chromium().unwrap_or_else(|| {
        panic!("chromium and chromium-driver are not installed: run scripts/install-test-deps")
    })
}

/// chromedriver and the Chromium it starts, in a process group of their own: dropping this
/// (also when the test panics) kills the whole group by its id.
pub struct DriverGroup {
    proc: Proc,
}

impl DriverGroup {
    /// Stops chromedriver with SIGTERM, waiting up to `grace` before SIGKILL (the drop still
    /// kills the rest of the group).
    pub fn terminate(&mut self, grace: Duration) {
        self.proc.terminate(grace);
    }
}

impl Drop for DriverGroup {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.proc.pid() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Starts `driver` on a free loopback port in its own process group and opens a WebDriver
/// session with headless `browser` at `window` ("width,height" in CSS pixels), its profile
/// and the driver's log kept in `dir`. Keep the [`DriverGroup`] alive as long as the client.
pub async fn browser(
    driver: &Path,
    browser: &Path,
    dir: &Path,
    window: &str,
) -> (DriverGroup, Client) {
    let port = free_port();
    let mut cmd = Command::new(driver);
    cmd.arg(format!("--port={port}")).process_group(0);
    let proc = Proc::spawn("chromedriver", cmd, &dir.join("chromedriver.log"))
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(WAIT_S);
    while !port_open(port) {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen: {}",
            proc.log_tail(2000)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = dir.join("chromium-profile");
    std::fs::create_dir_all(&profile).expect("profile dir");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_string(),
        json!({
            "binary": browser,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", format!("--window-size={window}"), "--lang=zh-CN",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    // Two rustls crypto backends end up linked in a test binary; pick one explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = ClientBuilder::rustls()
        .expect("TLS roots")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("WebDriver session: {e}; {}", proc.log_tail(2000)));
    (DriverGroup { proc }, client)
}

/// Waits for a CSS selector to match, failing with `what` after [`WAIT_S`]; the page as it
/// was then is saved as `failed-<what>.png` for the person reading the failure.
pub async fn find(c: &Client, css: &str, what: &str) -> Element {
    let deadline = Instant::now() + Duration::from_secs(WAIT_S);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            return e;
        }
        if Instant::now() >= deadline {
            let _ = shot(c, &format!("failed-{}", what.replace(' ', "-"))).await;
            panic!("timed out waiting for {what} ({css})");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// `r`'s value, or a failure saying what was being done to what.
fn done<T>(r: Result<T, fantoccini::error::CmdError>, doing: &str, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{doing} {what}: {e}"))
}

/// Waits for `css` (as [`find`]) and clicks it.
pub async fn click_shown(c: &Client, css: &str, what: &str) {
    done(find(c, css, what).await.click().await, "click", what);
}

/// Waits for the `<select>` `css` (as [`find`]) and chooses its option `value`.
pub async fn choose(c: &Client, css: &str, value: &str, what: &str) {
    let select = find(c, css, what).await;
    done(select.select_by_value(value).await, "choose in", what);
}

/// Waits for the input `css` (as [`find`]) and types `text` into it.
pub async fn type_into(c: &Client, css: &str, text: &str, what: &str) {
    done(
        find(c, css, what).await.send_keys(text).await,
        "type into",
        what,
    );
}

/// Signs in to the dashboard at `base` (`http://127.0.0.1:<port>`) with `token`: the sign-in
/// form, its submit button, then the overview must show.
pub async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(base).await.expect("navigate");
    type_into(c, "#token", token, "the sign-in form").await;
    click_shown(c, "#signin-submit", "the submit button").await;
    find(c, "#view-overview", "the overview after sign-in").await;
}

/// On the dashboard's open event page: chooses `action` (and `department`), writes `note` and
/// submits.
pub async fn act_on_event(c: &Client, action: &str, department: Option<&str>, note: Option<&str>) {
    choose(c, "#act-action", action, "the action form").await;
    if let Some(d) = department {
        choose(c, "#act-department", d, "the department select").await;
    }
    if let Some(n) = note {
        type_into(c, "#act-note", n, "the note").await;
    }
    click_shown(c, "#act-submit", "the action's submit button").await;
}

/// Waits for the dashboard's open event page to show the event in `status`.
pub async fn event_shows(c: &Client, status: &str, what: &str) {
    let css = format!("#event-detail [data-status=\"{status}\"]");
    find(c, &css, what).await;
}

/// The text of every element `css` matches now, in page order.
pub async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.expect("find_all") {
        out.push(e.text().await.expect("text"));
    }
    out
}

/// `target/screenshots/` (under `CARGO_TARGET_DIR` when set), created if missing.
pub fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    dir
}

/// Saves the page as `<name>.png` in [`screenshots_dir`] and returns its path.
pub async fn shot(c: &Client, name: &str) -> PathBuf {
    // Let charts and late requests settle: a screenshot is for people, not an assertion.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let png = c.screenshot().await.expect("screenshot");
    let path = screenshots_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    path
}
