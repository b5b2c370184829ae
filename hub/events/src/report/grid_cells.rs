//! Where problems cluster: per grid cell, events per component and the open backlog; across
//! cells, the repeat offenders (the components with the most events).

use super::cases::Case;
use super::table::{Cell, Table};
use crate::model::Status;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How many repeat offenders the report lists.
pub const REPEAT_OFFENDERS_MAX: usize = 20;

pub const GRID_COLUMNS: &[&str] = &[
    "grid_cell",
    "components",
    "components_with_events",
    "events",
    "events_per_component",
    "open_backlog",
];

/// `components`: grid cell → registered components in it (the denominator of events per
/// component); cells with events but no known component count those with events.
pub fn grid_table(cases: &[&Case], components: &HashMap<String, BTreeSet<String>>) -> Table {
    #[derive(Default)]
    struct Cellsum {
        with_events: BTreeSet<String>,
        events: usize,
        open: usize,
    }
    let mut per: BTreeMap<String, Cellsum> = BTreeMap::new();
    for cell in components.keys() {
        per.entry(cell.clone()).or_default();
    }
    for c in cases {
        let cell = c
            .ctx
            .as_ref()
            .map(|x| x.grid_cell.clone())
            .unwrap_or_default();
        let e = per.entry(cell).or_default();
        e.with_events.insert(c.event.component_id.clone());
        e.events += 1;
        if c.event.status != Status::Closed {
            e.open += 1;
        }
    }
    let mut rows: Vec<(String, Cellsum)> = per.into_iter().collect();
    rows.sort_by(|a, b| b.1.events.cmp(&a.1.events).then(a.0.cmp(&b.0)));
    Table {
        name: "grid_cells",
        columns: GRID_COLUMNS,
        rows: rows
            .into_iter()
            .map(|(cell, s)| {
                let n = components
                    .get(&cell)
                    .map_or(0, BTreeSet::len)
                    .max(s.with_events.len());
                vec![
                    Cell::text(&cell),
                    Cell::count(n),
                    Cell::count(s.with_events.len()),
                    Cell::count(s.events),
                    Cell::Num((n > 0).then(|| s.events as f64 / n as f64)),
                    Cell::count(s.open),
                ]
            })
            .collect(),
    }
}

pub const OFFENDER_COLUMNS: &[&str] = &[
    "component_id",
    "name",
    "type",
    "grid_cell",
    "events",
    "open",
    "event_types",
];

/// The components with the most events (at least two), most first.
pub fn repeat_offenders(cases: &[&Case], names: &HashMap<String, String>) -> Table {
    /// One component's events.
    #[derive(Default)]
    struct Offender<'a> {
        events: usize,
        open: usize,
        types: BTreeSet<&'a str>,
        first: Option<&'a Case>,
    }
    let mut per: BTreeMap<&str, Offender> = BTreeMap::new();
    for c in cases {
        let e = per.entry(c.event.component_id.as_str()).or_default();
        e.events += 1;
        if c.event.status != Status::Closed {
            e.open += 1;
        }
        e.types.insert(c.event.event_type.as_str());
        e.first.get_or_insert(c);
    }
    let mut rows: Vec<_> = per.into_iter().filter(|(_, v)| v.events >= 2).collect();
    rows.sort_by(|a, b| b.1.events.cmp(&a.1.events).then(a.0.cmp(b.0)));
    rows.truncate(REPEAT_OFFENDERS_MAX);
    Table {
        name: "repeat_offenders",
        columns: OFFENDER_COLUMNS,
        rows: rows
            .into_iter()
            .map(|(id, o)| {
                let ctx = o.first.and_then(|c| c.ctx.clone()).unwrap_or_default();
                vec![
                    Cell::text(id),
                    Cell::text(names.get(id).map_or(id, String::as_str)),
                    Cell::Text(ctx.component_type),
                    Cell::Text(ctx.grid_cell),
                    Cell::count(o.events),
                    Cell::count(o.open),
                    Cell::text(o.types.into_iter().collect::<Vec<_>>().join(" ")),
                ]
            })
            .collect(),
    }
}
