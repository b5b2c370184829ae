//! The registry seed CSV format (`config/registry/*.csv`, above all `sensors.csv`), read by the
//! hub (import), the edge (which sensors are its own) and the firmware simulator (what to
//! simulate): the one parser of it (needs `std`).
//!
//! A table is a header line of column names and one record per line: fields are trimmed,
//! quoted fields follow RFC 4180, blank lines and lines starting with `#` are skipped. The
//! parser checks syntax only; each caller validates the columns and values it uses and words
//! its own errors, naming the file, the line ([`SeedRow::line`]) and the field.

use std::fmt;

/// The columns of `sensors.csv`, in export order.
pub const SENSOR_COLUMNS: &[&str] = &[
    "id",
    "component_id",
    "type",
    "profile",
    "address",
    "interval_s",
    "edge",
    "calibration",
];

/// A parsed seed table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedTable {
    columns: Vec<String>,
    rows: Vec<SeedRow>,
}

/// One data record and the line it starts on (the header is line 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRow {
    pub line: u64,
    values: Vec<String>,
}

/// A syntax error the CSV reader refused, and the line it was found on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedCsvError {
    pub line: u64,
    pub reason: String,
}

impl fmt::Display for SeedCsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for SeedCsvError {}

impl SeedTable {
    /// Parses a whole file. An empty text gives a table with no columns and no rows.
    pub fn parse(text: &str) -> Result<SeedTable, SeedCsvError> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        // The line a record starts on, counted here: the reader's own count leaves out blank
        // lines, and its offset is where it began reading (before skipped blank and comment
        // lines).
        let line_at = |byte: u64| {
            let start = usize::try_from(byte).unwrap_or(usize::MAX).min(text.len());
            let mut line = text.as_bytes()[..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64
                + 1;
            for l in text.get(start..).unwrap_or("").split('\n') {
                let l = l.trim_end_matches('\r');
                if !(l.is_empty() || l.starts_with('#')) {
                    break;
                }
                line += 1;
            }
            line
        };
        let err = |e: csv::Error| SeedCsvError {
            line: e.position().map_or(1, |p| line_at(p.byte())),
            reason: e.to_string(),
        };
        let columns = rdr
            .headers()
            .map_err(err)?
            .iter()
            .map(String::from)
            .collect();
        let mut rows = Vec::new();
        for rec in rdr.records() {
            let rec = rec.map_err(err)?;
            if rec.iter().all(str::is_empty) {
                continue;
            }
            rows.push(SeedRow {
                line: rec.position().map_or(0, |p| line_at(p.byte())),
                values: rec.iter().map(String::from).collect(),
            });
        }
        Ok(SeedTable { columns, rows })
    }

    /// The header's column names, trimmed, in file order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The index of column `name`, if the header has it.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The data records, blank and comment lines left out.
    pub fn rows(&self) -> &[SeedRow] {
        &self.rows
    }
}

impl SeedRow {
    /// The trimmed field at column index `col`; `None` when the record is shorter.
    pub fn get(&self, col: usize) -> Option<&str> {
        self.values.get(col).map(String::as_str)
    }

    /// How many fields the record has (it may differ from the header's: callers decide).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True for a record without fields (never returned by [`SeedTable::parse`]).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The fields in column order.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rows_lines_and_trimming() {
        let t = SeedTable::parse(
            "id, type ,edge\n\nMH-1 , manhole_cover,e1\n# a comment\n,,\nHY-1,\"fire, hydrant\"\n",
        )
        .unwrap();
        assert_eq!(t.columns(), ["id", "type", "edge"]);
        assert_eq!(t.column("type"), Some(1));
        assert_eq!(t.column("interval_s"), None);
        let rows = t.rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].line, rows[0].get(0), rows[0].get(1)),
            (3, Some("MH-1"), Some("manhole_cover"))
        );
        assert_eq!(
            (rows[1].line, rows[1].get(1), rows[1].get(2)),
            (6, Some("fire, hydrant"), None)
        );
        assert_eq!(rows[1].len(), 2);
    }

    #[test]
    fn an_empty_file_has_no_columns() {
        let t = SeedTable::parse("").unwrap();
        assert!(t.columns().is_empty() && t.rows().is_empty());
        let t = SeedTable::parse("# only a comment\n\n").unwrap();
        assert!(t.rows().is_empty());
    }

    #[test]
    fn the_seed_sensors_csv_has_every_column() {
        let text = include_str!("../../config/registry/sensors.csv");
        let t = SeedTable::parse(text).unwrap();
        for c in t.columns() {
            assert!(SENSOR_COLUMNS.contains(&c.as_str()), "{c}");
        }
        assert_eq!(t.rows().len(), 200);
        assert!(t.rows().iter().all(|r| r.len() == t.columns().len()));
    }
}
