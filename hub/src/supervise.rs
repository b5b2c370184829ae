//! Supervision: the hub notices when one of its parts is broken.
//!
//! Every long-running async task of `hub serve` runs under a [`Supervisor`]: a task that ends
//! while the hub is not shutting down (it returned or panicked) is logged, counted
//! (`wangge_task_restarts_total{task}`) and restarted after an exponential backoff
//! ([`Backoff`]: 100 ms doubling to 30 s, reset once a run outlived the longest delay). The
//! tasks are safe to restart because each resumes from durable state (outbox cursors, the
//! delivery table, the registry).
//!
//! Parts that are OS threads (ingest, the rules stage, the broker links, the InfluxDB drain)
//! are *watched*, not restarted: their state (the broker's inbound stream, the dedup
//! connection, the spill writer) cannot be rebuilt safely from outside, so a dead one is only
//! reported. Both kinds feed [`Supervisor::failing`], which makes `GET /api/v1/health`
//! answer 503 `degraded`.
//!
//! Shutdown fans out through one `CancellationToken`: each task gets a child token; on
//! [`Supervisor::stop`] every task gets `stop_grace` to return and is aborted after it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Delay before restarting a task that ended: `initial`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

/// A liveness probe of a part the supervisor cannot restart (a thread): `true` while alive.
pub type Probe = Box<dyn Fn() -> bool + Send + Sync>;

#[derive(Debug, Default, Clone, Copy)]
struct TaskState {
    down: bool,
    restarts: u64,
}

