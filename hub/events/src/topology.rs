//! Alarms that know the topology: which edge each sensor reports through, which edges are
//! offline, and whose `device.offline` an offline edge holds back.
//!
//! An edge that goes offline (its last will or an offline status; or, once it has been heard
//! online, no status for the `edge_offline` rule's allowance) raises ONE `edge.offline` event,
//! keyed by the pseudo component id `edge:<edge_id>`, and the sensors behind it do not raise
//! `device.offline` while it stays offline: each one whose silence allowance runs out during the
//! outage is counted once (`wangge_events_suppressed_total{event="device.offline"}`) and the
//! event's trigger lists the sensors behind the edge when it went down. When the edge is back
//! (an online status), `edge.offline` clears and every sensor behind it starts its silence count
//! again from that moment: a sensor still silent after its normal allowance raises its own.
//!
//! A sensor whose allowance runs out while its edge is online but has not sent a status since
//! then waits for the edge's next status before raising: an edge that died without a will
//! (a clean disconnect) is declared offline by its own silence first, so its sensors are held
//! back rather than raised one by one. An edge never heard since the hub started is not
//! tracked: its sensors raise `device.offline` as they always did.
//!
//! A sensor reports through one edge: the registry's (readings of it from another edge are
//! refused as `foreign_sensor`), so "only through this edge" holds for every sensor mapped here.
//!
//! The same for a source of an edge (a Modbus line or slave) its edge reports down in its
//! signed status ([`protocol::uplink::SourceDown`]): ONE `source.offline` event per down source,
//! keyed `edge:<edge_id>/<source>`, and no `device.offline` for the sensors it names **that the
//! registry assigns to that edge** — an edge speaks only for itself: a sensor of another edge
//! or one the registry does not know is never held back, only counted
//! (`wangge_events_source_sensors_ignored_total{reason="foreign"}`). When a later status no
//! longer lists the source, `source.offline` clears and its sensors count their silence again
//! from that moment. Only an online status says which sources are down; an offline one (the
//! will) leaves them as they were (the edge's own event covers everything meanwhile).
//!
//! This module is the state machine; `rules::edges` applies it to the evaluator's sensors.

use crate::rules::{EdgeOfflineRule, SourceOfflineRule};
use protocol::sources_down::bounded;
use protocol::uplink::SourceDown;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The event type raised for an offline edge.
pub const EDGE_OFFLINE_EVENT: &str = "edge.offline";

/// `component_id` of an edge's events: `edge:<edge_id>` (component ids are digit codes, so the
/// two never meet).
pub const EDGE_COMPONENT_PREFIX: &str = "edge:";

/// Sensors listed by name in an edge event's trigger, at most (the count is always given).
pub const LISTED_SENSORS_MAX: usize = 1000;

/// The event type raised for a source (Modbus line or slave) its edge reports down.
pub const SOURCE_OFFLINE_EVENT: &str = "source.offline";

/// The pseudo component id an edge's events carry.
pub fn edge_component_id(edge_id: &str) -> String {
    format!("{EDGE_COMPONENT_PREFIX}{edge_id}")
}

/// The pseudo component id of a source's events: `edge:<edge_id>/<source>` (edge ids name
/// MQTT topic levels, so they hold no `/`).
pub fn source_component_id(edge_id: &str, source: &str) -> String {
    format!("{EDGE_COMPONENT_PREFIX}{edge_id}/{source}")
}

/// The edge an event's `component_id` names, if it is an edge's or one of its sources'.
pub fn edge_of_component(component_id: &str) -> Option<&str> {
    let rest = component_id.strip_prefix(EDGE_COMPONENT_PREFIX)?;
    Some(rest.split_once('/').map_or(rest, |(edge, _)| edge))
}

/// (edge, source) of a source's `component_id`, if it is one.
pub fn source_of_component(component_id: &str) -> Option<(&str, &str)> {
    component_id
        .strip_prefix(EDGE_COMPONENT_PREFIX)?
        .split_once('/')
}

