//! `hub serve`: wires registry → broker → ingest → time-series sinks → HTTP API (and the
//! dashboard at `/`), and runs until SIGINT/SIGTERM.
//!
//! Start order follows the data flow's dependencies: the registry first (the broker checks
//! logins against it), the sinks (ingest needs them), the broker, ingest, and the API last so
//! `health` answers only once the hub can actually take batches.

use crate::api::{self, metrics::MetricsSource, AppState};
use crate::config::HubConfig;
use crate::registry::{seed, RegistryAdmin, RegistryStore, SqliteRegistry};
use crate::timeseries::embedded::EmbeddedStore;
use crate::timeseries::influx::InfluxSink;
use crate::timeseries::{TimeSeriesQuery, TimeSeriesSink};
use crate::{broker, ingest};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the embedded store drops readings older than its retention.
const RETENTION_INTERVAL_MS: u64 = 3_600_000;

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
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("create data dir {}", cfg.data_dir.display()))?;
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
    let bm = broker_handle.metrics.clone();
    metric_sources.push(Arc::new(move || {
        let mut s = String::new();
        bm.render_prometheus(&mut s);
        s
    }));
    let ingest_handle = ingest::spawn(
        &cfg.ingest,
        &broker_handle,
        registry.clone() as Arc<dyn RegistryStore>,
        sinks,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
    .context("start ingest")?;
    let im = ingest_handle.metrics();
    metric_sources.push(Arc::new(move || {
        let mut s = String::new();
        im.render_prometheus(&mut s);
        s
    }));

    let retention_store = embedded.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(RETENTION_INTERVAL_MS));
        loop {
            tick.tick().await;
            let store = retention_store.clone();
            let now = crate::registry::now_ns();
            match tokio::task::spawn_blocking(move || store.enforce_retention(now)).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, "retention"),
                Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
                _ => {}
            }
        }
    });

    let mut state = AppState::new(registry.clone() as Arc<dyn RegistryAdmin>);
    state.readings = Some(embedded.clone() as Arc<dyn TimeSeriesQuery>);
    state.admin_token = cfg.effective_admin_token().map(Arc::from);
    state.limits = cfg.http.limits();
    state.metric_sources = metric_sources;
    // The dashboard (SPA at `/`, assets embedded) has no fallback, so it merges beside the API.
    let app = api::router(state).merge(wangge_dashboard::router());
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
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server")?;
    tracing::info!("hub stopped");
    // Keep the broker and ingest alive until here.
    drop(ingest_handle);
    drop(broker_handle);
    Ok(())
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
