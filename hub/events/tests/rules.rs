//! Every rule kind, evaluated in reading-timestamp order.

use protocol::uplink::Quality;
use protocol::Quantity;
use wangge_events::rules::{Condition, ConditionKind, Evaluator, RuleInput, RuleSet};

const S: i64 = 1_000_000_000;
/// 2024-11-25T00:00:00Z = 08:00 local (UTC+8).
const T0: i64 = 1_732_492_800 * S;

fn reading<'a>(component_type: &'a str, q: Quantity, value: f64, ts_ns: i64) -> RuleInput<'a> {
    RuleInput {
        component_id: "C1",
        component_type,
        sensor_id: "S1",
        interval_s: 60,
        quantity: q,
        value,
        ts_ns,
        quality: Quality::Good,
    }
}

/// A sensor of these tests: the type of its component and the quantity it reports.
type Sensor = (&'static str, Quantity);
const FLOOD: Sensor = ("flood_gauge", Quantity::WaterLevel);
const HYDRANT: Sensor = ("fire_hydrant", Quantity::Pressure);
const MANHOLE_OPENED: Sensor = ("manhole_cover", Quantity::Opened);
const MANHOLE_TILT: Sensor = ("manhole_cover", Quantity::Tilt);
const DOOR: Sensor = ("door_contact", Quantity::DoorOpen);
const MOTION: Sensor = ("intrusion", Quantity::Motion);
const LAMP: Sensor = ("street_light", Quantity::LampOn);
const CURRENT: Sensor = ("street_light", Quantity::Current);
const BIN: Sensor = ("waste_bin", Quantity::FillLevel);
const GAS: Sensor = ("gas_detector", Quantity::Gas);

/// An evaluator of the built-in rules.
fn defaults() -> Evaluator {
    Evaluator::new(RuleSet::defaults())
}

/// One `[[rule]]` of severity `major` raising `event` when the quantity of `sensor` meets the
/// rule's `kind`; `more` holds the rule's further keys, one `key = value` a line.
fn rule_toml((component_type, quantity): Sensor, event: &str, kind: &str, more: &str) -> String {
    format!(
        "[[rule]]\ncomponent_type = {component_type:?}\nevent = {event:?}\nseverity = \"major\"\n\
         kind = {kind:?}\nquantity = {:?}\n{more}",
        quantity.name()
    )
}

/// An evaluator of the rules in `text`.
fn parsed(text: &str) -> Evaluator {
    Evaluator::new(RuleSet::parse(text, "t").unwrap())
}

/// Feeds `(seconds after T0, value)` readings of `sensor`, each arriving at its own time.
fn feed(ev: &mut Evaluator, (ctype, q): Sensor, series: &[(i64, f64)]) -> Vec<Condition> {
    let mut out = Vec::new();
    for &(t, v) in series {
        out.extend(ev.evaluate(&reading(ctype, q, v, T0 + t * S), T0 + t * S));
    }
    out
}

/// (kind, event type, trigger time in seconds after T0).
type Said<'a> = (ConditionKind, &'a str, i64);

fn kinds(c: &[Condition]) -> Vec<Said<'_>> {
    c.iter()
        .map(|c| (c.kind, c.event_type.as_str(), (c.trigger.ts_ns - T0) / S))
        .collect()
}

fn raised(event_type: &str, t: i64) -> Said<'_> {
    (ConditionKind::Raised, event_type, t)
}

fn cleared(event_type: &str, t: i64) -> Said<'_> {
    (ConditionKind::Cleared, event_type, t)
}

/// Asserts that the built-in rules, fed `series` of `sensor`, raise `event_type` once and clear
/// it once, at the given times (seconds after T0).
#[track_caller]
fn assert_episode(sensor: Sensor, series: &[(i64, f64)], event_type: &str, at: (i64, i64)) {
    let out = feed(&mut defaults(), sensor, series);
    assert_said(&out, &[raised(event_type, at.0), cleared(event_type, at.1)]);
}

