//! `hub serve`: wires registry → broker → ingest → time-series sinks → HTTP API (and the
//! dashboard at `/`), and runs until SIGINT/SIGTERM.
//!
//! Start order follows the data flow's dependencies: the registry first (the broker checks
//! logins against it), the sinks (ingest needs them), the broker, ingest, and the API last so
//! `health` answers only once the hub can actually take batches.

use crate::api::{self, metrics::MetricsSource, AppState};
use crate::config::HubConfig;
use crate::registry::{seed, RegistryAdmin, RegistryStore, SqliteRegistry};
use crate::supervise::{until_cancelled, Backoff, Supervisor};
use crate::timeseries::embedded::EmbeddedStore;
use crate::timeseries::influx::InfluxSink;
use crate::timeseries::{TimeSeriesQuery, TimeSeriesSink};
use crate::{broker, ingest};
use anyhow::Context;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the embedded store drops readings older than its retention.
const RETENTION_INTERVAL_MS: u64 = 3_600_000;
/// At shutdown, how long each supervised task may take to return before it is aborted.
const TASK_STOP_GRACE: Duration = Duration::from_secs(5);

/// Command-line overrides of the config file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub http: Option<SocketAddr>,
    pub mqtt: Option<SocketAddr>,
}

impl Overrides {
    pub fn apply(&self, cfg: &mut HubConfig) {
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        if let Some(h) = self.http {
            cfg.http.listen = h;
        }
        if let Some(m) = self.mqtt {
            cfg.broker.listen = m;
        }
    }
}

/// Opens the registry of `cfg` (creating the data dir), importing the seed dir if the registry
/// has no components yet.
pub fn open_registry(cfg: &HubConfig) -> anyhow::Result<Arc<SqliteRegistry>> {
    crate::private_files::private_dir(&cfg.data_dir)
        .with_context(|| format!("create data dir {} (mode 0700)", cfg.data_dir.display()))?;
    let path = cfg.registry_path();
    let reg =
        SqliteRegistry::open(&path).with_context(|| format!("open registry {}", path.display()))?;
    if let Some(dir) = &cfg.registry.seed_dir {
        if reg.stats()?.components == 0 {
            let summary = seed::import_dir(&reg, dir)
                .with_context(|| format!("import seed {}", dir.display()))?;
            tracing::info!(dir = %dir.display(), %summary, "registry seeded");
        }
    }
    Ok(Arc::new(reg))
}

