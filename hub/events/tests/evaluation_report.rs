//! The evaluation report's department figures against a hand-computed case list, and its CSV
//! and XLSX exports read back, over the real events store and the real HTTP routes.

mod common;

use calamine::{Data, Reader, Xlsx};
use common::*;
use serde_json::{json, Value};
use wangge_events::lifecycle::Action;
use wangge_events::model::{now_ns, Actor, Scope};
use wangge_events::report::TABLES;
use wangge_events::store::TransitionRequest;
use wangge_events::{Events, EventsConfig};

const MIN: i64 = 60 * S;
const HOUR: i64 = 3600 * S;
const DAY: i64 = 24 * HOUR;

fn actor(dept: &str, name: &str) -> Actor {
    Actor {
        name: name.into(),
        department: Some(dept.into()),
        scope: Scope::Write,
    }
}

/// `action` on event `id` by `who` at `at_ns`.
fn act(events: &Events, id: i64, who: &Actor, action: Action, dept: Option<&str>, at_ns: i64) {
    let req = TransitionRequest {
        action,
        department: dept.map(str::to_string),
        note: None,
    };
    events
        .transition(id, who, &req, at_ns)
        .unwrap_or_else(|e| panic!("{action:?} on {id}: {e}"));
}

/// Raises `event_type` on the manhole cover (critical: due 2 h after registration) at `at_ns`.
fn raise(events: &Events, event_type: &str, at_ns: i64) -> i64 {
    let c = raised(MANHOLE, event_type, at_ns / S);
    events
        .store()
        .apply_condition(&c, at_ns)
        .unwrap()
        .expect("a new event")
        .event
        .id
}

/// The hand-computed case list, three days ago onwards (all on the sw-owned manhole cover):
/// - E1 day 0: ack +10 min by sw, dispatched to hb +20 min, hb starts +50 min (30 min after
///   the dispatch), resolves +1 h 6 min 40 s, sw closes +1 h 30 min (on time: due +2 h).
/// - E2 day 1: ack +30 min, dispatched to hb +33 min 20 s, hb starts +43 min 20 s (10 min),
///   resolves +50 min, sw closes +2 h 30 min (late), then reopens it +2 h 38 min 20 s.
/// - E3 day 2: never acknowledged (overdue now).
fn case_list(events: &Events) -> i64 {
    let t0 = (now_ns() - 3 * DAY) / HOUR * HOUR;
    let (sw, hb) = (actor("sw", "wang"), actor("hb", "chen"));
    let e1 = raise(events, "manhole.displaced", t0);
    act(events, e1, &sw, Action::Acknowledge, None, t0 + 10 * MIN);
    act(events, e1, &sw, Action::Dispatch, Some("hb"), t0 + 20 * MIN);
    act(events, e1, &hb, Action::Start, None, t0 + 50 * MIN);
    act(events, e1, &hb, Action::Resolve, None, t0 + 4000 * S);
    act(events, e1, &sw, Action::Close, None, t0 + 90 * MIN);
    let t1 = t0 + DAY;
    let e2 = raise(events, "manhole.opened", t1);
    act(events, e2, &sw, Action::Acknowledge, None, t1 + 30 * MIN);
    act(events, e2, &sw, Action::Dispatch, Some("hb"), t1 + 2000 * S);
    act(events, e2, &hb, Action::Start, None, t1 + 2600 * S);
    act(events, e2, &hb, Action::Resolve, None, t1 + 3000 * S);
    act(events, e2, &sw, Action::Close, None, t1 + 9000 * S);
    act(events, e2, &sw, Action::Reopen, None, t1 + 9500 * S);
    raise(events, "manhole.water", t0 + 2 * DAY);
    t0
}

async fn served() -> (tempfile::TempDir, Events, Api, i64) {
    let dir = tempfile::tempdir().unwrap();
    let events = Events::open(
        &dir.path().join("events.db"),
        EventsConfig::defaults(),
        directory(),
    )
    .unwrap();
    let t0 = case_list(&events);
    let api = Api::start(&events).await;
    (dir, events, api, t0)
}

fn row<'a>(report: &'a Value, table: &str, key: &str, value: &str) -> &'a Value {
    report[table]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r[key] == value))
        .unwrap_or_else(|| panic!("no {table} row with {key} = {value}: {}", report[table]))
}

