//! What data completeness excludes, over the real events store and the real HTTP routes:
//! outages an edge's maintainer announces (`POST edges/{id}/outages`) and maintenance on a
//! case registered before the report's range. The sensors' reports are held by a small
//! directory standing in for the hub's registry and time-series store (which this crate
//! cannot reach; the hub's own tests run the same report over the real ones).

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use wangge_events::lifecycle::Action;
use wangge_events::model::{now_ns, rfc3339, Actor, ComponentCtx, Scope};
use wangge_events::report::{expected_reports, SensorCoverage};
use wangge_events::store::TransitionRequest;
use wangge_events::{ComponentDirectory, Events, EventsConfig};

const MIN: i64 = 60 * S;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// The manhole cover's sensor (sw maintains it) and its edge; the smoke detector's (xf).
const MH: (&str, &str) = ("MH-0001", "edge-xq-01");
const SD: (&str, &str) = ("SD-0001", "edge-xf-01");

/// Two sensors (60 s interval, registered long ago) with the timestamps of their reports.
struct Sensors {
    components: Arc<Directory>,
    reports: HashMap<&'static str, Vec<i64>>,
}

impl Sensors {
    fn of(&self, sensor: &str) -> (&'static str, &'static str, ComponentCtx) {
        let (component, edge) = if sensor == MH.0 {
            (MANHOLE, MH.1)
        } else {
            (SMOKE, SD.1)
        };
        let ctx = self.components.component(component).expect("seeded");
        (component, edge, ctx)
    }
}

impl ComponentDirectory for Sensors {
    fn component(&self, id: &str) -> Option<ComponentCtx> {
        self.components.component(id)
    }
    fn department_exists(&self, d: &str) -> bool {
        self.components.department_exists(d)
    }
    fn sensor_coverage(&self, from: i64, to: i64, now: i64) -> Vec<SensorCoverage> {
        let end = to.min(now);
        [MH.0, SD.0]
            .into_iter()
            .map(|sensor| {
                let (component, edge, ctx) = self.of(sensor);
                SensorCoverage {
                    sensor_id: sensor.into(),
                    component_id: component.into(),
                    component_name: format!("{} {component}", ctx.component_type),
                    component: ctx,
                    edge: edge.into(),
                    interval_s: 60,
                    monitored_from_ns: (from < end).then_some(from),
                    monitored_to_ns: end,
                    received: self.reports_between(sensor, from, end),
                    expected: expected_reports(end - from, 60),
                }
            })
            .collect()
    }
    fn reports_between(&self, sensor: &str, from: i64, to: i64) -> u64 {
        self.reports.get(sensor).map_or(0, |r| {
            r.iter().filter(|&&t| from <= t && t < to).count() as u64
        })
    }
}

/// Reports every 60 s in `[from, to)` except `[silent.0, silent.1)`.
fn every_minute(from: i64, to: i64, silent: (i64, i64)) -> Vec<i64> {
    (0..)
        .map(|i| from + i * MIN)
        .take_while(|&t| t < to)
        .filter(|t| !(silent.0..silent.1).contains(t))
        .collect()
}

struct World {
    _dir: tempfile::TempDir,
    events: Events,
    api: Api,
    /// The report's range: the last four hours, on whole minutes.
    from: i64,
    now: i64,
}

