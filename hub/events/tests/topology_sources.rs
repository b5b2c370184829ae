//! Alarms that know the topology, for the sources an edge reports down in its signed status
//! (`wangge_events::topology`): one `source.offline` per Modbus line or slave, the edge's own
//! sensors behind it held back (counted), a sensor the registry does not give that edge never
//! held back (counted as ignored), and after the source is back only a sensor still silent
//! raises its own `device.offline`; one case across restarts.

mod common;

use common::behind::{evaluator_behind, kinds, reading, watch_behind, Kind, EDGE, T0};
use common::S;
use protocol::uplink::SourceDown;
use serde_json::json;
use wangge_events::rules::{ConditionKind, Evaluator, RuleSet};
use wangge_events::topology::SOURCE_OFFLINE_EVENT;
use wangge_events::Events;

const OTHER: &str = "edge-xq-02";
const LINE: &str = "modbus:rs485-1";

/// The shipped rules; three sensors behind `EDGE` and `WB-9` behind `OTHER`, watched from `T0`.
fn evaluator() -> Evaluator {
    let mut ev = evaluator_behind(RuleSet::defaults());
    ev.watch_sensor("WB-9", "C-9", "waste_bin", 10, T0);
    ev.set_sensor_edge("WB-9", OTHER);
    ev
}

fn down(source: &str, sensors: &[&str]) -> SourceDown {
    SourceDown {
        source: source.into(),
        sensors: sensors.iter().map(|s| s.to_string()).collect(),
    }
}

fn source_event(kind: ConditionKind, source: &str) -> Kind {
    (
        kind,
        format!("edge:{EDGE}/{source}"),
        SOURCE_OFFLINE_EVENT.into(),
    )
}

fn offline(component: &str) -> Kind {
    (
        ConditionKind::Raised,
        component.into(),
        "device.offline".into(),
    )
}

/// Every 5 s from `from_s` to `to_s`: the edge's status with `sources`, the readings of
/// `reporting`, and the tick; returns what each tick raised or cleared, by second.
fn run(
    ev: &mut Evaluator,
    from_s: i64,
    to_s: i64,
    sources: &[SourceDown],
    reporting: &[(&'static str, &'static str)],
) -> Vec<(i64, Vec<Kind>)> {
    let mut out = Vec::new();
    for t in (from_s..=to_s).step_by(5) {
        let now = T0 + t * S;
        let mut got = ev.edge_report(EDGE, true, sources, now);
        for (s, c) in reporting {
            ev.evaluate(&reading(s, c, now), now);
        }
        got.extend(ev.tick(now));
        if !got.is_empty() {
            let mut k = kinds(&got);
            k.sort_by(|a, b| a.1.cmp(&b.1));
            out.push((t, k));
        }
    }
    out
}

#[test]
fn a_line_reported_down_raises_one_source_event_and_no_device_offline_for_its_sensors() {
    let mut ev = evaluator();
    let line = [down(LINE, &["WB-1", "WB-2"])];
    let out = ev.edge_report(EDGE, true, &line, T0);
    assert_eq!(kinds(&out), vec![source_event(ConditionKind::Raised, LINE)]);
    let v = &out[0].trigger.value;
    assert_eq!(out[0].trigger.quantity, "source_offline");
    assert_eq!(v["source"], LINE);
    assert_eq!(v["edge_id"], EDGE);
    assert_eq!(v["sensors"], json!(["WB-1", "WB-2"]));
    assert_eq!(v["sensors_behind"], 2);
    assert_eq!(v["ignored_sensors"], 0);
    // An hour of statuses naming it, WB-3 reporting: nothing more at all.
    let later = run(&mut ev, 5, 3600, &line, &[("WB-3", "C-3"), ("WB-9", "C-9")]);
    assert!(later.is_empty(), "{later:?}");
    assert_eq!(ev.suppressed_total(), 2, "each sensor counted once");
    assert_eq!(ev.source_suppressed_of(EDGE, LINE), vec!["WB-1", "WB-2"]);
    assert_eq!(
        ev.sources_of(EDGE),
        vec![(
            LINE.to_string(),
            vec!["WB-1".to_string(), "WB-2".to_string()]
        )]
    );
    // The will says nothing of sources: the line stays down, no second event when it is back.
    assert!(ev.edge_report(EDGE, false, &[], T0 + 3601 * S).len() == 1);
    let back = ev.edge_report(EDGE, true, &line, T0 + 3602 * S);
    assert!(
        back.iter().all(|c| c.event_type != SOURCE_OFFLINE_EVENT),
        "{back:?}"
    );
}