/// Asserts what the conditions said, in order.
#[track_caller]
fn assert_said(out: &[Condition], want: &[Said<'_>]) {
    assert_eq!(kinds(out), want);
}

#[test]
fn the_built_in_rules_file_is_valid_and_covers_the_catalogue() {
    let set = RuleSet::defaults();
    let mut types: Vec<&str> = set.rules.iter().map(|r| &*r.event_type).collect();
    types.sort();
    types.dedup();
    for t in [
        "manhole.displaced",
        "light.fault",
        "hydrant.low_pressure",
        "hydrant.impact",
        "flood.warning",
        "flood.danger",
        "fire.smoke",
        "gas.leak",
        "security.door_open",
        "security.intrusion",
        "elevator.entrapment",
        "elevator.fault",
        "electrical.leakage",
        "sanitation.bin_full",
        "environment.pm25_high",
        "device.offline",
        "device.battery_low",
    ] {
        assert!(types.contains(&t), "missing default rule for {t}");
    }
}

#[test]
fn config_errors_name_the_rule_and_field() {
    let bad_op = "op = \"~\"\nvalue = 1.0\n";
    let text = rule_toml(("x", Quantity::Tilt), "a.b", "threshold", bad_op);
    let err = RuleSet::parse(&text, "rules.toml").unwrap_err().to_string();
    assert!(
        err.contains("rules.toml") && err.contains("rule #1") && err.contains("`op`"),
        "{err}"
    );
    let unknown = rule_toml(("x", Quantity::Opened), "a.b", "state", "colour = 1\n");
    let err = RuleSet::parse(&unknown, "rules.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("colour") && err.contains("line"), "{err}");
}

#[test]
fn threshold_with_hysteresis_raises_once_and_clears_below_threshold_minus_h() {
    // flood.warning: ≥ 15 cm, hysteresis 3 → clears only below 12.
    let series = [
        (0, 10.0),
        (60, 15.0),
        (120, 14.0),
        (180, 13.0),
        (240, 16.0),
        (300, 11.9),
        (360, 15.5),
    ];
    let out = feed(&mut defaults(), FLOOD, &series);
    assert_said(
        &out,
        &[
            raised("flood.warning", 60),
            cleared("flood.warning", 300),
            raised("flood.warning", 360),
        ],
    );
    assert_eq!(out[0].trigger.threshold, Some(15.0));
    assert!(!out[0].late);
}

#[test]
fn for_at_least_a_duration_needs_the_condition_to_hold_that_long() {
    // hydrant.low_pressure: < 0.14 MPa for 60 s.
    let series = [
        (0, 0.10),
        (30, 0.20),
        (40, 0.10),
        (70, 0.10),
        (100, 0.12),
        (130, 0.30),
    ];
    // The dip at 0 lasted < 60 s; the one from 40 held until 100 (60 s).
    assert_episode(HYDRANT, &series, "hydrant.low_pressure", (100, 130));
}

#[test]
fn boolean_states_raise_and_clear_and_two_rules_share_one_event() {
    // manhole.displaced: opened, or tilt > 15° for 10 s.
    let mut ev = defaults();
    let mut out = feed(&mut ev, MANHOLE_OPENED, &[(0, 0.0), (10, 1.0)]);
    out.extend(feed(&mut ev, MANHOLE_TILT, &[(11, 40.0), (30, 40.0)]));
    // The tilt rule now also holds, but the event is already raised: nothing new.
    out.extend(feed(&mut ev, MANHOLE_OPENED, &[(40, 0.0)]));
    // Still tilted: not cleared yet.
    out.extend(feed(&mut ev, MANHOLE_TILT, &[(50, 1.0)]));
    let displaced = "manhole.displaced";
    assert_said(&out, &[raised(displaced, 10), cleared(displaced, 50)]);
    assert_eq!(out[0].trigger.value, serde_json::json!(true));
}

#[test]
fn permitted_hours_raise_only_outside_them() {
    // security.door_open: outside 06:00-22:00 local (UTC+8). T0 = 08:00 local.
    let mut ev = defaults();
    let day = feed(&mut ev, DOOR, &[(0, 1.0), (60, 0.0)]);
    assert!(
        day.is_empty(),
        "a door opened at 08:00 for a minute is fine: {day:?}"
    );
    // 23:00 local = T0 + 15 h.
    let night = 15 * 3600;
    let out = feed(&mut ev, DOOR, &[(night, 1.0), (night + 30, 0.0)]);
    let door = "security.door_open";
    assert_said(&out, &[raised(door, night), cleared(door, night + 30)]);
}

#[test]
fn a_door_held_open_by_day_raises_after_five_minutes() {
    let series = [(0, 1.0), (120, 1.0), (300, 1.0), (360, 0.0)];
    assert_episode(DOOR, &series, "security.door_open", (300, 360));
}

#[test]
fn active_hours_raise_only_inside_them() {
    let hours = "active_hours = \"22:00-06:00\"\n";
    let text = rule_toml(MOTION, "security.intrusion", "state", hours);
    let mut ev = parsed(&text);
    // 08:00 local: disarmed.
    assert!(feed(&mut ev, MOTION, &[(0, 1.0), (10, 0.0)]).is_empty());
    // 23:00 local: armed (window wraps past midnight).
    let night = 15 * 3600;
    let out = feed(&mut ev, MOTION, &[(night, 1.0)]);
    assert_said(&out, &[raised("security.intrusion", night)]);
}

#[test]
fn a_street_light_fault_needs_the_lamp_switched_on() {
    let mut ev = defaults();
    // Off and no current: fine.
    let mut out = feed(&mut ev, LAMP, &[(0, 0.0)]);
    out.extend(feed(&mut ev, CURRENT, &[(0, 0.0), (400, 0.0)]));
    assert!(out.is_empty(), "{out:?}");
    // Switched on (same timestamp as a current reading, as one message carries both), no current.
    out.extend(feed(&mut ev, LAMP, &[(600, 1.0)]));
    out.extend(feed(&mut ev, CURRENT, &[(600, 0.01), (900, 0.01)]));
    assert_said(&out, &[raised("light.fault", 900)]);
    // Lamp switched off clears it.
    let off = feed(&mut ev, LAMP, &[(1000, 0.0)]);
    assert_eq!(off[0].kind, ConditionKind::Cleared);
}

#[test]
fn rate_of_change_per_minute() {
    let more = "op = \">=\"\nvalue = 5.0\nhysteresis = 1.0\n";
    let text = rule_toml(FLOOD, "flood.rising", "rate", more);
    let out = feed(
        &mut parsed(&text),
        FLOOD,
        // +2/min, +6/min (raise), +4.5/min (holds: clears below 4), +1/min (clear)
        &[(0, 0.0), (60, 2.0), (120, 8.0), (180, 12.5), (240, 13.5)],
    );
    let rising = "flood.rising";
    assert_said(&out, &[raised(rising, 120), cleared(rising, 240)]);
}

#[test]
fn battery_low_on_any_component_type() {
    let series = [(0, 50.0), (60, 19.0), (120, 22.0), (180, 26.0)];
    for ctype in ["smoke_detector", "gas_detector", "waste_bin"] {
        let sensor = (ctype, Quantity::Battery);
        assert_episode(sensor, &series, "device.battery_low", (60, 180));
    }
}

#[test]
fn offline_after_three_silent_intervals_and_back_online_on_the_next_reading() {
    let mut ev = defaults();
    feed(&mut ev, BIN, &[(0, 10.0)]);
    assert!(
        ev.tick(T0 + 179 * S).is_empty(),
        "2.98 intervals is not yet offline"
    );
    let out = ev.tick(T0 + 181 * S);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].kind, out[0].event_type.as_str()),
        (ConditionKind::Raised, "device.offline")
    );
    assert_eq!(out[0].trigger.ts_ns, T0 + 180 * S);
    assert!(ev.tick(T0 + 500 * S).is_empty(), "raised once");
    let back = feed(&mut ev, BIN, &[(600, 11.0)]);
    assert_said(&back, &[cleared("device.offline", 600)]);
}

