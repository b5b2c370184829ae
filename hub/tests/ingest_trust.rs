//! Ingest trusts nothing a batch or a status claims beyond what its seal proves: sealed acks,
//! fresh statuses, foreign and unregistered sensors, reading time window, protocol version.
//! Real embedded broker, real embedded store, an in-memory registry.
mod ingest_support;

use hub::ingest::RejectReason::{StaleStatus, UnknownVersion};
use hub::ingest::{
    IngestConfig, IngestMetrics, ReadingRejectReason, RejectReason, RulesStage, StoredGroup,
    UnregisteredPolicy,
};
use ingest_support::*;
use protocol::uplink::{mac_key, topics, Ack, AckOutcome, EdgeStatus, UplinkError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// (sensor, component) of every reading the rules stage was given.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

#[derive(Clone, Default)]
struct SeenByRules(Seen);

impl RulesStage for SeenByRules {
    fn evaluate(&mut self, group: &StoredGroup) -> Result<(), String> {
        let mut seen = self.0.lock().unwrap();
        for r in &group.readings {
            seen.push((r.reading.sensor.0.clone(), r.component_id.clone()));
        }
        Ok(())
    }
}

/// A hub on `site` with ingest config `cfg`, its rules stage recording into `rules`.
fn start_hub(site: &Site, cfg: IngestConfig, rules: &SeenByRules) -> EmbeddedHub {
    site.start_with(&loopback_broker(), cfg, Some(Box::new(rules.clone())))
}

/// A hub of the default ingest config on `site`, and edge-1 logged in to it.
async fn hub_and_edge(site: &Site, rules: &SeenByRules) -> (EmbeddedHub, Edge) {
    let hub = start_hub(site, IngestConfig::default(), rules);
    let edge = site.login(&hub).await;
    (hub, edge)
}

/// Waits (30 s at most) until `m` counted `n` messages refused for `reason`.
async fn rejected_eventually(what: &str, m: &IngestMetrics, reason: RejectReason, n: u64) {
    eventually(what, Duration::from_secs(30), || m.rejected(reason) == n).await;
}

/// Waits (30 s at most) until the registry recorded `n` statuses.
async fn statuses_eventually(what: &str, reg: &MemRegistry, n: usize) {
    eventually(what, Duration::from_secs(30), || {
        reg.statuses.lock().unwrap().len() == n
    })
    .await;
}

const S: i64 = 1_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_are_sealed_for_their_edge_and_name_it() {
    let site = Site::with_edge("edge-1");
    // A raw subscriber sees the bytes on the ack topic; the support client only passes acks
    // that open under edge-1's key, so an unsealed ack would time out there.
    let (_hub, mut edge) = hub_and_edge(&site, &SeenByRules::default()).await;
    let b = batch("edge-1", 4, 9, readings("MH-1", now_ns() - 60 * S, 3));
    let ack = edge.deliver(&b, &site.key).await;
    assert_eq!(
        (ack.edge_id.as_str(), ack.epoch, ack.seq, ack.outcome),
        ("edge-1", 4, 9, AckOutcome::Stored)
    );
    // The same ack under another edge's key does not open.
    let other = mac_key("someone-else");
    assert_eq!(
        Ack::open(&ack.seal(&other), &site.key, "edge-1"),
        Err(UplinkError::BadMac)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_for_another_edges_sensor_is_rejected_and_raises_nothing() {
    let site = Site::with_edge("edge-1");
    let reg = &site.reg;
    reg.add_edge("edge-2");
    reg.assign_on_edge("MH-OWN", "3205080101000001", Some("edge-1"));
    reg.assign_on_edge("MH-THEIRS", "3205080101000002", Some("edge-2"));
    let rules = SeenByRules::default();
    let (hub, mut edge) = hub_and_edge(&site, &rules).await;
    let t0 = now_ns() - 60 * S;
    for seq in 0..2 {
        let mut rs = readings("MH-OWN", t0 + seq as i64 * 100 * S, 5);
        rs.extend(readings("MH-THEIRS", t0 + seq as i64 * 100 * S, 7));
        let ack = edge.deliver(&batch("edge-1", 1, seq, rs), &site.key).await;
        assert_eq!(
            (ack.seq, ack.outcome),
            (seq, AckOutcome::Stored),
            "the batch is still acked for its other readings"
        );
    }
    assert_eq!(stored(&hub.store, "MH-OWN"), 10);
    assert_eq!(stored(&hub.store, "MH-THEIRS"), 0, "never stored");
    let m = hub.ingest.metrics();
    assert_eq!(m.readings_rejected(ReadingRejectReason::ForeignSensor), 14);
    let seen = rules.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 10);
    assert!(
        seen.iter().all(|(s, _)| s == "MH-OWN"),
        "the rules never see a foreign reading: {seen:?}"
    );
    let audits = reg.audits.lock().unwrap().clone();
    assert_eq!(
        audits,
        vec![(
            "foreign_sensor".to_string(),
            "edge-1".to_string(),
            "MH-THEIRS".to_string()
        )],
        "audited once per (edge, sensor)"
    );
    assert_rendered(
        &m,
        "wangge_ingest_readings_rejected_total{reason=\"foreign_sensor\"} 14",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_outside_the_time_window_are_rejected_and_counted() {
    let site = Site::with_edge("edge-1");
    let cfg = IngestConfig {
        ts_past_max_s: 3600,
        ts_future_max_s: 60,
        ..Default::default()
    };
    let rules = SeenByRules::default();
    let hub = start_hub(&site, cfg, &rules);
    let mut edge = site.login(&hub).await;
    let now = now_ns();
    let mut rs = readings("MH-OLD", now - 2 * 3600 * S, 3);
    rs.extend(readings("MH-FUTURE", now + 600 * S, 4));
    rs.extend(readings("MH-RECENT", now - 1800 * S, 5));
    rs.extend(readings("MH-SOON", now + 10 * S, 2));
    let ack = edge.deliver(&batch("edge-1", 1, 0, rs), &site.key).await;
    assert_eq!(ack.outcome, AckOutcome::Stored);
    assert_eq!(stored(&hub.store, "MH-OLD"), 0);
    assert_eq!(stored(&hub.store, "MH-FUTURE"), 0);
    assert_eq!(stored(&hub.store, "MH-RECENT"), 5);
    assert_eq!(stored(&hub.store, "MH-SOON"), 2);
    let m = hub.ingest.metrics();
    assert_eq!(m.readings_rejected(ReadingRejectReason::TsOutOfWindow), 7);
    assert_eq!(rules.0.lock().unwrap().len(), 7);
}

/// Batch (1, 0) of edge-1: 3 readings of the registered MH-KNOWN, 4 of NEW-SENSOR.
fn known_and_new_sensor() -> protocol::uplink::UplinkBatch {
    let t0 = now_ns() - 60 * S;
    let mut rs = readings("MH-KNOWN", t0, 3);
    rs.extend(readings("NEW-SENSOR", t0, 4));
    batch("edge-1", 1, 0, rs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_sensors_can_be_rejected_by_config() {
    let site = Site::with_edge("edge-1");
    let reg = &site.reg;
    reg.assign("MH-KNOWN", "3205080101000001");
    let cfg = IngestConfig {
        unregistered: UnregisteredPolicy::Reject,
        ..Default::default()
    };
    let hub = start_hub(&site, cfg, &SeenByRules::default());
    let mut edge = site.login(&hub).await;
    let ack = edge.deliver(&known_and_new_sensor(), &site.key).await;
    assert_eq!(ack.outcome, AckOutcome::Stored);
    assert_eq!(stored(&hub.store, "MH-KNOWN"), 3);
    assert_eq!(stored(&hub.store, "NEW-SENSOR"), 0);
    let m = hub.ingest.metrics();
    assert_eq!(m.readings_rejected(ReadingRejectReason::Unregistered), 4);
    assert!(
        reg.unassigned
            .lock()
            .unwrap()
            .iter()
            .any(|(s, _)| s == "NEW-SENSOR"),
        "still listed for an operator to register"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_unregistered_readings_are_never_evaluated_against_a_component() {
    let site = Site::with_edge("edge-1");
    site.reg.assign("MH-KNOWN", "3205080101000001");
    let rules = SeenByRules::default();
    let (hub, mut edge) = hub_and_edge(&site, &rules).await;
    let ack = edge.deliver(&known_and_new_sensor(), &site.key).await;
    assert_eq!(ack.outcome, AckOutcome::Stored);
    assert_eq!(stored(&hub.store, "NEW-SENSOR"), 4, "default: stored");
    let seen = rules.0.lock().unwrap().clone();
    for (sensor, component) in &seen {
        match sensor.as_str() {
            "NEW-SENSOR" => assert_eq!(component, &None, "no component to evaluate against"),
            _ => assert_eq!(component.as_deref(), Some("3205080101000001")),
        }
    }
    assert_eq!(seen.len(), 7);
}

/// The site of edge-1, a hub of the default config on it and edge-1 logged in to it, for the
/// status tests (no rules stage to watch).
async fn edge_1_online() -> (Site, EmbeddedHub, Edge) {
    let site = Site::with_edge("edge-1");
    let (hub, edge) = hub_and_edge(&site, &SeenByRules::default()).await;
    (site, hub, edge)
}

/// A status of edge-1 produced now, reporting `counter` readings of backlog.
fn status(online: bool, epoch: u64, counter: u64, will_counter: u64) -> EdgeStatus {
    let st = EdgeStatus::online("edge-1", "0.1.0", epoch, counter, will_counter, now_ns());
    EdgeStatus {
        online,
        backlog_readings: counter,
        ..st
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_online_status_is_refused() {
    let (site, hub, edge) = edge_1_online().await;
    let (reg, key) = (&site.reg, site.key);
    let old_online = status(true, 2, 5, 4).seal(&key);
    edge.publish_status(old_online.clone()).await;
    // The edge went offline (its will), rebooted into epoch 3 and is online again.
    edge.publish_status(status(false, 2, 4, 4).seal(&key)).await;
    edge.publish_status(status(true, 3, 1, 0).seal(&key)).await;
    let m = hub.ingest.metrics();
    statuses_eventually("three statuses recorded", reg, 3).await;
    // The attacker replays the old online status of epoch 2.
    edge.publish_status(old_online).await;
    rejected_eventually("the replay counted as stale", &m, StaleStatus, 1).await;
    let statuses = reg.statuses.lock().unwrap().clone();
    assert_eq!(statuses.len(), 3, "nothing recorded from the replay");
    assert_eq!((statuses[2].epoch, statuses[2].online), (3, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_last_will_cannot_mark_a_live_edge_offline() {
    let (site, hub, edge) = edge_1_online().await;
    let (reg, key) = (&site.reg, site.key);
    // Connection 1: will 0, online 1 announcing it; the connection drops and the broker
    // publishes will 0. Connection 2: will 2, online 3.
    let will_0 = status(false, 1, 0, 0).seal(&key);
    edge.publish_status(status(true, 1, 1, 0).seal(&key)).await;
    edge.publish_status(will_0.clone()).await;
    edge.publish_status(status(true, 1, 3, 2).seal(&key)).await;
    statuses_eventually("online, offline, online recorded", reg, 3).await;
    // Replaying will 0 (the attacker kept it) must not mark the live edge offline.
    edge.publish_status(will_0).await;
    let m = hub.ingest.metrics();
    rejected_eventually("the old will counted as stale", &m, StaleStatus, 1).await;
    assert_eq!(reg.statuses.lock().unwrap().len(), 3);
    assert!(reg.statuses.lock().unwrap()[2].online);
    // The current connection's will, when it comes, is accepted once.
    let will_2 = status(false, 1, 2, 2).seal(&key);
    edge.publish_status(will_2.clone()).await;
    statuses_eventually("the announced will recorded", reg, 4).await;
    edge.publish_status(will_2).await;
    rejected_eventually("a second copy of it is stale", &m, StaleStatus, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_statuses_of_another_protocol_version_are_refused_and_counted() {
    let (site, hub, edge) = edge_1_online().await;
    let (reg, key) = (&site.reg, site.key);
    let mut old_batch = batch("edge-1", 1, 0, readings("MH-1", now_ns() - 60 * S, 2)).seal(&key);
    old_batch[0] = 1;
    let mut old_status = status(true, 1, 1, 0).seal(&key);
    old_status[0] = 1;
    for _ in 0..3 {
        edge.publish_raw(&topics::batches("edge-1"), old_batch.clone())
            .await;
    }
    edge.publish_status(old_status).await;
    let m = hub.ingest.metrics();
    rejected_eventually("every old-version message counted", &m, UnknownVersion, 4).await;
    assert_eq!(stored(&hub.store, "MH-1"), 0);
    assert!(reg.statuses.lock().unwrap().is_empty());
}