#[test]
fn a_slave_reported_down_covers_only_its_own_sensor() {
    let mut ev = evaluator();
    let slave = format!("{LINE}/3");
    let list = [down(&slave, &["WB-3"])];
    let out = run(&mut ev, 0, 60, &list, &[]);
    assert_eq!(
        out,
        vec![
            (0, vec![source_event(ConditionKind::Raised, &slave)]),
            (35, vec![offline("C-1"), offline("C-2"), offline("C-9")]),
        ],
        "WB-1 and WB-2 (same edge, other slaves) and WB-9 raise; WB-3 does not"
    );
    assert_eq!(ev.suppressed_total(), 1);
}

#[test]
fn a_sensor_not_the_edges_own_is_never_held_back_and_is_counted_once() {
    let mut ev = evaluator();
    // WB-9 is OTHER's; XX-404 is in no registry.
    let list = [down(LINE, &["WB-1", "WB-9", "XX-404"])];
    let out = ev.edge_report(EDGE, true, &list, T0);
    let v = &out[0].trigger.value;
    assert_eq!(v["sensors"], json!(["WB-1"]));
    assert_eq!(v["ignored_sensors"], 2);
    assert_eq!(v["ignored"], json!(["WB-9", "XX-404"]));
    let later = run(&mut ev, 5, 60, &list, &[("WB-2", "C-2"), ("WB-3", "C-3")]);
    assert_eq!(
        later,
        vec![(35, vec![offline("C-9")])],
        "another edge's sensor raises its own"
    );
    assert_eq!(ev.source_sensors_ignored().foreign, 2, "once per outage");
    assert_eq!(ev.suppressed_total(), 1, "only WB-1");
}

#[test]
fn when_the_source_is_back_only_the_sensor_still_silent_raises_after_its_own_allowance() {
    let mut ev = evaluator();
    let line = [down(LINE, &["WB-1", "WB-2"])];
    let out = run(&mut ev, 0, 100, &line, &[("WB-3", "C-3"), ("WB-9", "C-9")]);
    assert_eq!(
        out,
        vec![(0, vec![source_event(ConditionKind::Raised, LINE)])]
    );
    // Back at +105: cleared; WB-1 reports again, WB-2 stays silent.
    let out = run(
        &mut ev,
        105,
        200,
        &[],
        &[("WB-1", "C-1"), ("WB-3", "C-3"), ("WB-9", "C-9")],
    );
    assert_eq!(
        out,
        vec![
            (105, vec![source_event(ConditionKind::Cleared, LINE)]),
            (140, vec![offline("C-2")]),
        ],
        "WB-2 after 30 s from the return, once"
    );
    assert!(ev.sources_of(EDGE).is_empty());
}

#[test]
fn a_line_and_its_slave_both_down_hold_the_slave_until_both_are_back() {
    let mut ev = evaluator();
    let slave = format!("{LINE}/2");
    let both = [down(LINE, &["WB-1", "WB-2"]), down(&slave, &["WB-2"])];
    let others = [("WB-3", "C-3"), ("WB-9", "C-9")];
    let out = run(&mut ev, 0, 60, &both, &others);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.len(), 2, "one event per source: {out:?}");
    // The line is back, the slave is not: WB-1 silent raises, WB-2 stays held.
    let out = run(&mut ev, 65, 200, &[down(&slave, &["WB-2"])], &others);
    assert_eq!(
        out,
        vec![
            (65, vec![source_event(ConditionKind::Cleared, LINE)]),
            (100, vec![offline("C-1")]),
        ]
    );
    assert_eq!(ev.suppressed_total(), 2, "WB-2 counted once for both");
}

#[test]
fn over_long_and_malformed_lists_are_cut_and_counted() {
    let mut ev = evaluator();
    let mut list: Vec<SourceDown> = (0..40)
        .map(|i| down(&format!("modbus:l{i}"), &[]))
        .collect();
    list.push(down("bad name\"", &["WB-1"]));
    let out = ev.edge_report(EDGE, true, &list, T0);
    assert_eq!(out.len(), protocol::sources_down::SOURCES_DOWN_MAX);
    let ignored = ev.source_sensors_ignored();
    assert_eq!(
        ignored.over_limit, 10,
        "8 sources, the bad one and its sensor"
    );
    assert_eq!(ignored.malformed, 0, "the bad one was past the bound");
    let mut ev = evaluator();
    ev.edge_report(EDGE, true, &[down("bad name\"", &["WB-1"])], T0);
    assert_eq!(ev.source_sensors_ignored().malformed, 2);
}