#[test]
fn a_sensor_whose_clock_lags_is_not_offline_while_its_readings_keep_arriving() {
    // Silence is judged on the hub's clock (tick), so liveness is the later of reading time and
    // arrival: a sensor an hour behind (skew, a replayed backlog, a fast-forwarded simulator)
    // reporting every 60 s is alive, and would otherwise be raised offline on every tick.
    let mut ev = defaults();
    ev.watch_sensor("S1", "C1", "waste_bin", 60, T0);
    for k in 0..10 {
        let now = T0 + k * 60 * S;
        let r = reading("waste_bin", Quantity::FillLevel, 10.0, now - 3600 * S);
        assert!(ev.evaluate(&r, now).is_empty(), "reading {k}");
        assert!(ev.tick(now + 30 * S).is_empty(), "tick after reading {k}");
    }
    // Once they stop arriving, it goes offline 3 intervals after the last arrival.
    let last = T0 + 9 * 60 * S;
    assert!(ev.tick(last + 179 * S).is_empty());
    assert_eq!(ev.tick(last + 181 * S).len(), 1);
}

#[test]
fn watched_sensors_that_never_report_go_offline() {
    let mut ev = defaults();
    ev.watch_sensor("S9", "C9", "gas_detector", 30, T0);
    let out = ev.tick(T0 + 91 * S);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].component_id, "C9");
}

