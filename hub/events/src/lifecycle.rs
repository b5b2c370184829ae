//! The closed loop: which action moves an event from which status to which.
//!
//! open → acknowledged → dispatched (to a department) → in_progress → resolved → closed,
//! and `reopen` from resolved or closed back to open. A dispatched event may be re-dispatched
//! to another department. Everything else is refused with the list of allowed actions.

use crate::model::Status;
use serde::Deserialize;

/// An action a person (or the platform) takes on an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    Dispatch,
    Start,
    Resolve,
    Close,
    Reopen,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Acknowledge,
        Action::Dispatch,
        Action::Start,
        Action::Resolve,
        Action::Close,
        Action::Reopen,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Dispatch => "dispatch",
            Action::Start => "start",
            Action::Resolve => "resolve",
            Action::Close => "close",
            Action::Reopen => "reopen",
        }
    }

    pub fn from_name(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// The status an action leads to from `from`, or None when the action is not allowed there.
pub fn next(from: Status, action: Action) -> Option<Status> {
    use Action as A;
    use Status as S;
    Some(match (from, action) {
        (S::Open, A::Acknowledge) => S::Acknowledged,
        (S::Acknowledged, A::Dispatch) | (S::Dispatched, A::Dispatch) => S::Dispatched,
        (S::Dispatched, A::Start) => S::InProgress,
        (S::InProgress, A::Resolve) => S::Resolved,
        (S::Resolved, A::Close) => S::Closed,
        (S::Resolved, A::Reopen) | (S::Closed, A::Reopen) => S::Open,
        _ => return None,
    })
}

/// The actions allowed from a status (what a 409 names).
pub fn allowed(from: Status) -> Vec<&'static str> {
    Action::ALL
        .into_iter()
        .filter(|a| next(from, *a).is_some())
        .map(Action::name)
        .collect()
}

/// Deadlines per severity, counted from the moment the hub registers the case.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Deadlines {
    /// Default 2 h.
    pub critical_s: u64,
    /// Default 24 h.
    pub major_s: u64,
    /// Default 72 h.
    pub minor_s: u64,
    /// Default 7 days.
    pub info_s: u64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            critical_s: 2 * 3600,
            major_s: 24 * 3600,
            minor_s: 72 * 3600,
            info_s: 7 * 24 * 3600,
        }
    }
}

impl Deadlines {
    pub fn for_severity(&self, s: crate::model::Severity) -> i64 {
        use crate::model::Severity as V;
        let secs = match s {
            V::Critical => self.critical_s,
            V::Major => self.major_s,
            V::Minor => self.minor_s,
            V::Info => self.info_s,
        };
        i64::try_from(secs).unwrap_or(i64::MAX / 1_000_000_000) * 1_000_000_000
    }
}
