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
use crate::{broker, events_bridge, ingest};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
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
pub fn open_registry(cfg: &HubConfig) -> anyhow::Result<Arc<dyn RegistryAdmin>> {
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
    Ok(Arc::new(reg) as Arc<dyn RegistryAdmin>)
}

/// The registry of a cluster member: PostgreSQL, seeded like `open_registry` when it has no
/// components yet (two members seeding at once upsert the same rows: harmless).
pub fn open_cluster_registry(
    cfg: &HubConfig,
    cluster: &crate::cluster::Cluster,
) -> anyhow::Result<Arc<dyn RegistryAdmin>> {
    crate::private_files::private_dir(&cfg.data_dir)
        .with_context(|| format!("create data dir {} (mode 0700)", cfg.data_dir.display()))?;
    let reg = crate::registry::PgRegistry::open(Arc::new(cluster.pg.clone()))
        .with_context(|| format!("open registry on {}", cluster.pg.describe()))?;
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
    let mut metric_sources: Vec<Arc<dyn MetricsSource>> = Vec::new();
    let leases_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (cluster, registry, leases_thread) =
        join_cluster(&cfg, &sup, &leases_stop, &mut metric_sources)?;
    let (embedded, sinks) = open_timeseries(&cfg, &sup, &mut metric_sources)?;
    let broker_registry = registry.clone() as Arc<dyn RegistryStore>;
    let broker_handle = match &cluster {
        None => broker::start(&cfg.broker, broker_registry),
        Some(c) => broker::start_for_edges(
            &cfg.broker,
            broker_registry,
            c.ownership.subscribe(),
            Arc::new(c.hub_accounts()),
        ),
    }
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
    let (events, rules_stage) = start_events(
        &cfg,
        &registry,
        &embedded,
        admin_token.clone(),
        &sup,
        cluster.as_ref(),
        &mut metric_sources,
    )?;
    let ingest_registry = registry.clone() as Arc<dyn RegistryStore>;
    let ingest_handle = match &cluster {
        None => ingest::spawn_with_rules(
            &cfg.ingest,
            &broker_handle,
            ingest_registry,
            sinks,
            rules_stage,
        ),
        Some(c) => ingest::spawn_on_ledger(
            &cfg.ingest,
            &broker_handle,
            ingest_registry,
            sinks,
            rules_stage,
            Box::new(c.ledger(cfg.ingest.dedup_keep_days)),
        ),
    }
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
        events_bridge::spawn_mqtt_delivery(
            &sup,
            events,
            broker_handle.outbound(),
            cluster.as_ref(),
        );
        Some(router)
    } else {
        None
    };

    let state = app_state(
        &cfg,
        &registry,
        &embedded,
        admin_token,
        &sup,
        metric_sources,
        cluster.clone(),
        &broker_handle,
    )?;
    // The dashboard (SPA at `/`, assets embedded) has no fallback, so it merges beside the API.
    let mut app = api::router(state).merge(wangge_dashboard::router());
    if let Some(r) = events_router {
        app = app.merge(axum::Router::new().nest("/api/v1", r));
    }
    // Every store is open now: files from a run under a looser umask become private too.
    crate::private_files::tighten_tree(&cfg.data_dir)
        .with_context(|| format!("make {} private (0700/0600)", cfg.data_dir.display()))?;
    let listeners = bind_http(&cfg.http).await?;
    let addrs = |tls: bool| -> Vec<String> {
        listeners
            .iter()
            .filter(|l| l.tls.is_some() == tls)
            .filter_map(|l| l.tcp.local_addr().ok().map(|a| a.to_string()))
            .collect()
    };
    tracing::info!(
        http = ?addrs(false),
        https = ?addrs(true),
        mqtt = ?broker_handle.listen,
        mqtt_tls = ?broker_handle.tls_listen,
        data_dir = %cfg.data_dir.display(),
        influx = cfg.influx.is_some(),
        "hub serving"
    );
    spawn_signal_watcher(shutdown.clone());
    let app = with_request_bounds(app, &cfg.http);
    let limits = crate::http_server::ServerLimits {
        header_read_timeout: Duration::from_millis(cfg.http.header_read_timeout_ms),
        max_connections: cfg.http.max_connections,
        drain_grace: Duration::from_millis(cfg.http.shutdown_drain_ms),
    };
    crate::http_server::serve(listeners, app, limits, shutdown.clone()).await;
    sup.stop().await;
    if let Some(t) = leases_thread {
        // Hands the leases back so peers take the edges at once instead of after the TTL.
        leases_stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    tracing::info!("hub stopped");
    // Keep the broker and ingest alive until here.
    drop(ingest_handle);
    drop(broker_handle);
    Ok(())
}

