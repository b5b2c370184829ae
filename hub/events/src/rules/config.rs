//! `rules.toml`: the file's shape, and its validation into a [`RuleSet`].

use super::{MIN_PER_DAY, NS_PER_S, OFFLINE_EVENT};
use crate::config_file::{self, FileError};
use crate::model::Severity;
use protocol::Quantity;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read, or is not TOML of a rules file.
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: rule #{index} ({event}): field `{field}`: {reason}")]
    Invalid {
        path: String,
        index: usize,
        event: String,
        field: &'static str,
        reason: String,
    },
}

/// `config/rules.toml`: settings plus one `[[rule]]` table per rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    #[serde(default)]
    pub settings: Settings,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
}

/// Evaluation settings shared by all rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// A condition whose reading is older than this when evaluated is marked `late`. Default 120 s.
    pub late_after_s: u64,
    /// Whether readings of quality `suspect` may raise (they may always clear). Default false.
    pub suspect_triggers: bool,
    /// Local time offset used by permitted/active hours windows, minutes east of UTC. Default 480 (UTC+8).
    pub utc_offset_min: i32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            late_after_s: 120,
            suspect_triggers: false,
            utc_offset_min: 480,
        }
    }
}

/// One rule as written in the config file; validated into a [`Rule`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Component type from the catalogue, or `*` for every type.
    pub component_type: String,
    /// Event type raised, e.g. `manhole.displaced`. Several rules may raise the same type
    /// (it is raised while any of them holds).
    pub event: String,
    pub severity: Severity,
    /// `threshold`, `state`, `rate` or `offline`.
    pub kind: String,
    pub quantity: Option<String>,
    /// `>`, `>=`, `<`, `<=` (threshold and rate).
    pub op: Option<String>,
    /// Threshold value (threshold), or limit per minute (rate).
    pub value: Option<f64>,
    /// Clear only once the value is back past the threshold by this much. Default 0.
    #[serde(default)]
    pub hysteresis: f64,
    /// Raise only once the condition has held for this long (reading time). Default 0.
    #[serde(default)]
    pub for_s: u64,
    /// State rules: the boolean value that raises. Default true.
    pub equals: Option<bool>,
    /// Only while this boolean quantity was last seen true (e.g. `lamp_on`).
    pub while_true: Option<String>,
    /// Raise only outside these local hours, `HH:MM-HH:MM` (e.g. a door's permitted hours).
    pub permitted_hours: Option<String>,
    /// Raise only inside these local hours, `HH:MM-HH:MM` (e.g. when an intrusion sensor is armed).
    pub active_hours: Option<String>,
    /// Offline rules: silence longer than this many expected intervals. Default 3.
    /// `edge_offline`: silence longer than this many status intervals. Default 3.
    pub interval_factor: Option<f64>,
    /// `edge_offline`: how often an edge publishes its status, seconds (the edge's
    /// `uplink.status_interval_ms`). Default 5.
    pub status_interval_s: Option<f64>,
    /// Set false to keep a rule in the file but not evaluate it. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A comparison with its hysteresis-aware inverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            ">" | "gt" => Op::Gt,
            ">=" | "ge" => Op::Ge,
            "<" | "lt" => Op::Lt,
            "<=" | "le" => Op::Le,
            _ => return None,
        })
    }

    /// Raise at `v op x`.
    pub(super) fn raises(self, v: f64, x: f64) -> bool {
        match self {
            Op::Gt => v > x,
            Op::Ge => v >= x,
            Op::Lt => v < x,
            Op::Le => v <= x,
        }
    }

    /// Clear only past the threshold by `h`: for `>=` at `v < x - h`, for `<` at `v >= x + h`…
    pub(super) fn clears(self, v: f64, x: f64, h: f64) -> bool {
        match self {
            Op::Gt => v <= x - h,
            Op::Ge => v < x - h,
            Op::Lt => v >= x + h,
            Op::Le => v > x + h,
        }
    }
}

/// A daily window in local minutes since midnight; `start > end` wraps past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_min: u16,
    pub end_min: u16,
}