/// Runs the hub until a shutdown signal.
pub async fn run(mut cfg: HubConfig) -> anyhow::Result<()> {
    cfg.resolve_paths();
    crate::admin_token::check(cfg.effective_admin_token().as_deref())?;
    crate::private_files::restrict_umask();
    // One token reaches every task: SIGTERM/SIGINT cancel it, the supervisor stops the tasks.
    let shutdown = CancellationToken::new();
    let sup = Supervisor::new(shutdown.clone(), Backoff::default(), TASK_STOP_GRACE);
    let registry = open_registry(&cfg)?;

    let embedded = Arc::new(
        EmbeddedStore::open(&cfg.timeseries)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| {
                format!("open time series in {}", cfg.timeseries.data_dir.display())
            })?,
    );
    let mut sinks: Vec<Arc<dyn TimeSeriesSink>> = vec![embedded.clone()];
    let mut metric_sources: Vec<Arc<dyn MetricsSource>> = Vec::new();
    if let Some(influx_cfg) = &cfg.influx {
        let influx = Arc::new(
            InfluxSink::start(influx_cfg)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("start InfluxDB sink {}", influx_cfg.url))?,
        );
        sup.watch("influx_drain", influx.drain_liveness());
        let m = influx.metrics();
        metric_sources.push(Arc::new(move || {
            let mut s = String::new();
            m.render_prometheus(&mut s);
            s
        }));
        sinks.push(influx);
    }

    let broker_handle = broker::start(&cfg.broker, registry.clone() as Arc<dyn RegistryStore>)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("start MQTT broker")?;
    // The broker's threads are rumqttd's and cannot be restarted from here; a dead outbound
    // link closes this channel (a dead inbound one ends ingest, watched below).
    let link = broker_handle.outbound();
    sup.watch("broker_link", move || !link.is_closed());
    let bm = broker_handle.metrics.clone();
    metric_sources.push(Arc::new(move || {
        let mut s = String::new();
        bm.render_prometheus(&mut s);
        s
    }));
    // The events engine first: its rules are ingest's last stage before the ack.
    let admin_token = cfg.effective_admin_token();
    let (events, rules_stage) = if cfg.events.enabled {
        let (events, router, stage) =
            start_events(&cfg, &registry, &embedded, admin_token.clone(), &sup)?;
        // `wangge_webhook_refused_total{stage,reason}`: the webhook SSRF guard's refusals.
        let guard = events.egress().metrics().clone();
        metric_sources.push(Arc::new(move || {
            let mut s = String::new();
            guard.render_prometheus(&mut s);
            s
        }));
        (Some((events, router)), Some(stage))
    } else {
        (None, None)
    };
    let ingest_handle = ingest::spawn_with_rules(
        &cfg.ingest,
        &broker_handle,
        registry.clone() as Arc<dyn RegistryStore>,
        sinks,
        rules_stage,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
    .context("start ingest")?;
    for (name, alive) in ingest_handle.liveness() {
        sup.watch(name, alive);
    }
    let im = ingest_handle.metrics();
    metric_sources.push(Arc::new(move || {
        let mut s = String::new();
        im.render_prometheus(&mut s);
        s
    }));

    let retention_store = embedded.clone();
    sup.spawn("retention", move |t| {
        until_cancelled(t, retention_loop(retention_store.clone()))
    });

    let events_router = if let Some((events, router)) = events {
        // Events on `wangge/v1/events/{department}/{type}` through the hub's own broker link.
        let outbound = broker_handle.outbound();
        sup.spawn("mqtt_events", move |t| {
            let outbound = outbound.clone();
            let run = wangge_events::delivery::run_mqtt(events.clone(), move |topic, payload| {
                let outbound = outbound.clone();
                async move {
                    outbound
                        .send(broker::Outbound {
                            topic,
                            payload: bytes::Bytes::from(payload.into_bytes()),
                        })
                        .await
                        .map_err(|_| "broker link closed".to_string())
                }
            });
            until_cancelled(t, run)
        });
        Some(router)
    } else {
        None
    };

    let mut state = AppState::new(registry.clone() as Arc<dyn RegistryAdmin>);
    state.readings = Some(embedded.clone() as Arc<dyn TimeSeriesQuery>);
    state.admin_token = admin_token.map(Arc::from);
    state.limits = cfg.http.limits();
    let tasks = sup.clone();
    metric_sources.push(Arc::new(move || tasks.render_prometheus()));
    state.metric_sources = metric_sources;
    state.supervisor = Some(sup.clone());
    // The dashboard (SPA at `/`, assets embedded) has no fallback, so it merges beside the API.
    let mut app = api::router(state).merge(wangge_dashboard::router());
    if let Some(r) = events_router {
        app = app.merge(axum::Router::new().nest("/api/v1", r));
    }
    // Every store is open now: files from a run under a looser umask become private too.
    crate::private_files::tighten_tree(&cfg.data_dir)
        .with_context(|| format!("make {} private (0700/0600)", cfg.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("bind HTTP {}", cfg.http.listen))?;
    tracing::info!(
        http = %listener.local_addr()?,
        mqtt = ?broker_handle.listen,
        mqtt_tls = ?broker_handle.tls_listen,
        data_dir = %cfg.data_dir.display(),
        influx = cfg.influx.is_some(),
        "hub serving"
    );
    let signalled = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        signalled.cancel();
    });
    let app = app
        .layer(axum::middleware::from_fn_with_state(
            cfg.http.report_range_max_days,
            api::report_range::bound_report_range,
        ))
        .layer(axum::middleware::from_fn_with_state(
            api::stream_cap::StreamCap::new(cfg.http.sse_streams_per_token_max),
            api::stream_cap::limit_streams,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_millis(cfg.http.request_timeout_ms),
            crate::http_server::request_timeout,
        ));
    let limits = crate::http_server::ServerLimits {
        header_read_timeout: Duration::from_millis(cfg.http.header_read_timeout_ms),
        max_connections: cfg.http.max_connections,
        drain_grace: Duration::from_millis(cfg.http.shutdown_drain_ms),
    };
    crate::http_server::serve(listener, app, limits, shutdown.clone()).await;
    sup.stop().await;
    tracing::info!("hub stopped");
    // Keep the broker and ingest alive until here.
    drop(ingest_handle);
    drop(broker_handle);
    Ok(())
}

