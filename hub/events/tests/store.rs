//! The closed loop in the store: one active event per (component, type), repeats, clears,
//! every transition and refusal, history, deadlines, the outbox. Every test runs on both back
//! ends: SQLite (a temp dir each) and PostgreSQL (a fresh database each, in one cluster per
//! test binary).

mod common;
mod store_pg;

use common::*;
use std::sync::{Arc, Barrier};
use wangge_events::lifecycle::{self, Action, Deadlines};
use wangge_events::model::Change;
use wangge_events::model::{Scope, Status};
use wangge_events::rules::Condition;
use wangge_events::status::ComponentStatus;
use wangge_events::store::{
    AttemptOutcome, AuditEntry, EventStore, FanOutPage, ListQuery, SqliteStore, StoreError,
    Subscription, SubscriptionSpec, Transition, TransitionRequest,
};

/// A store as the hub holds it.
type Store = Arc<dyn EventStore>;

/// Where a test's events live; [`Backend::open`] opens a store on it again (a hub restarting,
/// or a second hub).
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres { url: String },
}

impl Backend {
    fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Backend {
        Backend::Postgres {
            url: store_pg::fresh_database(),
        }
    }

    fn open(&self) -> Store {
        self.open_with(Deadlines::default())
    }

    fn open_with(&self, deadlines: Deadlines) -> Store {
        match self {
            Backend::Sqlite(dir) => {
                Arc::new(SqliteStore::open(&dir.path().join("events.db"), deadlines).unwrap())
            }
            Backend::Postgres { url } => Arc::new(store_pg::open(url, deadlines)),
        }
    }

    /// Writes a second active `manhole.displaced` row for component C0 behind the store's back;
    /// whether the database refused it.
    fn refuses_a_second_active_row(&self) -> bool {
        const INSERT: &str = "INSERT INTO events (version, component_id, type, severity, status, \
             raised_at_ns, count, deadline_ns, trigger_quantity, trigger_value, trigger_ts_ns, created_at_ns) \
             VALUES (1, 'C0', 'manhole.displaced', 'critical', 'open', 1, 1, 1, 'tilt', '1', 1, 1)";
        match self {
            Backend::Sqlite(dir) => {
                let raw = rusqlite::Connection::open(dir.path().join("events.db")).unwrap();
                let err = raw.execute(INSERT, []).unwrap_err();
                err.to_string().contains("UNIQUE")
            }
            Backend::Postgres { url } => {
                let err = store_pg::connect(url).execute(INSERT, &[]).unwrap_err();
                err.is_unique_violation()
            }
        }
    }
}

/// Declares each contract test `fn name(backend: &Backend)` as `sqlite::name` and
/// `postgres::name`.
macro_rules! on_both_back_ends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&super::Backend::sqlite())
            })+
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name(&super::Backend::postgres())
            })+
        }
    };
}

on_both_back_ends!(
    a_repeat_increments_the_count_and_clearing_sets_cleared_at_without_closing,
    every_lifecycle_transition_is_recorded_with_its_actor_time_and_note,
    invalid_transitions_are_refused_naming_the_allowed_actions,
    dispatch_needs_a_department,
    one_active_event_per_component_and_type_under_concurrency,
    a_late_backlog_does_not_re_raise_what_a_closed_case_saw_clear,
    late_conditions_keep_their_true_time_and_are_flagged,
    overdue_events_are_flagged_once_per_deadline,
    component_status_follows_its_events,
    the_outbox_survives_a_reopen_and_cursors_keep_increasing,
    sharing_rules_decide_which_departments_see_an_event,
    a_hub_restart_does_not_leave_a_raised_event_uncleared,
    listing_filters_and_pages_newest_first,
    a_subscription_gets_each_later_change_once_and_keeps_its_attempts,
    named_cursors_the_audit_log_and_pending_conditions_are_kept,
);

fn act(action: Action) -> TransitionRequest {
    act_for(action, None)
}

/// `action` naming `department` (what a dispatch needs).
fn act_for(action: Action, department: Option<&str>) -> TransitionRequest {
    TransitionRequest {
        action,
        department: department.map(str::to_string),
        note: None,
    }
}

