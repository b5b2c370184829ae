//! Bounded waiting: every wait names what it waits for and gives up after a timeout.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(50);

/// Polls `f` until it returns `Some`, or fails with `what` after `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `f` until it returns true; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    if let Err(e) = wait_for(what, timeout, || f().then_some(())) {
        panic!("{e}");
    }
}

/// [`wait_until`] for async tests: polls `f` without blocking the runtime.
pub async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    eventually_some(what, timeout, || std::future::ready(f().then_some(()))).await
}

/// Polls the future `f` makes until it yields `Some`; panics with `what` after `timeout`.
pub async fn eventually_some<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
