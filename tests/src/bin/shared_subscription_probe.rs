//! Measures the rejected way for hubs to share edges (ARCHITECTURE.md, "Decision: how hubs
//! share the work in a cluster"): MQTT shared subscriptions on mosquitto. Two "hubs" subscribe
//! `$share/hubs/wangge/v1/edges/+/batches`; one "edge" publishes `MESSAGES` batches in order on
//! its topic (QoS 1). Printed: how the broker split them, and how often two consecutive batches
//! of the one edge — readings of the same components, in reading order — went to different
//! hubs (each such pair is a pair of rule evaluations of one component on two hubs, which the
//! rules would have to serialize in the database). Under the chosen per-edge leases that
//! figure is 0 by construction: only the owner subscribes to the edge's topic.
//!
//! `cargo run -p wangge-tests --bin shared_subscription_probe [MESSAGES]`

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use wangge_testkit::Mosquitto;

const TOPIC: &str = "wangge/v1/edges/edge-a/batches";
const SHARED: &str = "$share/hubs/wangge/v1/edges/+/batches";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let messages: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2000);
    let broker = Mosquitto::start();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, u32)>();
    for hub in 0..2 {
        let mut o = MqttOptions::new(format!("hub-{hub}"), "127.0.0.1", broker.port);
        o.set_keep_alive(Duration::from_secs(10));
        let (client, mut el) = AsyncClient::new(o, 256);
        client.subscribe(SHARED, QoS::AtLeastOnce).await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(ev) = el.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = ev {
                    let seq = u32::from_be_bytes(p.payload[..4].try_into().unwrap_or([0; 4]));
                    let _ = tx.send((hub, seq));
                }
            }
        });
    }
    // Both subscriptions in place before the edge publishes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (edge, mut edge_el) =
        AsyncClient::new(MqttOptions::new("edge-a", "127.0.0.1", broker.port), 256);
    tokio::spawn(async move { while edge_el.poll().await.is_ok() {} });
    let t0 = Instant::now();
    for seq in 0..messages {
        edge.publish(TOPIC, QoS::AtLeastOnce, false, seq.to_be_bytes().to_vec())
            .await?;
    }
    let mut hub_of = vec![None; messages as usize];
    let mut received = 0;
    while received < messages {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some((hub, seq))) => {
                if let Some(slot) = hub_of.get_mut(seq as usize) {
                    if slot.is_none() {
                        received += 1;
                    }
                    *slot = Some(hub);
                }
            }
            _ => break,
        }
    }
    let per_hub = |h: usize| hub_of.iter().filter(|x| **x == Some(h)).count();
    let switches = hub_of
        .windows(2)
        .filter(|w| matches!((w[0], w[1]), (Some(a), Some(b)) if a != b))
        .count();
    println!(
        "mosquitto shared subscription, 2 subscribers, {messages} batches of one edge in order \
         ({:.1} s): hub-0 got {}, hub-1 got {}, {} not delivered; {switches} of {} consecutive \
         pairs ({:.0} %) went to different hubs",
        t0.elapsed().as_secs_f64(),
        per_hub(0),
        per_hub(1),
        messages - received,
        messages.saturating_sub(1),
        100.0 * switches as f64 / f64::from(messages.saturating_sub(1).max(1)),
    );
    Ok(())
}
