//! Seed import and export as CSV, the format of `config/registry/*.csv`.
//!
//! An import runs in ONE transaction: the first bad row aborts it with
//! `file:line: field: reason` and nothing is half-imported. Rows are upserts keyed by id,
//! so importing the same seed twice changes nothing. Files are read in dependency order
//! (regions, departments, classes, grid cells, edges, components, sensors); a row may only
//! reference rows of earlier files or earlier lines. Edge credentials and API tokens are
//! never exported: they are issued with `hub edge add` / `hub token add`.

use super::model::ComponentInput;
use super::sqlite::{upsert_component, validate_component, SqliteRegistry};
use super::RegistryError;
use protocol::seed_csv::SeedTable;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A seed file: its name, its columns in export order, and which must be present.
struct Table {
    file: &'static str,
    columns: &'static [&'static str],
    required: &'static [&'static str],
}

const REGIONS: Table = Table {
    file: "regions.csv",
    columns: &["code", "name_zh", "name_en"],
    required: &["code", "name_zh"],
};
const DEPARTMENTS: Table = Table {
    file: "departments.csv",
    columns: &["id", "name", "duty", "contact"],
    required: &["id", "name"],
};
const CLASSES: Table = Table {
    file: "classes.csv",
    columns: &[
        "code",
        "major",
        "name_zh",
        "name_en",
        "sensor_type",
        "default_owner",
        "source",
    ],
    required: &["code", "major", "name_zh", "sensor_type"],
};
const GRID_CELLS: Table = Table {
    file: "grid_cells.csv",
    columns: &[
        "id", "name", "parent", "lat_min", "lon_min", "lat_max", "lon_max",
    ],
    required: &["id", "name"],
};
const EDGES: Table = Table {
    file: "edges.csv",
    columns: &["id", "name", "site"],
    required: &["id"],
};
const COMPONENTS: Table = Table {
    file: "components.csv",
    columns: &[
        "id",
        "type",
        "name",
        "address",
        "lat",
        "lon",
        "grid_cell",
        "owner_department",
        "maintainer_department",
        "status",
    ],
    required: &["id"],
};
const SENSORS: Table = Table {
    file: "sensors.csv",
    columns: protocol::seed_csv::SENSOR_COLUMNS,
    required: &["id"],
};

/// Import order = dependency order.
const TABLES: [&Table; 7] = [
    &REGIONS,
    &DEPARTMENTS,
    &CLASSES,
    &GRID_CELLS,
    &EDGES,
    &COMPONENTS,
    &SENSORS,
];

/// A refused seed row: `file:line: field: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub file: String,
    pub line: u64,
    pub field: String,
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.field, self.reason
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{0}")]
    Row(RowError),
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{dir}: no seed files (expected some of {expected})")]
    Empty { dir: PathBuf, expected: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// How many rows of each file were imported or exported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedSummary {
    pub files: Vec<(String, usize)>,
}

impl fmt::Display for SeedSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .files
            .iter()
            .map(|(file, n)| format!("{file}: {n}"))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// One data row with its line number and columns by name.
struct Row<'a> {
    file: &'a str,
    line: u64,
    values: HashMap<&'a str, String>,
}

impl Row<'_> {
    fn err(&self, field: &str, reason: impl Into<String>) -> SeedError {
        SeedError::Row(RowError {
            file: self.file.to_string(),
            line: self.line,
            field: field.to_string(),
            reason: reason.into(),
        })
    }

    /// The trimmed value, `None` if the column is absent or empty.
    fn opt(&self, col: &str) -> Option<String> {
        self.values
            .get(col)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    fn req(&self, col: &str) -> Result<String, SeedError> {
        self.opt(col)
            .ok_or_else(|| self.err(col, "required, is empty"))
    }

    fn text(&self, col: &str) -> String {
        self.opt(col).unwrap_or_default()
    }

    fn float(&self, col: &str) -> Result<Option<f64>, SeedError> {
        self.opt(col)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| self.err(col, format!("{v:?} is not a number")))
            })
            .transpose()
    }

    fn digits(&self, col: &str, n: usize) -> Result<String, SeedError> {
        let v = self.req(col)?;
        if v.len() != n || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.err(col, format!("{v:?} must be {n} digits")));
        }
        Ok(v)
    }

    /// A reference to `table.key`: must exist already (earlier file or earlier line).
    fn reference(
        &self,
        conn: &Connection,
        col: &str,
        table: &str,
        what: &str,
    ) -> Result<Option<String>, SeedError> {
        let Some(v) = self.opt(col) else {
            return Ok(None);
        };
        let found = conn
            .query_row(
                &format!("SELECT 1 FROM {table} WHERE id = ?1"),
                [&v],
                |_| Ok(()),
            )
            .optional()
            .map_err(|e| RegistryError::Db(e.to_string()))?;
        if found.is_none() {
            return Err(self.err(col, format!("unknown {what} {v:?}")));
        }
        Ok(Some(v))
    }
}