/// The change applying `c` at `now_s` makes (it must make one).
fn applied(store: &Store, c: &Condition, now_s: i64) -> Change {
    store
        .apply_condition(c, now_s * S)
        .unwrap()
        .expect("the condition changes an event")
}

/// Asserts that applying `c` at `now_s` changes nothing.
fn ignored(store: &Store, c: &Condition, now_s: i64) {
    let change = store.apply_condition(c, now_s * S).unwrap();
    assert!(change.is_none(), "{change:?}");
}

/// A new `manhole.displaced` event on the manhole cover, raised at `ts_s` (and stored then): its id.
fn raise_displaced(store: &Store, ts_s: i64) -> i64 {
    applied(store, &raised(MANHOLE, "manhole.displaced", ts_s), ts_s)
        .event
        .id
}

/// `req` on event `id` by `actor` at `now_s`.
fn transition(
    store: &Store,
    id: i64,
    actor: &str,
    req: &TransitionRequest,
    now_s: i64,
) -> Result<Change, StoreError> {
    store.transition(Transition {
        id,
        actor,
        req,
        now_ns: now_s * S,
    })
}

/// Walks event `id` through `steps` (each an action and the department it names) by `actor` at `now_s`.
fn walk(store: &Store, id: i64, actor: &str, steps: &[(Action, Option<&str>)], now_s: i64) {
    for (action, department) in steps {
        transition(store, id, actor, &act_for(*action, *department), now_s).unwrap();
    }
}

/// The closed loop from open to closed, with the department the dispatch names.
const TO_CLOSED: [(Action, Option<&str>); 5] = [
    (Action::Acknowledge, None),
    (Action::Dispatch, Some("sw")),
    (Action::Start, None),
    (Action::Resolve, None),
    (Action::Close, None),
];

fn a_repeat_increments_the_count_and_clearing_sets_cleared_at_without_closing(backend: &Backend) {
    let store = backend.open();
    let first = applied(&store, &raised(MANHOLE, "manhole.displaced", 100), 100);
    assert_eq!(
        (first.event.version, first.event.count, first.event.status),
        (1, 1, Status::Open)
    );
    // The same raise again (a replay) changes nothing.
    ignored(&store, &raised(MANHOLE, "manhole.displaced", 100), 101);
    // A newer raise while the condition still holds (an evaluator restarted) is not a new occurrence.
    ignored(&store, &raised(MANHOLE, "manhole.displaced", 150), 150);
    let cleared_ch = applied(&store, &cleared(MANHOLE, "manhole.displaced", 200), 200);
    assert_eq!(cleared_ch.event.cleared_at_ns, Some(200 * S));
    assert_eq!(
        cleared_ch.event.status,
        Status::Open,
        "clearing does not close"
    );
    // A new occurrence while the case is still open: same event, count 2, cleared_at reset.
    let again = applied(&store, &raised(MANHOLE, "manhole.displaced", 300), 300);
    assert_eq!(again.event.id, first.event.id);
    assert_eq!(
        (
            again.event.count,
            again.event.version,
            again.event.cleared_at_ns
        ),
        (2, 3, None)
    );
    let json = again.event.to_json();
    for k in [
        "id",
        "version",
        "component_id",
        "type",
        "severity",
        "status",
        "raised_at",
        "cleared_at",
        "count",
        "department",
        "deadline",
        "overdue",
        "late",
        "trigger",
    ] {
        assert!(json.get(k).is_some(), "Event JSON lacks {k}: {json}");
    }
    assert_eq!(json["trigger"]["threshold"], 15.0);
}

