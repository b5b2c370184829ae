//! A component's status follows its events.

use crate::model::{Event, Status};
use crate::rules::OFFLINE_EVENT;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Operational state of a component, derived from its events ([`component_status`]). The one
/// type for it: the hub's registry stores and serves this same enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    Normal,
    Alarm,
    Offline,
    Maintenance,
}

impl ComponentStatus {
    pub const ALL: [ComponentStatus; 4] = [
        ComponentStatus::Normal,
        ComponentStatus::Alarm,
        ComponentStatus::Offline,
        ComponentStatus::Maintenance,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            ComponentStatus::Normal => "normal",
            ComponentStatus::Alarm => "alarm",
            ComponentStatus::Offline => "offline",
            ComponentStatus::Maintenance => "maintenance",
        }
    }

    pub fn from_name(s: &str) -> Option<ComponentStatus> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// Derives status from a component's active (not closed) events, strongest first:
/// `offline` while a `device.offline` condition holds; `alarm` while any other condition holds
/// and nobody is working on it yet (open / acknowledged); `maintenance` while a case is being
/// handled (dispatched / in progress); else `normal` (a resolved case awaits only verification).
pub fn component_status(active: &[Event]) -> ComponentStatus {
    let holding = |e: &&Event| e.status != Status::Closed && e.cleared_at_ns.is_none();
    if active
        .iter()
        .filter(holding)
        .any(|e| e.event_type == OFFLINE_EVENT)
    {
        return ComponentStatus::Offline;
    }
    if active
        .iter()
        .filter(holding)
        .any(|e| matches!(e.status, Status::Open | Status::Acknowledged))
    {
        return ComponentStatus::Alarm;
    }
    if active.iter().any(|e| {
        matches!(e.status, Status::Dispatched | Status::InProgress) && e.event_type != OFFLINE_EVENT
    }) {
        return ComponentStatus::Maintenance;
    }
    ComponentStatus::Normal
}