fn dbe(e: rusqlite::Error) -> SeedError {
    SeedError::Registry(RegistryError::Db(e.to_string()))
}

/// Imports every seed file present in `dir` into `reg` in one transaction.
pub fn import_dir(reg: &dyn super::RegistryAdmin, dir: &Path) -> Result<SeedSummary, SeedError> {
    reg.import_seed(dir)
}

/// Writes every seed table of `reg` to `dir` (created if needed) in the import format.
pub fn export_dir(reg: &dyn super::RegistryAdmin, dir: &Path) -> Result<SeedSummary, SeedError> {
    reg.export_seed(dir)
}

/// The seed files present in `dir`, in import order, with their text.
type SeedFiles = Vec<(&'static Table, PathBuf, String)>;

fn read_seed_files(dir: &Path) -> Result<SeedFiles, SeedError> {
    let mut present = Vec::new();
    for table in TABLES {
        let path = dir.join(table.file);
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| SeedError::Io {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            present.push((table, path, text));
        }
    }
    if present.is_empty() {
        return Err(SeedError::Empty {
            dir: dir.to_path_buf(),
            expected: TABLES.map(|t| t.file).join(", "),
        });
    }
    Ok(present)
}

pub(super) fn import_into_sqlite(
    reg: &SqliteRegistry,
    dir: &Path,
) -> Result<SeedSummary, SeedError> {
    let present = read_seed_files(dir)?;
    reg.write(|tx| {
        let mut summary = SeedSummary::default();
        for (table, path, text) in &present {
            let n = import_table(tx, table, &path.display().to_string(), text)?;
            summary.files.push((table.file.to_string(), n));
        }
        Ok(summary)
    })
}

fn import_table(
    conn: &Connection,
    table: &Table,
    file: &str,
    text: &str,
) -> Result<usize, SeedError> {
    let header_err = |field: &str, reason: String| {
        SeedError::Row(RowError {
            file: file.to_string(),
            line: 1,
            field: field.to_string(),
            reason,
        })
    };
    let parsed = SeedTable::parse(text).map_err(|e| {
        SeedError::Row(RowError {
            file: file.to_string(),
            line: e.line,
            field: if e.line <= 1 { "header" } else { "row" }.to_string(),
            reason: e.reason,
        })
    })?;
    let mut names: Vec<&'static str> = Vec::with_capacity(parsed.columns().len());
    for h in parsed.columns() {
        let Some(col) = table.columns.iter().find(|c| **c == h) else {
            return Err(header_err(
                h,
                format!("unknown column (expected {})", table.columns.join(",")),
            ));
        };
        names.push(col);
    }
    for req in table.required {
        if !names.contains(req) {
            return Err(header_err(req, "missing column".to_string()));
        }
    }
    let mut n = 0;
    for rec in parsed.rows() {
        if rec.len() != names.len() {
            return Err(SeedError::Row(RowError {
                file: file.to_string(),
                line: rec.line,
                field: "row".to_string(),
                reason: format!(
                    "found record with {} fields, but the header has {}",
                    rec.len(),
                    names.len()
                ),
            }));
        }
        let row = Row {
            file,
            line: rec.line,
            values: names
                .iter()
                .copied()
                .zip(rec.values().map(str::to_string))
                .collect(),
        };
        import_row(conn, table, &row)?;
        n += 1;
    }
    Ok(n)
}

fn import_row(conn: &Connection, table: &Table, row: &Row<'_>) -> Result<(), SeedError> {
    match table.file {
        "regions.csv" => {
            let code = row.digits("code", 6)?;
            conn.execute(
                "INSERT INTO regions(code, name_zh, name_en) VALUES (?1, ?2, ?3)
                 ON CONFLICT(code) DO UPDATE SET name_zh = excluded.name_zh,
                     name_en = excluded.name_en",
                params![code, row.req("name_zh")?, row.text("name_en")],
            )
            .map_err(dbe)?;
        }
        "departments.csv" => {
            let id = row.req("id")?;
            conn.execute(
                "INSERT INTO departments(id, name, duty, contact) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, duty = excluded.duty,
                     contact = excluded.contact",
                params![id, row.req("name")?, row.text("duty"), row.text("contact")],
            )
            .map_err(dbe)?;
        }
        "classes.csv" => import_class(conn, row)?,
        "grid_cells.csv" => import_grid_cell(conn, row)?,
        "edges.csv" => {
            let id = row.req("id")?;
            conn.execute(
                "INSERT INTO edges(id, name, site) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, site = excluded.site",
                params![id, row.text("name"), row.text("site")],
            )
            .map_err(dbe)?;
        }
        "components.csv" => import_component(conn, row)?,
        "sensors.csv" => import_sensor(conn, row)?,
        other => {
            return Err(row.err("file", format!("no importer for {other}")));
        }
    }
    Ok(())
}

/// A component class (部件小类); its code starts with its major class.
fn import_class(conn: &Connection, row: &Row<'_>) -> Result<(), SeedError> {
    let code = row.digits("code", 4)?;
    let major = row.digits("major", 2)?;
    if code[..2] != major {
        return Err(row.err(
            "major",
            format!(
                "{major:?} differs from the class code's first two digits {:?}",
                &code[..2]
            ),
        ));
    }
    let owner = row.reference(conn, "default_owner", "departments", "department")?;
    conn.execute(
        "INSERT INTO component_classes(code, major, name_zh, name_en, sensor_type,
                                       default_owner, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(code) DO UPDATE SET major = excluded.major,
             name_zh = excluded.name_zh, name_en = excluded.name_en,
             sensor_type = excluded.sensor_type, default_owner = excluded.default_owner,
             source = excluded.source",
        params![
            code,
            major,
            row.req("name_zh")?,
            row.text("name_en"),
            row.req("sensor_type")?,
            owner,
            row.text("source")
        ],
    )
    .map_err(dbe)?;
    Ok(())
}

/// A grid cell (单元网格); parents come before their children.
fn import_grid_cell(conn: &Connection, row: &Row<'_>) -> Result<(), SeedError> {
    let id = row.req("id")?;
    let parent = row.reference(
        conn,
        "parent",
        "grid_cells",
        "grid cell (a parent must be listed before its children)",
    )?;
    conn.execute(
        "INSERT INTO grid_cells(id, name, parent, lat_min, lon_min, lat_max, lon_max)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, parent = excluded.parent,
             lat_min = excluded.lat_min, lon_min = excluded.lon_min,
             lat_max = excluded.lat_max, lon_max = excluded.lon_max",
        params![
            id,
            row.req("name")?,
            parent,
            row.float("lat_min")?,
            row.float("lon_min")?,
            row.float("lat_max")?,
            row.float("lon_max")?
        ],
    )
    .map_err(dbe)?;
    Ok(())
}

/// A component (部件), validated as the API validates it.
fn import_component(conn: &Connection, row: &Row<'_>) -> Result<(), SeedError> {
    let id = row.req("id")?;
    let status = match row.opt("status") {
        None => None,
        Some(s) => Some(super::ComponentStatus::from_name(&s).ok_or_else(|| {
            row.err(
                "status",
                format!("{s:?} is not one of normal, alarm, offline, maintenance"),
            )
        })?),
    };
    let input = ComponentInput {
        id: Some(id.clone()),
        component_type: row.opt("type"),
        name: row.opt("name"),
        address: row.opt("address"),
        lat: row.float("lat")?,
        lon: row.float("lon")?,
        grid_cell: row.opt("grid_cell"),
        owner_department: row.opt("owner_department"),
        maintainer_department: row.opt("maintainer_department"),
        status,
    };
    let c = validate_component(conn, &id, &input).map_err(|e| match e {
        RegistryError::Field { field, reason } => row.err(&field, reason),
        other => SeedError::Registry(other),
    })?;
    upsert_component(conn, &c)?;
    Ok(())
}

/// A sensor on a component, read by an edge.
fn import_sensor(conn: &Connection, row: &Row<'_>) -> Result<(), SeedError> {
    let id = row.req("id")?;
    let component = row.reference(conn, "component_id", "components", "component")?;
    let edge = row.reference(conn, "edge", "edges", "edge")?;
    let interval_s = match row.opt("interval_s") {
        None => 60,
        Some(v) => v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            row.err(
                "interval_s",
                format!("{v:?} is not a positive whole number of seconds"),
            )
        })?,
    };
    conn.execute(
        "INSERT INTO sensors(id, component_id, type, profile, address, interval_s, edge,
                             calibration)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(id) DO UPDATE SET component_id = excluded.component_id,
             type = excluded.type, profile = excluded.profile,
             address = excluded.address, interval_s = excluded.interval_s,
             edge = excluded.edge, calibration = excluded.calibration",
        params![
            id,
            component,
            row.text("type"),
            row.text("profile"),
            row.text("address"),
            interval_s,
            edge,
            row.text("calibration")
        ],
    )
    .map_err(dbe)?;
    Ok(())
}