/// Both sensors report every minute for four hours, except the manhole cover's during `silent`.
async fn world(silent: impl Fn(i64) -> (i64, i64)) -> World {
    let now = now_ns() / MIN * MIN;
    let from = now - 4 * HOUR;
    let reports = HashMap::from([
        (MH.0, every_minute(now - 3 * DAY, now, silent(now))),
        (SD.0, every_minute(now - 3 * DAY, now, (0, 0))),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let sensors = Arc::new(Sensors {
        components: directory(),
        reports,
    });
    let events = Events::open(
        &dir.path().join("events.db"),
        EventsConfig::defaults(),
        sensors,
    )
    .unwrap();
    let api = Api::start(&events).await;
    World {
        _dir: dir,
        events,
        api,
        from,
        now,
    }
}

impl World {
    async fn report(&self, token: &str) -> Value {
        self.report_over(self.from, self.now, token).await
    }

    async fn report_over(&self, from: i64, to: i64, token: &str) -> Value {
        let q = format!("from={}&to={}", from / 1_000_000, to / 1_000_000);
        let (code, report) = self
            .api
            .get(&format!("/reports/evaluation?{q}"), token)
            .await;
        assert_eq!(code, 200, "{report}");
        report
    }

    async fn manhole(&self, token: &str) -> Value {
        let report = self.report(token).await;
        report["components"]
            .as_array()
            .and_then(|rows| rows.iter().find(|c| c["component_id"] == MANHOLE))
            .cloned()
            .unwrap_or_else(|| panic!("no manhole row: {report}"))
    }

    async fn announce(&self, token: &str, edge: &str, from: i64, until: i64) -> (u16, Value) {
        let body =
            json!({"from": rfc3339(from), "until": rfc3339(until), "reason": "gateway replaced"});
        self.api
            .post(&format!("/edges/{edge}/outages"), token, body)
            .await
    }
}

fn completeness(row: &Value) -> f64 {
    row["completeness"]
        .as_f64()
        .unwrap_or_else(|| panic!("{row}"))
}

#[tokio::test]
async fn a_sensor_silent_exactly_during_an_announced_outage_scores_100_percent() {
    // Silent the middle two hours of the four: the gateway was being replaced.
    let w = world(|now| (now - 3 * HOUR, now - HOUR)).await;
    let unannounced = w.manhole("admin-token").await;
    assert!(
        (completeness(&unannounced) - 0.5).abs() < 0.02,
        "the same silence unannounced: {unannounced}"
    );
    assert_eq!(unannounced["outage_periods"], 0, "{unannounced}");

    let (code, outage) = w
        .announce("sw-write", MH.1, w.now - 3 * HOUR, w.now - HOUR)
        .await;
    assert_eq!(code, 201, "{outage}");
    assert_eq!(outage["announced_by"], "sw/wang", "{outage}");
    let announced = w.manhole("admin-token").await;
    assert!(
        (completeness(&announced) - 1.0).abs() < 0.02,
        "announced: {announced}"
    );
    assert_eq!(announced["outage_periods"], 1, "{announced}");
    assert_eq!(announced["excluded_s"], 7200.0, "{announced}");
    assert_eq!(announced["expected"], 120, "{announced}");
    // The other edge's sensor is untouched; the outage is shown in `exclusions`.
    let report = w.report("admin-token").await;
    let smoke = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component_id"] == SMOKE)
        .unwrap();
    assert_eq!(smoke["expected"], 240, "{smoke}");
    let shown = &report["exclusions"]["announced_outages"];
    assert_eq!(shown[0]["edge_id"], MH.1, "{shown}");
    assert_eq!(shown[0]["reason"], "gateway replaced", "{shown}");
    // xf's own report does not list sw's edge's outage.
    let xf = w.report("xf-write").await;
    assert_eq!(xf["exclusions"]["announced_outages"], json!([]), "{xf}");

    // Deleted, the silence counts again.
    let id = outage["id"].as_i64().unwrap();
    let code = w
        .api
        .delete(&format!("/edges/{}/outages/{id}", MH.1), "sw-write")
        .await;
    assert_eq!(code, 200);
    let again = w.manhole("admin-token").await;
    assert!((completeness(&again) - 0.5).abs() < 0.02, "{again}");
}

#[tokio::test]
async fn only_the_edges_maintainer_or_an_admin_announces_and_bad_windows_name_the_field() {
    let w = world(|_| (0, 0)).await;
    let (a, b) = (w.now - HOUR, w.now);
    // Another department: the same 404 as an unknown edge, on every route.
    let (code, body) = w.announce("xf-write", MH.1, a, b).await;
    assert_eq!(code, 404, "{body}");
    let (code, _) = w
        .api
        .get(&format!("/edges/{}/outages", MH.1), "xf-write")
        .await;
    assert_eq!(code, 404);
    let (code, body) = w.announce("xf-write", "edge-nowhere", a, b).await;
    assert_eq!(code, 404, "{body}");
    // The maintainer's read token reads but does not announce.
    let (code, body) = w.announce("sw-read", MH.1, a, b).await;
    assert_eq!(code, 403, "{body}");
    let (code, list) = w
        .api
        .get(&format!("/edges/{}/outages", MH.1), "sw-read")
        .await;
    assert_eq!((code, &list["items"]), (200, &json!([])), "{list}");
    // Bad input: a 400 naming the field.
    let field = |body: &Value| body["error"]["field"].as_str().unwrap_or("").to_string();
    let (code, body) = w.announce("sw-write", MH.1, b, a).await;
    assert_eq!((code, field(&body)), (400, "until".into()), "{body}");
    let (code, body) = w.announce("sw-write", MH.1, a, a + 32 * 24 * HOUR).await;
    assert_eq!((code, field(&body)), (400, "until".into()), "{body}");
    let (code, body) = w
        .api
        .post(
            &format!("/edges/{}/outages", MH.1),
            "sw-write",
            json!({"from": "yesterday", "until": rfc3339(b)}),
        )
        .await;
    assert_eq!((code, field(&body)), (400, "from".into()), "{body}");
    let (code, body) = w.announce("admin-token", "edge-nowhere", a, b).await;
    assert_eq!((code, field(&body)), (400, "id".into()), "{body}");
    // An admin announces for any edge; the other department cannot delete it.
    let (code, outage) = w.announce("admin-token", MH.1, a, b).await;
    assert_eq!(code, 201, "{outage}");
    let path = format!("/edges/{}/outages/{}", MH.1, outage["id"]);
    assert_eq!(w.api.delete(&path, "xf-write").await, 404);
    let (_, list) = w
        .api
        .get(&format!("/edges/{}/outages", MH.1), "sw-read")
        .await;
    assert_eq!(list["items"][0]["id"], outage["id"], "{list}");
    assert_eq!(w.api.delete(&path, "sw-write").await, 200);
    assert_eq!(w.api.delete(&path, "sw-write").await, 404, "deleted once");
    // Announcements, deletions and refusals are in the audit log.
    let (_, audit) = w.api.get("/audit?limit=50", "admin-token").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"))
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in ["outage.announce", "outage.delete", "outage.list"] {
        assert!(actions.contains(&want), "{want}: {actions:?}");
    }
}

#[tokio::test]
async fn maintenance_on_a_case_registered_before_the_range_is_excluded() {
    // The crew worked on the cover from 5 h ago to 2 h ago; it was silent meanwhile.
    let w = world(|now| (now - 5 * HOUR, now - 2 * HOUR)).await;
    let raised_at = w.now - 6 * HOUR;
    let id = w
        .events
        .store()
        .apply_condition(
            &raised(MANHOLE, "manhole.displaced", raised_at / S),
            raised_at,
        )
        .unwrap()
        .expect("a new event")
        .event
        .id;
    let sw = Actor {
        name: "wang".into(),
        department: Some("sw".into()),
        scope: Scope::Write,
    };
    let work = [
        (Action::Acknowledge, None, w.now - 5 * HOUR - MIN),
        (Action::Dispatch, Some("sw"), w.now - 5 * HOUR),
        (Action::Start, None, w.now - 5 * HOUR + MIN),
        (Action::Resolve, None, w.now - 2 * HOUR),
    ];
    for (action, department, at) in work {
        let department = department.map(str::to_string);
        let req = TransitionRequest {
            action,
            department,
            note: None,
        };
        w.events.transition(id, &sw, &req, at).unwrap();
    }
    // The range starts 4 h ago, after the case was registered: its maintenance still counts.
    let m = w.manhole("admin-token").await;
    assert!((completeness(&m) - 1.0).abs() < 0.02, "{m}");
    assert_eq!(m["maintenance_periods"], 1, "{m}");
    assert_eq!(m["excluded_s"], 7200.0, "{m}");
    assert_eq!(m["expected"], 120, "{m}");
    // The case is not one of the range's: the departments' figures do not count it.
    let report = w.report("admin-token").await;
    assert_eq!(
        report["departments"],
        json!([]),
        "{}",
        report["departments"]
    );
}

#[tokio::test]
async fn the_trends_give_data_completeness_per_day_and_week_in_json_and_csv() {
    // The two whole days before today: the cover silent all the first, both on schedule after.
    let today = now_ns() / DAY * DAY;
    let w = world(move |_| (today - 2 * DAY, today - DAY)).await;
    let report = w.report_over(today - 2 * DAY, today, "admin-token").await;
    let day = |start: i64, dept: &str| {
        report["trend_daily"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["period"] == rfc3339(start) && r["department"] == dept)
            .cloned()
            .unwrap_or_else(|| panic!("no {dept} row for {start}: {}", report["trend_daily"]))
    };
    let (first, second) = (today - 2 * DAY, today - DAY);
    assert_eq!(
        day(first, "sw")["completeness"],
        0.0,
        "{}",
        day(first, "sw")
    );
    assert_eq!(day(first, "xf")["completeness"], 1.0);
    assert_eq!(day(first, "*")["reports_expected"], 2 * 1440);
    assert_eq!(day(first, "*")["completeness"], 0.5);
    assert_eq!(day(second, "sw")["completeness"], 1.0);
    assert_eq!(day(second, "sw")["reports_received"], 1440);
    // A week row sums its days.
    let weeks: Vec<&Value> = report["trend_weekly"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["department"] == "sw")
        .collect();
    let sum = |k: &str| weeks.iter().map(|r| r[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!(
        (sum("reports_received"), sum("reports_expected")),
        (1440, 2880)
    );
    // The CSV carries the same columns and figures.
    let q = format!(
        "/reports/evaluation.csv?table=trend_daily&from={}&to={}",
        first / 1_000_000,
        today / 1_000_000
    );
    let csv = w
        .api
        .client
        .get(format!("{}{q}", w.api.base))
        .bearer_auth("admin-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let sw_first = csv
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|r| r[0] == rfc3339(first) && r[1] == "sw")
        .expect("the sw row of the first day");
    assert_eq!(sw_first[col("completeness")], "0");
    assert_eq!(sw_first[col("reports_expected")], "1440");
    // A department sees its own rows and the total of its own sensors only.
    let xf = w.report_over(first, today, "xf-write").await;
    let rows = xf["trend_daily"].as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| r["department"] == "xf" || r["department"] == "*"),
        "{rows:?}"
    );
    assert!(rows
        .iter()
        .filter(|r| r["department"] == "*")
        .all(|r| r["completeness"] == 1.0));
}

/// The `key` row of roll-up `table`, whole.
fn rollup_row(report: &Value, table: &str, key: &str) -> Value {
    report[table]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["key"] == key))
        .cloned()
        .unwrap_or_else(|| panic!("no {table} row {key}: {}", report[table]))
}

