//! External-broker mode: the hub is a client of another broker (mosquitto, EMQX…).
//!
//! Logins and topic ACLs are then that broker's job. With `[broker.external] provision_dir` the
//! hub writes them for mosquitto from the registry ([`super::mosquitto`]) and keeps them in step
//! with it (every `broker.revocation_check_ms`); ingest still checks every batch's HMAC, so a
//! broker whose ACLs are wrong cannot let an edge publish as another. The session is persistent (clean_session = false)
//! so batches published while the hub reconnects wait in the broker.

use super::mosquitto::{password_hash, HubAccount, HubAccounts, ProvisionError, Provisioner};
use super::{BrokerConfig, BrokerError, BrokerHandle, BrokerMetrics, Inbound, Outbound};
use crate::registry::RegistryStore;
use protocol::uplink::topics;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const OUTBOUND_QUEUE_MAX: usize = 4096;

pub(super) fn start(
    cfg: &BrokerConfig,
    registry: Arc<dyn RegistryStore>,
    owned: Option<watch::Receiver<Vec<String>>>,
    peers: Option<Arc<dyn HubAccounts>>,
) -> Result<BrokerHandle, BrokerError> {
    let ext = cfg.external.as_ref().ok_or_else(|| {
        BrokerError::Config("broker.mode = \"external\" needs a [broker.external] table".into())
    })?;
    if let Some(dir) = &ext.provision_dir {
        let (Some(username), Some(password)) = (&ext.username, &ext.password) else {
            return Err(BrokerError::Config(
                "broker.external.provision_dir needs broker.external.username and password \
                 (the hub's own account on the broker)"
                    .into(),
            ));
        };
        let me = HubAccount {
            username: username.clone(),
            broker_hash: password_hash(password),
        };
        let mut p = Provisioner::new(dir.clone(), ext.mosquitto_pid_file.clone(), me.clone());
        if let Some(peers) = peers {
            // Peers' provisioners write this hub's account too (mosquitto may be theirs).
            peers.publish(&me).map_err(|e| {
                BrokerError::Config(format!("publish this hub's broker account: {e}"))
            })?;
            p = p.with_peers(peers);
        }
        match p.sync(&*registry) {
            Ok(_) => {}
            // mosquitto is down or restarting (no pid file, or a stale one): the files are
            // written; the periodic pass below signals it once it runs again.
            Err(e @ ProvisionError::Pid { .. }) => {
                tracing::warn!(error = %e, "external broker not signalled; retrying");
            }
            Err(e) => {
                return Err(BrokerError::Config(format!(
                    "broker.external.provision_dir: {e}"
                )))
            }
        }
        let every = Duration::from_millis(cfg.revocation_check_ms.max(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let registry = registry.clone();
                let r = tokio::task::spawn_blocking(move || {
                    let r = p.sync(&*registry);
                    (p, r)
                })
                .await;
                match r {
                    Ok((back, r)) => {
                        p = back;
                        if let Err(e) = r {
                            tracing::error!(error = %e, "external broker provisioning failed");
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "external broker provisioning task died");
                        return;
                    }
                }
            }
        });
    }
    let mut opts = MqttOptions::new(&ext.client_id, &ext.host, ext.port);
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_clean_session(owned.is_some());
    opts.set_max_packet_size(cfg.max_payload_bytes + 1024, cfg.max_payload_bytes + 1024);
    if let Some(user) = &ext.username {
        opts.set_credentials(user, ext.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let (in_tx, in_rx) = mpsc::channel(cfg.inbound_queue_max);
    let (reports_tx, reports_rx) = mpsc::channel(super::CONFIG_REPORTS_QUEUE_MAX);
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(OUTBOUND_QUEUE_MAX);

    let sub_client = client.clone();
    let subscriptions = Subscriptions::new(client.clone(), owned.clone());
    if let Some(owned) = owned {
        tokio::spawn(subscriptions.clone().follow(owned));
    }
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if subscriptions.per_edge() {
                        subscriptions.resubscribe_all().await;
                        continue;
                    }
                    for f in [
                        topics::ALL_BATCHES,
                        topics::ALL_STATUS,
                        topics::ALL_CONFIG_REPORTS,
                    ] {
                        if let Err(e) = sub_client.subscribe(f, QoS::AtLeastOnce).await {
                            tracing::error!(error = %e, "external broker subscribe failed");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let msg = Inbound {
                        topic: p.topic,
                        payload: p.payload,
                    };
                    if super::is_config_report(&msg.topic) {
                        super::forward_config_report(&reports_tx, msg);
                        continue;
                    }
                    if in_tx.send(msg).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "external broker connection lost; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            // Desired configurations are retained: an edge connecting later still gets its own.
            let retain = super::is_config(&m.topic);
            if let Err(e) = client
                .publish(m.topic, QoS::AtLeastOnce, retain, m.payload.to_vec())
                .await
            {
                tracing::error!(error = %e, "external broker publish failed");
            }
        }
    });
    Ok(BrokerHandle::new(
        (in_rx, reports_rx),
        out_tx,
        None,
        None,
        Arc::new(BrokerMetrics::default()),
    ))
}

/// What a cluster member subscribes to for each edge it owns.
fn edge_topics(edge: &str) -> [String; 3] {
    [
        topics::batches(edge),
        topics::status(edge),
        topics::config_report(edge),
    ]
}

/// A cluster member's subscriptions: the batch, status and configuration report topics of each
/// owned edge.
#[derive(Clone)]
struct Subscriptions {
    client: AsyncClient,
    owned: Option<watch::Receiver<Vec<String>>>,
    /// The edges subscribed to now.
    current: Arc<tokio::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl Subscriptions {
    fn new(client: AsyncClient, owned: Option<watch::Receiver<Vec<String>>>) -> Subscriptions {
        Subscriptions {
            client,
            owned,
            current: Arc::default(),
        }
    }

    fn per_edge(&self) -> bool {
        self.owned.is_some()
    }

    /// After a (re)connect on a clean session: subscribe to every owned edge again.
    async fn resubscribe_all(&self) {
        let want: Vec<String> = self
            .owned
            .as_ref()
            .map(|o| o.borrow().clone())
            .unwrap_or_default();
        let mut current = self.current.lock().await;
        current.clear();
        for edge in want {
            if self.subscribe(&edge).await {
                current.insert(edge);
            }
        }
    }

    /// Follows the owned set: subscribes to edges taken, unsubscribes from edges handed over.
    async fn follow(self, mut owned: watch::Receiver<Vec<String>>) {
        while owned.changed().await.is_ok() {
            let want: std::collections::BTreeSet<String> =
                owned.borrow_and_update().iter().cloned().collect();
            let mut current = self.current.lock().await;
            for gone in current.difference(&want).cloned().collect::<Vec<_>>() {
                for t in edge_topics(&gone) {
                    if let Err(e) = self.client.unsubscribe(t).await {
                        tracing::warn!(error = %e, edge_id = %gone, "unsubscribe failed");
                    }
                }
                current.remove(&gone);
            }
            for new in want.difference(&current.clone()) {
                if self.subscribe(new).await {
                    current.insert(new.clone());
                }
            }
        }
    }

    async fn subscribe(&self, edge: &str) -> bool {
        for t in edge_topics(edge) {
            if let Err(e) = self.client.subscribe(t, QoS::AtLeastOnce).await {
                tracing::error!(error = %e, edge_id = %edge, "external broker subscribe failed");
                return false;
            }
        }
        true
    }
}