#[test]
fn bad_readings_never_trigger_and_suspect_ones_are_configurable() {
    let mut ev = defaults();
    let mut r = reading("gas_detector", Quantity::Gas, 99.0, T0);
    r.quality = Quality::Bad;
    assert!(ev.evaluate(&r, T0).is_empty());
    r.quality = Quality::Suspect;
    r.ts_ns += S;
    assert!(
        ev.evaluate(&r, T0).is_empty(),
        "suspect does not raise by default"
    );

    let text =
        RuleSet::defaults_text().replace("suspect_triggers = false", "suspect_triggers = true");
    let mut ev = parsed(&text);
    assert_eq!(
        ev.evaluate(&r, T0).len(),
        1,
        "suspect raises when configured"
    );
}

#[test]
fn a_late_backlog_raises_with_true_times_marked_late_and_never_re_raises() {
    let mut ev = defaults();
    let now = T0 + 3600 * S;
    // A backlog from an hour ago arrives: gas leak at 60 s, cleared at 120 s.
    let series = [(0, 5.0), (60, 25.0), (120, 10.0)];
    let mut out = Vec::new();
    for &(t, v) in &series {
        out.extend(ev.evaluate(&reading("gas_detector", Quantity::Gas, v, T0 + t * S), now));
    }
    assert_said(&out, &[raised("gas.leak", 60), cleared("gas.leak", 120)]);
    assert!(out.iter().all(|c| c.late));
    // The same backlog resent (edge retry): nothing.
    for &(t, v) in &series {
        assert!(ev
            .evaluate(&reading("gas_detector", Quantity::Gas, v, T0 + t * S), now)
            .is_empty());
    }
    // A straggler older than what was seen: nothing.
    assert!(ev
        .evaluate(
            &reading("gas_detector", Quantity::Gas, 50.0, T0 + 90 * S),
            now
        )
        .is_empty());
}

#[test]
fn the_events_section_of_a_hub_config_loads_the_files_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        RuleSet::defaults_text().replace(
            "value = 20.0\nhysteresis = 5.0\n",
            "value = 25.0\nhysteresis = 5.0\n",
        ),
    )
    .unwrap();
    let text = format!(
        "rules_path = {:?}\n[deadlines]\ncritical_s = 600\n[webhooks]\nbackoff_initial_ms = 10\n",
        rules.display().to_string()
    );
    let section: wangge_events::EventsSection = toml::from_str(&text).unwrap();
    let cfg = section.load().unwrap();
    assert_eq!(cfg.deadlines.critical_s, 600);
    assert_eq!(cfg.webhooks.backoff_initial_ms, 10);
    assert!(cfg.rules.unwrap().rules.len() >= 17);
    let missing: wangge_events::EventsSection =
        toml::from_str("sharing_path = \"/nonexistent/sharing.toml\"").unwrap();
    let err = missing.load().unwrap_err().to_string();
    assert!(err.contains("/nonexistent/sharing.toml"), "{err}");
    assert!(toml::from_str::<wangge_events::EventsSection>("colour = 1").is_err());
}

#[test]
fn conditions_held_before_a_restart_clear_on_the_first_reading_that_shows_them_gone() {
    // A fresh evaluator (hub restarted) told what the store still holds raised.
    let mut ev = defaults();
    ev.restore_raised("C1", "gas.leak", T0 - 60 * S);
    ev.restore_raised("C1", "device.offline", T0 - 60 * S);
    // Still leaking: nothing new to say (the store already has it), but the offline case clears.
    let out = feed(&mut ev, GAS, &[(0, 40.0)]);
    assert_said(&out, &[cleared("device.offline", 0), raised("gas.leak", 0)]);
    let out = feed(&mut ev, GAS, &[(60, 2.0)]);
    assert_said(&out, &[cleared("gas.leak", 60)]);

    // Restored and gone on the first reading.
    let mut ev = defaults();
    ev.restore_raised("C1", "flood.warning", T0 - 60 * S);
    // A resent reading from before the trigger says nothing about now.
    let stale = feed(&mut ev, FLOOD, &[(-120, 3.0)]);
    assert!(stale.is_empty(), "{stale:?}");
    let out = feed(&mut ev, FLOOD, &[(0, 3.0), (60, 2.0)]);
    assert_said(&out, &[cleared("flood.warning", 0)]);
}
