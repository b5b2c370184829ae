//! The event as every channel sees it: one JSON shape for REST, SSE, webhooks and MQTT.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::ToSchema;

/// How urgent an event is; each severity has its own deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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
    /// A catalogue quantity name, `silence_s` for `device.offline`, `edge_offline` for
    /// `edge.offline`, `source_offline` for `source.offline`.
    pub quantity: String,
    /// A number, or a boolean for boolean quantities; for `edge.offline` an object:
    /// `edge_id`, `cause` (`offline_status`, `silence`, `online_status` when cleared),
    /// `sensors_behind` and `sensors` (those whose `device.offline` it holds back, ≤ 1000 named);
    /// for `source.offline` likewise with `source`, `cause` `reported_down`/`reported_up`, and
    /// `ignored_sensors`/`ignored` (named by the edge but not its own).
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
        serde_json::to_value(EventJson::from(self)).expect("an event serializes")
    }
}

/// One event (事件/案件): the same JSON in REST, SSE, webhooks and MQTT.
#[derive(Debug, Serialize, ToSchema)]
// The wire shape of [`Event`]; the OpenAPI schema `Event`.
#[schema(as = Event)]
pub struct EventJson<'a> {
    pub id: i64,
    /// Increments on every change (idempotency key with `id`).
    pub version: i64,
    /// A registry component id; `edge:<edge_id>` for `edge.offline`;
    /// `edge:<edge_id>/<source>` (`modbus:<line>` or `modbus:<line>/<unit>`) for `source.offline`.
    pub component_id: &'a str,
    /// A catalogue event type (`config/rules.toml`, e.g. `manhole.displaced`), `device.offline`
    /// (a sensor silent past its allowance), `edge.offline` (an edge's last will or silence;
    /// holds back the `device.offline` of the sensors behind it) or `source.offline` (a Modbus
    /// line or slave its edge reports down; holds back those of the edge's sensors behind it).
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub severity: Severity,
    pub status: Status,
    /// RFC 3339.
    pub raised_at: String,
    pub cleared_at: Option<String>,
    pub count: i64,
    /// Assigned by `dispatch`.
    pub department: Option<&'a str>,
    pub deadline: String,
    pub overdue: bool,
    /// Raised from a late backlog (true time kept).
    pub late: bool,
    pub trigger: TriggerJson<'a>,
}

/// What raised the event.
#[derive(Debug, Serialize, ToSchema)]
// The wire shape of [`Trigger`]; the OpenAPI schema `EventTrigger`.
#[schema(as = EventTrigger)]
pub struct TriggerJson<'a> {
    /// A catalogue quantity; `silence_s` for `device.offline`, `edge_offline` for `edge.offline`,
    /// `source_offline` for `source.offline`.
    pub quantity: &'a str,
    /// A number, or a boolean for boolean quantities. For `edge.offline` an object: `edge_id`,
    /// `cause` (`offline_status`, `silence`; `online_status` when cleared), `sensors_behind`,
    /// `sensors` (held back, ≤ 1000 named). For `source.offline` an object: `edge_id`, `source`,
    /// `cause` (`reported_down`; `reported_up` when cleared), `sensors_behind`, `sensors`,
    /// `ignored_sensors` and `ignored` (named by the edge but not its own: not held back).
    #[schema(value_type = Value)]
    pub value: &'a Json,
    pub threshold: Option<f64>,
    /// RFC 3339, the reading's time.
    pub ts: String,
}

impl<'a> From<&'a Event> for EventJson<'a> {
    fn from(e: &'a Event) -> Self {
        EventJson {
            id: e.id,
            version: e.version,
            component_id: &e.component_id,
            event_type: &e.event_type,
            severity: e.severity,
            status: e.status,
            raised_at: rfc3339(e.raised_at_ns),
            cleared_at: e.cleared_at_ns.map(rfc3339),
            count: e.count,
            department: e.department.as_deref(),
            deadline: rfc3339(e.deadline_ns),
            overdue: e.overdue,
            late: e.late,
            trigger: TriggerJson {
                quantity: &e.trigger.quantity,
                value: &e.trigger.value,
                threshold: e.trigger.threshold,
                ts: rfc3339(e.trigger.ts_ns),
            },
        }
    }
}

/// One row of an event's history: who did what, when, and why.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
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

/// The workspace's one clock and RFC 3339 codec (`protocol::time`): `rfc3339` formats UTC
/// nanoseconds with milliseconds, `parse_ts_ns` takes RFC 3339 (`Z` or `±HH:MM`) or Unix ms.
pub use protocol::time::{format_ms as rfc3339, now_ns, parse_ts_ns};
