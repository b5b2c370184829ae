//! The store's side of the evaluation report's exclusions, on SQLite and PostgreSQL: announced
//! edge outages (recorded, listed, bounded per edge, deleted keeping the row, found by the
//! range they overlap) and the cases registered before a range that were still open at its
//! start.

mod common;
mod store_pg;

use common::*;
use std::sync::Arc;
use wangge_events::lifecycle::{Action, Deadlines};
use wangge_events::store::{
    EventStore, NewOutage, SqliteStore, StoreError, Transition, TransitionRequest,
};

fn sqlite() -> (Option<tempfile::TempDir>, Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("events.db"), Deadlines::default()).unwrap();
    (Some(dir), Arc::new(store))
}

fn postgres() -> (Option<tempfile::TempDir>, Arc<dyn EventStore>) {
    let url = store_pg::fresh_database();
    (None, Arc::new(store_pg::open(&url, Deadlines::default())))
}

fn outage<'a>(edge: &'a str, from_s: i64, until_s: i64) -> NewOutage<'a> {
    NewOutage {
        edge_id: edge,
        from_ns: from_s * S,
        until_ns: until_s * S,
        reason: "roadworks",
        announced_by: "sw/wang",
        at_ns: 5 * S,
        per_edge_max: 2,
    }
}

fn outages_are_kept_bounded_and_deleted_keeping_the_row(store: &dyn EventStore) {
    let a = store.add_outage(&outage("edge-a", 100, 200)).unwrap();
    let b = store.add_outage(&outage("edge-a", 10, 20)).unwrap();
    store.add_outage(&outage("edge-b", 150, 160)).unwrap();
    assert_eq!(
        (a.reason.as_str(), a.announced_by.as_str()),
        ("roadworks", "sw/wang")
    );
    // Earliest first; the limit per edge is a refusal that names it.
    let listed: Vec<i64> = store
        .outages("edge-a")
        .unwrap()
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(listed, vec![b.id, a.id]);
    let err = store.add_outage(&outage("edge-a", 300, 400)).unwrap_err();
    assert!(
        matches!(&err, StoreError::Limit(m) if m.contains("edge-a")),
        "{err}"
    );
    // Overlapping [150, 250): a and edge-b's; b ended before.
    let between = store.outages_between(150 * S, 250 * S).unwrap();
    assert_eq!(between.len(), 2, "{between:?}");
    assert!(between.iter().all(|o| o.id != b.id));
    assert!(
        store.outages_between(200 * S, 300 * S).unwrap().is_empty(),
        "until is exclusive"
    );
    // Deleting: only the edge's own, once; the row keeps who did it.
    assert!(store
        .delete_outage("edge-b", a.id, "xf/zhao", 6 * S)
        .unwrap()
        .is_none());
    let gone = store
        .delete_outage("edge-a", a.id, "sw/wang", 6 * S)
        .unwrap()
        .unwrap();
    assert_eq!(gone.deleted_by.as_deref(), Some("sw/wang"));
    assert!(store
        .delete_outage("edge-a", a.id, "sw/wang", 7 * S)
        .unwrap()
        .is_none());
    assert_eq!(store.outages("edge-a").unwrap().len(), 1);
    assert_eq!(store.outages_between(150 * S, 250 * S).unwrap().len(), 1);
    store
        .add_outage(&outage("edge-a", 300, 400))
        .expect("room again after the deletion");
}

fn cases_open_at_a_range_start_are_found(store: &dyn EventStore) {
    // Registered (`created_at`) at the second given.
    let id = |component, event_type, at_s| {
        let c = raised(component, event_type, at_s);
        store
            .apply_condition(&c, at_s * S)
            .unwrap()
            .unwrap()
            .event
            .id
    };
    let closed_before = id(MANHOLE, "manhole.displaced", 10);
    let still_open = id(MANHOLE, "manhole.opened", 20);
    let after = id(SMOKE, "smoke.alarm", 200);
    let steps = [
        (Action::Acknowledge, None, 30),
        (Action::Dispatch, Some("sw"), 31),
        (Action::Start, None, 32),
        (Action::Resolve, None, 33),
        (Action::Close, None, 40),
    ];
    for (action, department, at) in steps {
        let req = TransitionRequest {
            action,
            department: department.map(str::to_string),
            note: None,
        };
        store
            .transition(Transition {
                id: closed_before,
                actor: "sw/wang",
                req: &req,
                now_ns: at * S,
            })
            .unwrap();
    }
    let open: Vec<i64> = store
        .open_at(100 * S)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        open,
        vec![still_open],
        "closed before: {closed_before}, after: {after}"
    );
    assert_eq!(store.open_at(35 * S).unwrap().len(), 2);
}

#[test]
fn sqlite_outages_are_kept_bounded_and_deleted_keeping_the_row() {
    outages_are_kept_bounded_and_deleted_keeping_the_row(sqlite().1.as_ref());
}

#[test]
fn postgres_outages_are_kept_bounded_and_deleted_keeping_the_row() {
    outages_are_kept_bounded_and_deleted_keeping_the_row(postgres().1.as_ref());
}

#[test]
fn sqlite_cases_open_at_a_range_start_are_found() {
    let (_dir, store) = sqlite();
    cases_open_at_a_range_start_are_found(store.as_ref());
}

#[test]
fn postgres_cases_open_at_a_range_start_are_found() {
    cases_open_at_a_range_start_are_found(postgres().1.as_ref());
}
