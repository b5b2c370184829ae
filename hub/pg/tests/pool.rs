//! The pool against a real PostgreSQL 15 (its own cluster in a temp dir).

use std::sync::Arc;
use wangge_pg::{migrate, Migration, Pg};
use wangge_testkit::Postgres;

const SET: &[Migration] = &[
    Migration {
        version: 1,
        sql: "CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT NOT NULL)",
    },
    Migration {
        version: 2,
        sql: "ALTER TABLE t ADD COLUMN note TEXT",
    },
];

#[test]
fn queries_run_from_plain_threads_and_inside_a_tokio_runtime() {
    let server = Postgres::start();
    let pg = Pg::connect(&server.url(), 4).unwrap();
    assert_eq!(migrate(&pg, "test", SET).unwrap(), 2);
    assert_eq!(
        migrate(&pg, "test", SET).unwrap(),
        0,
        "a migration runs once"
    );
    pg.execute("INSERT INTO t (k, v) VALUES ('a', 1)", &[])
        .unwrap();
    let dup = pg
        .execute("INSERT INTO t (k, v) VALUES ('a', 2)", &[])
        .unwrap_err();
    assert!(dup.is_unique_violation(), "{dup}");
    // From an async handler's thread, as the stores are called today.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pg2 = pg.clone();
    let v: i64 = rt
        .block_on(async move {
            tokio::spawn(async move {
                pg2.query_opt("SELECT v FROM t WHERE k = $1", &[&"a"])
                    .unwrap()
                    .unwrap()
                    .get(0)
            })
            .await
        })
        .unwrap();
    assert_eq!(v, 1);
    assert!(!format!("{pg:?}").contains(wangge_testkit::postgres::PASSWORD));
}

#[test]
fn a_failed_transaction_leaves_nothing_and_hubs_starting_together_migrate_once() {
    let server = Postgres::start();
    let url = server.url();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                migrate(&Pg::connect(&url, 1).unwrap(), "test", SET).unwrap()
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 2, "each migration ran exactly once across four hubs");
    let pg = Arc::new(Pg::connect(&url, 2).unwrap());
    let r = pg.transaction(async |tx| {
        tx.execute("INSERT INTO t (k, v) VALUES ('x', 1)", &[])
            .await?;
        tx.execute("INSERT INTO t (k, v) VALUES ('x', 2)", &[])
            .await?;
        Ok(())
    });
    assert!(r.unwrap_err().is_unique_violation());
    assert!(pg
        .query_opt("SELECT 1 FROM t WHERE k = 'x'", &[])
        .unwrap()
        .is_none());
}

#[test]
fn a_lost_database_errs_instead_of_hanging_and_the_pool_recovers_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let port = wangge_testkit::free_port();
    let server = Postgres::start_on(dir.path(), port);
    let pg = Pg::connect(&server.url(), 2).unwrap();
    pg.execute("CREATE TABLE k (v INT)", &[]).unwrap();
    server.kill9();
    let e = pg.execute("INSERT INTO k VALUES (1)", &[]).unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    let _back = Postgres::start_on(dir.path(), port);
    wangge_testkit::wait_until(
        "the pool reconnects",
        std::time::Duration::from_secs(20),
        || pg.execute("INSERT INTO k VALUES (1)", &[]).is_ok(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_dropped_inside_an_async_context_does_not_panic() {
    // The hub drops its cluster (and so its pool) at the end of an async `serve`.
    let server = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = server.url();
    let pg = tokio::task::spawn_blocking(move || Pg::connect(&url, 2).unwrap())
        .await
        .unwrap();
    drop(pg);
}
