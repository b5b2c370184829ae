//! Alarms that know the topology (`wangge_events::topology`): one `edge.offline` per edge, the
//! sensors behind an offline edge held back (counted, listed), their own `device.offline` only
//! if still silent after the edge is back; restored across a restart; seen only by admin and
//! the departments the edge serves.

mod common;

use common::behind::{evaluator_behind, kinds, reading, watch_behind, Kind, BEHIND, EDGE, T0};
use common::{Api, S};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use wangge_events::model::ComponentCtx;
use wangge_events::rules::{ConditionKind, Evaluator, RuleSet};
use wangge_events::topology::EDGE_OFFLINE_EVENT;
use wangge_events::Events;

/// The shipped rules, three sensors behind `EDGE` watched from `T0`.
fn evaluator() -> Evaluator {
    evaluator_behind(RuleSet::defaults())
}

fn edge_raised() -> Kind {
    (
        ConditionKind::Raised,
        format!("edge:{EDGE}"),
        EDGE_OFFLINE_EVENT.into(),
    )
}

#[test]
fn an_edge_last_will_raises_one_edge_event_and_holds_back_every_sensor_behind_it() {
    let mut ev = evaluator();
    assert!(
        ev.edge_status(EDGE, true, T0).is_empty(),
        "online is normal"
    );
    let out = ev.edge_status(EDGE, false, T0 + S);
    assert_eq!(kinds(&out), vec![edge_raised()]);
    let v = &out[0].trigger.value;
    assert_eq!(v["cause"], "offline_status");
    assert_eq!(v["sensors"], json!(["WB-1", "WB-2", "WB-3"]));
    assert_eq!(v["sensors_behind"], 3);
    assert!(
        ev.edge_status(EDGE, false, T0 + 2 * S).is_empty(),
        "one event, not one per will"
    );
    for t in [31, 60, 300, 3600] {
        assert!(ev.tick(T0 + t * S).is_empty(), "nothing raised at +{t}s");
    }
    assert_eq!(ev.suppressed_total(), 3, "each sensor counted once");
    assert_eq!(ev.suppressed_of(EDGE), vec!["WB-1", "WB-2", "WB-3"]);
}

#[test]
fn when_the_edge_is_back_only_the_sensor_still_silent_raises_after_its_own_allowance() {
    let mut ev = evaluator();
    ev.edge_status(EDGE, true, T0);
    ev.edge_status(EDGE, false, T0 + S);
    assert!(ev.tick(T0 + 100 * S).is_empty());
    let back = T0 + 200 * S;
    let out = ev.edge_status(EDGE, true, back);
    assert_eq!(
        kinds(&out),
        vec![(
            ConditionKind::Cleared,
            format!("edge:{EDGE}"),
            EDGE_OFFLINE_EVENT.into()
        )]
    );
    assert!(ev.suppressed_of(EDGE).is_empty());
    // Two sensors report again; WB-3 stays silent.
    for t in (205..=260).step_by(5) {
        ev.evaluate(&reading("WB-1", "C-1", T0 + t * S), T0 + t * S);
        ev.evaluate(&reading("WB-2", "C-2", T0 + t * S), T0 + t * S);
        ev.edge_status(EDGE, true, T0 + t * S);
        let out = ev.tick(T0 + t * S);
        if t <= 230 {
            assert!(out.is_empty(), "+{t}s: within WB-3's 30 s from the return");
        } else if t == 235 {
            assert_eq!(
                kinds(&out),
                vec![(
                    ConditionKind::Raised,
                    "C-3".to_string(),
                    "device.offline".to_string()
                )],
                "+{t}s"
            );
        } else {
            assert!(out.is_empty(), "+{t}s: raised once");
        }
    }
}

#[test]
fn an_edge_that_stops_sending_statuses_goes_offline_before_its_sensors_count_as_silent() {
    let mut ev = Evaluator::new(RuleSet::defaults());
    // Sensors every 2 s: their 6 s allowance ends before the edge's 15 s.
    for (s, c) in BEHIND {
        ev.watch_sensor(s, c, "waste_bin", 2, T0);
        ev.set_sensor_edge(s, EDGE);
    }
    ev.edge_status(EDGE, true, T0);
    for t in 1..=15 {
        assert!(
            ev.tick(T0 + t * S).is_empty(),
            "+{t}s: waiting for the edge"
        );
    }
    let out = ev.tick(T0 + 16 * S);
    assert_eq!(kinds(&out), vec![edge_raised()]);
    assert_eq!(out[0].trigger.value["cause"], "silence");
    assert_eq!(out[0].trigger.ts_ns, T0 + 15 * S);
    assert!(ev.tick(T0 + 60 * S).is_empty());
    assert_eq!(ev.suppressed_total(), 3);
}

