//! A report table as rows of cells, with one writer per format: JSON (an array of objects),
//! CSV and XLSX read the same cells, so an export cannot disagree with the page.

use crate::model::rfc3339;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value as Json;

/// One value of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    /// A ratio or a duration; None where there is nothing to measure (no case closed, …).
    Num(Option<f64>),
    /// UTC nanoseconds, written as RFC 3339; None if unknown.
    Time(Option<i64>),
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    pub fn count(n: usize) -> Cell {
        Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }

    pub fn to_json(&self) -> Json {
        match self {
            Cell::Text(s) => Json::from(s.as_str()),
            Cell::Int(n) => Json::from(*n),
            Cell::Num(v) => v.map_or(Json::Null, Json::from),
            Cell::Time(t) => t.map_or(Json::Null, |t| Json::from(rfc3339(t))),
        }
    }

    /// The CSV field (empty for a missing value).
    pub fn to_csv_field(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Num(v) => v
                .map(|v| {
                    format!("{:.4}", v)
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                        .to_string()
                })
                .unwrap_or_default(),
            Cell::Time(t) => t.map(rfc3339).unwrap_or_default(),
        }
    }
}

/// One table of the report: `columns` name the cells of every row, in order. A column named
/// `a.b` is the field `b` of the object `a` in JSON, and keeps its dotted name in CSV/XLSX.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The `table=` name of the CSV export and the XLSX sheet name.
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// The rows as JSON objects (the [`Serialize`] form, as a value).
    pub fn to_json(&self) -> Json {
        serde_json::to_value(self).unwrap_or(Json::Null)
    }

    /// RFC 4180 CSV with a header row, CRLF line ends; fields quoted when they need it. A field
    /// starting with `=`, `+`, `-` or `@` that is text gets a leading `'`, so a spreadsheet
    /// opening the file does not run it as a formula (names come from operators' input).
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, fields: &mut dyn Iterator<Item = String>| {
            let mut first = true;
            for f in fields {
                if !first {
                    out.push(',');
                }
                first = false;
                if f.contains([',', '"', '\n', '\r']) {
                    out.push('"');
                    out.push_str(&f.replace('"', "\"\""));
                    out.push('"');
                } else {
                    out.push_str(&f);
                }
            }
            out.push_str("\r\n");
        };
        line(&mut out, &mut self.columns.iter().map(|c| c.to_string()));
        for row in &self.rows {
            line(
                &mut out,
                &mut row.iter().map(|c| match c {
                    Cell::Text(s) if s.starts_with(['=', '+', '-', '@']) => format!("'{s}"),
                    c => c.to_csv_field(),
                }),
            );
        }
        out
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Text(t) => s.serialize_str(t),
            Cell::Int(n) => s.serialize_i64(*n),
            Cell::Num(v) => v.serialize(s),
            Cell::Time(t) => t.map(rfc3339).serialize(s),
        }
    }
}

/// A table serializes as an array of objects, keys in column order, written straight to the
/// output (a 100k-row report is not built as a tree of maps first).
impl Serialize for Table {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize_rows(0, self.rows.len(), s)
    }
}

impl Table {
    /// At most `limit` rows from `offset` on, serialized as [`Table`]'s array of objects.
    pub fn serialize_rows<S: Serializer>(
        &self,
        offset: usize,
        limit: usize,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let rows = self.rows.iter().skip(offset).take(limit);
        let mut seq = s.serialize_seq(Some(rows.len()))?;
        for row in rows {
            seq.serialize_element(&Fields {
                columns: self.columns,
                cells: row,
            })?;
        }
        seq.end()
    }
}

/// One row's (or one nested object's) fields: columns `a.b`, `a.c` next to each other become
/// the object `a` with `b` and `c`.
struct Fields<'a> {
    columns: &'a [&'a str],
    cells: &'a [Cell],
}

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        let mut i = 0;
        while i < self.columns.len().min(self.cells.len()) {
            match self.columns[i].split_once('.') {
                Some((outer, _)) => {
                    let prefix = format!("{outer}.");
                    let n = self.columns[i..]
                        .iter()
                        .take_while(|c| c.starts_with(&prefix))
                        .count();
                    let inner: Vec<&str> = self.columns[i..i + n]
                        .iter()
                        .map(|c| &c[prefix.len()..])
                        .collect();
                    let cells = &self.cells[i..(i + n).min(self.cells.len())];
                    map.serialize_entry(
                        outer,
                        &Fields {
                            columns: &inner,
                            cells,
                        },
                    )?;
                    i += n;
                }
                None => {
                    map.serialize_entry(self.columns[i], &self.cells[i])?;
                    i += 1;
                }
            }
        }
        map.end()
    }
}
