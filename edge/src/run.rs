//! `edge run`: wires sources → ingest → buffer → uplink, plus the local API and the manager of
//! the hub's configuration ([`crate::fleet`]).

use crate::buffer::{spawn_sync_thread, Buffer, BufferOptions};
use crate::config::Config;
use crate::ingest::Ingest;
use crate::local_api::{self, ApiState};
use crate::metrics::Metrics;
use crate::normalize::validate::Validator;
use crate::normalize::Normalizer;
use crate::source::running::Sources;
use crate::{fleet, registry, source, uplink};
use anyhow::Context;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The validator of `cfg`: its registered sensors, limits and rate limit.
pub fn validator(cfg: &Config) -> anyhow::Result<Validator> {
    let registered = registry::registered(cfg)?;
    let default_urgent = cfg
        .validate
        .urgent
        .iter()
        .filter_map(|q| protocol::Quantity::from_name(q).ok())
        .fold(0, |m, q| m | crate::normalize::profile::mask_of(q));
    let overrides: Vec<_> = cfg
        .validate
        .limits
        .iter()
        .filter_map(|(q, l)| Some((protocol::Quantity::from_name(q).ok()?, *l)))
        .collect();
    Ok(
        Validator::new(registered, cfg.validate.future_skew_max_ms, default_urgent)
            .with_limits(crate::normalize::validate::limits_with(&overrides))
            .with_rate_limit(crate::normalize::validate::RateLimit {
                reports_per_s_max: cfg.validate.sensor_reports_per_s_max,
                burst_reports_max: cfg.validate.sensor_burst_reports_max,
            }),
    )
}

/// Runs the agent on the local file `file_cfg` joined with the hub's stored configuration.
pub async fn run(file_cfg: Config) -> anyhow::Result<()> {
    let boot = fleet::boot(file_cfg)?;
    let cfg = boot.cfg.clone();
    let secret = cfg.secret()?;
    let normalizer = Normalizer::load(&cfg.edge.profiles_dir, &cfg)?;
    let validator = validator(&cfg)?;
    tracing::info!(
        edge_id = %cfg.edge.id,
        profiles = ?normalizer.profile_names(),
        hub_config = boot.state.current.as_ref().map(|c| c.version).unwrap_or(0),
        "starting"
    );
    let buffer_dir = cfg.edge.data_dir.join("buffer");
    let buffer = Buffer::open(
        &buffer_dir,
        BufferOptions {
            buffer_bytes_max: cfg.buffer.buffer_bytes_max,
            segment_bytes_max: cfg.buffer.segment_bytes_max,
        },
    )
    .with_context(|| format!("opening the buffer in {}", buffer_dir.display()))?;
    let r = &buffer.recovery;
    tracing::info!(
        epoch = buffer.epoch(),
        segments = r.segments,
        records = r.records,
        unacked = r.unacked,
        records_dropped = r.records_dropped,
        bytes_dropped = r.bytes_dropped,
        "buffer recovered"
    );
    // One line on stdout a supervisor or test can parse.
    println!(
        "recovery: epoch={} segments={} records={} unacked={} records_dropped={} bytes_dropped={}",
        buffer.epoch(),
        r.segments,
        r.records,
        r.unacked,
        r.records_dropped,
        r.bytes_dropped
    );
    let buffer = Arc::new(Mutex::new(buffer));
    let metrics = Arc::new(Metrics::default());
    let (ingest, kicks, durable_total) = Ingest::new(
        normalizer,
        validator,
        buffer.clone(),
        metrics.clone(),
        cfg.buffer.flush_records,
    );
    let durable = Arc::new(Notify::new());
    let stop = Arc::new(AtomicBool::new(false));
    let _sync = spawn_sync_thread(
        buffer.clone(),
        metrics.clone(),
        kicks,
        Duration::from_millis(cfg.buffer.flush_interval_ms),
        durable.clone(),
        durable_total,
        stop,
    );
    let up = uplink::spawn(&cfg, &secret, buffer.clone(), metrics.clone(), durable)?;

    let listener = tokio::net::TcpListener::bind(cfg.local_api.listen)
        .await
        .with_context(|| {
            format!(
                "local_api.listen {}: port in use? (is another edge running? set local_api.listen)",
                cfg.local_api.listen
            )
        })?;
    let app = local_api::router(ApiState {
        ingest: ingest.clone(),
        uplink: up.shared.clone(),
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "local API stopped");
        }
    });
    tokio::spawn(local_api::rate_sampler(ingest.clone()));

    let mut embedded = None;
    if let Some(sb) = &cfg.site_broker {
        let addr = source::embedded_broker::start(sb)?;
        embedded = Some(crate::config::MqttSource {
            name: "embedded".into(),
            host: addr.ip().to_string(),
            port: addr.port(),
            username: sb.username.clone(),
            password: sb.password.clone(),
            use_hub_credentials: false,
            topics: Vec::new(),
            reconnect_backoff_max_ms: 1000,
        });
    }
    let sources = Sources::start(&cfg, &secret, ingest.clone(), embedded);
    let manager = fleet::Manager::new(
        boot,
        fleet::Agent {
            ingest: ingest.clone(),
            sources,
            metrics: metrics.clone(),
            buffer: buffer.clone(),
            client: up.client.clone(),
            key: protocol::uplink::mac_key(&secret),
        },
    );
    tokio::spawn(manager.run(up.configs.clone()));
    println!(
        "edge {} running; local API on http://{}",
        cfg.edge.id, cfg.local_api.listen
    );

    shutdown_signal().await;
    tracing::info!("shutting down: acknowledging the site messages taken, syncing the buffer");
    ingest.drain(Duration::from_secs(3)).await;
    if let Ok(mut b) = buffer.lock() {
        b.sync_now()?;
        b.persist_cursor()?;
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
