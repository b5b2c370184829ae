//! The evaluation report (综合评价): per department events received, time to acknowledge
//! (p50/p90), on-time closure rate (按期结案率) and overdue count; per component, data completeness.

use crate::model::{rfc3339, Event};
use crate::store::StoreError;
use crate::Events;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// Overdue: past the deadline and not closed, or closed after the deadline.
fn overdue(e: &Event, now_ns: i64) -> bool {
    match e.closed_at_ns {
        Some(c) => c > e.deadline_ns,
        None => e.overdue || now_ns > e.deadline_ns && e.status != crate::model::Status::Resolved,
    }
}

/// Builds the report over events the hub registered in `[from_ns, to_ns)`.
/// `only` limits it to one department (a department token's view).
pub fn evaluation(
    events: &Events,
    from_ns: i64,
    to_ns: i64,
    now_ns: i64,
    only: Option<&str>,
) -> Result<Json, StoreError> {
    let list = events.store().created_between(from_ns, to_ns)?;
    let mut per_dept: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for e in &list {
        let ctx = events.directory().component(&e.component_id);
        for d in events.sharing().recipients(e, ctx.as_ref()) {
            if only.is_none_or(|o| o == d) {
                per_dept.entry(d).or_default().push(e);
            }
        }
    }
    if let Some(o) = only {
        per_dept.entry(o.to_string()).or_default();
    }
    let departments: Vec<Json> = per_dept
        .iter()
        .map(|(d, evs)| {
            let mut ack: Vec<f64> = evs
                .iter()
                .filter_map(|e| e.acknowledged_at_ns.map(|a| (a - e.created_at_ns) as f64 / 1e9))
                .collect();
            ack.sort_by(f64::total_cmp);
            let closed: Vec<&&Event> = evs.iter().filter(|e| e.closed_at_ns.is_some()).collect();
            let on_time = closed
                .iter()
                .filter(|e| e.closed_at_ns.is_some_and(|c| c <= e.deadline_ns))
                .count();
            json!({
                "department": d,
                "events_received": evs.len(),
                "acknowledged": ack.len(),
                "time_to_acknowledge_s": {"p50": percentile(&ack, 50.0), "p90": percentile(&ack, 90.0)},
                "closed": closed.len(),
                "closed_on_time": on_time,
                "on_time_closure_rate": (!closed.is_empty()).then(|| on_time as f64 / closed.len() as f64),
                "overdue": evs.iter().filter(|e| overdue(e, now_ns)).count(),
            })
        })
        .collect();
    let components: Vec<Json> = events
        .directory()
        .reading_counts(from_ns, to_ns)
        .into_iter()
        .filter(|c| {
            only.is_none_or(|o| {
                events
                    .directory()
                    .component(&c.component_id)
                    .is_some_and(|ctx| ctx.owner_department == o || ctx.maintainer_department == o)
            })
        })
        .map(|c| {
            json!({
                "component_id": c.component_id,
                "received": c.received,
                "expected": c.expected,
                "completeness": (c.expected > 0).then(|| c.received as f64 / c.expected as f64),
            })
        })
        .collect();
    Ok(json!({
        "from": rfc3339(from_ns),
        "to": rfc3339(to_ns),
        "departments": departments,
        "components": components,
    }))
}
