//! External-broker mode: the hub is a client of another broker (mosquitto, EMQX…).
//!
//! Logins and topic ACLs are then that broker's job (mosquitto: `pattern write
//! wangge/v1/edges/%u/#`); ingest still checks every batch's HMAC, so a broker without ACLs
//! cannot let an edge publish as another. The session is persistent (clean_session = false)
//! so batches published while the hub reconnects wait in the broker.

use super::{BrokerConfig, BrokerError, BrokerHandle, BrokerMetrics, Inbound, Outbound};
use protocol::uplink::topics;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const OUTBOUND_QUEUE_MAX: usize = 4096;

pub(super) fn start(cfg: &BrokerConfig) -> Result<BrokerHandle, BrokerError> {
    let ext = cfg.external.as_ref().ok_or_else(|| {
        BrokerError::Config("broker.mode = \"external\" needs a [broker.external] table".into())
    })?;
    let mut opts = MqttOptions::new(&ext.client_id, &ext.host, ext.port);
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_clean_session(false);
    opts.set_max_packet_size(cfg.max_payload_bytes + 1024, cfg.max_payload_bytes + 1024);
    if let Some(user) = &ext.username {
        opts.set_credentials(user, ext.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let (in_tx, in_rx) = mpsc::channel(cfg.inbound_queue_max);
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(OUTBOUND_QUEUE_MAX);

    let sub_client = client.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for f in [topics::ALL_BATCHES, topics::ALL_STATUS] {
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
            if let Err(e) = client
                .publish(m.topic, QoS::AtLeastOnce, false, m.payload.to_vec())
                .await
            {
                tracing::error!(error = %e, "external broker publish failed");
            }
        }
    });
    Ok(BrokerHandle::new(
        in_rx,
        out_tx,
        None,
        None,
        Arc::new(BrokerMetrics::default()),
    ))
}