#[test]
fn without_a_source_offline_rule_every_sensor_raises_its_own() {
    let text = RuleSet::defaults_text().replace(
        "kind = \"source_offline\"",
        "enabled = false\nkind = \"source_offline\"",
    );
    let set = RuleSet::parse(&text, "rules.toml").unwrap();
    assert!(set.source_offline.is_none());
    let mut ev = evaluator_behind(set);
    let line = [down(LINE, &["WB-1", "WB-2", "WB-3"])];
    assert!(ev.edge_report(EDGE, true, &line, T0).is_empty());
    let out = run(&mut ev, 5, 40, &line, &[]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.len(), 3, "{out:?}");
}

#[test]
fn source_offline_rules_are_checked_field_by_field() {
    let base = "[[rule]]\ncomponent_type = \"edge\"\nevent = \"source.offline\"\nseverity = \"major\"\nkind = \"source_offline\"\n";
    let err = |extra: &str, from: &str, to: &str| {
        let text = format!("{}{extra}", base.replace(from, to));
        RuleSet::parse(&text, "rules.toml").unwrap_err().to_string()
    };
    let ok = RuleSet::parse(base, "rules.toml").unwrap();
    assert!(ok.source_offline.is_some());
    let e = err("", "source.offline", "edge.offline");
    assert!(e.contains("rule #1") && e.contains("`event`"), "{e}");
    let e = err("", "\"edge\"", "\"*\"");
    assert!(e.contains("`component_type`"), "{e}");
    for field in [
        "interval_factor = 3.0",
        "status_interval_s = 5.0",
        "quantity = \"tilt\"",
        "for_s = 10",
    ] {
        let e = err(&format!("{field}\n"), "", "");
        let name = field.split(' ').next().unwrap();
        assert!(
            e.contains(&format!("`{name}`")) && e.contains("source_offline takes only"),
            "{e}"
        );
    }
    let twice = format!("{base}{base}");
    let e = RuleSet::parse(&twice, "rules.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rule #2") && e.contains("only one"), "{e}");
}

fn open(dir: &std::path::Path) -> Events {
    common::behind::open(dir, common::directory())
}

fn watch(ev: &Events) {
    watch_behind(ev);
    ev.watch_sensor("WB-9", "C-9", "waste_bin", 10, T0);
    ev.set_sensor_edge("WB-9", OTHER);
}

#[test]
fn the_store_keeps_one_source_event_across_restarts_and_clears_it_when_the_edge_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let ev = open(dir.path());
    watch(&ev);
    let line = [down(LINE, &["WB-1", "WB-2", "WB-9"])];
    let raised = ev.edge_report(EDGE, true, &line, T0).unwrap();
    assert_eq!(raised.len(), 1);
    let id = raised[0].event.id;
    assert_eq!(raised[0].event.component_id, format!("edge:{EDGE}/{LINE}"));
    ev.edge_report(EDGE, true, &line, T0 + 35 * S).unwrap();
    ev.tick(T0 + 35 * S).unwrap();
    let mut text = String::new();
    ev.render_topology_metrics(&mut text);
    assert!(
        text.contains("wangge_events_suppressed_total{event=\"device.offline\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("wangge_events_source_sensors_ignored_total{reason=\"foreign\"} 1"),
        "{text}"
    );
    drop(ev);

    // Restarted while the line is down: the retained status names it again, no new event.
    let ev = open(dir.path());
    watch(&ev);
    assert!(ev
        .edge_report(EDGE, true, &line, T0 + 70 * S)
        .unwrap()
        .is_empty());
    let back = ev.edge_report(EDGE, true, &[], T0 + 80 * S).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].event.id, id);
    assert!(back[0].event.cleared_at_ns.is_some());
    let query = wangge_events::store::ListQuery {
        limit: 100,
        ..Default::default()
    };
    let all = ev.store().list(&query).unwrap();
    let ours: Vec<_> = all
        .iter()
        .filter(|e| e.component_id.starts_with("edge:"))
        .map(|e| (e.component_id.as_str(), e.event_type.as_str()))
        .collect();
    let want = format!("edge:{EDGE}/{LINE}");
    assert_eq!(
        ours,
        vec![(want.as_str(), SOURCE_OFFLINE_EVENT)],
        "{all:#?}"
    );
    assert!(
        all.iter()
            .all(|e| e.component_id != "C-1" && e.component_id != "C-2"),
        "no device.offline for the line's sensors: {all:#?}"
    );
}
