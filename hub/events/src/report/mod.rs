//! The evaluation report (综合评价): how each department handled the events it received (the
//! sharing effect), where problems cluster, and which sensors are unreliable (data
//! completeness), with trends per day and week. One [`Report`] of [`Table`]s feeds the JSON,
//! the CSV (one table) and the XLSX (one sheet per table), so they always agree.
//!
//! Code map: `cases` (each event with its history's facts) → `departments`, `grid_cells`,
//! `trends` (event figures, with `daily` completeness per period) · `page` (the JSON's rows
//! per table) · `completeness` (sensor coverage from the directory, less
//! maintenance) · `table` (cells; JSON and CSV) · `xlsx` · `stats`.
//!
//! Exclusions (`exclusions`): a component is under maintenance while one of its cases is
//! dispatched or in progress (the status the hub shows, derived from its events), including
//! cases registered before the range and still open at its start; an edge is out while an
//! outage announced for it (`POST edges/{id}/outages`) lasts. Those spans come off both the
//! expected and the received side of every sensor they concern, and are shown.

mod cases;
mod completeness;
mod daily;
mod departments;
mod exclusions;
mod grid_cells;
mod page;
mod stats;
mod table;
mod trends;
mod xlsx;

pub use cases::{Case, Dispatch};
pub use completeness::{expected_reports, SensorCoverage};
pub use page::{Page, Paging, ROWS_DEFAULT, ROWS_MAX};
pub use table::{Cell, Table};
pub use xlsx::to_xlsx;

use crate::store::StoreError;
use crate::Events;
use completeness::SensorScore;
use exclusions::Exclusions;
use serde_json::Value as Json;
use std::collections::{BTreeSet, HashMap};

/// Every table the report has, in the order of the JSON, the XLSX sheets and the docs.
pub const TABLES: &[&str] = &[
    "components",
    "sensors",
    "completeness_by_type",
    "completeness_by_grid_cell",
    "completeness_by_department",
    "completeness_by_edge",
    "departments",
    "grid_cells",
    "repeat_offenders",
    "trend_daily",
    "trend_weekly",
];

/// The report over `[from_ns, to_ns)` at `now_ns`.
#[derive(Debug, Clone)]
pub struct Report {
    pub from_ns: i64,
    pub to_ns: i64,
    pub tables: Vec<Table>,
    /// What completeness does not count, with the announced outages the reader sees.
    pub exclusions: Json,
}

impl Report {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The report as a JSON value (see its [`Serialize`] form).
    pub fn to_json(&self) -> Json {
        serde_json::to_value(self).unwrap_or(Json::Null)
    }
}

/// The whole report: a [`Page`] holding every row of every table.
impl serde::Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let paging = Paging {
            offset: 0,
            limit: usize::MAX,
            table: None,
        };
        Page {
            report: self,
            paging,
        }
        .serialize(s)
    }
}

/// Builds the report over events the hub registered in `[from_ns, to_ns)` and sensor data in
/// the same range. `only` limits it to one department (a department token's view): its own
/// row, the events it receives and the components it owns or maintains.
pub fn evaluation(
    events: &Events,
    from_ns: i64,
    to_ns: i64,
    now_ns: i64,
    only: Option<&str>,
) -> Result<Report, StoreError> {
    let dir = events.directory();
    let mut all = Vec::new();
    for e in events.store().created_between(from_ns, to_ns)? {
        let ctx = dir.component(&e.component_id);
        let recipients = events.sharing().recipients(&e, ctx.as_ref());
        let history = events.store().history(e.id)?;
        all.push(Case::new(e, ctx, recipients, &history));
    }
    let excluded = Exclusions::gather(events, &all, from_ns, to_ns)?;
    let sees = |d: &str| only.is_none_or(|o| o == d);
    let scores: Vec<SensorScore> = dir
        .sensor_coverage(from_ns, to_ns, now_ns)
        .into_iter()
        .filter(|s| sees(&s.component.owner_department) || sees(&s.component.maintainer_department))
        .map(|s| {
            let maintenance = excluded.maintenance(&s.component_id);
            let outages = excluded.outages(&s.edge);
            completeness::score(s, maintenance, outages, |sensor, a, b| {
                dir.reports_between(sensor, a, b)
            })
        })
        .collect();
    let edges: BTreeSet<&str> = scores.iter().map(|s| s.cov.edge.as_str()).collect();
    let exclusions = excluded.to_json(&|e| only.is_none() || edges.contains(e));
    let cases: Vec<&Case> = all
        .iter()
        .filter(|c| only.is_none_or(|o| c.recipients.iter().any(|d| d == o)))
        .collect();
    let mut departments: BTreeSet<String> = cases
        .iter()
        .flat_map(|c| c.recipients.iter().filter(|d| sees(d)).cloned())
        .collect();
    departments.extend(only.map(str::to_string));
    let departments: Vec<String> = departments.into_iter().collect();
    let mut cells: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for s in &scores {
        cells
            .entry(s.cov.component.grid_cell.clone())
            .or_default()
            .insert(s.cov.component_id.clone());
        names
            .entry(s.cov.component_id.clone())
            .or_insert_with(|| s.cov.component_name.clone());
    }
    let mut tables = vec![
        completeness::component_table(&scores),
        completeness::sensor_table(&scores),
    ];
    tables.extend(completeness::rollup_tables(&scores));
    tables.push(departments::table(&cases, &departments, now_ns));
    tables.push(grid_cells::grid_table(&cases, &cells));
    tables.push(grid_cells::repeat_offenders(&cases, &names));
    let range = (from_ns, to_ns, now_ns);
    let daily = daily::per_day(dir.as_ref(), &scores, range, &excluded, &|d| sees(d));
    for period in [trends::Period::Day, trends::Period::Week] {
        let completeness = daily::by_period(&daily, period);
        tables.push(trends::table(
            &cases,
            &departments,
            &completeness,
            period,
            now_ns,
        ));
    }
    debug_assert_eq!(
        tables.iter().map(|t| t.name).collect::<Vec<_>>(),
        TABLES.to_vec()
    );
    Ok(Report {
        from_ns,
        to_ns,
        tables,
        exclusions,
    })
}