/// A source name the hub takes: printable ASCII without spaces, quotes, backslashes or MQTT
/// wildcards (it becomes part of a component id and of metric-free log lines).
fn source_name_ok(source: &str) -> bool {
    !source.is_empty()
        && source
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'+' | b'#'))
}

/// Why an edge counts as offline (the `cause` in its event's trigger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineCause {
    /// Its last will, or an offline status it sent itself.
    Status,
    /// No status for the rule's allowance.
    Silence,
}

impl OfflineCause {
    pub const fn name(self) -> &'static str {
        match self {
            OfflineCause::Status => "offline_status",
            OfflineCause::Silence => "silence",
        }
    }
}

/// What a sensor whose silence allowance ran out does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceVerdict {
    /// Raise its own `device.offline`.
    Raise,
    /// Its edge is offline: held back (counted when first held).
    Suppress,
    /// Its edge has not been heard since the allowance ran out: decide on its next status.
    Wait,
}

#[derive(Debug, Default)]
struct EdgeState {
    /// Hub time of its last online status; None while offline.
    heard_ns: Option<i64>,
    /// Since when it is offline (hub time); None while online.
    offline_since_ns: Option<i64>,
    /// Sensors held back during the current outage (each counted once).
    suppressed: BTreeSet<String>,
}

/// One source its edge reports down.
#[derive(Debug)]
struct SourceState {
    /// The sensors named behind it that the registry assigns to its edge.
    sensors: BTreeSet<String>,
    /// Named but not this edge's: never held back; each counted once per outage.
    ignored: BTreeSet<String>,
    /// Sensors held back during this outage (each counted once).
    suppressed: BTreeSet<String>,
}

/// A source changed state: what the evaluator turns into a `source.offline` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChange {
    Down {
        edge_id: String,
        source: String,
        since_ns: i64,
        /// The edge's own sensors behind it.
        sensors: Vec<String>,
        /// Named by the edge but not its own (ignored).
        ignored: Vec<String>,
    },
    Up {
        edge_id: String,
        source: String,
        at_ns: i64,
    },
}

/// What one status's list of down sources changed.
#[derive(Debug, Default)]
pub struct SourcesUpdate {
    pub changes: Vec<SourceChange>,
    /// Sensors no source holds any more (their source is back, or no longer names them):
    /// their silence counts again from the status.
    pub released: Vec<String>,
}

/// Entries of a status's down sources the hub did not take, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IgnoredCounts {
    /// A sensor the registry does not assign to the reporting edge (each once per outage).
    pub foreign: u64,
    /// Over the protocol's bounds (per status).
    pub over_limit: u64,
    /// A source name the hub does not take (per status).
    pub malformed: u64,
}

/// Edges' states and the sensor → edge map (see the module doc).
#[derive(Debug)]
pub struct Topology {
    rule: Option<EdgeOfflineRule>,
    source_rule: Option<SourceOfflineRule>,
    sensor_edge: HashMap<String, String>,
    /// Only edges heard (a status) or restored offline; bounded by the registered edges, since
    /// only statuses sealed with a registered edge's key reach it.
    edges: HashMap<String, EdgeState>,
    /// Per edge, its sources reported down (≤ `SOURCES_DOWN_MAX` each; only registered edges'
    /// statuses reach it).
    sources: HashMap<String, BTreeMap<String, SourceState>>,
    ignored: IgnoredCounts,
    suppressed_total: u64,
    /// The previous tick and the gap before it: a much longer gap means this hub itself was
    /// not listening (stopped, starved), so no edge's silence is counted across it.
    last_tick_ns: Option<i64>,
    last_gap_ns: i64,
}

/// An edge changed state: what the evaluator turns into a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeChange {
    WentOffline {
        edge_id: String,
        since_ns: i64,
        cause: OfflineCause,
    },
    CameBack {
        edge_id: String,
        at_ns: i64,
    },
}

impl EdgeChange {
    pub fn edge_id(&self) -> &str {
        match self {
            EdgeChange::WentOffline { edge_id, .. } | EdgeChange::CameBack { edge_id, .. } => {
                edge_id
            }
        }
    }
}