fn every_lifecycle_transition_is_recorded_with_its_actor_time_and_note(backend: &Backend) {
    let store = backend.open();
    let id = raise_displaced(&store, 1);
    let steps = [
        (Action::Acknowledge, None, Status::Acknowledged),
        (Action::Dispatch, Some("sw"), Status::Dispatched),
        (Action::Dispatch, Some("cg"), Status::Dispatched),
        (Action::Start, None, Status::InProgress),
        (Action::Resolve, None, Status::Resolved),
        (Action::Reopen, None, Status::Open),
        (Action::Acknowledge, None, Status::Acknowledged),
        (Action::Dispatch, Some("sw"), Status::Dispatched),
        (Action::Start, None, Status::InProgress),
        (Action::Resolve, None, Status::Resolved),
        (Action::Close, None, Status::Closed),
        (Action::Reopen, None, Status::Open),
    ];
    let mut version = 1;
    for (i, (action, dept, want)) in steps.iter().enumerate() {
        let req = TransitionRequest {
            action: *action,
            department: dept.map(str::to_string),
            note: Some(format!("step {i}")),
        };
        let ch = transition(&store, id, "sw/wang", &req, 10 + i as i64).unwrap();
        assert_eq!(ch.event.status, *want, "after {}", action.name());
        version += 1;
        assert_eq!(ch.event.version, version);
    }
    let history = store.history(id).unwrap();
    assert_eq!(history.len(), 1 + steps.len());
    assert_eq!(
        (history[0].actor.as_str(), history[0].action.as_str()),
        ("system", "raise")
    );
    for (h, (action, dept, want)) in history[1..].iter().zip(steps.iter()) {
        assert_eq!(h.actor, "sw/wang");
        assert_eq!(h.action, action.name());
        assert_eq!(h.to_status, want.name());
        assert!(h.note.as_deref().unwrap().starts_with("step "));
        if *action == Action::Dispatch {
            assert_eq!(h.department.as_deref(), *dept);
        }
    }
    let e = store.get(id).unwrap().unwrap();
    assert_eq!(e.department.as_deref(), Some("sw"));
    assert!(e.acknowledged_at_ns.is_some());
}

fn invalid_transitions_are_refused_naming_the_allowed_actions(backend: &Backend) {
    let store = backend.open();
    // Walk one event through every status, trying every action that is not allowed there.
    let id = raise_displaced(&store, 1);
    let mut refused = 0;
    for step in 0..=TO_CLOSED.len() {
        let status = store.get(id).unwrap().unwrap().status;
        for action in Action::ALL {
            if lifecycle::next(status, action).is_some() {
                continue;
            }
            match transition(&store, id, "sw/wang", &act(action), 5) {
                Err(StoreError::InvalidTransition {
                    status: s, allowed, ..
                }) => {
                    assert_eq!(s, status.name());
                    assert_eq!(allowed, lifecycle::allowed(status));
                    refused += 1;
                }
                other => panic!(
                    "{} from {} should be refused: {other:?}",
                    action.name(),
                    status.name()
                ),
            }
        }
        if let Some(next) = TO_CLOSED.get(step) {
            walk(&store, id, "sw/wang", &[*next], 6);
        }
    }
    assert!(refused >= 25, "refusals checked: {refused}");
    // Refusals leave no trace in the history.
    assert_eq!(store.history(id).unwrap().len(), 1 + TO_CLOSED.len());
}

fn dispatch_needs_a_department(backend: &Backend) {
    let store = backend.open();
    let id = raise_displaced(&store, 1);
    walk(&store, id, "a", &[(Action::Acknowledge, None)], 1);
    assert!(matches!(
        transition(&store, id, "a", &act(Action::Dispatch), 1),
        Err(StoreError::MissingDepartment)
    ));
}

fn one_active_event_per_component_and_type_under_concurrency(backend: &Backend) {
    let a = backend.open();
    // A second, independent connection (as a second hub worker would have).
    let b = backend.open();
    const COMPONENTS: usize = 30;
    let barrier = Arc::new(Barrier::new(2));
    let run = |store: Arc<dyn EventStore>, barrier: Arc<Barrier>| {
        std::thread::spawn(move || {
            let mut created = 0;
            for i in 0..COMPONENTS {
                barrier.wait();
                let c = raised(&format!("C{i}"), "manhole.displaced", 10);
                if let Some(ch) = store.apply_condition(&c, 10 * S).unwrap() {
                    assert_eq!(ch.event.version, 1);
                    created += 1;
                }
            }
            created
        })
    };
    let ta = run(a.clone(), barrier.clone());
    let tb = run(b.clone(), barrier.clone());
    let created = ta.join().unwrap() + tb.join().unwrap();
    assert_eq!(
        created, COMPONENTS,
        "each condition created exactly one event"
    );
    for i in 0..COMPONENTS {
        let active = a.active_for_component(&format!("C{i}")).unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].count, 1);
    }
    // The store itself refuses a second active row, whoever writes it.
    assert!(backend.refuses_a_second_active_row());
}

