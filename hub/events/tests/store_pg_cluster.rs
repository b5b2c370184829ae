//! Several hubs on one PostgreSQL events database at once: what the database, not a process,
//! must keep — one active event per (component, type), outbox cursors that commit in order, one
//! delivery per (subscription, change) attempted by one hub at a time.

mod common;
mod store_pg;

use common::*;
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use wangge_events::lifecycle::Deadlines;
use wangge_events::store::{
    AttemptOutcome, EventLog, FanOutPage, Outbox, PgStore, StoreError, SubscriptionSpec,
    Subscriptions,
};

/// Two hubs (two stores, two pools) on one fresh database.
fn two_hubs() -> (Arc<PgStore>, Arc<PgStore>) {
    let url = store_pg::fresh_database();
    let a = Arc::new(store_pg::open(&url, Deadlines::default()));
    let b = Arc::new(store_pg::open(&url, Deadlines::default()));
    (a, b)
}

#[test]
fn two_hubs_raising_the_same_condition_at_once_make_one_event_and_one_repeat_per_occurrence() {
    let (a, b) = two_hubs();
    const COMPONENTS: usize = 40;
    const OCCURRENCES: i64 = 25;
    let barrier = Arc::new(Barrier::new(2));
    let hub = |store: Arc<PgStore>, barrier: Arc<Barrier>| {
        std::thread::spawn(move || {
            let (mut created, mut repeats, mut clears) = (0, 0, 0);
            // Distinct conditions, each raised by both hubs in the same instant.
            for i in 0..COMPONENTS {
                barrier.wait();
                let c = raised(&format!("C{i}"), "manhole.displaced", 10);
                if store.apply_condition(&c, 10 * S).unwrap().is_some() {
                    created += 1;
                }
            }
            // One condition coming and going: each occurrence is a repeat once, its end a clear once.
            for n in 1..=OCCURRENCES {
                barrier.wait();
                let ts = 100 * n;
                let raise = raised(MANHOLE, "manhole.displaced", ts);
                match store.apply_condition(&raise, ts * S).unwrap() {
                    Some(ch) if ch.event.count > 1 => repeats += 1,
                    Some(_) => created += 1,
                    None => {}
                }
                barrier.wait();
                let clear = cleared(MANHOLE, "manhole.displaced", ts + 50);
                if store
                    .apply_condition(&clear, (ts + 50) * S)
                    .unwrap()
                    .is_some()
                {
                    clears += 1;
                }
            }
            (created, repeats, clears)
        })
    };
    let ta = hub(a.clone(), barrier.clone());
    let tb = hub(b.clone(), barrier.clone());
    let (ca, ra, xa) = ta.join().unwrap();
    let (cb, rb, xb) = tb.join().unwrap();
    assert_eq!(
        ca + cb,
        COMPONENTS + 1,
        "one event per condition, whichever hub raised it"
    );
    assert_eq!(
        ra + rb,
        OCCURRENCES as usize - 1,
        "one repeat per new occurrence"
    );
    assert_eq!(xa + xb, OCCURRENCES as usize, "one clear per end");
    for i in 0..COMPONENTS {
        let active = b.active_for_component(&format!("C{i}")).unwrap();
        assert_eq!((active.len(), active[0].count), (1, 1), "C{i}");
    }
    let manhole = a.active_for_component(MANHOLE).unwrap();
    assert_eq!(manhole.len(), 1);
    assert_eq!(manhole[0].count, OCCURRENCES);
    let history = a.history(manhole[0].id).unwrap();
    assert_eq!(
        history.len(),
        2 * OCCURRENCES as usize,
        "raise, repeats and clears, once each"
    );
}

