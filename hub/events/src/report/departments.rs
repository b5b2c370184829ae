//! Per department, the sharing effect: what it received and how it handled it.

use super::cases::Case;
use super::stats::{p50_p90, ratio, secs};
use super::table::{Cell, Table};
use crate::model::{Event, Status};

pub const COLUMNS: &[&str] = &[
    "department",
    "events_received",
    "acknowledged",
    "dispatched_onward",
    "closed",
    "closed_on_time",
    "on_time_closure_rate",
    "overdue",
    "overdue_now",
    "reopened",
    "reopened_rate",
    "time_to_acknowledge_s.p50",
    "time_to_acknowledge_s.p90",
    "time_to_close_s.p50",
    "time_to_close_s.p90",
    "onward_acted",
    "onward_response_s.p50",
    "onward_response_s.p90",
];

/// Overdue: past the deadline and not closed, or closed after the deadline.
pub fn overdue(e: &Event, now_ns: i64) -> bool {
    match e.closed_at_ns {
        Some(c) => c > e.deadline_ns,
        None => e.overdue || now_ns > e.deadline_ns && e.status != Status::Resolved,
    }
}

/// Overdue now: still open (not resolved or closed) past its deadline.
pub fn overdue_now(e: &Event, now_ns: i64) -> bool {
    e.closed_at_ns.is_none()
        && !matches!(e.status, Status::Resolved | Status::Closed)
        && (e.overdue || now_ns > e.deadline_ns)
}

/// Closed within its deadline.
pub fn closed_on_time(e: &Event) -> bool {
    e.closed_at_ns.is_some_and(|c| c <= e.deadline_ns)
}

/// One row per department in `departments`, over the cases it received.
pub fn table(cases: &[&Case], departments: &[String], now_ns: i64) -> Table {
    let rows = departments
        .iter()
        .map(|d| {
            row(
                d,
                cases.iter().copied().filter(|c| c.recipients.contains(d)),
                now_ns,
            )
        })
        .collect();
    Table {
        name: "departments",
        columns: COLUMNS,
        rows,
    }
}

fn row<'a>(department: &str, cases: impl Iterator<Item = &'a Case>, now_ns: i64) -> Vec<Cell> {
    let cases: Vec<&Case> = cases.collect();
    let events = || cases.iter().map(|c| &c.event);
    let ack: Vec<f64> = events()
        .filter_map(|e| e.acknowledged_at_ns.map(|a| secs(a - e.created_at_ns)))
        .collect();
    let close: Vec<f64> = events()
        .filter_map(|e| e.closed_at_ns.map(|c| secs(c - e.created_at_ns)))
        .collect();
    let closed = close.len() as u64;
    let on_time = events().filter(|e| closed_on_time(e)).count() as u64;
    let onward: Vec<_> = cases.iter().flat_map(|c| c.onward_by(department)).collect();
    let dispatched_onward = cases
        .iter()
        .filter(|c| c.onward_by(department).next().is_some())
        .count();
    let response: Vec<f64> = onward
        .iter()
        .filter_map(|d| d.receiver_acted_ns.map(|t| secs(t - d.at_ns)))
        .collect();
    let reopened = cases.iter().filter(|c| c.reopened).count() as u64;
    let resolved_once = cases.iter().filter(|c| c.ever_resolved).count() as u64;
    let acked = ack.len();
    let onward_acted = response.len();
    let (ack50, ack90) = p50_p90(ack);
    let (close50, close90) = p50_p90(close);
    let (resp50, resp90) = p50_p90(response);
    vec![
        Cell::text(department),
        Cell::count(cases.len()),
        Cell::count(acked),
        Cell::count(dispatched_onward),
        Cell::Int(closed as i64),
        Cell::Int(on_time as i64),
        Cell::Num(ratio(on_time, closed)),
        Cell::count(events().filter(|e| overdue(e, now_ns)).count()),
        Cell::count(events().filter(|e| overdue_now(e, now_ns)).count()),
        Cell::Int(reopened as i64),
        Cell::Num(ratio(reopened, resolved_once)),
        Cell::Num(ack50),
        Cell::Num(ack90),
        Cell::Num(close50),
        Cell::Num(close90),
        Cell::count(onward_acted),
        Cell::Num(resp50),
        Cell::Num(resp90),
    ]
}