fn a_late_backlog_does_not_re_raise_what_a_closed_case_saw_clear(backend: &Backend) {
    let store = backend.open();
    let id = raise_displaced(&store, 100);
    applied(&store, &cleared(MANHOLE, "manhole.displaced", 200), 200);
    walk(&store, id, "sw/wang", &TO_CLOSED, 300);
    // The evaluator lost its state (hub restart) and a resent backlog raises at 150 again.
    ignored(&store, &raised(MANHOLE, "manhole.displaced", 150), 400);
    // A genuinely new occurrence after the clear opens a new case.
    assert_ne!(raise_displaced(&store, 500), id);
    // Closed cases can be reopened only while no other case is active.
    let err = transition(&store, id, "sw/wang", &act(Action::Reopen), 600).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

fn late_conditions_keep_their_true_time_and_are_flagged(backend: &Backend) {
    let store = backend.open();
    let mut c = raised(SMOKE, "fire.smoke", 100);
    c.late = true;
    let e = applied(&store, &c, 5000).event;
    assert!(e.late);
    assert_eq!(e.raised_at_ns, 100 * S);
    assert_eq!(e.created_at_ns, 5000 * S);
}

fn overdue_events_are_flagged_once_per_deadline(backend: &Backend) {
    let deadlines = Deadlines {
        critical_s: 60,
        ..Deadlines::default()
    };
    let store = backend.open_with(deadlines);
    let e = applied(&store, &raised(MANHOLE, "manhole.displaced", 100), 100).event;
    assert_eq!(e.deadline_ns, 160 * S);
    assert!(store.mark_overdue(159 * S).unwrap().is_empty());
    let flagged = store.mark_overdue(161 * S).unwrap();
    assert_eq!(flagged.len(), 1);
    assert!(flagged[0].event.overdue);
    assert_eq!(flagged[0].event.version, 2);
    assert!(
        store.mark_overdue(500 * S).unwrap().is_empty(),
        "flagged once"
    );
}

fn component_status_follows_its_events(backend: &Backend) {
    use wangge_events::status::component_status;
    let store = backend.open();
    let status = |s: &Store| component_status(&s.active_for_component(MANHOLE).unwrap());
    assert_eq!(status(&store), ComponentStatus::Normal);
    let id = raise_displaced(&store, 1);
    assert_eq!(status(&store), ComponentStatus::Alarm);
    applied(&store, &raised(MANHOLE, "device.offline", 2), 2);
    assert_eq!(status(&store), ComponentStatus::Offline);
    applied(&store, &cleared(MANHOLE, "device.offline", 3), 3);
    assert_eq!(status(&store), ComponentStatus::Alarm);
    walk(&store, id, "a", &[(Action::Acknowledge, None)], 4);
    walk(&store, id, "a", &[(Action::Dispatch, Some("sw"))], 5);
    assert_eq!(status(&store), ComponentStatus::Maintenance);
    applied(&store, &cleared(MANHOLE, "manhole.displaced", 6), 6);
    // Start, resolve, close.
    walk(&store, id, "a", &TO_CLOSED[2..], 7);
    let offline = store.active_for_component(MANHOLE).unwrap();
    assert_eq!(
        offline.len(),
        1,
        "the cleared offline case is still open until verified"
    );
    assert_eq!(status(&store), ComponentStatus::Normal);
}

fn the_outbox_survives_a_reopen_and_cursors_keep_increasing(backend: &Backend) {
    let before = {
        let store = backend.open();
        let id = raise_displaced(&store, 1);
        walk(&store, id, "sw/wang", &[(Action::Acknowledge, None)], 2);
        store.changes_after(0, 100).unwrap()
    };
    assert_eq!(before.len(), 2);
    let store = backend.open();
    let after = store.changes_after(0, 100).unwrap();
    assert_eq!(
        before
            .iter()
            .map(|c| (c.cursor, c.body.clone()))
            .collect::<Vec<_>>(),
        after
            .iter()
            .map(|c| (c.cursor, c.body.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(after[1].event.status, Status::Acknowledged);
    assert_eq!(after[1].event.version, 2);
    let next = applied(&store, &raised(SMOKE, "fire.smoke", 3), 3);
    assert!(next.cursor > after[1].cursor);
    assert_eq!(store.last_cursor().unwrap(), next.cursor);
}

fn sharing_rules_decide_which_departments_see_an_event(backend: &Backend) {
    use wangge_events::sharing::SharingConfig;
    use wangge_events::ComponentDirectory;
    let sharing = SharingConfig::defaults();
    let dir = directory();
    let store = backend.open();
    let e = applied(&store, &raised(MANHOLE, "manhole.displaced", 1), 1).event;
    let ctx = dir.component(MANHOLE);
    // Owner/maintainer sw, cg by event type, jd by grid cell 120111001*; not xf, hb.
    assert_eq!(sharing.recipients(&e, ctx.as_ref()), vec!["cg", "jd", "sw"]);
    assert!(!sharing.visible_to("hb", &e, ctx.as_ref()));
    let admin = wangge_events::model::Actor {
        name: "root".into(),
        department: None,
        scope: Scope::Admin,
    };
    assert!(sharing.actor_sees(&admin, &e, None));
    // Dispatch to hb makes it visible to hb.
    let mut dispatched = e.clone();
    dispatched.department = Some("hb".into());
    assert!(sharing.visible_to("hb", &dispatched, ctx.as_ref()));
    let smoke = applied(&store, &raised(SMOKE, "fire.smoke", 1), 1).event;
    assert_eq!(
        sharing.recipients(&smoke, dir.component(SMOKE).as_ref()),
        vec!["xf"]
    );
}

fn a_hub_restart_does_not_leave_a_raised_event_uncleared(backend: &Backend) {
    use wangge_events::rules::RuleInput;
    use wangge_events::{Events, EventsConfig};
    let reading = |v: f64, t: i64| RuleInput {
        component_id: "C1",
        component_type: "gas_detector",
        sensor_id: "G1",
        interval_s: 60,
        quantity: protocol::Quantity::Gas,
        value: v,
        ts_ns: t * S,
        quality: protocol::uplink::Quality::Good,
    };
    let open = || {
        let config = EventsConfig::defaults();
        Events::with_store(
            backend.open_with(config.deadlines.clone()),
            config,
            directory(),
        )
        .unwrap()
    };
    let id = {
        let events = open();
        let id = events.ingest(&reading(40.0, 100), 100 * S).unwrap()[0]
            .event
            .id;
        // Silent long enough to be offline too; then the hub stops.
        assert_eq!(events.tick(400 * S).unwrap().len(), 1);
        id
    };
    // A new evaluator knows nothing; the first reading after the restart shows both conditions gone.
    let events = open();
    let changes = events.ingest(&reading(1.0, 420), 420 * S).unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    let gas = changes
        .iter()
        .find(|c| c.event.event_type == "gas.leak")
        .unwrap();
    assert_eq!(
        (gas.event.id, gas.event.cleared_at_ns, gas.event.count),
        (id, Some(420 * S), 1)
    );
    let offline = changes
        .iter()
        .find(|c| c.event.event_type == "device.offline")
        .unwrap();
    assert_eq!(offline.event.cleared_at_ns, Some(420 * S));
    // And it raises again normally afterwards (a repeat on the still-open case).
    let again = events.ingest(&reading(50.0, 480), 480 * S).unwrap();
    assert_eq!(again[0].event.count, 2);
}

fn listing_filters_and_pages_newest_first(backend: &Backend) {
    let store = backend.open();
    let displaced = raise_displaced(&store, 1);
    let smoke = applied(&store, &raised(SMOKE, "fire.smoke", 2), 2).event.id;
    let offline = applied(&store, &raised(MANHOLE, "device.offline", 3), 3)
        .event
        .id;
    walk(&store, displaced, "sw/wang", &TO_CLOSED[..2], 4);
    let ids = |q: ListQuery| -> Vec<i64> {
        let q = ListQuery { limit: 10, ..q };
        store.list(&q).unwrap().iter().map(|e| e.id).collect()
    };
    assert_eq!(ids(ListQuery::default()), vec![offline, smoke, displaced]);
    // One filter at a time.
    let by = |set: fn(&mut ListQuery)| {
        let mut q = ListQuery::default();
        set(&mut q);
        ids(q)
    };
    assert_eq!(by(|q| q.status = Some(Status::Dispatched)), vec![displaced]);
    assert_eq!(
        by(|q| q.event_type = Some("fire.smoke".into())),
        vec![smoke]
    );
    assert_eq!(
        by(|q| q.component = Some(MANHOLE.into())),
        vec![offline, displaced]
    );
    assert_eq!(by(|q| q.department = Some("sw".into())), vec![displaced]);
    assert_eq!(by(|q| q.since_ns = Some(2 * S)), vec![offline, smoke]);
    let page = ListQuery {
        before_id: Some(offline),
        limit: 1,
        ..ListQuery::default()
    };
    let page: Vec<i64> = store.list(&page).unwrap().iter().map(|e| e.id).collect();
    assert_eq!(page, vec![smoke]);
    let created: Vec<i64> = store
        .created_between(2 * S, 3 * S)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(created, vec![smoke]);
    applied(&store, &cleared(SMOKE, "fire.smoke", 5), 5);
    let mut raised_now = store.raised_conditions().unwrap();
    raised_now.sort();
    assert_eq!(
        raised_now,
        vec![
            (MANHOLE.to_string(), "device.offline".to_string(), 3 * S),
            (MANHOLE.to_string(), "manhole.displaced".to_string(), S),
        ]
    );
}

/// A failed attempt of delivery `uid` with HTTP 503, due again at `retry_at_ns` (None: given up).
fn failed(uid: &str, retry_at_ns: Option<i64>) -> AttemptOutcome {
    AttemptOutcome {
        delivery_uid: uid.into(),
        http_status: Some(503),
        error: Some("status".into()),
        success: false,
        retry_at_ns,
    }
}

fn a_subscription_gets_each_later_change_once_and_keeps_its_attempts(backend: &Backend) {
    let store = backend.open();
    let before = applied(&store, &raised(MANHOLE, "manhole.displaced", 1), 1);
    let types = ["manhole.*".to_string()];
    let sub = store
        .create_subscription(SubscriptionSpec {
            url: "https://sw.example/hook",
            secret: "s3cret",
            department: Some("sw"),
            event_types: &types,
            created_at_ns: 5,
        })
        .unwrap();
    assert_eq!(sub.cursor, before.cursor, "changes before it are not its");
    assert_eq!(
        (sub.department.as_deref(), &sub.event_types[..]),
        (Some("sw"), &types[..])
    );
    assert_eq!(store.subscriptions().unwrap(), vec![sub.clone()]);
    assert_eq!(store.subscription(sub.id).unwrap(), Some(sub.clone()));
    walk(&store, before.event.id, "sw/wang", &TO_CLOSED[..1], 6);
    applied(&store, &raised(SMOKE, "fire.smoke", 7), 7);
    let changes = store.changes_after(sub.cursor, 10).unwrap();
    let picked: Vec<(i64, i64, i64)> = changes
        .iter()
        .map(|c| (c.cursor, c.event.id, c.event.version))
        .collect();
    let up_to = picked[1].0;
    for _ in 0..2 {
        let page = FanOutPage {
            subscription_id: sub.id,
            changes: &picked,
            up_to,
            now_ns: 10 * S,
        };
        store.enqueue_deliveries(page).unwrap();
    }
    // A page fanned out again (a crash before the cursor moved) adds nothing; the cursor never goes back.
    store
        .enqueue_deliveries(FanOutPage {
            subscription_id: sub.id,
            changes: &picked[..1],
            up_to: picked[0].0,
            now_ns: 10 * S,
        })
        .unwrap();
    assert_eq!(store.subscription(sub.id).unwrap().unwrap().cursor, up_to);
    assert_eq!(store.deliveries(sub.id, 10).unwrap().len(), 2);
    assert_eq!(store.next_due_ns().unwrap(), Some(10 * S));
    let due = store.due_deliveries(10 * S, 10).unwrap();
    assert_eq!(due.len(), 2);
    for ((d, body, s), change) in due.iter().zip(&changes) {
        assert_eq!(
            (d.cursor, d.status.as_str(), d.attempts),
            (change.cursor, "pending", 0)
        );
        // The subscription as it is now: its cursor moved to the fanned-out page's end.
        let now = Subscription {
            cursor: up_to,
            ..sub.clone()
        };
        assert_eq!((body, s), (&change.body, &now));
    }
    let (first, second) = (due[0].0.id, due[1].0.id);
    store
        .record_attempt(first, &failed("u1", Some(70 * S)), 11 * S)
        .unwrap();
    let ok = AttemptOutcome {
        delivery_uid: "u2".into(),
        http_status: Some(200),
        error: None,
        success: true,
        retry_at_ns: None,
    };
    store.record_attempt(second, &ok, 11 * S).unwrap();
    assert_eq!(store.next_due_ns().unwrap(), Some(70 * S));
    assert!(store.due_deliveries(40 * S, 10).unwrap().is_empty());
    let again = store.due_deliveries(70 * S, 10).unwrap();
    assert_eq!(
        again.iter().map(|(d, _, _)| d.id).collect::<Vec<_>>(),
        vec![first]
    );
    store
        .record_attempt(first, &failed("u3", None), 71 * S)
        .unwrap();
    assert_eq!(store.next_due_ns().unwrap(), None);
    let listed = store.deliveries(sub.id, 10).unwrap();
    let summary: Vec<_> = listed
        .iter()
        .map(|(d, attempts)| {
            let uids: Vec<&str> = attempts.iter().map(|a| a.delivery_uid.as_str()).collect();
            (
                d.id,
                d.status.clone(),
                d.attempts,
                d.last_status,
                d.delivered_at_ns,
                uids,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                second,
                "delivered".into(),
                1,
                Some(200),
                Some(11 * S),
                vec!["u2"]
            ),
            (first, "failed".into(), 2, Some(503), None, vec!["u1", "u3"]),
        ],
        "newest first, each with its attempts in order"
    );
    assert!(store.delete_subscription(sub.id).unwrap());
    assert!(!store.delete_subscription(sub.id).unwrap());
    assert!(store.subscriptions().unwrap().is_empty());
    assert!(store.deliveries(sub.id, 10).unwrap().is_empty());
}

fn named_cursors_the_audit_log_and_pending_conditions_are_kept(backend: &Backend) {
    let store = backend.open();
    assert_eq!(store.get_cursor("mqtt").unwrap(), 0);
    store.set_cursor("mqtt", 5).unwrap();
    store.set_cursor("mqtt", 3).unwrap();
    store.set_cursor("status", 9).unwrap();
    let entry = |at_s: i64, action: &str| AuditEntry {
        at_ns: at_s * S,
        actor: "hb/chen".into(),
        department: Some("hb".into()),
        action: action.into(),
        event_id: Some(7),
        reason: "out of scope".into(),
    };
    store.audit(&entry(1, "get")).unwrap();
    store.audit(&entry(2, "transition")).unwrap();
    store.set_pending("C1", "0:gas.leak", Some(10 * S)).unwrap();
    store.set_pending("C1", "0:gas.leak", Some(20 * S)).unwrap();
    store.set_pending("C2", "0:gas.leak", Some(30 * S)).unwrap();
    store
        .set_pending("C3", "1:fire.smoke", Some(40 * S))
        .unwrap();
    store.set_pending("C3", "1:fire.smoke", None).unwrap();
    // All of it is the store's: a store opened again (a restart, another hub) reads the same.
    let store = backend.open();
    assert_eq!(
        store.get_cursor("mqtt").unwrap(),
        3,
        "a cursor is set, not maxed"
    );
    assert_eq!(store.get_cursor("status").unwrap(), 9);
    assert_eq!(
        store.audit_log(10).unwrap(),
        vec![entry(2, "transition"), entry(1, "get")],
        "newest first"
    );
    assert_eq!(store.audit_log(1).unwrap().len(), 1);
    let mut pending = store.pending_conditions().unwrap();
    pending.sort();
    assert_eq!(
        pending,
        vec![
            ("C1".to_string(), "0:gas.leak".to_string(), 20 * S),
            ("C2".to_string(), "0:gas.leak".to_string(), 30 * S),
        ]
    );
}
