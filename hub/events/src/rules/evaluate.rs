//! Evaluation: readings and silence → conditions, with O(1) state per (component, rule).

use super::{Rule, RuleKind, RuleSet, MIN_PER_DAY, NS_PER_S, OFFLINE_EVENT};
use crate::model::{Severity, Trigger};
use crate::topology::{SilenceVerdict, Topology};
use protocol::uplink::Quality;
use protocol::Quantity;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;

/// One reading as the rules see it (the hub builds it after mapping sensor → component).
#[derive(Debug, Clone)]
pub struct RuleInput<'a> {
    pub component_id: &'a str,
    pub component_type: &'a str,
    pub sensor_id: &'a str,
    /// The sensor's expected reporting interval, seconds (0 = no offline detection).
    pub interval_s: u32,
    pub quantity: Quantity,
    /// Booleans as 0/1.
    pub value: f64,
    /// The reading's timestamp, UTC ns.
    pub ts_ns: i64,
    pub quality: Quality,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKind {
    Raised,
    Cleared,
}

/// A rule's verdict: a condition began or ended on a component.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub kind: ConditionKind,
    pub component_id: String,
    pub event_type: String,
    pub severity: Severity,
    pub trigger: Trigger,
    /// The triggering reading was older than `late_after_s` when evaluated.
    pub late: bool,
}

/// Per (component, rule): the O(1) state.
#[derive(Debug, Clone, Default)]
struct RuleState {
    last_ts: i64,
    guard_ts: i64,
    /// The last verdict on the rule's own quantity (re-used when only the guard changes).
    main: Option<bool>,
    pending_since: Option<i64>,
    raised: bool,
    guard: Option<bool>,
    prev: Option<(i64, f64)>,
}

/// The rules that apply to one component type, and which event slot each feeds.
#[derive(Debug, Default)]
struct TypePlan {
    rules: Vec<usize>,
    /// Per rule in `rules`: index into the component's event-slot counters.
    slot: Vec<usize>,
    slots: usize,
    /// Event type of each slot.
    slot_names: Vec<Arc<str>>,
    offline: Option<usize>,
}

#[derive(Debug)]
struct ComponentState {
    plan: Arc<TypePlan>,
    states: Vec<RuleState>,
    /// Per event type: how many of its rules currently hold (raised when > 0).
    raised_rules: Vec<u8>,
    /// Per event type: the store holds it raised from before a restart, and no rule has confirmed
    /// it yet; the first verdict that it does not hold clears it.
    /// Holds the trigger time: only a newer reading may clear it (a resent backlog may not).
    restored: Vec<Option<i64>>,
}

#[derive(Debug)]
pub(super) struct SensorWatch {
    pub(super) component_id: String,
    pub(super) component_type: String,
    pub(super) interval_ns: i64,
    pub(super) last_seen_ns: i64,
    pub(super) offline: bool,
    /// Its silence ran out while its edge was offline: held back, not raised (`topology`).
    pub(super) suppressed: bool,
}

/// A duration condition (`for_s` > 0) began holding (`since_ns` = its start) or stopped being
/// pending (`None`: it raised or no longer holds). The events engine persists these so that a
/// restart resumes the count (see [`Evaluator::restore_pending`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    pub component_id: String,
    /// Which rule: see [`Evaluator::rule_key`].
    pub rule_key: String,
    pub since_ns: Option<i64>,
}

/// Evaluates readings against a [`RuleSet`], keeping O(1) state per (component, rule).
#[derive(Debug)]
pub struct Evaluator {
    set: RuleSet,
    plans: HashMap<String, Arc<TypePlan>>,
    components: HashMap<String, ComponentState>,
    pub(super) sensors: HashMap<String, SensorWatch>,
    /// Edges, and whose `device.offline` an offline edge holds back (`rules::edges`).
    pub(super) topology: Topology,
    /// Conditions the store still holds raised (from before a restart), per component, waiting for
    /// the component's first reading to be re-attached to its rules.
    restored: HashMap<String, Vec<(String, i64)>>,
    /// Pending duration conditions from before a restart, per component: (rule key, since).
    restored_pending: HashMap<String, Vec<(String, i64)>>,
    /// Whether pending duration conditions are logged for [`Evaluator::take_pending_changes`]
    /// (off unless someone drains the log, so it cannot grow without bound).
    log_pending: bool,
    pending_log: Vec<PendingChange>,
}

