//! Readings seen again, and restarts in the middle of a condition, raise nothing twice and lose
//! nothing.
//!
//! The hub acks a batch only after the rules evaluated it, so after a `kill -9` it evaluates
//! resent readings again, with an evaluator that starts empty. Here the engine is opened on a real
//! `events.db`, fed, dropped without any shutdown step (all it leaves behind is what SQLite
//! committed, as after `kill -9`), reopened on the same file and fed again.

mod common;

use common::{directory, manhole_reading, S};
use protocol::Quantity;
use std::path::Path;
use wangge_events::model::{Change, Event};
use wangge_events::rules::RuleInput;
use wangge_events::store::ListQuery;
use wangge_events::{Events, EventsConfig};

/// 2024-11-25T00:00:00Z.
const T0: i64 = 1_732_492_800 * S;

fn open(path: &Path) -> Events {
    Events::open(path, EventsConfig::defaults(), directory()).unwrap()
}

/// The manhole cover's tilt reading `s` seconds after T0, in degrees.
fn tilt_reading(s: i64, v: f64) -> RuleInput<'static> {
    manhole_reading(Quantity::Tilt, v, T0 + s * S)
}

/// The hub dies without any shutdown step (all that survives is what SQLite committed) and
/// opens the same `db` again.
fn restart(ev: Events, db: &Path) -> Events {
    drop(ev);
    open(db)
}

/// Feeds tilt readings (seconds after T0, degrees) of the manhole cover's sensor.
fn tilt(ev: &Events, series: &[(i64, f64)]) -> Vec<Change> {
    let mut out = Vec::new();
    for &(s, v) in series {
        out.extend(ev.ingest(&tilt_reading(s, v), T0 + s * S).unwrap());
    }
    out
}

/// Tilt 25° (> 15°) held from `from` to `to` seconds, one reading per second.
fn held(from: i64, to: i64) -> Vec<(i64, f64)> {
    (from..=to).map(|s| (s, 25.0)).collect()
}

fn displaced(ev: &Events) -> Vec<Event> {
    ev.store()
        .list(&ListQuery::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "manhole.displaced")
        .collect()
}

/// The one `manhole.displaced` event, asserted to be alone and to count `count` occurrences.
#[track_caller]
fn the_displaced_event(ev: &Events, count: i64) -> Event {
    let mut events = displaced(ev);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].count, count);
    events.remove(0)
}

/// A temporary directory and the path of the `events.db` to open in it.
fn db_in_tempdir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    (dir, db)
}

/// The engine opened on `db`, fed the cover level at -1 s and then tilted from 0 s to `to` s:
/// less than the 10 s the rule needs, so nothing is raised yet.
fn tilted_and_pending(db: &Path, to: i64) -> Events {
    let ev = open(db);
    assert!(tilt(&ev, &[(-1, 1.0)]).is_empty());
    assert!(tilt(&ev, &held(0, to)).is_empty(), "pending, not yet 10 s");
    ev
}

#[test]
fn the_same_readings_evaluated_again_after_a_restart_raise_nothing_twice() {
    let (_dir, db) = db_in_tempdir();

    // Raised and still holding when the hub dies; the batch was not acked, so it comes again.
    let ev = open(&db);
    let first = tilt(&ev, &held(0, 20));
    assert_eq!(first.len(), 1, "raised once");
    let replay_in_process = tilt(&ev, &held(0, 20));
    assert!(replay_in_process.is_empty(), "same evaluator: ignored");
    let ev = restart(ev, &db);
    assert!(
        tilt(&ev, &held(0, 20)).is_empty(),
        "fresh evaluator: stale raise"
    );
    the_displaced_event(&ev, 1);

    // Cleared (tilt back to 1°), then the whole story is replayed after another restart.
    let mut story = held(0, 20);
    story.extend((21..=30).map(|s| (s, 1.0)));
    let cleared = tilt(&ev, &story);
    assert_eq!(cleared.len(), 1, "one clear");
    assert!(cleared[0].event.cleared_at_ns.is_some());
    let ev = restart(ev, &db);
    assert!(
        tilt(&ev, &story).is_empty(),
        "a replay neither raises nor clears again"
    );
    let event = the_displaced_event(&ev, 1);
    assert_eq!(event.version, 2, "raise + clear, nothing else");

    // A new incident later is a new occurrence (count 2), and only once across a replay.
    let again = tilt(&ev, &held(100, 120));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event.count, 2);
    let ev = restart(ev, &db);
    assert!(tilt(&ev, &held(100, 120)).is_empty());
    the_displaced_event(&ev, 2);
}

#[test]
fn a_restart_in_the_middle_of_a_for_s_condition_still_raises_it() {
    let (_dir, db) = db_in_tempdir();

    // Tilt > 15° must hold 10 s. It holds from 0 s; the hub dies after the reading at 5 s was
    // evaluated (and acked: it never comes again).
    drop(tilted_and_pending(&db, 5));

    // After the restart the condition holds 6 s more, then ends: 12 s in all, so it must raise
    // at 10 s. Counting from the restart (6 s) would miss it.
    let ev = open(&db);
    let raised = tilt(&ev, &held(6, 12));
    assert_eq!(raised.len(), 1, "raised across the restart");
    assert_eq!(raised[0].event.trigger.ts_ns, T0 + 10 * S);
    assert!(tilt(&ev, &[(13, 1.0)]).len() == 1, "then cleared");

    // A pending condition that ended before the restart is forgotten: a new short one after it
    // does not inherit its start.
    let ev = restart(ev, &db);
    assert!(tilt(&ev, &held(200, 205)).is_empty());
    assert!(tilt(&ev, &[(206, 1.0)]).is_empty(), "ended while pending");
    let ev = restart(ev, &db);
    assert!(
        tilt(&ev, &held(300, 305)).is_empty(),
        "6 s of a new condition: not raised"
    );
    the_displaced_event(&ev, 1);
}

#[test]
fn a_raise_the_store_refuses_is_kept_and_stored_when_the_store_works_again() {
    let (_dir, db) = db_in_tempdir();
    let ev = tilted_and_pending(&db, 9);

    // Another writer holds events.db locked past the store's busy timeout (10 s) when the
    // condition has held 10 s: the raise fails.
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut refused = None;
    for (s, v) in held(10, 20) {
        if let Err(e) = ev.ingest(&tilt_reading(s, v), T0 + s * S) {
            refused = Some(e.to_string());
            break;
        }
    }
    assert!(
        refused.is_some(),
        "the hub must learn that the raise was not stored (it then does not ack)"
    );
    assert_eq!(
        ev.unstored_conditions(),
        1,
        "the raise waits, it is not dropped"
    );

    // The lock goes away: the next tick stores the raise, once, with its original trigger.
    blocker.execute_batch("ROLLBACK").unwrap();
    ev.tick(T0 + 21 * S).unwrap();
    assert_eq!(ev.unstored_conditions(), 0);
    let events = displaced(&ev);
    assert_eq!(events.len(), 1, "raised once: {events:?}");
    assert_eq!(events[0].trigger.ts_ns, T0 + 10 * S);
    // The resent readings (the batch was not acked) raise nothing more.
    assert!(tilt(&ev, &held(0, 20)).is_empty());
    assert_eq!(displaced(&ev).len(), 1);
}