impl Window {
    fn parse(s: &str) -> Option<Window> {
        let (a, b) = s.split_once('-')?;
        let hm = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= MIN_PER_DAY).then_some(h * 60 + m)
        };
        Some(Window {
            start_min: hm(a)?,
            end_min: hm(b)?,
        })
    }

    pub(super) fn contains(self, minute: u16) -> bool {
        if self.start_min <= self.end_min {
            minute >= self.start_min && minute < self.end_min
        } else {
            minute >= self.start_min || minute < self.end_min
        }
    }
}

/// A value of `quantity` (or its rate of change) compared with `limit`: raised while `op`
/// holds, cleared only once back past the limit by `hysteresis`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    pub quantity: Quantity,
    pub op: Op,
    pub limit: f64,
    pub hysteresis: f64,
}

impl Comparison {
    /// Whether the condition holds at `v`, given whether it is `raised` (hysteresis applies).
    pub(super) fn holds(&self, v: f64, raised: bool) -> bool {
        if raised {
            !self.op.clears(v, self.limit, self.hysteresis)
        } else {
            self.op.raises(v, self.limit)
        }
    }
}

/// What a rule looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// The value itself against the limit.
    Threshold(Comparison),
    State {
        quantity: Quantity,
        equals: bool,
    },
    /// Rate of change per minute between consecutive readings against the limit (per minute).
    Rate(Comparison),
    Offline {
        interval_factor: f64,
    },
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// None = every component type.
    pub component_type: Option<String>,
    pub event_type: Arc<str>,
    pub severity: Severity,
    pub kind: RuleKind,
    pub for_ns: i64,
    pub guard: Option<Quantity>,
    /// (window, true = raise only inside, false = raise only outside).
    pub window: Option<(Window, bool)>,
}

impl Rule {
    pub(super) fn quantity(&self) -> Option<Quantity> {
        match self.kind {
            RuleKind::Threshold(Comparison { quantity, .. })
            | RuleKind::State { quantity, .. }
            | RuleKind::Rate(Comparison { quantity, .. }) => Some(quantity),
            RuleKind::Offline { .. } => None,
        }
    }
}

/// The validated rule set.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub settings: Settings,
    pub rules: Vec<Rule>,
    /// The `edge_offline` rule, if the file has one (at most one): `edge.offline` per edge and
    /// the suppression of its sensors' `device.offline` (`crate::topology`).
    pub edge_offline: Option<EdgeOfflineRule>,
    /// The `source_offline` rule, if the file has one (at most one): `source.offline` per
    /// source an edge reports down, and the suppression of the sensors behind it.
    pub source_offline: Option<SourceOfflineRule>,
}

impl RuleSet {
    /// Loads and validates a rules file; errors name the file, rule and field.
    pub fn load(path: &Path) -> Result<RuleSet, RulesError> {
        let (text, name) = config_file::read(path)?;
        RuleSet::parse(&text, &name)
    }

    /// The defaults shipped in `config/rules.toml`, compiled in so the hub runs without config.
    pub fn defaults() -> RuleSet {
        RuleSet::parse(DEFAULT_RULES, "config/rules.toml (built in)")
            .expect("the built-in rules file is valid (tested)")
    }

    /// The text of the built-in rules file (to derive variants from).
    pub fn defaults_text() -> &'static str {
        DEFAULT_RULES
    }

    pub fn parse(text: &str, path: &str) -> Result<RuleSet, RulesError> {
        let file: RulesFile = config_file::parse_toml(text, path)?;
        let mut rules = Vec::new();
        let mut edge_offline = None;
        let mut source_offline = None;
        for (i, rc) in file.rules.iter().enumerate() {
            if !rc.enabled {
                continue;
            }
            if rc.kind == EDGE_OFFLINE_KIND {
                let rule = EdgeOfflineRule::validate(rc, i + 1, path)?;
                if edge_offline.replace(rule).is_some() {
                    return Err(invalid(
                        rc,
                        i + 1,
                        path,
                        "kind",
                        "only one edge_offline rule",
                    ));
                }
                continue;
            }
            if rc.kind == SOURCE_OFFLINE_KIND {
                let rule = SourceOfflineRule::validate(rc, i + 1, path)?;
                if source_offline.replace(rule).is_some() {
                    return Err(invalid(
                        rc,
                        i + 1,
                        path,
                        "kind",
                        "only one source_offline rule",
                    ));
                }
                continue;
            }
            rules.push(validate(rc, i + 1, path)?);
        }
        Ok(RuleSet {
            settings: file.settings,
            rules,
            edge_offline,
            source_offline,
        })
    }
}