/// Drops readings older than the embedded store's retention, once an hour.
async fn retention_loop(store: Arc<EmbeddedStore>) {
    let mut tick = tokio::time::interval(Duration::from_millis(RETENTION_INTERVAL_MS));
    loop {
        tick.tick().await;
        let store = store.clone();
        let now = crate::registry::now_ns();
        match tokio::task::spawn_blocking(move || store.enforce_retention(now)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, "retention"),
            Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
            _ => {}
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The registry (and, for data completeness, the embedded store) as the events engine sees it.
struct RegistryDirectory {
    registry: Arc<SqliteRegistry>,
    store: Arc<EmbeddedStore>,
}

impl wangge_events::ComponentDirectory for RegistryDirectory {
    fn component(&self, component_id: &str) -> Option<wangge_events::model::ComponentCtx> {
        let c = self.registry.component(component_id).ok()??;
        Some(wangge_events::model::ComponentCtx {
            component_type: c.component_type,
            grid_cell: c.grid_cell.unwrap_or_default(),
            owner_department: c.owner_department.unwrap_or_default(),
            maintainer_department: c.maintainer_department.unwrap_or_default(),
        })
    }

    /// Dispatch targets must be registered departments.
    fn department_exists(&self, department: &str) -> bool {
        self.registry
            .department_exists(department)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot look a department up; refusing the dispatch");
                false
            })
    }

    /// Per component: reports received (distinct timestamps of its sensors in the embedded
    /// store) vs expected (the part of the period up to now divided by each sensor's interval).
    fn reading_counts(&self, from_ns: i64, to_ns: i64) -> Vec<wangge_events::ReadingCount> {
        let sensors = match self.registry.sensor_contexts() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "data completeness: cannot list sensors");
                return Vec::new();
            }
        };
        let received = self
            .store
            .report_counts(from_ns, to_ns)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "data completeness: cannot count readings");
                Default::default()
            });
        let span_ns = to_ns
            .min(crate::registry::now_ns())
            .saturating_sub(from_ns)
            .max(0);
        let mut per_component: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        for s in sensors {
            let expected = if s.interval_s == 0 {
                0
            } else {
                u64::try_from(span_ns / (i64::from(s.interval_s) * 1_000_000_000)).unwrap_or(0)
            };
            let e = per_component.entry(s.component_id).or_default();
            e.0 += received.get(&s.sensor_id).copied().unwrap_or(0);
            e.1 += expected;
        }
        per_component
            .into_iter()
            .map(
                |(component_id, (received, expected))| wangge_events::ReadingCount {
                    component_id,
                    received,
                    expected,
                },
            )
            .collect()
    }
}

/// The hub's tokens for the events routes: the same admin token and issued tokens as the API.
struct HubAuth {
    registry: Arc<SqliteRegistry>,
    admin_token: Option<String>,
}