#[test]
fn a_hub_that_was_stopped_does_not_read_its_own_pause_as_the_edges_silence() {
    let mut ev = evaluator();
    ev.edge_status(EDGE, true, T0);
    for t in 1..=4 {
        assert!(ev.tick(T0 + t * S).is_empty());
    }
    // SIGSTOPped for 16 s: more than the edge's 15 s allowance.
    let out = ev.tick(T0 + 20 * S);
    assert!(
        out.iter().all(|c| c.event_type != EDGE_OFFLINE_EVENT),
        "{out:?}"
    );
    for t in 21..=35 {
        let out = ev.tick(T0 + t * S);
        assert!(
            out.iter().all(|c| c.event_type != EDGE_OFFLINE_EVENT),
            "+{t}s: a fresh allowance from the stall: {out:?}"
        );
    }
    let out = ev.tick(T0 + 36 * S);
    assert!(
        out.iter().any(|c| c.event_type == EDGE_OFFLINE_EVENT),
        "{out:?}"
    );
}

#[test]
fn a_sensor_silent_while_its_edge_keeps_reporting_raises_its_own() {
    let mut ev = evaluator();
    for t in (0..=40).step_by(5) {
        ev.edge_status(EDGE, true, T0 + t * S);
        ev.evaluate(&reading("WB-1", "C-1", T0 + t * S), T0 + t * S);
        ev.evaluate(&reading("WB-2", "C-2", T0 + t * S), T0 + t * S);
        let out = ev.tick(T0 + t * S);
        let want = if t == 35 {
            vec![(ConditionKind::Raised, "C-3".into(), "device.offline".into())]
        } else {
            vec![]
        };
        assert_eq!(kinds(&out), want, "+{t}s");
    }
    assert_eq!(ev.suppressed_total(), 0);
}

#[test]
fn sensors_of_an_edge_never_heard_raise_as_before() {
    let mut ev = evaluator();
    let out = ev.tick(T0 + 31 * S);
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(out.iter().all(|c| c.event_type == "device.offline"));
}

#[test]
fn a_sensor_already_offline_before_the_edge_went_down_is_not_listed_and_stays_raised() {
    let mut ev = evaluator();
    ev.edge_status(EDGE, true, T0 + 31 * S);
    ev.evaluate(&reading("WB-1", "C-1", T0 + 31 * S), T0 + 31 * S);
    ev.evaluate(&reading("WB-2", "C-2", T0 + 31 * S), T0 + 31 * S);
    ev.edge_status(EDGE, true, T0 + 32 * S);
    let out = ev.tick(T0 + 32 * S);
    assert_eq!(
        kinds(&out),
        vec![(ConditionKind::Raised, "C-3".into(), "device.offline".into())]
    );
    let out = ev.edge_status(EDGE, false, T0 + 33 * S);
    assert_eq!(out[0].trigger.value["sensors"], json!(["WB-1", "WB-2"]));
}

#[test]
fn a_cluster_member_forgets_the_silence_of_edges_it_no_longer_owns() {
    let mut ev = evaluator();
    ev.edge_status(EDGE, true, T0);
    ev.retain_edges(&BTreeSet::from(["edge-other".to_string()]));
    let out = ev.tick(T0 + 20 * S);
    assert!(
        out.iter().all(|c| c.event_type != EDGE_OFFLINE_EVENT),
        "a peer owns it now: {out:?}"
    );
}

#[test]
fn without_an_edge_offline_rule_every_sensor_raises_its_own() {
    let text = RuleSet::defaults_text().replace(
        "kind = \"edge_offline\"",
        "enabled = false\nkind = \"edge_offline\"",
    );
    let set = RuleSet::parse(&text, "rules.toml").unwrap();
    assert!(set.edge_offline.is_none());
    let mut ev = evaluator_behind(set);
    assert!(ev.edge_status(EDGE, false, T0).is_empty());
    assert_eq!(ev.tick(T0 + 31 * S).len(), 3);
}

