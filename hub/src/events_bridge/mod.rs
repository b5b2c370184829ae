//! The bridge between the hub and the events engine (`wangge-events`): the registry as its
//! component directory (`directory`), the hub's tokens as its authorizer (`auth`), its rules as
//! ingest's last stage (`rules_feed`), edge statuses into its topology (`edge_status`:
//! `edge.offline`, the sensors behind an offline edge held back; `source.offline` for a line or
//! slave it reports down), component status kept in the registry from its outbox
//! (`status_sync`), and [`start`], which opens the engine and supervises its tasks. `serve`
//! only calls [`start`] and [`spawn_mqtt_delivery`].

mod auth;
mod cluster_member;
mod directory;
mod edge_status;
mod rules_feed;
mod status_sync;

use crate::config::HubConfig;
use crate::registry::RegistryAdmin;
use crate::supervise::{until_cancelled, Supervisor};
use crate::timeseries::embedded::EmbeddedStore;
use crate::{broker, ingest};
use anyhow::Context;
use auth::HubAuth;
use directory::RegistryDirectory;
use rules_feed::RulesFeed;
use status_sync::sync_component_status;
use std::sync::Arc;
use std::time::Duration;

/// Opens the events engine (`<data_dir>/events.db`), starts its clock tick, webhook delivery
/// and status sync, and returns it with its routes and the rules stage that ingest runs every
/// stored group through before acking it. (MQTT delivery is started by `run`, which holds the
/// broker handle.)
pub(crate) fn start(
    cfg: &HubConfig,
    registry: &Arc<dyn RegistryAdmin>,
    store: &Arc<EmbeddedStore>,
    admin_token: Option<String>,
    sup: &Supervisor,
    cluster: Option<&Arc<crate::cluster::Cluster>>,
) -> anyhow::Result<(
    wangge_events::Events,
    axum::Router,
    Box<dyn ingest::RulesStage>,
)> {
    let ecfg = cfg.events.load().map_err(|e| anyhow::anyhow!("{e}"))?;
    // Data completeness counts every hub's readings: a member's embedded store holds only the
    // edges it owned, so a cluster counts from VictoriaMetrics.
    let counts: Arc<dyn crate::timeseries::report_counts::ReportCounts> =
        match (cluster, &cfg.victoria) {
            (Some(_), Some(v)) => Arc::new(
                crate::timeseries::victoria::VictoriaQuery::new(v)
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .context("[victoria]")?,
            ),
            _ => store.clone(),
        };
    let sources = edge_status::SourceSensors::default();
    let directory = Arc::new(RegistryDirectory {
        sources: sources.clone(),
        registry: registry.clone(),
        store: counts,
    });
    let events = match cluster {
        None => {
            let path = cfg.data_dir.join("events.db");
            wangge_events::Events::open(&path, ecfg, directory)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("open events store {}", path.display()))?
        }
        Some(c) => {
            let pg = Arc::new(c.pg.clone());
            let store = wangge_events::store::PgStore::open(pg.clone(), ecfg.deadlines.clone())
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("open events store on {}", c.pg.describe()))?;
            // Photos in the shared database, so every member serves what one took in.
            let blobs = Arc::new(wangge_events::attachments::PgBlobStore::new(pg));
            wangge_events::Events::with_parts(Arc::new(store), Some(blobs), ecfg, directory)
                .map_err(|e| anyhow::anyhow!("{e}"))?
        }
    };

    match cluster {
        // Offline detection starts for every attached sensor, even one that never reports.
        None => {
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
            edge_status::map_sensor_edges(&events, &**registry)?;
        }
        // In a cluster, for the sensors of the edges this hub owns, as leases move; and the
        // change feed also wakes on peers' commits.
        Some(c) => {
            let (ev, reg, owned) = (events.clone(), registry.clone(), c.ownership.clone());
            sup.spawn("offline_watches", move |t| {
                let run =
                    cluster_member::follow_owned_edges(ev.clone(), reg.clone(), owned.subscribe());
                until_cancelled(t, run)
            });
            let ev = events.clone();
            sup.spawn("outbox_poll", move |t| {
                until_cancelled(t, cluster_member::poll_outbox(ev.clone()))
            });
        }
    }

    let owned = cluster.map(|c| c.ownership.subscribe());
    let stage = Box::new(RulesFeed::new(
        events.clone(),
        registry.clone(),
        owned,
        sources,
    ));

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
    let leader = cluster.map(|c| c.ownership.clone());
    sup.spawn("status_sync", move |t| {
        let (ev, reg, leader) = (ev.clone(), reg.clone(), leader.clone());
        let run = async move {
            match leader {
                None => sync_component_status(ev, reg).await,
                Some(o) => {
                    cluster_member::while_leader(o.leader(), || {
                        sync_component_status(ev.clone(), reg.clone())
                    })
                    .await
                }
            }
        };
        until_cancelled(t, run)
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

/// Supervises MQTT delivery: events on `wangge/v1/events/{department}/{type}` through the
/// hub's own broker link.
pub(crate) fn spawn_mqtt_delivery(
    sup: &Supervisor,
    events: wangge_events::Events,
    outbound: tokio::sync::mpsc::Sender<broker::Outbound>,
    cluster: Option<&Arc<crate::cluster::Cluster>>,
) {
    let leader = cluster.map(|c| c.ownership.clone());
    sup.spawn("mqtt_events", move |t| {
        let (events, outbound) = (events.clone(), outbound.clone());
        let publish = move || {
            let outbound = outbound.clone();
            wangge_events::delivery::run_mqtt(events.clone(), move |topic, payload| {
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
            })
        };
        let leader = leader.clone();
        let run = async move {
            match leader {
                None => publish().await,
                // One publisher in the cluster: the shared cursor has one writer.
                Some(o) => cluster_member::while_leader(o.leader(), publish).await,
            }
        };
        until_cancelled(t, run)
    });
}