impl Topology {
    /// Without a rule, nothing is tracked: no edge (source) events, no suppression.
    pub fn new(rule: Option<EdgeOfflineRule>, source_rule: Option<SourceOfflineRule>) -> Topology {
        Topology {
            rule,
            source_rule,
            sensor_edge: HashMap::new(),
            edges: HashMap::new(),
            sources: HashMap::new(),
            ignored: IgnoredCounts::default(),
            suppressed_total: 0,
            last_tick_ns: None,
            last_gap_ns: 0,
        }
    }

    pub fn rule(&self) -> Option<&EdgeOfflineRule> {
        self.rule.as_ref()
    }

    pub fn source_rule(&self) -> Option<&SourceOfflineRule> {
        self.source_rule.as_ref()
    }

    /// `sensor_id` reports through `edge_id` (from the registry, or its readings' edge).
    pub fn set_sensor_edge(&mut self, sensor_id: &str, edge_id: &str) {
        if self.rule.is_none() && self.source_rule.is_none() {
            return;
        }
        if self.sensor_edge.get(sensor_id).map(String::as_str) != Some(edge_id) {
            self.sensor_edge
                .insert(sensor_id.to_string(), edge_id.to_string());
        }
    }

    pub fn forget_sensor(&mut self, sensor_id: &str) {
        self.sensor_edge.remove(sensor_id);
    }

    /// The sensors mapped to `edge_id`, sorted.
    pub fn sensors_of(&self, edge_id: &str) -> Vec<String> {
        let mut s: Vec<String> = self
            .sensor_edge
            .iter()
            .filter(|(_, e)| *e == edge_id)
            .map(|(s, _)| s.clone())
            .collect();
        s.sort();
        s
    }

    /// Whether `edge_id` is offline now.
    pub fn is_offline(&self, edge_id: &str) -> bool {
        self.edges
            .get(edge_id)
            .is_some_and(|e| e.offline_since_ns.is_some())
    }

    /// An accepted status of `edge_id` at hub time `now_ns`.
    pub fn status(&mut self, edge_id: &str, online: bool, now_ns: i64) -> Option<EdgeChange> {
        self.rule.as_ref()?;
        let e = self.edges.entry(edge_id.to_string()).or_default();
        if online {
            e.heard_ns = Some(e.heard_ns.map_or(now_ns, |h| h.max(now_ns)));
            e.offline_since_ns.take()?;
            e.suppressed.clear();
            return Some(EdgeChange::CameBack {
                edge_id: edge_id.to_string(),
                at_ns: now_ns,
            });
        }
        e.heard_ns = None;
        if e.offline_since_ns.is_some() {
            return None;
        }
        e.offline_since_ns = Some(now_ns);
        Some(EdgeChange::WentOffline {
            edge_id: edge_id.to_string(),
            since_ns: now_ns,
            cause: OfflineCause::Status,
        })
    }