/// The SELECT that exports a table in its column order; NULLs become empty cells.
fn export_query(table: &Table) -> String {
    let (name, key) = match table.file {
        "regions.csv" => ("regions", "code"),
        "departments.csv" => ("departments", "id"),
        "classes.csv" => ("component_classes", "code"),
        "grid_cells.csv" => ("grid_cells", "id"),
        "edges.csv" => ("edges", "id"),
        "components.csv" => ("components", "id"),
        _ => ("sensors", "id"),
    };
    // Grid cells: parents before children, so the export imports again.
    let order = if name == "grid_cells" {
        "(parent IS NOT NULL), id".to_string()
    } else {
        key.to_string()
    };
    format!(
        "SELECT {} FROM {name} ORDER BY {order}",
        table.columns.join(", ")
    )
}

fn cell(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        // Rust prints the shortest string that parses back to the same f64.
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => hex::encode(b),
    }
}

pub(super) fn export_from_sqlite(
    reg: &SqliteRegistry,
    dir: &Path,
) -> Result<SeedSummary, SeedError> {
    std::fs::create_dir_all(dir).map_err(|e| SeedError::Io {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    // One read transaction for a consistent snapshot across files.
    reg.write(|tx| {
        let mut summary = SeedSummary::default();
        for table in TABLES {
            let path = dir.join(table.file);
            let io = |e: &dyn fmt::Display| SeedError::Io {
                path: path.clone(),
                reason: e.to_string(),
            };
            let mut w = csv::Writer::from_path(&path).map_err(|e| io(&e))?;
            w.write_record(table.columns).map_err(|e| io(&e))?;
            let mut st = tx.prepare(&export_query(table)).map_err(dbe)?;
            let mut rows = st.query([]).map_err(dbe)?;
            let mut n = 0;
            while let Some(r) = rows.next().map_err(dbe)? {
                let mut rec = Vec::with_capacity(table.columns.len());
                for i in 0..table.columns.len() {
                    rec.push(cell(r.get_ref(i).map_err(dbe)?));
                }
                w.write_record(&rec).map_err(|e| io(&e))?;
                n += 1;
            }
            w.flush().map_err(|e| io(&e))?;
            summary.files.push((table.file.to_string(), n));
        }
        Ok(summary)
    })
}