/// Configuration from the hub: the delivery of each edge's desired version and its reports
/// (`crate::fleet`), counted on `/metrics`; the returned kick is the API's.
fn start_fleet(
    sup: &Supervisor,
    registry: &Arc<dyn RegistryAdmin>,
    broker: &broker::BrokerHandle,
    cluster: &Option<Arc<crate::cluster::Cluster>>,
    metric_sources: &mut Vec<Arc<dyn MetricsSource>>,
) -> crate::fleet::Kick {
    let metrics = Arc::new(crate::fleet::FleetMetrics::default());
    let ownership = cluster.as_ref().map(|c| c.ownership.clone());
    let kick = crate::fleet::spawn(sup, registry.clone(), broker, ownership, metrics.clone());
    metric_sources.push(Arc::new(move || metrics.render_prometheus()));
    kick
}

/// The cluster this hub joins (if `[cluster]`), the registry it serves from, and the lease
/// thread (stopped through `leases_stop`).
#[allow(clippy::type_complexity)]
fn join_cluster(
    cfg: &HubConfig,
    sup: &Supervisor,
    leases_stop: &Arc<std::sync::atomic::AtomicBool>,
    metric_sources: &mut Vec<Arc<dyn MetricsSource>>,
) -> anyhow::Result<(
    Option<Arc<crate::cluster::Cluster>>,
    Arc<dyn RegistryAdmin>,
    Option<std::thread::JoinHandle<()>>,
)> {
    if cfg.cluster.is_some() && (cfg.victoria.is_none() || cfg.influx.is_none()) {
        anyhow::bail!(
            "cluster mode needs [influx] (every hub writes readings to one time-series server) \
             and [victoria] (every hub answers readings queries from it): a hub's embedded store \
             holds only the readings of the edges it owned"
        );
    }
    let cluster = match &cfg.cluster {
        Some(c) => Some(Arc::new(
            crate::cluster::Cluster::connect(c.clone()).context("join the hub cluster")?,
        )),
        None => None,
    };
    let registry = match &cluster {
        Some(c) => open_cluster_registry(cfg, c)?,
        None => open_registry(cfg)?,
    };
    let leases_thread = match &cluster {
        Some(c) => {
            let t = c
                .spawn_rounds(registry.clone(), leases_stop.clone())
                .context("start the cluster lease thread")?;
            let m = c.metrics.clone();
            // A member that cannot reach PostgreSQL owns nothing and acks nothing: degraded.
            sup.watch("postgres", move || {
                m.database_ok.load(std::sync::atomic::Ordering::Relaxed)
            });
            let (m, o) = (c.metrics.clone(), c.ownership.clone());
            let id = c.config.hub_id.clone();
            metric_sources.push(Arc::new(move || {
                crate::cluster::render_metrics(&id, &m, &o.edges())
            }));
            Some(t)
        }
        None => None,
    };

    Ok((cluster, registry, leases_thread))
}

/// The embedded time-series store and every sink readings go to (InfluxDB too if `[influx]`).
#[allow(clippy::type_complexity)]
fn open_timeseries(
    cfg: &HubConfig,
    sup: &Supervisor,
    metric_sources: &mut Vec<Arc<dyn MetricsSource>>,
) -> anyhow::Result<(Arc<EmbeddedStore>, Vec<Arc<dyn TimeSeriesSink>>)> {
    let embedded = Arc::new(
        EmbeddedStore::open(&cfg.timeseries)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| {
                format!("open time series in {}", cfg.timeseries.data_dir.display())
            })?,
    );
    let mut sinks: Vec<Arc<dyn TimeSeriesSink>> = vec![embedded.clone()];
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

    Ok((embedded, sinks))
}

/// The API's state: the registry, where readings are answered from, limits, metrics, and the
/// kick of the configuration delivery it starts (`start_fleet`).
#[allow(clippy::too_many_arguments)]
fn app_state(
    cfg: &HubConfig,
    registry: &Arc<dyn RegistryAdmin>,
    embedded: &Arc<EmbeddedStore>,
    admin_token: Option<String>,
    sup: &Supervisor,
    mut metric_sources: Vec<Arc<dyn MetricsSource>>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
    broker: &broker::BrokerHandle,
) -> anyhow::Result<AppState> {
    let mut state = AppState::new(registry.clone() as Arc<dyn RegistryAdmin>);
    state.readings = Some(match &cfg.victoria {
        // Any member answers any query: the readings of every hub are in the shared server.
        Some(v) => Arc::new(
            crate::timeseries::victoria::VictoriaQuery::new(v)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("[victoria]")?,
        ) as Arc<dyn TimeSeriesQuery>,
        None => embedded.clone() as Arc<dyn TimeSeriesQuery>,
    });
    state.admin_token = admin_token.map(Arc::from);
    state.limits = Arc::new(cfg.http.clone());
    let tasks = sup.clone();
    metric_sources.push(Arc::new(move || tasks.render_prometheus()));
    state.fleet = Some(start_fleet(
        sup,
        registry,
        broker,
        &cluster,
        &mut metric_sources,
    ));
    state.metric_sources = metric_sources;
    state.supervisor = Some(sup.clone());
    state.cluster = cluster;
    Ok(state)
}