#[tokio::test]
async fn department_figures_match_the_hand_computed_case_list() {
    let (_dir, _events, api, t0) = served().await;
    let from = (t0 - HOUR) / 1_000_000;
    let (code, report) = api
        .get(&format!("/reports/evaluation?from={from}"), "admin-token")
        .await;
    assert_eq!(code, 200, "{report}");
    let sw = row(&report, "departments", "department", "sw");
    let want = json!({
        "department": "sw",
        "events_received": 3,
        "acknowledged": 2,
        "dispatched_onward": 2,
        "closed": 1,
        "closed_on_time": 1,
        "on_time_closure_rate": 1.0,
        "overdue": 2,
        "overdue_now": 2,
        "reopened": 1,
        "reopened_rate": 0.5,
        // Nearest rank over [600, 1800]: p50 the first, p90 the second.
        "time_to_acknowledge_s": {"p50": 600.0, "p90": 1800.0},
        "time_to_close_s": {"p50": 5400.0, "p90": 5400.0},
        "onward_acted": 2,
        "onward_response_s": {"p50": 600.0, "p90": 1800.0},
    });
    assert_eq!(sw, &want);
    // hb received the two it was dispatched, acted on both, shared nothing onward.
    let hb = row(&report, "departments", "department", "hb");
    assert_eq!(hb["events_received"], 2, "{hb}");
    assert_eq!(hb["dispatched_onward"], 0, "{hb}");
    assert_eq!(hb["onward_acted"], 0, "{hb}");
    // Where problems cluster: one cell, one component with all three, two still open.
    let cell = row(&report, "grid_cells", "grid_cell", "120111001001");
    assert_eq!(cell["events"], 3, "{cell}");
    assert_eq!(cell["open_backlog"], 2, "{cell}");
    assert_eq!(cell["components_with_events"], 1, "{cell}");
    assert_eq!(cell["events_per_component"], 3.0, "{cell}");
    let worst = &report["repeat_offenders"][0];
    assert_eq!(worst["component_id"], MANHOLE, "{worst}");
    assert_eq!(worst["events"], 3, "{worst}");
    assert_eq!(worst["open"], 2, "E2 reopened and E3: {worst}");
    // Trends: one case received per day for sw; a week row sums them.
    let days: Vec<&Value> = report["trend_daily"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["department"] == "sw")
        .collect();
    assert_eq!(
        days.iter()
            .map(|r| r["received"].as_i64().unwrap())
            .sum::<i64>(),
        3,
        "{days:?}"
    );
    assert!(
        days.iter().all(|r| r["received"].as_i64() <= Some(1)),
        "{days:?}"
    );
    let weeks: i64 = report["trend_weekly"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["department"] == "sw")
        .map(|r| r["closed"].as_i64().unwrap())
        .sum();
    assert_eq!(weeks, 1, "E1's closure; E2's was undone by its reopen");
}