/// The default rules file, kept in the repo at `config/rules.toml`.
pub const DEFAULT_RULES: &str = include_str!("../../../../config/rules.toml");

/// The `kind` of the rule that raises `edge.offline`.
pub const EDGE_OFFLINE_KIND: &str = "edge_offline";

/// The `kind` of the rule that raises `source.offline`.
pub const SOURCE_OFFLINE_KIND: &str = "source_offline";

/// `field` of rule #`index` is invalid for `reason`.
fn invalid(
    rc: &RuleConfig,
    index: usize,
    path: &str,
    field: &'static str,
    reason: impl Into<String>,
) -> RulesError {
    RulesError::Invalid {
        path: path.to_string(),
        index,
        event: rc.event.clone(),
        field,
        reason: reason.into(),
    }
}

/// The validated `edge_offline` rule: an edge is offline on its last will (or an offline
/// status), or once no status came for `status_interval_s × interval_factor`.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeOfflineRule {
    pub severity: Severity,
    /// Silence allowed before an edge that was heard online counts as offline, ns.
    pub silence_ns: i64,
}

impl EdgeOfflineRule {
    fn validate(rc: &RuleConfig, index: usize, path: &str) -> Result<EdgeOfflineRule, RulesError> {
        let bad = |field, reason: &str| invalid(rc, index, path, field, reason);
        if rc.event != crate::topology::EDGE_OFFLINE_EVENT {
            return Err(bad("event", "edge_offline rules raise edge.offline"));
        }
        if rc.component_type != "edge" {
            return Err(bad(
                "component_type",
                "edge_offline rules apply to \"edge\"",
            ));
        }
        let other = rc.quantity.is_some()
            || rc.op.is_some()
            || rc.value.is_some()
            || rc.for_s > 0
            || rc.while_true.is_some()
            || rc.permitted_hours.is_some()
            || rc.active_hours.is_some();
        if other {
            return Err(bad(
                "kind",
                "edge_offline takes only severity, interval_factor, status_interval_s",
            ));
        }
        let factor = rc.interval_factor.unwrap_or(3.0);
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(bad("interval_factor", "must be ≥ 1"));
        }
        let interval = rc.status_interval_s.unwrap_or(5.0);
        if !(interval.is_finite() && interval > 0.0 && interval <= 86_400.0) {
            return Err(bad("status_interval_s", "must be > 0 and ≤ 86400"));
        }
        Ok(EdgeOfflineRule {
            severity: rc.severity,
            silence_ns: (interval * factor * NS_PER_S as f64) as i64,
        })
    }
}

/// The validated `source_offline` rule: a source (Modbus line or slave) is down while its
/// edge's status lists it; the rule sets the event's severity.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOfflineRule {
    pub severity: Severity,
}