impl Evaluator {
    pub fn new(set: RuleSet) -> Evaluator {
        Evaluator {
            topology: Topology::new(set.edge_offline.clone(), set.source_offline.clone()),
            set,
            plans: HashMap::new(),
            components: HashMap::new(),
            sensors: HashMap::new(),
            restored: HashMap::new(),
            restored_pending: HashMap::new(),
            log_pending: false,
            pending_log: Vec::new(),
        }
    }

    /// Logs every start and end of a pending duration condition for
    /// [`Evaluator::take_pending_changes`] (the events engine persists them).
    pub fn log_pending_changes(&mut self) {
        self.log_pending = true;
    }

    /// The pending duration conditions that started or ended since the last call.
    pub fn take_pending_changes(&mut self) -> Vec<PendingChange> {
        std::mem::take(&mut self.pending_log)
    }

    /// A rule's identity across restarts: `<index in the rules file>:<event type>`. A changed
    /// rules file may re-number rules; a pending condition restored onto a different rule of the
    /// same event type then only shortens or lengthens that one wait.
    pub fn rule_key(&self, rule_index: usize) -> String {
        let event = self
            .set
            .rules
            .get(rule_index)
            .map_or("", |r| &*r.event_type);
        format!("{rule_index}:{event}")
    }

    /// Re-attaches a duration condition that was pending (holding since `since_ns`, not yet
    /// raised) before a restart: the component's rule resumes counting from `since_ns` instead of
    /// from its next reading. Applies when the component's first reading arrives.
    pub fn restore_pending(&mut self, component_id: &str, rule_key: &str, since_ns: i64) {
        if let Some(cs) = self.components.get_mut(component_id) {
            for (k, &ri) in cs.plan.rules.iter().enumerate() {
                let key = format!("{ri}:{}", self.set.rules[ri].event_type);
                if key == rule_key && !cs.states[k].raised {
                    cs.states[k].pending_since.get_or_insert(since_ns);
                }
            }
            return;
        }
        self.restored_pending
            .entry(component_id.to_string())
            .or_default()
            .push((rule_key.to_string(), since_ns));
    }

    pub fn rules(&self) -> &RuleSet {
        &self.set
    }

    fn plan_for(&mut self, component_type: &str) -> Arc<TypePlan> {
        if let Some(p) = self.plans.get(component_type) {
            return p.clone();
        }
        let mut plan = TypePlan::default();
        let mut slot_names: Vec<Arc<str>> = Vec::new();
        for (i, r) in self.set.rules.iter().enumerate() {
            let applies = r
                .component_type
                .as_deref()
                .is_none_or(|t| t == component_type);
            if !applies {
                continue;
            }
            if matches!(r.kind, RuleKind::Offline { .. }) {
                // A type-specific offline rule wins over the `*` one.
                if plan.offline.is_none() || r.component_type.is_some() {
                    plan.offline = Some(i);
                }
                continue;
            }
            let slot = match slot_names.iter().position(|n| *n == r.event_type) {
                Some(s) => s,
                None => {
                    slot_names.push(r.event_type.clone());
                    slot_names.len() - 1
                }
            };
            plan.rules.push(i);
            plan.slot.push(slot);
        }
        plan.slots = slot_names.len();
        plan.slot_names = slot_names;
        let plan = Arc::new(plan);
        self.plans.insert(component_type.to_string(), plan.clone());
        plan
    }

    /// Re-attaches a condition the store still holds raised (not cleared) after a restart, so the
    /// first reading newer than `since_ns` (its trigger time) that shows it no longer holds clears it.
    pub fn restore_raised(&mut self, component_id: &str, event_type: &str, since_ns: i64) {
        if let Some(cs) = self.components.get_mut(component_id) {
            if let Some(slot) = cs.plan.slot_names.iter().position(|n| &**n == event_type) {
                cs.restored[slot] = (cs.raised_rules[slot] == 0).then_some(since_ns);
                return;
            }
        }
        self.restored
            .entry(component_id.to_string())
            .or_default()
            .push((event_type.to_string(), since_ns));
    }

