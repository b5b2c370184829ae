//! The events engine on a cluster member: offline watches only for the sensors of the edges
//! this hub owns, the change feed woken by peers' commits (outbox polling), and the leader-only
//! tasks run only while this hub holds the leader role.

use crate::registry::RegistryAdmin;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often a member looks for changes other hubs committed (SSE, webhooks wake on them).
const OUTBOX_POLL: Duration = Duration::from_millis(250);

/// Runs `task` while this hub is the leader; stops it when the role is lost, starts it again
/// when it comes back. The tasks restart from durable cursors.
pub(super) async fn while_leader<F: Future<Output = ()>>(
    mut leader: watch::Receiver<bool>,
    task: impl Fn() -> F,
) {
    loop {
        if leader.wait_for(|l| *l).await.is_err() {
            return;
        }
        tracing::info!("leader role held: starting the leader's tasks");
        tokio::select! {
            _ = task() => {}
            r = leader.wait_for(|l| !*l) => {
                if r.is_err() {
                    return;
                }
                tracing::info!("leader role lost: the leader's tasks stop here");
            }
        }
    }
}

/// Wakes the change feed when a peer committed a change (the feed is woken directly only by
/// this hub's own commits).
pub(super) async fn poll_outbox(events: wangge_events::Events) {
    let mut every = tokio::time::interval(OUTBOX_POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let ev = events.clone();
        match tokio::task::spawn_blocking(move || ev.store().last_cursor()).await {
            Ok(Ok(c)) => events.notify(c),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the outbox cursor"),
            Err(_) => return,
        }
    }
}

/// Keeps the offline watches equal to the sensors of the owned edges: a sensor is watched by
/// the hub its readings go to, so no hub raises `device.offline` for a sensor that reports to
/// a peer; likewise an edge's silence (`edge.offline`) is watched by its owner only.
pub(super) async fn follow_owned_edges(
    events: wangge_events::Events,
    registry: Arc<dyn RegistryAdmin>,
    mut owned: watch::Receiver<Vec<String>>,
) {
    let mut watched: BTreeSet<String> = BTreeSet::new();
    loop {
        let edges: BTreeSet<String> = owned.borrow_and_update().iter().cloned().collect();
        let (ev, reg) = (events.clone(), registry.clone());
        let before = std::mem::take(&mut watched);
        let r = tokio::task::spawn_blocking(move || rewatch(&ev, &*reg, &edges, before)).await;
        match r {
            Ok(Ok(now)) => watched = now,
            Ok(Err((e, kept))) => {
                tracing::error!(error = %e, "cannot look up the owned edges' sensors; retrying");
                watched = kept;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(_) => return,
        }
        if owned.changed().await.is_err() {
            return;
        }
    }
}

type Rewatched = Result<BTreeSet<String>, (crate::registry::RegistryError, BTreeSet<String>)>;

/// Watches the sensors of `edges` (new ones from now: a sensor taken over starts its offline
/// count at the takeover) and forgets the others; returns the sensors watched.
fn rewatch(
    events: &wangge_events::Events,
    registry: &dyn RegistryAdmin,
    edges: &BTreeSet<String>,
    before: BTreeSet<String>,
) -> Rewatched {
    let contexts = match registry.sensor_contexts() {
        Ok(c) => c,
        Err(e) => return Err((e, before)),
    };
    let now = crate::registry::now_ns();
    let mut watched = BTreeSet::new();
    for s in contexts {
        let edge = match registry.sensor_assignment(&s.sensor_id) {
            Ok(a) => a.and_then(|a| a.edge_id),
            Err(e) => return Err((e, before)),
        };
        if let Some(e) = edge.as_deref().filter(|e| edges.contains(*e)) {
            events.set_sensor_edge(&s.sensor_id, e);
            if !before.contains(&s.sensor_id) {
                events.watch_sensor(
                    &s.sensor_id,
                    &s.component_id,
                    &s.component_type,
                    s.interval_s,
                    now,
                );
            }
            watched.insert(s.sensor_id);
        }
    }
    for gone in before.difference(&watched) {
        events.unwatch_sensor(gone);
    }
    // The owner of an edge holds its silence watch too (its statuses reach only the owner).
    events.retain_edges(edges);
    Ok(watched)
}