impl SourceOfflineRule {
    fn validate(
        rc: &RuleConfig,
        index: usize,
        path: &str,
    ) -> Result<SourceOfflineRule, RulesError> {
        let bad = |field, reason: &str| invalid(rc, index, path, field, reason);
        if rc.event != crate::topology::SOURCE_OFFLINE_EVENT {
            return Err(bad("event", "source_offline rules raise source.offline"));
        }
        if rc.component_type != "edge" {
            return Err(bad(
                "component_type",
                "source_offline rules apply to \"edge\"",
            ));
        }
        let fields: [(&'static str, bool); 9] = [
            ("quantity", rc.quantity.is_some()),
            ("op", rc.op.is_some()),
            ("value", rc.value.is_some()),
            ("for_s", rc.for_s > 0),
            ("while_true", rc.while_true.is_some()),
            ("permitted_hours", rc.permitted_hours.is_some()),
            ("active_hours", rc.active_hours.is_some()),
            ("interval_factor", rc.interval_factor.is_some()),
            ("status_interval_s", rc.status_interval_s.is_some()),
        ];
        if let Some((field, _)) = fields.iter().find(|(_, set)| *set) {
            return Err(bad(
                *field,
                "source_offline takes only severity (a source is down while its edge says so)",
            ));
        }
        Ok(SourceOfflineRule {
            severity: rc.severity,
        })
    }
}

fn validate(rc: &RuleConfig, index: usize, path: &str) -> Result<Rule, RulesError> {
    let bad = |field: &'static str, reason: String| invalid(rc, index, path, field, reason);
    let quantity = |field: &'static str, name: &Option<String>| -> Result<Quantity, RulesError> {
        let name = name
            .as_deref()
            .ok_or_else(|| bad(field, "required for this kind".into()))?;
        Quantity::from_name(name).map_err(|_| bad(field, format!("unknown quantity {name:?}")))
    };
    let op = || -> Result<Op, RulesError> {
        let s = rc
            .op
            .as_deref()
            .ok_or_else(|| bad("op", "required (>, >=, <, <=)".into()))?;
        Op::parse(s).ok_or_else(|| bad("op", format!("{s:?} is not one of >, >=, <, <=")))
    };
    let value = || -> Result<f64, RulesError> {
        rc.value
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad("value", "required, a finite number".into()))
    };
    if rc.status_interval_s.is_some() {
        return Err(bad(
            "status_interval_s",
            "only for kind = \"edge_offline\"".into(),
        ));
    }
    if rc.hysteresis < 0.0 || !rc.hysteresis.is_finite() {
        return Err(bad("hysteresis", "must be ≥ 0".into()));
    }
    let comparison = || -> Result<Comparison, RulesError> {
        Ok(Comparison {
            quantity: quantity("quantity", &rc.quantity)?,
            op: op()?,
            limit: value()?,
            hysteresis: rc.hysteresis,
        })
    };
    let kind = match rc.kind.as_str() {
        "threshold" => RuleKind::Threshold(comparison()?),
        "state" => {
            let q = quantity("quantity", &rc.quantity)?;
            if !q.is_bool() {
                return Err(bad("quantity", format!("{} is not boolean", q.name())));
            }
            RuleKind::State {
                quantity: q,
                equals: rc.equals.unwrap_or(true),
            }
        }
        "rate" => RuleKind::Rate(comparison()?),
        "offline" => {
            if rc.event != OFFLINE_EVENT {
                return Err(bad("event", format!("offline rules raise {OFFLINE_EVENT}")));
            }
            let f = rc.interval_factor.unwrap_or(3.0);
            if !(f.is_finite() && f >= 1.0) {
                return Err(bad("interval_factor", "must be ≥ 1".into()));
            }
            RuleKind::Offline { interval_factor: f }
        }
        other => {
            return Err(bad(
                "kind",
                format!(
                    "{other:?} is not one of threshold, state, rate, offline, edge_offline, \
                     source_offline"
                ),
            ))
        }
    };
    let guard = match &rc.while_true {
        None => None,
        Some(_) => {
            let q = quantity("while_true", &rc.while_true)?;
            if !q.is_bool() {
                return Err(bad("while_true", format!("{} is not boolean", q.name())));
            }
            Some(q)
        }
    };
    let window = match (&rc.permitted_hours, &rc.active_hours) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "permitted_hours",
                "use either permitted_hours or active_hours".into(),
            ))
        }
        (Some(p), None) => Some((
            Window::parse(p)
                .ok_or_else(|| bad("permitted_hours", format!("{p:?} is not HH:MM-HH:MM")))?,
            false,
        )),
        (None, Some(a)) => Some((
            Window::parse(a)
                .ok_or_else(|| bad("active_hours", format!("{a:?} is not HH:MM-HH:MM")))?,
            true,
        )),
        (None, None) => None,
    };
    Ok(Rule {
        component_type: (rc.component_type != "*").then(|| rc.component_type.clone()),
        event_type: Arc::from(rc.event.as_str()),
        severity: rc.severity,
        kind,
        for_ns: i64::try_from(rc.for_s)
            .ok()
            .and_then(|s| s.checked_mul(NS_PER_S))
            .ok_or_else(|| bad("for_s", "too large".into()))?,
        guard,
        window,
    })
}