/// The `key` row of roll-up `table` as (components, sensors, received, expected, completeness).
fn rollup(report: &Value, table: &str, key: &str) -> (i64, i64, i64, i64, f64) {
    let r = rollup_row(report, table, key);
    let n = |c: &str| {
        r[c].as_i64()
            .unwrap_or_else(|| panic!("{table} {key}: {r}"))
    };
    let c = completeness(&r);
    (
        n("components"),
        n("sensors"),
        n("received"),
        n("expected"),
        c,
    )
}

#[tokio::test]
async fn the_roll_ups_per_type_grid_cell_department_and_edge_sum_their_sensors() {
    // The manhole cover (sw, edge-xq-01, cell …001001) silent two hours of the four; the smoke
    // detector (xf, edge-xf-01, cell …002001) on schedule.
    let w = world(|now| (now - 3 * HOUR, now - HOUR)).await;
    let report = w.report("admin-token").await;
    let half = (1, 1, 120, 240, 0.5);
    let full = (1, 1, 240, 240, 1.0);
    for (table, silent_key, on_schedule_key) in [
        ("completeness_by_type", "manhole_cover", "smoke_detector"),
        ("completeness_by_grid_cell", "120111001001", "120111002001"),
        ("completeness_by_department", "sw", "xf"),
        ("completeness_by_edge", MH.1, SD.1),
    ] {
        assert_eq!(rollup(&report, table, silent_key), half, "{table}");
        assert_eq!(rollup(&report, table, on_schedule_key), full, "{table}");
        // Worst first, as on the page.
        assert_eq!(report[table][0]["key"], silent_key, "{table}");
        assert_eq!(report["totals"][table], 2, "{table}");
    }
    // The fire department's report rolls up its own sensor only.
    let xf = w.report("xf-write").await;
    for (table, key) in [
        ("completeness_by_type", "smoke_detector"),
        ("completeness_by_edge", SD.1),
        ("completeness_by_department", "xf"),
    ] {
        assert_eq!(xf[table], json!([rollup_row(&xf, table, key)]), "{table}");
        assert_eq!(rollup(&xf, table, key), full, "{table}");
    }
}
