//! The event as every channel sees it: one JSON shape for REST, SSE, webhooks and MQTT.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use std::time::{Duration, UNIX_EPOCH};

/// How urgent an event is; each severity has its own deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Info,
}

impl Severity {
    pub const fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Major => "major",
            Severity::Minor => "minor",
            Severity::Info => "info",
        }
    }

    pub fn from_name(s: &str) -> Option<Severity> {
        [
            Severity::Critical,
            Severity::Major,
            Severity::Minor,
            Severity::Info,
        ]
        .into_iter()
        .find(|v| v.name() == s)
    }
}

/// Where an event stands in the closed loop (CJJ/T 106 steps mapped onto states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Acknowledged,
    Dispatched,
    InProgress,
    Resolved,
    Closed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Open,
        Status::Acknowledged,
        Status::Dispatched,
        Status::InProgress,
        Status::Resolved,
        Status::Closed,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Dispatched => "dispatched",
            Status::InProgress => "in_progress",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    pub fn from_name(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|v| v.name() == s)
    }
}

/// What set off an event: the reading (or silence) and the threshold it crossed.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// A catalogue quantity name, or `silence_s` for `device.offline`.
    pub quantity: String,
    /// A number, or a boolean for boolean quantities.
    pub value: Json,
    pub threshold: Option<f64>,
    /// The reading's own timestamp (UTC ns), not the time it arrived.
    pub ts_ns: i64,
}

/// One event (事件/案件) as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    /// Increments on every change: (id, version) is the idempotency key for every consumer.
    pub version: i64,
    pub component_id: String,
    pub event_type: String,
    pub severity: Severity,
    pub status: Status,
    /// The true time of the triggering reading, even when it arrived late.
    pub raised_at_ns: i64,
    pub cleared_at_ns: Option<i64>,
    pub count: i64,
    /// The department the event is dispatched to (None until dispatched).
    pub department: Option<String>,
    pub deadline_ns: i64,
    pub overdue: bool,
    /// Raised from a reading much older than the time it was evaluated (a backlog).
    pub late: bool,
    pub trigger: Trigger,
    /// When the hub registered the case (deadlines count from here).
    pub created_at_ns: i64,
    pub acknowledged_at_ns: Option<i64>,
    pub closed_at_ns: Option<i64>,
}

impl Event {
    /// True while the case is open in any state but `closed`: the store allows one per (component, type).
    pub fn is_active(&self) -> bool {
        self.status != Status::Closed
    }

    /// The public Event JSON of the brief.
    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id,
            "version": self.version,
            "component_id": self.component_id,
            "type": self.event_type,
            "severity": self.severity.name(),
            "status": self.status.name(),
            "raised_at": rfc3339(self.raised_at_ns),
            "cleared_at": self.cleared_at_ns.map(rfc3339),
            "count": self.count,
            "department": self.department,
            "deadline": rfc3339(self.deadline_ns),
            "overdue": self.overdue,
            "late": self.late,
            "trigger": {
                "quantity": self.trigger.quantity,
                "value": self.trigger.value,
                "threshold": self.trigger.threshold,
                "ts": rfc3339(self.trigger.ts_ns),
            },
        })
    }
}

/// One row of an event's history: who did what, when, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub at: String,
    /// `system` for rule-driven changes, else the token's user/department.
    pub actor: String,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub department: Option<String>,
    pub note: Option<String>,
}

/// One committed change of an event: the unit every delivery channel carries.
#[derive(Debug, Clone)]
pub struct Change {
    /// Monotonically increasing across the store; the SSE `id:`.
    pub cursor: i64,
    pub event: Event,
    /// The exact Event JSON written in the same transaction (webhooks sign these bytes).
    pub body: String,
}

/// Who is calling, as the hub's token store resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// User or token name, recorded in history and audit.
    pub name: String,
    /// None for admin tokens not bound to a department.
    pub department: Option<String>,
    pub scope: Scope,
}

impl Actor {
    /// The actor's label in history: `department/name` when bound to a department.
    pub fn label(&self) -> String {
        match &self.department {
            Some(d) => format!("{d}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// What a token may do: read, act on events (write), or everything including all departments (admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

/// The registry facts sharing rules look at, provided by the hub's registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComponentCtx {
    pub component_type: String,
    pub grid_cell: String,
    pub owner_department: String,
    pub maintainer_department: String,
}

/// Formats UTC nanoseconds as RFC 3339 with milliseconds.
pub fn rfc3339(ns: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses RFC 3339 (`Z` or `±HH:MM`) or Unix milliseconds into UTC nanoseconds.
pub fn parse_ts_ns(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .ok()
            .and_then(|ms| ms.checked_mul(1_000_000))
            .ok_or_else(|| format!("{s:?}: Unix milliseconds out of range"));
    }
    let bad = || format!("{s:?} is neither RFC 3339 (2024-11-25T02:00:00Z) nor Unix milliseconds");
    let (base, offset_s) = match s.get(19..).and_then(|tail| tail.rfind(['+', '-'])) {
        Some(i) => {
            let at = 19 + i;
            let off = &s[at..];
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (h, m) = off[1..].split_once(':').ok_or_else(bad)?;
            let h: i64 = h.parse().map_err(|_| bad())?;
            let m: i64 = m.parse().map_err(|_| bad())?;
            (format!("{}Z", &s[..at]), sign * (h * 3600 + m * 60))
        }
        None => (s.replace('z', "Z"), 0),
    };
    let t = humantime::parse_rfc3339(&base).map_err(|_| bad())?;
    let ns = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .map_err(|_| format!("{s:?} is before 1970"))?;
    Ok(ns - offset_s * 1_000_000_000)
}

/// Now, as UTC nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