    /// Starts offline detection for a sensor that has not reported yet (e.g. at hub start, with
    /// `last_seen_ns` = its last stored reading or now).
    pub fn watch_sensor(
        &mut self,
        sensor_id: &str,
        component_id: &str,
        component_type: &str,
        interval_s: u32,
        last_seen_ns: i64,
    ) {
        let w = self
            .sensors
            .entry(sensor_id.to_string())
            .or_insert_with(|| SensorWatch {
                component_id: component_id.to_string(),
                component_type: component_type.to_string(),
                interval_ns: 0,
                last_seen_ns,
                offline: false,
                suppressed: false,
            });
        w.interval_ns = i64::from(interval_s) * NS_PER_S;
        w.last_seen_ns = w.last_seen_ns.max(last_seen_ns);
    }

    /// Stops offline detection for a sensor (in a hub cluster, its edge moved to another hub,
    /// which watches it from now on). True if it was watched.
    pub fn unwatch_sensor(&mut self, sensor_id: &str) -> bool {
        self.topology.forget_sensor(sensor_id);
        self.sensors.remove(sensor_id).is_some()
    }

    /// Evaluates one reading. `now_ns` only decides whether conditions are marked `late`.
    pub fn evaluate(&mut self, r: &RuleInput<'_>, now_ns: i64) -> Vec<Condition> {
        let mut out = Vec::new();
        let late_ns = i64::try_from(self.set.settings.late_after_s)
            .unwrap_or(i64::MAX / NS_PER_S)
            .saturating_mul(NS_PER_S);
        let late = now_ns.saturating_sub(r.ts_ns) > late_ns;
        self.observe_sensor(r, late, r.ts_ns.max(now_ns), &mut out);
        if r.quality == Quality::Bad {
            return out;
        }
        let may_raise = r.quality == Quality::Good || self.set.settings.suspect_triggers;
        if !self.components.contains_key(r.component_id) {
            let plan = self.plan_for(r.component_type);
            let pending = self
                .restored_pending
                .remove(r.component_id)
                .unwrap_or_default();
            let states = plan
                .rules
                .iter()
                .map(|&ri| RuleState {
                    // Keys are built only for a component restored with pending conditions.
                    pending_since: pending
                        .iter()
                        .find(|(k, _)| *k == self.rule_key(ri))
                        .map(|(_, t)| *t),
                    ..RuleState::default()
                })
                .collect();
            self.components.insert(
                r.component_id.to_string(),
                ComponentState {
                    states,
                    raised_rules: vec![0; plan.slots],
                    restored: {
                        let held = self.restored.remove(r.component_id).unwrap_or_default();
                        plan.slot_names
                            .iter()
                            .map(|n| held.iter().find(|(h, _)| **h == **n).map(|(_, t)| *t))
                            .collect()
                    },
                    plan,
                },
            );
        }
        let Some(cs) = self.components.get_mut(r.component_id) else {
            return out;
        };
        let offset_min = self.set.settings.utc_offset_min;
        for (k, &ri) in cs.plan.rules.iter().enumerate() {
            let rule = &self.set.rules[ri];
            let is_main = rule.quantity() == Some(r.quantity);
            let is_guard = rule.guard == Some(r.quantity);
            if !is_main && !is_guard {
                continue;
            }
            let st = &mut cs.states[k];
            // Reading-time order, per rule and input: replays and stragglers never re-raise.
            let last = if is_main { st.last_ts } else { st.guard_ts };
            if r.ts_ns <= last {
                continue;
            }
            let holds = if is_main {
                st.last_ts = r.ts_ns;
                match main_holds(rule, st, r) {
                    Some(h) => {
                        st.main = Some(h);
                        h
                    }
                    None => continue,
                }
            } else {
                st.guard_ts = r.ts_ns;
                st.guard = Some(r.value != 0.0);
                // A guard change re-evaluates the rule's last verdict.
                st.main.unwrap_or(false)
            };
            let in_window = rule
                .window
                .is_none_or(|(w, inside)| w.contains(local_minute(r.ts_ns, offset_min)) == inside);
            let guarded = rule.guard.is_none() || st.guard == Some(true);
            let holds = holds && in_window && guarded;
            let slot = cs.plan.slot[k];
            let threshold = rule_threshold(rule);
            if holds {
                if st.raised {
                    continue;
                }
                if !may_raise {
                    continue;
                }
                let was_pending = st.pending_since.is_some();
                let since = *st.pending_since.get_or_insert(r.ts_ns);
                // Only duration rules are ever pending across readings.
                let log = self.log_pending && rule.for_ns > 0;
                if r.ts_ns - since >= rule.for_ns {
                    cs.restored[slot] = None;
                    st.raised = true;
                    st.pending_since = None;
                    cs.raised_rules[slot] = cs.raised_rules[slot].saturating_add(1);
                    if cs.raised_rules[slot] == 1 {
                        out.push(condition(ConditionKind::Raised, rule, r, threshold, late));
                    }
                    if log && was_pending {
                        self.pending_log.push(pending_change(r, ri, rule, None));
                    }
                } else if log && !was_pending {
                    self.pending_log
                        .push(pending_change(r, ri, rule, Some(since)));
                }
            } else {
                if st.pending_since.take().is_some() && self.log_pending && rule.for_ns > 0 {
                    self.pending_log.push(pending_change(r, ri, rule, None));
                }
                let restored_gone = cs.restored[slot].is_some_and(|since| r.ts_ns > since)
                    && cs.raised_rules[slot] == 0
                    && !st.raised;
                if restored_gone {
                    // Held raised before a restart, and no longer holds: clear it.
                    cs.restored[slot] = None;
                    out.push(condition(ConditionKind::Cleared, rule, r, threshold, late));
                } else if st.raised {
                    st.raised = false;
                    cs.raised_rules[slot] = cs.raised_rules[slot].saturating_sub(1);
                    if cs.raised_rules[slot] == 0 {
                        out.push(condition(ConditionKind::Cleared, rule, r, threshold, late));
                    }
                }
            }
        }
        out
    }

