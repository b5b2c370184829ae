//! An MQTT client acting as an edge for the configuration-from-the-hub tests: it subscribes to
//! one filter and hands on what it sees.
#![allow(dead_code)]

use protocol::edge_config::DesiredConfig;
use protocol::uplink::topics;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a test waits for a message.
pub const WAIT: Duration = Duration::from_secs(30);

/// What an MQTT client saw: publishes (topic, payload, retained) and subscription answers.
pub enum Seen {
    Publish(String, Vec<u8>, bool),
    SubAck(Vec<SubscribeReasonCode>),
}

/// An MQTT client logged in as edge `id` (its secret as password), subscribed to `filter`.
pub async fn edge_client(
    port: u16,
    id: &str,
    secret: &str,
    filter: &str,
) -> (AsyncClient, mpsc::Receiver<Seen>) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_credentials(id, secret);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(opts, 100);
    let (tx, rx) = mpsc::channel(100);
    let (sub, filter) = (client.clone(), filter.to_string());
    tokio::spawn(async move {
        loop {
            let seen = match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = sub.subscribe(&filter, QoS::AtLeastOnce).await;
                    continue;
                }
                Ok(Event::Incoming(Packet::SubAck(a))) => Seen::SubAck(a.return_codes),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    Seen::Publish(p.topic, p.payload.to_vec(), p.retain)
                }
                Ok(_) => continue,
                // A test that let go of the receiver is done with this client.
                Err(_) if tx.is_closed() => return,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if tx.send(seen).await.is_err() {
                return;
            }
        }
    });
    (client, rx)
}

/// The next desired configuration for `edge` that opens under `key`, with its retain flag.
pub async fn next_config(
    rx: &mut mpsc::Receiver<Seen>,
    edge: &str,
    key: &[u8; 32],
) -> (DesiredConfig, bool) {
    loop {
        let seen = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a config within 30 s");
        if let Some(Seen::Publish(topic, payload, retain)) = seen {
            assert_eq!(topic, topics::config(edge));
            return (
                DesiredConfig::open(&payload, key, edge).expect("sealed for the edge"),
                retain,
            );
        }
    }
}
