//! One page of the report's JSON: at most `limit` rows of each table from `offset` on (or of
//! one table), with every table's full row count in `totals`. At district scale the full
//! report is tens of MB (100k components, 100k sensors); the page asks for the first rows and
//! pages on, the CSV and XLSX downloads still hold every row.

use super::table::Table;
use super::{Report, TABLES};
use crate::model::rfc3339;
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::collections::BTreeMap;

/// Rows per table when the query does not say.
pub const ROWS_DEFAULT: usize = 1000;
/// Most rows per table one page holds.
pub const ROWS_MAX: usize = 10_000;

/// Which rows of which tables a page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging<'a> {
    pub offset: usize,
    pub limit: usize,
    /// Only this table (one of [`TABLES`]); None: all of them.
    pub table: Option<&'a str>,
}

impl Default for Paging<'_> {
    fn default() -> Self {
        Paging {
            offset: 0,
            limit: ROWS_DEFAULT,
            table: None,
        }
    }
}

/// `report` as the page `paging` asks for: `from`, `to`, `tables`, `exclusions`, `offset`,
/// `limit`, `totals` (rows per table), then one array per table holding its rows
/// `offset..offset + limit`.
pub struct Page<'a> {
    pub report: &'a Report,
    pub paging: Paging<'a>,
}

/// The rows `paging` keeps of `t`, serialized as the table is.
struct Rows<'a>(&'a Table, usize, usize);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_rows(self.1, self.2, s)
    }
}

impl Serialize for Page<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.report;
        let p = self.paging;
        let tables: Vec<&Table> = r
            .tables
            .iter()
            .filter(|t| p.table.is_none_or(|n| n == t.name))
            .collect();
        let totals: BTreeMap<&str, usize> =
            r.tables.iter().map(|t| (t.name, t.rows.len())).collect();
        let mut map = s.serialize_map(Some(7 + tables.len()))?;
        map.serialize_entry("from", &rfc3339(r.from_ns))?;
        map.serialize_entry("to", &rfc3339(r.to_ns))?;
        map.serialize_entry("tables", TABLES)?;
        map.serialize_entry("exclusions", &r.exclusions)?;
        map.serialize_entry("offset", &p.offset)?;
        map.serialize_entry("limit", &p.limit)?;
        map.serialize_entry("totals", &totals)?;
        for t in tables {
            map.serialize_entry(t.name, &Rows(t, p.offset, p.limit))?;
        }
        map.end()
    }
}