/// A CSV body as rows of fields (no quoted commas in these tables).
fn csv_rows(body: &str) -> Vec<Vec<String>> {
    body.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// The rows of the CSV at `path` as `token` gets it.
async fn csv_of(api: &Api, path: &str, token: &str) -> Vec<Vec<String>> {
    csv_rows(&get_raw(api, path, token).await.text().await.unwrap())
}

async fn get_raw(api: &Api, path: &str, token: &str) -> reqwest::Response {
    api.client
        .get(format!("{}{path}", api.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_table_exports_as_csv_and_the_department_token_sees_its_own_only() {
    let (_dir, _events, api, t0) = served().await;
    let from = (t0 - HOUR) / 1_000_000;
    for table in TABLES {
        let r = get_raw(
            &api,
            &format!("/reports/evaluation.csv?table={table}&from={from}"),
            "admin-token",
        )
        .await;
        assert_eq!(r.status(), 200, "{table}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/csv"), "{table}: {ct}");
        let body = r.text().await.unwrap();
        assert!(
            body.lines().next().is_some_and(|h| !h.is_empty()),
            "{table}: no header"
        );
    }
    let departments = format!("/reports/evaluation.csv?table=departments&from={from}");
    let rows = csv_of(&api, &departments, "admin-token").await;
    let col = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    let sw = rows.iter().find(|r| r[0] == "sw").expect("an sw row");
    assert_eq!(sw[col("events_received")], "3");
    assert_eq!(sw[col("time_to_acknowledge_s.p90")], "1800");
    assert_eq!(sw[col("reopened_rate")], "0.5");
    // A department token: only its own row, as in the JSON.
    let rows = csv_of(&api, &departments, "hb-write").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1][0], "hb");
    // An unknown table is a 400 naming the field.
    let (code, body) = api
        .get("/reports/evaluation.csv?table=secrets", "admin-token")
        .await;
    assert_eq!(code, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.starts_with("query `table`"), "{body}");
}

#[tokio::test]
async fn the_xlsx_has_one_sheet_per_table_with_the_same_cells() {
    let (_dir, _events, api, t0) = served().await;
    let from = (t0 - HOUR) / 1_000_000;
    let r = get_raw(
        &api,
        &format!("/reports/evaluation.xlsx?from={from}"),
        "admin-token",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("spreadsheetml"));
    let bytes = r.bytes().await.unwrap().to_vec();
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(book.sheet_names(), TABLES.to_vec());
    let sheet = book.worksheet_range("departments").unwrap();
    let header: Vec<String> = sheet
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let col = |name: &str| header.iter().position(|c| c == name).unwrap();
    let sw = sheet
        .rows()
        .find(|r| r[0] == Data::String("sw".into()))
        .expect("an sw row");
    assert_eq!(sw[col("events_received")], Data::Float(3.0));
    assert_eq!(sw[col("on_time_closure_rate")], Data::Float(1.0));
    assert_eq!(sw[col("time_to_close_s.p50")], Data::Float(5400.0));
    // The trend sheets carry the per-period data completeness next to the event figures.
    for trend in ["trend_daily", "trend_weekly"] {
        let sheet = book.worksheet_range(trend).unwrap();
        let header: Vec<String> = sheet
            .rows()
            .next()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        for c in ["reports_received", "reports_expected", "completeness"] {
            assert!(header.iter().any(|h| h == c), "{trend}: {header:?}");
        }
    }
    // The department token's workbook holds its own department only.
    let r = get_raw(
        &api,
        &format!("/reports/evaluation.xlsx?from={from}"),
        "hb-write",
    )
    .await;
    let bytes = r.bytes().await.unwrap().to_vec();
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let sheet = book.worksheet_range("departments").unwrap();
    let names: Vec<String> = sheet.rows().skip(1).map(|r| r[0].to_string()).collect();
    assert_eq!(names, vec!["hb".to_string()]);
}

#[tokio::test]
async fn the_json_is_paged_per_table_with_totals_and_the_downloads_hold_every_row() {
    let (_dir, _events, api, t0) = served().await;
    let from = (t0 - HOUR) / 1_000_000;
    let (code, all) = api
        .get(&format!("/reports/evaluation?from={from}"), "admin-token")
        .await;
    assert_eq!(code, 200, "{all}");
    let days = all["totals"]["trend_daily"].as_u64().unwrap();
    assert!(days >= 3, "{}", all["totals"]);
    assert_eq!(all["trend_daily"].as_array().unwrap().len() as u64, days);
    assert_eq!(
        (all["offset"].as_u64(), all["limit"].as_u64()),
        (Some(0), Some(1000))
    );
    // `totals` counts every table, and a whole page holds each table's every row.
    let totals = all["totals"].as_object().unwrap();
    let mut names: Vec<&str> = totals.keys().map(String::as_str).collect();
    let mut want = TABLES.to_vec();
    names.sort();
    want.sort();
    assert_eq!(names, want, "{totals:?}");
    for table in TABLES {
        let rows = all[table].as_array().map(Vec::len);
        assert_eq!(rows.map(|n| n as u64), totals[*table].as_u64(), "{table}");
    }
    // The largest page allowed is served.
    let (code, _) = api
        .get(
            &format!("/reports/evaluation?from={from}&limit=10000"),
            "admin-token",
        )
        .await;
    assert_eq!(code, 200);
    // One table, two rows from the second on: the same rows as in the whole list.
    let (code, page) = api
        .get(
            &format!("/reports/evaluation?from={from}&table=trend_daily&offset=1&limit=2"),
            "admin-token",
        )
        .await;
    assert_eq!(code, 200, "{page}");
    assert_eq!(
        page["trend_daily"],
        json!(all["trend_daily"].as_array().unwrap()[1..3])
    );
    assert_eq!(page["totals"]["trend_daily"].as_u64(), Some(days));
    assert!(
        page.get("departments").is_none(),
        "only the table asked for"
    );
    // Past the end: no rows, the total still there.
    let (_, past) = api
        .get(
            &format!("/reports/evaluation?from={from}&table=trend_daily&offset=999"),
            "admin-token",
        )
        .await;
    assert_eq!(past["trend_daily"], json!([]));
    // Bad paging names the field.
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("offset=-1", "offset"),
        ("table=x", "table"),
    ] {
        let (code, body) = api
            .get(
                &format!("/reports/evaluation?from={from}&{q}"),
                "admin-token",
            )
            .await;
        assert_eq!(code, 400, "{q}: {body}");
        let m = body["error"]["message"].as_str().unwrap_or("");
        assert!(m.starts_with(&format!("query `{field}`")), "{q}: {body}");
    }
    // The CSV ignores paging: every row.
    let r = get_raw(
        &api,
        &format!("/reports/evaluation.csv?table=trend_daily&from={from}&limit=1"),
        "admin-token",
    )
    .await;
    let lines = r.text().await.unwrap().lines().count() as u64;
    assert_eq!(lines, days + 1);
    // So does the XLSX: every row of every table, whatever the paging.
    let r = get_raw(
        &api,
        &format!("/reports/evaluation.xlsx?from={from}&limit=1&offset=2"),
        "admin-token",
    )
    .await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap().to_vec();
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    for table in TABLES {
        let sheet = book.worksheet_range(table).unwrap();
        let rows = sheet.rows().count().saturating_sub(1) as u64;
        assert_eq!(Some(rows), totals[*table].as_u64(), "{table} sheet");
    }
}
