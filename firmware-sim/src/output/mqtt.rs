//! MQTT output: one rumqttc client, QoS 1, counting what the broker acknowledged.

use anyhow::{anyhow, bail, Context, Result};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How the connection stands, as seen by the event-loop task.
#[derive(Debug, Clone)]
enum Link {
    Connecting(Option<String>),
    Connected,
}

/// A connected publisher.
pub struct Mqtt {
    pub broker: String,
    client: AsyncClient,
    acked: Arc<AtomicU64>,
    pub published: u64,
    /// Messages published per topic.
    pub topics: BTreeMap<String, u64>,
    task: tokio::task::JoinHandle<()>,
}

/// Connection settings from the command line.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub broker: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub client_id: String,
    pub inflight: u16,
    pub connect_timeout: Duration,
}

impl Mqtt {
    /// Connects, waiting up to `connect_timeout` for the broker's CONNACK (retrying meanwhile).
    pub async fn connect(cfg: &MqttConfig) -> Result<Mqtt> {
        let (host, port) = cfg
            .broker
            .rsplit_once(':')
            .and_then(|(h, p)| {
                Some((
                    h.trim_start_matches('[').trim_end_matches(']'),
                    p.parse::<u16>().ok()?,
                ))
            })
            .ok_or_else(|| anyhow!("--mqtt {:?}: expected HOST:PORT", cfg.broker))?;
        let mut opts = MqttOptions::new(cfg.client_id.clone(), host, port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_inflight(cfg.inflight.max(1));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        if let Some(u) = &cfg.user {
            opts.set_credentials(u.clone(), cfg.password.clone().unwrap_or_default());
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 1024);
        let acked = Arc::new(AtomicU64::new(0));
        let (link_tx, mut link_rx) = watch::channel(Link::Connecting(None));
        let a = acked.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = link_tx.send(Link::Connected);
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        a.fetch_add(1, Ordering::AcqRel);
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => {
                        let was_connected = matches!(*link_tx.borrow(), Link::Connected);
                        if was_connected {
                            tracing::warn!("MQTT connection lost: {e}; reconnecting");
                        }
                        let _ = link_tx.send(Link::Connecting(Some(e.to_string())));
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            }
        });
        let deadline = tokio::time::Instant::now() + cfg.connect_timeout;
        loop {
            let state = link_rx.borrow_and_update().clone();
            match state {
                Link::Connected => break,
                Link::Connecting(err) => {
                    if tokio::time::timeout_at(deadline, link_rx.changed())
                        .await
                        .is_err()
                    {
                        task.abort();
                        bail!(
                            "cannot connect to the MQTT broker at {} within {:?}: {}",
                            cfg.broker,
                            cfg.connect_timeout,
                            err.unwrap_or_else(|| "no answer".into())
                        );
                    }
                }
            }
        }
        Ok(Mqtt {
            broker: cfg.broker.clone(),
            client,
            acked,
            published: 0,
            topics: BTreeMap::new(),
            task,
        })
    }

    /// Publishes at QoS 1; waits while the client's request queue is full (backpressure).
    pub async fn publish(&mut self, topic: &str, payload: Vec<u8>) -> Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .context("MQTT client stopped")?;
        self.published += 1;
        *self.topics.entry(topic.to_string()).or_default() += 1;
        Ok(())
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Waits (up to `timeout`) until the broker acknowledged every message, then disconnects.
    /// Returns the number acknowledged and when the last one was.
    pub async fn finish(self, timeout: Duration) -> (u64, Instant) {
        let deadline = Instant::now() + timeout;
        while self.acked() < self.published && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let done_at = Instant::now();
        let acked = self.acked();
        if acked < self.published {
            tracing::warn!(
                published = self.published,
                acked,
                "the broker did not acknowledge every message"
            );
        }
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
        (acked, done_at)
    }
}