#[test]
fn a_reader_polling_the_outbox_sees_every_change_exactly_once_while_hubs_write() {
    let (a, b) = two_hubs();
    const WRITERS_PER_HUB: usize = 2;
    const CHANGES_PER_WRITER: usize = 150;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (a.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut cursor, mut seen) = (0, Vec::new());
            loop {
                // Read `done` first: a page read after it is the last one needed.
                let finished = done.load(Ordering::SeqCst);
                let page = store.changes_after(cursor, 50).unwrap();
                for ch in &page {
                    assert!(
                        ch.cursor > cursor,
                        "pages ascend: {} after {cursor}",
                        ch.cursor
                    );
                    cursor = ch.cursor;
                    seen.push(ch.cursor);
                }
                if finished && page.is_empty() {
                    return seen;
                }
            }
        })
    };
    let writers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .flat_map(|store| (0..WRITERS_PER_HUB).map(move |w| (store.clone(), w)))
        .enumerate()
        .map(|(n, (store, _))| {
            std::thread::spawn(move || {
                let mut cursors = Vec::new();
                for i in 0..CHANGES_PER_WRITER {
                    // Raise and clear on a component of this writer's own: changes, no contention on rows.
                    let component = format!("W{n}-{}", i / 2);
                    let c = if i % 2 == 0 {
                        raised(&component, "manhole.displaced", 10)
                    } else {
                        cleared(&component, "manhole.displaced", 20)
                    };
                    let ch = store
                        .apply_condition(&c, 30 * S)
                        .unwrap()
                        .expect("a change");
                    cursors.push(ch.cursor);
                }
                cursors
            })
        })
        .collect();
    let mut written = BTreeSet::new();
    for w in writers {
        written.extend(w.join().unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.join().unwrap();
    assert_eq!(written.len(), 2 * WRITERS_PER_HUB * CHANGES_PER_WRITER);
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no change seen twice");
    assert_eq!(
        unique, written,
        "every committed change seen by the polling reader"
    );
    assert_eq!(b.last_cursor().unwrap(), *written.last().unwrap());
}

/// A store with one subscription and `n` changes fanned out to it by both hubs at once: the
/// subscription's id.
fn deliveries_fanned_out_by_both(a: &Arc<PgStore>, b: &Arc<PgStore>, n: usize) -> i64 {
    let sub = a
        .create_subscription(SubscriptionSpec {
            url: "https://sw.example/hook",
            secret: "s3cret",
            department: None,
            event_types: &[],
            created_at_ns: 0,
        })
        .unwrap();
    for i in 0..n {
        a.apply_condition(&raised(&format!("D{i}"), "fire.smoke", 10), 10 * S)
            .unwrap()
            .unwrap();
    }
    let changes: Vec<(i64, i64, i64)> = a
        .changes_after(sub.cursor, n)
        .unwrap()
        .iter()
        .map(|c| (c.cursor, c.event.id, c.event.version))
        .collect();
    assert_eq!(changes.len(), n);
    let barrier = Arc::new(Barrier::new(2));
    let fan_out = |store: Arc<PgStore>, changes: Vec<(i64, i64, i64)>, barrier: Arc<Barrier>| {
        std::thread::spawn(move || {
            barrier.wait();
            for page in changes.chunks(25) {
                store
                    .enqueue_deliveries(FanOutPage {
                        subscription_id: sub.id,
                        changes: page,
                        up_to: page.last().unwrap().0,
                        now_ns: 100 * S,
                    })
                    .unwrap();
            }
        })
    };
    let ta = fan_out(a.clone(), changes.clone(), barrier.clone());
    let tb = fan_out(b.clone(), changes.clone(), barrier);
    ta.join().unwrap();
    tb.join().unwrap();
    assert_eq!(
        a.subscription(sub.id).unwrap().unwrap().cursor,
        changes.last().unwrap().0
    );
    sub.id
}

fn success(uid: String) -> AttemptOutcome {
    AttemptOutcome {
        delivery_uid: uid,
        http_status: Some(200),
        error: None,
        success: true,
        retry_at_ns: None,
    }
}

#[test]
fn two_hubs_fanning_out_and_claiming_at_once_attempt_each_delivery_once() {
    let (a, b) = two_hubs();
    const N: usize = 120;
    let sub = deliveries_fanned_out_by_both(&a, &b, N);
    let all = a.deliveries(sub, 1000).unwrap();
    assert_eq!(
        all.len(),
        N,
        "one delivery per change, though both hubs fanned out"
    );
    let barrier = Arc::new(Barrier::new(2));
    let claimer = |store: Arc<PgStore>, hub: &'static str, barrier: Arc<Barrier>| {
        std::thread::spawn(move || {
            barrier.wait();
            let mut attempted = Vec::new();
            loop {
                let due = store.due_deliveries(200 * S, 7).unwrap();
                if due.is_empty() {
                    return attempted;
                }
                for (d, body, s) in due {
                    assert_eq!(s.id, sub);
                    assert!(body.contains(&format!("\"id\":{}", d.event_id)), "{body}");
                    let uid = format!("{hub}-{}", d.id);
                    store.record_attempt(d.id, &success(uid), 200 * S).unwrap();
                    attempted.push(d.id);
                }
            }
        })
    };
    let ta = claimer(a.clone(), "a", barrier.clone());
    let tb = claimer(b.clone(), "b", barrier);
    let (da, db) = (ta.join().unwrap(), tb.join().unwrap());
    let (sa, sb): (HashSet<i64>, HashSet<i64>) =
        (da.iter().copied().collect(), db.iter().copied().collect());
    assert!(sa.is_disjoint(&sb), "a delivery attempted by both hubs");
    assert_eq!(da.len() + db.len(), N, "every delivery attempted");
    for (d, attempts) in a.deliveries(sub, 1000).unwrap() {
        assert_eq!(
            (d.status.as_str(), d.attempts, attempts.len()),
            ("delivered", 1, 1)
        );
    }
}