    /// Liveness: any reading (even a bad one) proves the sensor alive and clears `device.offline`.
    /// `seen_ns` is the later of the reading's time and its arrival (`now_ns`): silence is judged
    /// against the clock tick (hub time), so a sensor whose clock lags (skew, a late backlog, a
    /// replay) must not look silent while its readings keep arriving — it would otherwise be raised
    /// offline on every tick and cleared on every reading.
    fn observe_sensor(
        &mut self,
        r: &RuleInput<'_>,
        late: bool,
        seen_ns: i64,
        out: &mut Vec<Condition>,
    ) {
        // Offline from before a restart: this reading brings the component back.
        let restored_offline = self
            .restored
            .get_mut(r.component_id)
            .and_then(|held| {
                held.iter()
                    .position(|(t, since)| t == OFFLINE_EVENT && seen_ns > *since)
                    .map(|i| held.swap_remove(i))
            })
            .is_some();
        if restored_offline {
            if let Some(w) = self.sensors.get_mut(r.sensor_id) {
                w.offline = true; // cleared just below, with the usual condition
            } else {
                let back = self.offline_cleared(r.component_id, r.component_type, r, late);
                out.push(back);
            }
        }
        if r.interval_s == 0 && !self.sensors.contains_key(r.sensor_id) {
            return;
        }
        if !self.sensors.contains_key(r.sensor_id) {
            self.watch_sensor(
                r.sensor_id,
                r.component_id,
                r.component_type,
                r.interval_s,
                seen_ns,
            );
        }
        let Some(w) = self.sensors.get_mut(r.sensor_id) else {
            return;
        };
        if r.interval_s > 0 {
            w.interval_ns = i64::from(r.interval_s) * NS_PER_S;
        }
        if seen_ns > w.last_seen_ns {
            w.last_seen_ns = seen_ns;
        }
        w.suppressed = false;
        if w.offline {
            w.offline = false;
            let (comp, ctype) = (w.component_id.clone(), w.component_type.clone());
            let back = self.offline_cleared(&comp, &ctype, r, late);
            out.push(back);
        }
    }

    /// `device.offline` cleared on `component_id` by reading `r`, at the severity of the type's
    /// offline rule (major without one).
    fn offline_cleared(
        &mut self,
        component_id: &str,
        component_type: &str,
        r: &RuleInput<'_>,
        late: bool,
    ) -> Condition {
        let severity = self
            .plan_for(component_type)
            .offline
            .map(|i| self.set.rules[i].severity)
            .unwrap_or(Severity::Major);
        Condition {
            kind: ConditionKind::Cleared,
            component_id: component_id.to_string(),
            event_type: OFFLINE_EVENT.to_string(),
            severity,
            trigger: Trigger {
                quantity: r.quantity.name().to_string(),
                value: trigger_value(r.quantity, r.value),
                threshold: None,
                ts_ns: r.ts_ns,
            },
            late,
        }
    }