struct Inner {
    tasks: Mutex<BTreeMap<&'static str, TaskState>>,
    probes: Mutex<Vec<(&'static str, Probe)>>,
    loops: Mutex<Vec<JoinHandle<()>>>,
    shutdown: CancellationToken,
    backoff: Backoff,
    stop_grace: Duration,
}

/// The hub's task supervisor; cheap to clone (one shared state).
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock left plain counters behind: still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Supervisor {
    /// `stop_grace`: how long a task may take to return once shutdown is requested.
    pub fn new(shutdown: CancellationToken, backoff: Backoff, stop_grace: Duration) -> Self {
        Supervisor {
            inner: Arc::new(Inner {
                tasks: Mutex::default(),
                probes: Mutex::default(),
                loops: Mutex::default(),
                shutdown,
                backoff,
                stop_grace,
            }),
        }
    }

    /// The token cancelled at shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Runs `make(token)` as task `name`, again after each unexpected end, until shutdown.
    /// Must be called inside a tokio runtime.
    pub fn spawn<F, Fut>(&self, name: &'static str, mut make: F)
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        lock(&self.inner.tasks).insert(name, TaskState::default());
        let inner = self.inner.clone();
        let handle = tokio::spawn(async move {
            let Backoff { initial, max } = inner.backoff;
            let mut delay = initial;
            loop {
                let started = Instant::now();
                let mut task = tokio::spawn(make(inner.shutdown.child_token()));
                set_down(&inner, name, false);
                let ended = tokio::select! {
                    r = &mut task => Some(r),
                    _ = inner.shutdown.cancelled() => None,
                };
                let result = match ended {
                    // Shutdown while the task runs: give it the grace to stop.
                    None => {
                        if tokio::time::timeout(inner.stop_grace, &mut task)
                            .await
                            .is_err()
                        {
                            tracing::warn!(task = name, "did not stop within the grace; aborted");
                            task.abort();
                        }
                        return;
                    }
                    // It ended as the shutdown began (its handle is spent: never poll it again).
                    Some(_) if inner.shutdown.is_cancelled() => return,
                    Some(r) => r,
                };
                let how = match result {
                    Ok(()) => "returned".to_string(),
                    Err(e) if e.is_panic() => "panicked".to_string(),
                    Err(e) => e.to_string(),
                };
                if started.elapsed() > max {
                    delay = initial;
                }
                {
                    let mut tasks = lock(&inner.tasks);
                    let t = tasks.entry(name).or_default();
                    t.down = true;
                    t.restarts += 1;
                }
                tracing::error!(
                    task = name,
                    how,
                    restart_in_ms = delay.as_millis() as u64,
                    "supervised task ended unexpectedly; restarting"
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = inner.shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(max);
            }
        });
        lock(&self.inner.loops).push(handle);
    }

    /// Watches part `name` that cannot be restarted: it is failing while `alive()` is false.
    pub fn watch(&self, name: &'static str, alive: impl Fn() -> bool + Send + Sync + 'static) {
        lock(&self.inner.probes).push((name, Box::new(alive)));
    }

    /// The parts that are down now, sorted and without duplicates (empty: all is well).
    pub fn failing(&self) -> Vec<String> {
        let mut out: Vec<String> = lock(&self.inner.tasks)
            .iter()
            .filter(|(_, t)| t.down)
            .map(|(n, _)| n.to_string())
            .collect();
        for (name, alive) in lock(&self.inner.probes).iter() {
            if !alive() {
                out.push(name.to_string());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Restarts of task `name` so far (0 for watched parts and unknown names).
    pub fn restarts(&self, name: &str) -> u64 {
        lock(&self.inner.tasks).get(name).map_or(0, |t| t.restarts)
    }

    /// `wangge_task_restarts_total{task}` and `wangge_task_up{task}` in the Prometheus format.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let tasks = lock(&self.inner.tasks).clone();
        crate::prometheus::by_label(
            &mut out,
            "wangge_task_restarts_total",
            "counter",
            "Supervised tasks restarted after an unexpected end.",
            "task",
            tasks.iter().map(|(name, t)| (name, t.restarts)),
        );
        let probes: Vec<(String, bool)> = lock(&self.inner.probes)
            .iter()
            .map(|(name, alive)| (name.to_string(), alive()))
            .collect();
        let up = tasks.iter().map(|(name, t)| (name.to_string(), !t.down));
        crate::prometheus::by_label(
            &mut out,
            "wangge_task_up",
            "gauge",
            "1 while a supervised task or watched thread runs.",
            "task",
            up.chain(probes).map(|(name, up)| (name, u8::from(up))),
        );
        out
    }

    /// Cancels every task and waits (at most `stop_grace` each, then aborts) until all ended.
    /// Returns how many supervising loops panicked (none should; logged).
    pub async fn stop(&self) -> usize {
        self.inner.shutdown.cancel();
        let loops = std::mem::take(&mut *lock(&self.inner.loops));
        let mut panicked = 0;
        for l in loops {
            if let Err(e) = l.await {
                tracing::error!(error = %e, "a supervising loop failed during shutdown");
                panicked += 1;
            }
        }
        panicked
    }
}

/// Runs `task` until it ends or `token` is cancelled, whichever comes first. For tasks that are
/// safe to drop at any await point (they resume from durable state), so shutdown need not
/// wait out the grace for them.
pub async fn until_cancelled(token: CancellationToken, task: impl Future<Output = ()>) {
    tokio::select! {
        _ = task => {}
        _ = token.cancelled() => {}
    }
}

fn set_down(inner: &Inner, name: &'static str, down: bool) {
    lock(&inner.tasks).entry(name).or_default().down = down;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    fn fast() -> Supervisor {
        Supervisor::new(
            CancellationToken::new(),
            Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(80),
            },
            Duration::from_secs(1),
        )
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_task_that_dies_is_restarted_and_counted() {
        let sup = fast();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        sup.spawn("webhooks", move |_| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => panic!("first run panics"),
                    1 => {} // second run returns
                    _ => std::future::pending::<()>().await,
                }
            }
        });
        until("third run", || runs.load(Ordering::SeqCst) >= 3).await;
        until("up again", || sup.failing().is_empty()).await;
        assert_eq!(sup.restarts("webhooks"), 2);
        let m = sup.render_prometheus();
        assert!(
            m.contains("wangge_task_restarts_total{task=\"webhooks\"} 2"),
            "{m}"
        );
        assert!(m.contains("wangge_task_up{task=\"webhooks\"} 1"), "{m}");
        sup.stop().await;
    }

    #[tokio::test]
    async fn a_dead_watched_thread_is_failing_until_it_is_alive() {
        let sup = fast();
        let alive = Arc::new(AtomicBool::new(true));
        let a = alive.clone();
        sup.watch("ingest", move || a.load(Ordering::SeqCst));
        assert!(sup.failing().is_empty());
        alive.store(false, Ordering::SeqCst);
        assert_eq!(sup.failing(), vec!["ingest".to_string()]);
        assert!(sup
            .render_prometheus()
            .contains("wangge_task_up{task=\"ingest\"} 0"));
    }

    #[tokio::test]
    async fn stop_reaches_every_task_and_returns() {
        let sup = fast();
        let stopped = Arc::new(AtomicU32::new(0));
        for name in ["a", "b", "c"] {
            let s = stopped.clone();
            sup.spawn(name, move |token| {
                let s = s.clone();
                async move {
                    token.cancelled().await;
                    s.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        // A task that ignores its token is aborted after the grace.
        sup.spawn("stubborn", |_| std::future::pending::<()>());
        tokio::time::sleep(Duration::from_millis(20)).await;
        tokio::time::timeout(Duration::from_secs(5), sup.stop())
            .await
            .expect("stop returns within the grace");
        assert_eq!(stopped.load(Ordering::SeqCst), 3);
        assert_eq!(sup.restarts("a"), 0, "a shutdown is not a restart");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_ending_as_the_shutdown_begins_stop_cleanly() {
        // Each returns the moment it is cancelled: its end and the shutdown race in the
        // supervising loop, which once polled the spent handle again and panicked.
        for _ in 0..20 {
            let sup = fast();
            for name in ["a", "b", "c", "d", "e", "f", "g", "h"] {
                sup.spawn(name, |token| async move { token.cancelled().await });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(sup.stop().await, 0, "a supervising loop panicked");
        }
    }
}
