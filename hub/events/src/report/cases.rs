//! Each event of the report's range with what its history tells: who dispatched it where and
//! when the receiver acted, whether it was reopened, and when its component was under
//! maintenance because of it.

use crate::model::{parse_ts_ns, ComponentCtx, Event, HistoryEntry, Status};
use crate::rules::OFFLINE_EVENT;

/// A dispatch (派遣) found in an event's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    pub at_ns: i64,
    /// The dispatching actor's department; None for the system or an admin without one.
    pub by: Option<String>,
    /// The receiving department.
    pub to: String,
    /// The receiver's first action on the event after the dispatch, if any.
    pub receiver_acted_ns: Option<i64>,
}

/// One event and its history's facts.
#[derive(Debug, Clone)]
pub struct Case {
    pub event: Event,
    pub ctx: Option<ComponentCtx>,
    /// Departments that see the event (sharing rules).
    pub recipients: Vec<String>,
    pub dispatches: Vec<Dispatch>,
    /// Resolved or closed at least once.
    pub ever_resolved: bool,
    pub reopened: bool,
    /// Spans the component was under maintenance for this event (dispatched or in progress;
    /// not for an offline event, whose silence must not excuse itself). An open span ends
    /// at `i64::MAX`.
    pub maintenance: Vec<(i64, i64)>,
}

/// The department of a history actor label (`department/name`); None for `system` or an
/// admin without a department.
fn actor_department(actor: &str) -> Option<&str> {
    actor.split_once('/').map(|(d, _)| d)
}

impl Case {
    pub fn new(
        event: Event,
        ctx: Option<ComponentCtx>,
        recipients: Vec<String>,
        history: &[HistoryEntry],
    ) -> Case {
        let entries: Vec<(i64, &HistoryEntry)> = history
            .iter()
            .filter_map(|h| parse_ts_ns(&h.at).ok().map(|t| (t, h)))
            .collect();
        let mut dispatches = Vec::new();
        for (i, (at, h)) in entries.iter().enumerate() {
            if h.action != "dispatch" {
                continue;
            }
            let Some(to) = h.department.clone() else {
                continue;
            };
            let receiver_acted_ns = entries[i + 1..]
                .iter()
                .find(|(_, later)| actor_department(&later.actor) == Some(to.as_str()))
                .map(|(t, _)| *t);
            dispatches.push(Dispatch {
                at_ns: *at,
                by: actor_department(&h.actor).map(str::to_string),
                to,
                receiver_acted_ns,
            });
        }
        let resolved = |s: &str| s == Status::Resolved.name() || s == Status::Closed.name();
        let ever_resolved = entries.iter().any(|(_, h)| resolved(&h.to_status));
        let reopened = entries.iter().any(|(_, h)| h.action == "reopen");
        let maintenance = if event.event_type == OFFLINE_EVENT {
            Vec::new()
        } else {
            maintenance_spans(&entries)
        };
        Case {
            event,
            ctx,
            recipients,
            dispatches,
            ever_resolved,
            reopened,
            maintenance,
        }
    }

    /// Dispatches by `department` to another one.
    pub fn onward_by<'a>(&'a self, department: &'a str) -> impl Iterator<Item = &'a Dispatch> {
        self.dispatches
            .iter()
            .filter(move |d| d.by.as_deref() == Some(department) && d.to != department)
    }
}

fn maintenance_spans(entries: &[(i64, &HistoryEntry)]) -> Vec<(i64, i64)> {
    let working = |s: &str| s == Status::Dispatched.name() || s == Status::InProgress.name();
    let mut spans = Vec::new();
    let mut since: Option<i64> = None;
    for (at, h) in entries {
        match (since, working(&h.to_status)) {
            (None, true) => since = Some(*at),
            (Some(s), false) => {
                spans.push((s, *at));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        spans.push((s, i64::MAX));
    }
    spans
}