    /// The clock: edges heard online whose status is overdue go offline. After a stall of the
    /// hub (a tick gap over a third of the allowance and twice the previous gap: a `SIGSTOP`, a
    /// starved runtime), every online edge gets a fresh allowance instead: statuses could not be
    /// heard, which says nothing about the edges.
    pub fn tick(&mut self, now_ns: i64) -> Vec<EdgeChange> {
        let Some(rule) = &self.rule else {
            return Vec::new();
        };
        let gap = self.last_tick_ns.map_or(0, |t| now_ns.saturating_sub(t));
        let stalled = gap > (rule.silence_ns / 3).max(self.last_gap_ns.saturating_mul(2));
        self.last_tick_ns = Some(now_ns);
        self.last_gap_ns = gap;
        if stalled {
            tracing::warn!(
                gap_ms = gap / 1_000_000,
                "events tick was late: edges' status silence restarts from now"
            );
            for e in self.edges.values_mut() {
                if let Some(h) = &mut e.heard_ns {
                    *h = (*h).max(now_ns);
                }
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        for (id, e) in &mut self.edges {
            let Some(heard) = e.heard_ns else { continue };
            let due = heard.saturating_add(rule.silence_ns);
            if e.offline_since_ns.is_none() && now_ns > due {
                e.heard_ns = None;
                e.offline_since_ns = Some(due);
                out.push(EdgeChange::WentOffline {
                    edge_id: id.clone(),
                    since_ns: due,
                    cause: OfflineCause::Silence,
                });
            }
        }
        out.sort_by(|a, b| a.edge_id().cmp(b.edge_id()));
        out
    }

    /// What `sensor_id`, whose silence allowance ran out at `expired_ns`, does now.
    pub fn verdict(&mut self, sensor_id: &str, expired_ns: i64) -> SilenceVerdict {
        let Some(edge) = self.sensor_edge.get(sensor_id) else {
            return SilenceVerdict::Raise;
        };
        if let Some(e) = self.edges.get_mut(edge) {
            if e.offline_since_ns.is_some() {
                if e.suppressed.insert(sensor_id.to_string()) {
                    self.suppressed_total += 1;
                }
                return SilenceVerdict::Suppress;
            }
        }
        if let Some(down) = self.sources.get_mut(edge) {
            let (mut held, mut first) = (false, false);
            for st in down
                .values_mut()
                .filter(|st| st.sensors.contains(sensor_id))
            {
                held = true;
                first |= st.suppressed.insert(sensor_id.to_string());
            }
            if held {
                // Once per outage, even when its line and its slave both hold it.
                self.suppressed_total += u64::from(first);
                return SilenceVerdict::Suppress;
            }
        }
        let Some(e) = self.edges.get(edge) else {
            return SilenceVerdict::Raise;
        };
        match e.heard_ns {
            Some(h) if h > expired_ns => SilenceVerdict::Raise,
            _ => SilenceVerdict::Wait,
        }
    }

    /// The store holds `edge_id` offline since `since_ns` (from before a restart).
    pub fn restore_offline(&mut self, edge_id: &str, since_ns: i64) {
        if self.rule.is_none() {
            return;
        }
        let e = self.edges.entry(edge_id.to_string()).or_default();
        e.heard_ns = None;
        e.offline_since_ns.get_or_insert(since_ns);
    }

    /// Keeps only the edges in `owned` (in a cluster, the others' statuses go to their owners,
    /// which watch them from now on).
    pub fn retain_edges(&mut self, owned: &BTreeSet<String>) {
        self.edges.retain(|id, _| owned.contains(id));
        self.sources.retain(|id, _| owned.contains(id));
    }

    /// The down sources an accepted online status of `edge_id` lists, at hub time `now_ns`:
    /// new ones go down, those no longer listed come back. Only the sensors the registry
    /// assigns to `edge_id` are taken; the others are counted and ignored.
    pub fn sources_status(
        &mut self,
        edge_id: &str,
        reported: &[SourceDown],
        now_ns: i64,
    ) -> SourcesUpdate {
        let mut update = SourcesUpdate::default();
        if self.source_rule.is_none() {
            return update;
        }
        let (reported, over) = bounded(reported.to_vec());
        self.ignored.over_limit += over;
        let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for s in reported {
            if source_name_ok(&s.source) {
                listed.entry(s.source).or_default().extend(s.sensors);
            } else {
                self.ignored.malformed += 1 + s.sensors.len() as u64;
            }
        }
        let down = self.sources.entry(edge_id.to_string()).or_default();
        let gone: Vec<String> = down
            .keys()
            .filter(|k| !listed.contains_key(*k))
            .cloned()
            .collect();
        for source in gone {
            if let Some(st) = down.remove(&source) {
                update.released.extend(st.sensors);
            }
            update.changes.push(SourceChange::Up {
                edge_id: edge_id.to_string(),
                source,
                at_ns: now_ns,
            });
        }
        for (source, named) in listed {
            let (own, foreign): (BTreeSet<String>, BTreeSet<String>) = named
                .into_iter()
                .partition(|s| self.sensor_edge.get(s).map(String::as_str) == Some(edge_id));
            match down.get_mut(&source) {
                Some(st) => {
                    for f in foreign {
                        if st.ignored.insert(f) {
                            self.ignored.foreign += 1;
                        }
                    }
                    update.released.extend(st.sensors.difference(&own).cloned());
                    st.sensors = own;
                    let sensors = &st.sensors;
                    st.suppressed.retain(|s| sensors.contains(s));
                }
                None => {
                    self.ignored.foreign += foreign.len() as u64;
                    update.changes.push(SourceChange::Down {
                        edge_id: edge_id.to_string(),
                        source: source.clone(),
                        since_ns: now_ns,
                        sensors: own.iter().cloned().collect(),
                        ignored: foreign.iter().cloned().collect(),
                    });
                    let st = SourceState {
                        sensors: own,
                        ignored: foreign,
                        suppressed: BTreeSet::new(),
                    };
                    down.insert(source, st);
                }
            }
        }
        if down.is_empty() {
            self.sources.remove(edge_id);
        }
        update
    }

    /// The store holds `source` of `edge_id` down (from before a restart); the sensors behind
    /// it are known again from the edge's next status.
    pub fn restore_source_down(&mut self, edge_id: &str, source: &str) {
        if self.source_rule.is_none() {
            return;
        }
        let st = SourceState {
            sensors: BTreeSet::new(),
            ignored: BTreeSet::new(),
            suppressed: BTreeSet::new(),
        };
        self.sources
            .entry(edge_id.to_string())
            .or_default()
            .entry(source.to_string())
            .or_insert(st);
    }

    /// The sources of `edge_id` down now, each with the edge's own sensors behind it.
    pub fn sources_of(&self, edge_id: &str) -> Vec<(String, Vec<String>)> {
        self.sources
            .get(edge_id)
            .map(|d| {
                d.iter()
                    .map(|(s, st)| (s.clone(), st.sensors.iter().cloned().collect()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The sensors held back during the current outage of `source` of `edge_id`.
    pub fn source_suppressed_of(&self, edge_id: &str, source: &str) -> Vec<String> {
        self.sources
            .get(edge_id)
            .and_then(|d| d.get(source))
            .map(|st| st.suppressed.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Entries of down-source lists not taken since start.
    pub fn ignored(&self) -> IgnoredCounts {
        self.ignored
    }

    /// The sensors held back during `edge_id`'s current outage.
    pub fn suppressed_of(&self, edge_id: &str) -> Vec<String> {
        self.edges
            .get(edge_id)
            .map(|e| e.suppressed.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `device.offline` events held back since start (each sensor once per outage).
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed_total
    }
}

/// `wangge_events_suppressed_total{event="device.offline"}` and
/// `wangge_events_source_sensors_ignored_total{reason}` in the Prometheus text format.
pub fn render_prometheus(suppressed_total: u64, ignored: IgnoredCounts, out: &mut String) {
    out.push_str(
        "# HELP wangge_events_source_sensors_ignored_total Entries of an edge's down sources \
         not taken: a sensor not the edge's own (foreign, once per outage), over the bounds \
         (over_limit) or a bad source name (malformed), per status.\n",
    );
    out.push_str("# TYPE wangge_events_source_sensors_ignored_total counter\n");
    for (reason, n) in [
        ("foreign", ignored.foreign),
        ("over_limit", ignored.over_limit),
        ("malformed", ignored.malformed),
    ] {
        out.push_str(&format!(
            "wangge_events_source_sensors_ignored_total{{reason=\"{reason}\"}} {n}\n"
        ));
    }
    out.push_str(
        "# HELP wangge_events_suppressed_total Events held back because the edge behind them \
         is offline, or their source is reported down (each sensor once per outage).\n",
    );
    out.push_str("# TYPE wangge_events_suppressed_total counter\n");
    out.push_str(&format!(
        "wangge_events_suppressed_total{{event=\"device.offline\"}} {suppressed_total}\n"
    ));
}