#[test]
fn edge_offline_rules_are_checked_field_by_field() {
    let base = "[[rule]]\ncomponent_type = \"edge\"\nevent = \"edge.offline\"\nseverity = \"major\"\nkind = \"edge_offline\"\n";
    let err = |extra: &str, from: &str, to: &str| {
        let text = format!("{}{extra}", base.replace(from, to));
        RuleSet::parse(&text, "rules.toml").unwrap_err().to_string()
    };
    assert!(RuleSet::parse(base, "rules.toml").is_ok());
    let e = err("", "edge.offline", "device.offline");
    assert!(e.contains("rule #1") && e.contains("`event`"), "{e}");
    let e = err("", "\"edge\"", "\"*\"");
    assert!(e.contains("`component_type`"), "{e}");
    let e = err("status_interval_s = 0.0\n", "", "");
    assert!(e.contains("`status_interval_s`"), "{e}");
    let e = err("interval_factor = 0.5\n", "", "");
    assert!(e.contains("`interval_factor`"), "{e}");
    let e = err("quantity = \"tilt\"\n", "", "");
    assert!(e.contains("edge_offline takes only"), "{e}");
    let twice = format!("{base}{base}");
    let e = RuleSet::parse(&twice, "rules.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rule #2") && e.contains("only one"), "{e}");
    let other = "[[rule]]\ncomponent_type = \"*\"\nevent = \"device.offline\"\nseverity = \"major\"\nkind = \"offline\"\nstatus_interval_s = 5.0\n";
    let e = RuleSet::parse(other, "rules.toml").unwrap_err().to_string();
    assert!(
        e.contains("`status_interval_s`") && e.contains("edge_offline"),
        "{e}"
    );
}

/// The test directory plus the edge's pseudo component, owned and maintained by `sw`.
fn directory() -> Arc<common::Directory> {
    let mut m: HashMap<String, ComponentCtx> = common::directory().0.clone();
    m.insert(
        format!("edge:{EDGE}"),
        ComponentCtx {
            component_type: "edge".into(),
            grid_cell: String::new(),
            owner_department: "sw".into(),
            maintainer_department: "sw".into(),
        },
    );
    Arc::new(common::Directory(m))
}

fn open(dir: &std::path::Path) -> Events {
    common::behind::open(dir, directory())
}

fn watch(ev: &Events) {
    watch_behind(ev);
}

#[test]
fn the_store_keeps_one_edge_event_across_outages_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let ev = open(dir.path());
    watch(&ev);
    ev.edge_status(EDGE, true, T0).unwrap();
    let raised = ev.edge_status(EDGE, false, T0 + S).unwrap();
    assert_eq!(raised.len(), 1);
    let id = raised[0].event.id;
    assert_eq!(raised[0].event.component_id, format!("edge:{EDGE}"));
    ev.tick(T0 + 60 * S).unwrap();
    let mut text = String::new();
    ev.render_topology_metrics(&mut text);
    assert!(
        text.contains("wangge_events_suppressed_total{event=\"device.offline\"} 3"),
        "{text}"
    );
    drop(ev);

    // Restarted while the edge is offline: still offline, its sensors still held back.
    let ev = open(dir.path());
    watch(&ev);
    assert!(ev.edge_status(EDGE, false, T0 + 70 * S).unwrap().is_empty());
    let later = ev.tick(T0 + 200 * S).unwrap();
    assert!(later.is_empty(), "{later:?}");
    let back = ev.edge_status(EDGE, true, T0 + 300 * S).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].event.id, id);
    assert!(back[0].event.cleared_at_ns.is_some());
    // Down again: the same case, counted twice; still no device.offline.
    let again = ev.edge_status(EDGE, false, T0 + 301 * S).unwrap();
    assert_eq!((again[0].event.id, again[0].event.count), (id, 2));
    let query = wangge_events::store::ListQuery {
        limit: 100,
        ..Default::default()
    };
    let all = ev.store().list(&query).unwrap();
    let types: Vec<&str> = all.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, vec![EDGE_OFFLINE_EVENT], "{all:#?}");
}

#[tokio::test]
async fn an_edge_event_is_seen_by_admin_and_its_departments_only() {
    let dir = tempfile::tempdir().unwrap();
    let ev = open(dir.path());
    watch(&ev);
    let id = ev.edge_status(EDGE, false, T0).unwrap()[0].event.id;
    let api = Api::start(&ev).await;
    for token in ["admin-token", "sw-read"] {
        let (code, body) = api.get(&format!("/events/{id}"), token).await;
        assert_eq!(code, 200, "{token}: {body}");
        let (_, list) = api.get("/events", token).await;
        assert_eq!(
            list["items"][0]["component_id"],
            format!("edge:{EDGE}"),
            "{token}"
        );
    }
    // A department the edge does not serve: neither the event nor a hint of it.
    let (code, _) = api.get(&format!("/events/{id}"), "hb-write").await;
    assert_eq!(code, 404);
    let (_, list) = api.get("/events", "hb-write").await;
    assert_eq!(list["items"], json!([]), "{list}");
    let (code, _) = api
        .transition(id, "hb-write", json!({"action": "acknowledge"}))
        .await;
    assert_eq!(code, 404);
}