impl wangge_events::Authorizer for HubAuth {
    fn authorize(&self, bearer: &str) -> Option<wangge_events::model::Actor> {
        use wangge_events::model::Actor;
        use wangge_events::Scope as S;
        if self
            .admin_token
            .as_deref()
            .is_some_and(|a| crate::api::auth::same(a, bearer))
        {
            return Some(Actor {
                name: "admin".to_string(),
                department: None,
                scope: S::Admin,
            });
        }
        let p = self.registry.verify_token(bearer).ok()??;
        Some(Actor {
            name: format!("token:{}", p.token_id),
            department: p.department,
            scope: match p.scope {
                crate::registry::Scope::Read => S::Read,
                crate::registry::Scope::Write => S::Write,
                crate::registry::Scope::Admin => S::Admin,
            },
        })
    }
}

/// How often the rules stage forgets its sensor → component cache, so registry edits apply.
const SENSOR_CACHE_MS: u64 = 60_000;

/// Opens the events engine (`<data_dir>/events.db`), starts its clock tick, webhook delivery
/// and status sync, and returns it with its routes and the rules stage that ingest runs every
/// stored group through before acking it. (MQTT delivery is started by `run`, which holds the
/// broker handle.)
fn start_events(
    cfg: &HubConfig,
    registry: &Arc<SqliteRegistry>,
    store: &Arc<EmbeddedStore>,
    admin_token: Option<String>,
    sup: &Supervisor,
) -> anyhow::Result<(
    wangge_events::Events,
    axum::Router,
    Box<dyn ingest::RulesStage>,
)> {
    let ecfg = cfg.events.load().map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = cfg.data_dir.join("events.db");
    let events = wangge_events::Events::open(
        &path,
        ecfg,
        Arc::new(RegistryDirectory {
            registry: registry.clone(),
            store: store.clone(),
        }),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
    .with_context(|| format!("open events store {}", path.display()))?;

    // Offline detection starts for every attached sensor, even one that never reports.
    let now = crate::registry::now_ns();
    for s in registry.sensor_contexts()? {
        events.watch_sensor(
            &s.sensor_id,
            &s.component_id,
            &s.component_type,
            s.interval_s,
            now,
        );
    }

    let stage = Box::new(RulesFeed {
        events: events.clone(),
        registry: registry.clone(),
        cache: HashMap::new(),
        cache_at: Instant::now(),
        hooks: TestHooks::from_env(),
    });

    // Each restarts from durable state: the ticker from the store, webhooks from the
    // deliveries table, the status sync from its outbox cursor.
    let tick = Duration::from_millis(cfg.events.tick_interval_ms);
    let ev = events.clone();
    sup.spawn("events_ticker", move |t| {
        until_cancelled(t, ev.clone().run_ticker(tick))
    });
    let ev = events.clone();
    sup.spawn("webhooks", move |t| {
        until_cancelled(t, wangge_events::delivery::run_webhooks(ev.clone()))
    });
    let (ev, reg) = (events.clone(), registry.clone());
    sup.spawn("status_sync", move |t| {
        until_cancelled(t, sync_component_status(ev.clone(), reg.clone()))
    });
    let router = wangge_events::router(
        events.clone(),
        Arc::new(HubAuth {
            registry: registry.clone(),
            admin_token,
        }),
    );
    Ok((events, router, stage))
}

/// The events rules as ingest's last stage: maps each stored reading's sensor to its component
/// (cached) and feeds it to the rules. Ingest acks a group only after `evaluate` returned, so an
/// acked reading has been evaluated; a reading seen again after a crash raises nothing twice.
struct RulesFeed {
    events: wangge_events::Events,
    registry: Arc<SqliteRegistry>,
    cache: HashMap<String, Option<crate::registry::SensorContext>>,
    cache_at: Instant,
    hooks: TestHooks,
}

impl ingest::RulesStage for RulesFeed {
    fn evaluate(&mut self, group: &ingest::StoredGroup) -> Result<(), String> {
        self.hooks.before_group();
        // Every reading is evaluated even after a failure (the rules' state stays current);
        // the events engine keeps the refused conditions and retries them in order.
        let mut failed = None;
        if self.cache_at.elapsed() > Duration::from_millis(SENSOR_CACHE_MS) {
            self.cache.clear();
            self.cache_at = Instant::now();
        }
        for sr in &group.readings {
            if sr.component_id.is_none() {
                continue;
            }
            let r = &sr.reading;
            let registry = &self.registry;
            let ctx = self
                .cache
                .entry(r.sensor.as_str().to_string())
                .or_insert_with(|| registry.sensor_context(r.sensor.as_str()).ok().flatten());
            let Some(ctx) = ctx else { continue };
            let input = wangge_events::rules::RuleInput {
                component_id: &ctx.component_id,
                component_type: &ctx.component_type,
                sensor_id: r.sensor.as_str(),
                interval_s: ctx.interval_s,
                quantity: r.quantity,
                value: r.value.as_f64(),
                ts_ns: r.ts_ns,
                quality: r.quality,
            };
            if let Err(e) = self.events.ingest(&input, wangge_events::model::now_ns()) {
                failed.get_or_insert_with(|| format!("sensor {}: {e}", r.sensor.as_str()));
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// Test-only hooks on the rules stage, read once from the environment at start, so system tests
/// can hold the rules at a chosen point of a real hub process (`hub/tests/rules_replay.rs`):
/// - `WANGGE_TEST_PAUSE_RULES=<file>`: before each group, wait while `<file>` exists (the test
///   then `kill -9`s a hub whose group is stored but not evaluated, hence not acked);
/// - `WANGGE_TEST_SLOW_RULES_MS=<ms>`: sleep this long before each group (rules slower than
///   ingest).
///
/// Unset in production; the hub logs a warning when either is set.
#[derive(Debug, Default)]
struct TestHooks {
    pause_file: Option<PathBuf>,
    delay: Option<Duration>,
}

impl TestHooks {
    fn from_env() -> TestHooks {
        let hooks = TestHooks {
            pause_file: std::env::var_os("WANGGE_TEST_PAUSE_RULES").map(PathBuf::from),
            delay: std::env::var("WANGGE_TEST_SLOW_RULES_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
                .map(Duration::from_millis),
        };
        if hooks.pause_file.is_some() || hooks.delay.is_some() {
            tracing::warn!(?hooks, "test hooks on the rules stage are active");
        }
        hooks
    }

    fn before_group(&self) {
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        if let Some(f) = &self.pause_file {
            while f.exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Durable cursor (in the events store) of the component-status sync.
const STATUS_CURSOR: &str = "hub_component_status";
/// Event changes read per pass of the status sync.
const STATUS_PAGE: usize = 256;

/// Keeps each component's `status` in the registry equal to what its events say (normal /
/// alarm / offline / maintenance), so `GET components?status=alarm` and the dashboard see it.
/// Follows the events outbox from a durable cursor: a restart resumes where it stopped.
async fn sync_component_status(events: wangge_events::Events, registry: Arc<SqliteRegistry>) {
    let mut feed = events.subscribe();
    loop {
        feed.borrow_and_update();
        let (ev, reg) = (events.clone(), registry.clone());
        let pass = tokio::task::spawn_blocking(move || -> Result<usize, String> {
            let store = ev.store();
            let cursor = store.get_cursor(STATUS_CURSOR).map_err(|e| e.to_string())?;
            let changes = store
                .changes_after(cursor, STATUS_PAGE)
                .map_err(|e| e.to_string())?;
            let mut done = std::collections::HashSet::new();
            for ch in &changes {
                let id = ch.event.component_id.as_str();
                if done.insert(id.to_string()) {
                    let status = ev.component_status(id).map_err(|e| e.to_string())?;
                    reg.set_component_status(id, status)
                        .map_err(|e| e.to_string())?;
                }
            }
            if let Some(last) = changes.last() {
                store
                    .set_cursor(STATUS_CURSOR, last.cursor)
                    .map_err(|e| e.to_string())?;
            }
            Ok(changes.len())
        })
        .await;
        match pass {
            Ok(Ok(n)) if n == STATUS_PAGE => continue,
            Ok(Ok(_)) => {
                if feed.changed().await.is_err() {
                    return;
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "component status sync failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "component status sync task failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
