//! One table made ready to copy: its SQLite columns matched one to one against the PostgreSQL
//! table's (a column on one side only is an error naming both), every value converted to its
//! PostgreSQL column's type, and the id high-water marks the sequences must be reset past.

use super::error::MigrateError;
use super::plan::{TablePlan, SEQUENCES};
use super::sqlite_source::{SqliteSource, SqliteValue};
use super::target::PgColumn;
use super::values::{convert, text, PgParam};
use std::collections::BTreeSet;

/// A sequence to move past the copied ids: `setval(sequence, high)`.
#[derive(Debug, Clone)]
pub enum SequenceReset {
    /// The identity column `column` of the table.
    Identity { column: String, high: i64 },
    /// A named sequence.
    Named { sequence: &'static str, high: i64 },
}

/// A table ready for the insert.
pub struct PreparedTable {
    pub plan: TablePlan,
    /// PostgreSQL column names, in the order of each row's parameters.
    pub columns: Vec<String>,
    pub rows: Vec<Vec<PgParam>>,
    /// Whether the table has an identity column (the insert overrides it).
    pub identity: bool,
    pub resets: Vec<SequenceReset>,
}

/// Matches the columns of `plan`'s SQLite table (`source`) to `pg` and converts its rows.
/// `source` is `None` when the SQLite file does not exist: an empty table.
pub fn prepare(
    plan: TablePlan,
    source: Option<&SqliteSource>,
    pg: &[PgColumn],
) -> Result<PreparedTable, MigrateError> {
    let Some(source) = source else {
        return Ok(PreparedTable {
            plan,
            columns: Vec::new(),
            rows: Vec::new(),
            identity: false,
            resets: Vec::new(),
        });
    };
    let data = source.rows(plan.sqlite)?;
    if data.columns.is_empty() {
        return Err(MigrateError::Schema(format!(
            "{} has no table {} (a schema older than this build: start and stop the hub once \
             with this build to migrate it)",
            source.path().display(),
            plan.sqlite
        )));
    }
    // Each SQLite column's PostgreSQL column.
    let mut targets = Vec::with_capacity(data.columns.len());
    for c in &data.columns {
        let name = plan.pg_column(c);
        let col = pg.iter().find(|p| p.name == name).ok_or_else(|| {
            MigrateError::Schema(format!(
                "SQLite {}.{c} has no PostgreSQL column {}.{name}",
                plan.sqlite, plan.pg
            ))
        })?;
        targets.push(col.clone());
    }
    let matched: BTreeSet<&str> = targets.iter().map(|c| c.name.as_str()).collect();
    let constant: BTreeSet<&str> = plan.constant.iter().map(|(c, _)| *c).collect();
    for p in pg {
        let name = p.name.as_str();
        if !matched.contains(name) && !constant.contains(name) && !plan.pg_only.contains(&name) {
            return Err(MigrateError::Schema(format!(
                "PostgreSQL {}.{name} has no SQLite column in {}.{}",
                plan.pg,
                source.path().display(),
                plan.sqlite
            )));
        }
    }
    let mut rows = Vec::with_capacity(data.rows.len());
    for (i, row) in data.rows.iter().enumerate() {
        let mut params = Vec::with_capacity(row.len() + plan.constant.len());
        for (v, col) in row.iter().zip(&targets) {
            params.push(convert(v, col.ty).map_err(|reason| MigrateError::Value {
                table: plan.sqlite.into(),
                column: col.name.clone(),
                row: i + 1,
                reason,
            })?);
        }
        params.extend(plan.constant.iter().map(|(_, v)| text(v)));
        rows.push(params);
    }
    let sequences = source.sequences()?;
    let recorded = sequences.get(plan.sqlite).copied().unwrap_or(0);
    let mut resets = Vec::new();
    for (i, col) in targets.iter().enumerate() {
        let high = max_integer(&data.rows, i).max(recorded);
        if col.identity {
            resets.push(SequenceReset::Identity {
                column: col.name.clone(),
                high,
            });
        }
        if let Some((_, _, sequence)) = SEQUENCES
            .iter()
            .find(|(t, c, _)| *t == plan.pg && *c == col.name)
        {
            resets.push(SequenceReset::Named { sequence, high });
        }
    }
    let mut columns: Vec<String> = targets.into_iter().map(|c| c.name).collect();
    columns.extend(plan.constant.iter().map(|(c, _)| c.to_string()));
    Ok(PreparedTable {
        plan,
        identity: pg.iter().any(|c| c.identity),
        columns,
        rows,
        resets,
    })
}

/// The largest integer in column `i` (0 when there is none).
fn max_integer(rows: &[Vec<SqliteValue>], i: usize) -> i64 {
    rows.iter()
        .filter_map(|r| match r.get(i) {
            Some(SqliteValue::Integer(v)) => Some(*v),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}