    /// The clock tick: `edge.offline` for edges whose status is overdue, then `device.offline`
    /// for every sensor silent longer than its rule allows, unless its edge holds it back.
    pub fn tick(&mut self, now_ns: i64) -> Vec<Condition> {
        let mut out = self.tick_edges(now_ns);
        let mut silent = Vec::new();
        for (id, w) in &self.sensors {
            if !w.offline && !w.suppressed && w.interval_ns > 0 {
                silent.push((id.clone(), w.component_type.clone()));
            }
        }
        for (id, ctype) in silent {
            let Some(ri) = self.plan_for(&ctype).offline else {
                continue;
            };
            let rule = &self.set.rules[ri];
            let RuleKind::Offline { interval_factor } = rule.kind else {
                continue;
            };
            let Some(w) = self.sensors.get_mut(&id) else {
                continue;
            };
            let limit_ns = (w.interval_ns as f64 * interval_factor) as i64;
            let silence_ns = now_ns - w.last_seen_ns;
            if silence_ns > limit_ns {
                match self.topology.verdict(&id, w.last_seen_ns + limit_ns) {
                    SilenceVerdict::Raise => {}
                    SilenceVerdict::Wait => continue,
                    SilenceVerdict::Suppress => {
                        w.suppressed = true;
                        continue;
                    }
                }
                w.offline = true;
                out.push(Condition {
                    kind: ConditionKind::Raised,
                    component_id: w.component_id.clone(),
                    event_type: OFFLINE_EVENT.to_string(),
                    severity: rule.severity,
                    trigger: Trigger {
                        quantity: "silence_s".to_string(),
                        value: Json::from(silence_ns / NS_PER_S),
                        threshold: Some(limit_ns as f64 / NS_PER_S as f64),
                        ts_ns: w.last_seen_ns + limit_ns,
                    },
                    late: false,
                });
            }
        }
        out
    }
}

/// The main verdict of a rule on its own quantity, hysteresis included; None = not decidable yet.
fn main_holds(rule: &Rule, st: &mut RuleState, r: &RuleInput<'_>) -> Option<bool> {
    match rule.kind {
        RuleKind::Threshold(c) => Some(c.holds(r.value, st.raised)),
        RuleKind::State { equals, .. } => Some((r.value != 0.0) == equals),
        RuleKind::Rate(c) => {
            let prev = st.prev.replace((r.ts_ns, r.value));
            let (pts, pv) = prev?;
            let dt_min = (r.ts_ns - pts) as f64 / (60.0 * NS_PER_S as f64);
            if dt_min <= 0.0 {
                return None;
            }
            let rate = (r.value - pv) / dt_min;
            Some(c.holds(rate, st.raised))
        }
        RuleKind::Offline { .. } => None,
    }
}

fn pending_change(
    r: &RuleInput<'_>,
    rule_index: usize,
    rule: &Rule,
    since_ns: Option<i64>,
) -> PendingChange {
    PendingChange {
        component_id: r.component_id.to_string(),
        rule_key: format!("{rule_index}:{}", rule.event_type),
        since_ns,
    }
}

fn rule_threshold(rule: &Rule) -> Option<f64> {
    match rule.kind {
        RuleKind::Threshold(c) | RuleKind::Rate(c) => Some(c.limit),
        RuleKind::State { .. } | RuleKind::Offline { .. } => None,
    }
}

fn trigger_value(q: Quantity, v: f64) -> Json {
    if q.is_bool() {
        Json::Bool(v != 0.0)
    } else {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .unwrap_or(Json::Null)
    }
}

fn condition(
    kind: ConditionKind,
    rule: &Rule,
    r: &RuleInput<'_>,
    threshold: Option<f64>,
    late: bool,
) -> Condition {
    Condition {
        kind,
        component_id: r.component_id.to_string(),
        event_type: rule.event_type.to_string(),
        severity: rule.severity,
        trigger: Trigger {
            quantity: r.quantity.name().to_string(),
            value: trigger_value(r.quantity, r.value),
            threshold,
            ts_ns: r.ts_ns,
        },
        late,
    }
}

/// Local minute of the day for a UTC timestamp.
fn local_minute(ts_ns: i64, offset_min: i32) -> u16 {
    let min = ts_ns.div_euclid(60 * NS_PER_S) + i64::from(offset_min);
    min.rem_euclid(i64::from(MIN_PER_DAY)) as u16
}
