//! Registry entities as the API and the CSV seed see them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Operational state of a component: the events engine's type, which derives it from the
/// component's events (one type, no mapping).
pub use wangge_events::status::ComponentStatus;

/// A registered component (部件), identified by its GB/T 30428-style code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Component {
    /// 16-digit code: region (6) + major class (2) + minor class (2) + serial (6).
    #[schema(example = "1201110101000001")]
    pub id: String,
    /// Sensor type of the component's class, e.g. `manhole_cover`.
    #[serde(rename = "type")]
    pub component_type: String,
    pub name: String,
    pub address: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub grid_cell: Option<String>,
    /// 权属单位.
    pub owner_department: Option<String>,
    /// 养护单位.
    pub maintainer_department: Option<String>,
    pub status: ComponentStatus,
}

/// Body of `POST components` and `PUT components/{id}`. Omitted fields get defaults from the
/// component's class: `type` its sensor type, `owner_department` its default owner,
/// `maintainer_department` the owner, `status` normal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentInput {
    /// Required by `POST`; in `PUT` optional and, if given, equal to the path's id.
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub component_type: Option<String>,
    pub name: Option<String>,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub grid_cell: Option<String>,
    pub owner_department: Option<String>,
    pub maintainer_department: Option<String>,
    pub status: Option<ComponentStatus>,
}

/// Filters of `GET components`; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComponentFilter {
    pub component_type: Option<String>,
    pub grid_cell: Option<String>,
    /// Matches owner or maintainer department.
    pub department: Option<String>,
    pub status: Option<ComponentStatus>,
    /// Keyset cursor: only ids strictly greater.
    pub after: Option<String>,
    pub limit: usize,
}

/// One page of a list: `next` is the cursor of the following page, `None` on the last.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Cuts a `limit + 1` query result to a page; the extra row only says there is a next
    /// page, whose cursor is the last item's key.
    pub(super) fn cut(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Page<T> {
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(key)
        } else {
            None
        };
        Page { items, next }
    }
}

/// A registered sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Sensor {
    pub id: String,
    pub component_id: Option<String>,
    #[serde(rename = "type")]
    pub sensor_type: String,
    pub profile: String,
    pub address: String,
    pub interval_s: i64,
    pub edge: Option<String>,
}

/// An edge box as the API shows it (never its credentials).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Edge {
    pub id: String,
    pub name: String,
    pub site: String,
    pub online: bool,
    /// RFC 3339, when the hub last heard from the edge.
    pub last_seen: Option<String>,
    pub version: String,
    pub backlog_readings: u64,
    pub backlog_bytes: u64,
    /// True once `hub edge add` issued a secret.
    pub has_credentials: bool,
    pub revoked: bool,
    /// Readings the edge reported lost (gaps: buffer full, crash recovery), all time.
    pub readings_lost: u64,
}

/// A sensor that sent readings but is not registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UnassignedSensor {
    pub sensor_id: String,
    pub edge_id: String,
    pub first_seen: String,
    pub last_seen: String,
    /// How many batches carried readings of this sensor.
    pub seen_count: u64,
}

/// What an API token may do. Ordered: admin ⊃ write ⊃ read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub const fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn from_name(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// Who is calling: resolved from a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token id (`admin` for the configured admin token).
    pub token_id: String,
    pub department: Option<String>,
    pub scope: Scope,
}

/// Counts for `GET stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegistryStats {
    pub components: u64,
    pub components_by_status: std::collections::BTreeMap<String, u64>,
    pub components_by_type: std::collections::BTreeMap<String, u64>,
    pub sensors: u64,
    pub sensors_unassigned: u64,
    pub edges: u64,
    pub edges_online: u64,
    pub departments: u64,
    pub grid_cells: u64,
}

/// A grid cell (网格): street or community level; `parent` is the enclosing cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GridCell {
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
    /// Bounding box, when known (the map draws it).
    pub lat_min: Option<f64>,
    pub lon_min: Option<f64>,
    pub lat_max: Option<f64>,
    pub lon_max: Option<f64>,
}

/// A department (部门) that owns, maintains or receives what is shared with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Department {
    pub id: String,
    pub name: String,
    pub duty: String,
    pub contact: String,
}

/// What rule evaluation needs about a sensor attached to a component.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorContext {
    pub sensor_id: String,
    pub component_id: String,
    pub component_type: String,
    /// Expected reporting interval (offline detection).
    pub interval_s: u32,
}

/// Body of `PUT sensors/{id}`: registers a sensor or (re)attaches it to a component.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SensorInput {
    /// The component it measures; null leaves it registered but unattached.
    pub component_id: Option<String>,
    #[serde(rename = "type")]
    pub sensor_type: Option<String>,
    /// Edge profile (vendor dialect), e.g. `gridsense`.
    pub profile: Option<String>,
    /// Transport address on the edge (serial port, MQTT topic part, …).
    pub address: Option<String>,
    /// Expected reporting interval, seconds. Default 60.
    pub interval_s: Option<i64>,
    /// The edge it reports through.
    pub edge: Option<String>,
}

/// An attached sensor as the evaluation report's completeness sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CoverageSensor {
    pub sensor_id: String,
    pub component_id: String,
    pub component_name: String,
    pub component_type: String,
    pub grid_cell: String,
    pub owner_department: String,
    pub maintainer_department: String,
    /// The edge the sensor reports through; empty if not known.
    pub edge: String,
    /// Expected reporting interval, seconds (> 0 by the schema).
    pub interval_s: u32,
    /// When it was registered (SQLite migration 0007, PostgreSQL 0002); None for sensors
    /// registered before it.
    pub registered_at_ns: Option<i64>,
}