/// The events engine if `[events] enabled`: it, its routes, and its rules as ingest's last stage.
#[allow(clippy::type_complexity)]
fn start_events(
    cfg: &HubConfig,
    registry: &Arc<dyn RegistryAdmin>,
    embedded: &Arc<EmbeddedStore>,
    admin_token: Option<String>,
    sup: &Supervisor,
    cluster: Option<&Arc<crate::cluster::Cluster>>,
    metric_sources: &mut Vec<Arc<dyn MetricsSource>>,
) -> anyhow::Result<(
    Option<(wangge_events::Events, axum::Router)>,
    Option<Box<dyn ingest::RulesStage>>,
)> {
    Ok(if cfg.events.enabled {
        let (events, router, stage) =
            events_bridge::start(cfg, registry, embedded, admin_token, sup, cluster)?;
        // `wangge_webhook_refused_total{stage,reason}`: the webhook SSRF guard's refusals.
        let guard = events.egress().metrics().clone();
        metric_sources.push(Arc::new(move || {
            let mut s = String::new();
            guard.render_prometheus(&mut s);
            s
        }));
        // `wangge_attachments_total{outcome}`: photos stored, locations removed, refusals.
        let ev = events.clone();
        metric_sources.push(Arc::new(move || {
            let mut s = String::new();
            ev.attachment_metrics().render_prometheus(&mut s);
            s
        }));
        // `wangge_events_suppressed_total{event="device.offline"}`: sensors held back behind an
        // offline edge (one `edge.offline` instead).
        let ev = events.clone();
        metric_sources.push(Arc::new(move || {
            let mut s = String::new();
            ev.render_topology_metrics(&mut s);
            s
        }));
        (Some((events, router)), Some(stage))
    } else {
        (None, None)
    })
}

/// Cancels the token on SIGTERM/SIGINT. The signal watcher ends with the token too (a shutdown
/// from elsewhere leaves no task).
fn spawn_signal_watcher(signalled: CancellationToken) {
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown_signal() => {
                tracing::info!("shutdown requested");
                signalled.cancel();
            }
            _ = signalled.cancelled() => {}
        }
    });
}

/// The per-request bounds around every route: report ranges, SSE streams per token, timeout.
fn with_request_bounds(app: axum::Router, http: &crate::config::HttpConfig) -> axum::Router {
    app.layer(axum::middleware::from_fn_with_state(
        http.report_range_max_days,
        api::report_range::bound_report_range,
    ))
    .layer(axum::middleware::from_fn_with_state(
        api::stream_cap::StreamCap::new(http.sse_streams_per_token_max),
        api::stream_cap::limit_streams,
    ))
    .layer(axum::middleware::from_fn_with_state(
        Duration::from_millis(http.request_timeout_ms),
        crate::http_server::request_timeout,
    ))
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
/// Binds the API's listeners: plain on `http.listen` unless TLS is configured without
/// `keep_plain`, and TLS on `http.tls.listen` when configured.
async fn bind_http(
    http: &crate::config::HttpConfig,
) -> anyhow::Result<Vec<crate::http_server::Listener>> {
    let mut listeners = Vec::new();
    if http.plain_on() {
        let tcp = tokio::net::TcpListener::bind(http.listen)
            .await
            .with_context(|| format!("bind HTTP {}", http.listen))?;
        listeners.push(crate::http_server::Listener { tcp, tls: None });
    }
    if let Some(tls) = &http.tls {
        let acceptor = crate::tls::acceptor("http.tls", &tls.cert_path, &tls.key_path)
            .map_err(anyhow::Error::msg)?;
        let tcp = tokio::net::TcpListener::bind(tls.listen)
            .await
            .with_context(|| format!("bind HTTPS {}", tls.listen))?;
        listeners.push(crate::http_server::Listener {
            tcp,
            tls: Some(acceptor),
        });
    }
    Ok(listeners)
}