#[test]
fn a_claimed_delivery_is_left_to_its_hub_until_the_lease_ends() {
    let (a, b) = two_hubs();
    let sub = deliveries_fanned_out_by_both(&a, &b, 3);
    let claimed = a.due_deliveries(200 * S, 10).unwrap();
    assert_eq!(claimed.len(), 3);
    // Hub a is attempting them (or died doing so): hub b gets none, and waits for the lease.
    assert!(b.due_deliveries(201 * S, 10).unwrap().is_empty());
    let lease_end = b.next_due_ns().unwrap().expect("pending deliveries");
    assert!(
        lease_end > 201 * S,
        "next due counts the lease: {lease_end}"
    );
    // A failed attempt due again later is free for any hub then.
    let (first, _, _) = &claimed[0];
    let retry = AttemptOutcome {
        delivery_uid: "a-1".into(),
        http_status: Some(503),
        error: Some("status".into()),
        success: false,
        retry_at_ns: Some(210 * S),
    };
    a.record_attempt(first.id, &retry, 202 * S).unwrap();
    let again = b.due_deliveries(210 * S, 10).unwrap();
    assert_eq!(
        again.iter().map(|(d, _, _)| d.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    // The lease of the two a never reported on ends: another hub takes them over.
    let taken = b.due_deliveries(lease_end, 10).unwrap();
    assert_eq!(taken.len(), 2, "{taken:?}");
    assert!(a
        .deliveries(sub, 10)
        .unwrap()
        .iter()
        .all(|(d, _)| d.status == "pending"));
}

#[test]
fn a_broken_database_is_an_error_naming_it_without_the_password() {
    let url = store_pg::fresh_database();
    let store = store_pg::open(&url, Deadlines::default());
    store_pg::connect(&url)
        .execute("DROP TABLE changes", &[])
        .unwrap();
    let err = store.changes_after(0, 10).unwrap_err();
    assert!(matches!(err, StoreError::Postgres(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("changes"), "{text}");
    assert!(!text.contains(wangge_testkit::postgres::PASSWORD), "{text}");
    // The same store applied its migrations once; a second hub opening it applies none again.
    assert!(PgStore::open(store_pg::connect(&url), Deadlines::default()).is_ok());
}

#[test]
fn a_database_migrated_by_a_newer_hub_is_refused() {
    let url = store_pg::fresh_database();
    store_pg::open(&url, Deadlines::default());
    store_pg::connect(&url)
        .execute(
            "INSERT INTO wangge_migrations (set_name, version) VALUES ('events', 99)",
            &[],
        )
        .unwrap();
    let refused = PgStore::open(store_pg::connect(&url), Deadlines::default());
    assert!(
        matches!(
            refused,
            Err(StoreError::TooNew {
                found: 99,
                known: 3
            })
        ),
        "{:?}",
        refused.err()
    );
}
