//! Delivery: the newest version of each edge, sealed under that edge's key and published
//! retained on its config topic, until the edge reports it (see the module doc of `fleet`).

use super::{FleetMetrics, PASS_EDGES_MAX, PASS_EVERY};
use crate::broker::Outbound;
use crate::cluster::ownership::Ownership;
use crate::registry::{ConfigDelivery, RegistryAdmin, StoredConfig};
use bytes::Bytes;
use protocol::edge_config::DesiredConfig;
use protocol::uplink::topics;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The delivery task's state across passes.
pub struct Delivery {
    pub registry: Arc<dyn RegistryAdmin>,
    pub outbound: mpsc::Sender<Outbound>,
    /// In a cluster: publish only for the edges this hub owns (one publisher per edge).
    pub ownership: Option<Arc<Ownership>>,
    pub metrics: Arc<FleetMetrics>,
    /// The version published for each edge since this hub started: every edge's newest version
    /// is published once after a start (the embedded broker's retained copies died with the
    /// last run), then again only while the edge has not reported it.
    published: HashMap<String, u64>,
    /// Where the next pass goes on (`None`: from the first edge).
    cursor: Option<String>,
}

impl Delivery {
    pub fn new(
        registry: Arc<dyn RegistryAdmin>,
        outbound: mpsc::Sender<Outbound>,
        ownership: Option<Arc<Ownership>>,
        metrics: Arc<FleetMetrics>,
    ) -> Delivery {
        Delivery {
            registry,
            outbound,
            ownership,
            metrics,
            published: HashMap::new(),
            cursor: None,
        }
    }

    /// Runs passes every [`PASS_EVERY`] and publishes kicked edges at once; ends when the kick
    /// channel or the broker link closes.
    pub async fn run(mut self, kicks: &mut mpsc::Receiver<String>) {
        let mut tick = tokio::time::interval(PASS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let open = tokio::select! {
                _ = tick.tick() => self.pass().await,
                k = kicks.recv() => match k {
                    Some(edge) => self.kick(&edge).await,
                    None => false,
                },
            };
            if !open {
                return;
            }
        }
    }

    /// One pass over at most [`PASS_EDGES_MAX`] edges; false if the broker link is gone.
    pub async fn pass(&mut self) -> bool {
        let (reg, after) = (self.registry.clone(), self.cursor.take());
        let page = tokio::task::spawn_blocking(move || {
            reg.list_config_deliveries(after.as_deref(), PASS_EDGES_MAX)
        })
        .await;
        let page = match page {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "configuration delivery: registry unavailable");
                return true;
            }
            Err(e) => {
                tracing::error!(error = %e, "configuration delivery: worker failed");
                return true;
            }
        };
        self.cursor = page.next;
        for d in page.items {
            if self.wanted(&d) && !self.publish(d.config).await {
                return false;
            }
        }
        true
    }

    /// Publishes `edge`'s newest version now (after a PUT); false if the broker link is gone.
    pub async fn kick(&mut self, edge: &str) -> bool {
        let (reg, id) = (self.registry.clone(), edge.to_string());
        match tokio::task::spawn_blocking(move || reg.edge_config(&id)).await {
            Ok(Ok(Some(state))) => match state.desired {
                Some(c) if self.owns(&c.edge_id) => self.publish(c).await,
                _ => true,
            },
            Ok(Ok(None)) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, edge_id = %edge, "configuration kick: registry unavailable");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "configuration kick: worker failed");
                true
            }
        }
    }

    fn owns(&self, edge: &str) -> bool {
        self.ownership
            .as_ref()
            .is_none_or(|o| o.fence(edge).is_some())
    }

    /// Published while not reported, and once per start.
    fn wanted(&self, d: &ConfigDelivery) -> bool {
        self.owns(&d.config.edge_id)
            && (d.pending() || self.published.get(&d.config.edge_id) != Some(&d.config.version))
    }

    /// Seals `c` under its edge's key and queues it; an edge without credentials or revoked
    /// gets nothing. False if the broker link is gone.
    async fn publish(&mut self, c: StoredConfig) -> bool {
        let (reg, id) = (self.registry.clone(), c.edge_id.clone());
        let creds = match tokio::task::spawn_blocking(move || reg.edge_credentials(&id)).await {
            Ok(Ok(Some(creds))) if !creds.revoked => creds,
            Ok(Ok(_)) => return true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, edge_id = %c.edge_id, "configuration delivery: no key");
                return true;
            }
            Err(_) => return true,
        };
        let version = c.version;
        let edge = c.edge_id.clone();
        let sealed = DesiredConfig::new(&c.edge_id, c.version, c.document, c.created_ns)
            .seal(&creds.mac_key);
        let out = Outbound {
            topic: topics::config(&edge),
            payload: Bytes::from(sealed),
        };
        if self.outbound.send(out).await.is_err() {
            return false;
        }
        self.metrics.published.fetch_add(1, Relaxed);
        tracing::debug!(edge_id = %edge, version, "desired configuration published (retained)");
        self.published.insert(edge, version);
        true
    }
}
