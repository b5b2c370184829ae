//! Seed import and export as CSV, the format of `config/registry/*.csv`.
//!
//! An import runs in ONE transaction: the first bad row aborts it with
//! `file:line: field: reason` and nothing is half-imported. Rows are upserts keyed by id,
//! so importing the same seed twice changes nothing. Files are read in dependency order
//! (regions, departments, classes, grid cells, edges, components, sensors); a row may only
//! reference rows of earlier files or earlier lines. Edge credentials and API tokens are
//! never exported: they are issued with `hub edge add` / `hub token add`.
//!
//! Every back end shares this file's parsing and validation: an import reads the files,
//! then, in its one transaction, loads the ids the reference tables hold ([`KnownIds`]),
//! validates every row against them and the rows before it ([`validate`], which gives the same
//! `file:line: field: reason` on every back end), and only then writes the [`SeedRecord`]s.
//! An export selects with [`export_queries`] and writes the cells with [`write_export`].

use super::model::{Component, ComponentInput, Department, GridCell, Sensor};
use super::validation::{validate_component, ClassRef, ReferenceLookup};
use super::RegistryError;
use protocol::seed_csv::SeedTable;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// A seed file: its name, its columns in export order, and which must be present.
pub(super) struct Table {
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

    /// A reference to an id of `ids`: must exist already (earlier file or earlier line).
    fn reference(
        &self,
        ids: &HashSet<String>,
        col: &str,
        what: &str,
    ) -> Result<Option<String>, SeedError> {
        let Some(v) = self.opt(col) else {
            return Ok(None);
        };
        if !ids.contains(&v) {
            return Err(self.err(col, format!("unknown {what} {v:?}")));
        }
        Ok(Some(v))
    }
}

/// The ids the reference tables hold, loaded in the import's transaction and grown by each row
/// validated, so a row may refer to an earlier file or an earlier line.
#[derive(Debug, Default)]
pub(super) struct KnownIds {
    regions: HashSet<String>,
    departments: HashSet<String>,
    classes: HashMap<String, ClassRef>,
    grid_cells: HashSet<String>,
    edges: HashSet<String>,
    components: HashSet<String>,
}

impl KnownIds {
    /// The queries (the same SQL on every back end) whose first columns [`KnownIds::new`] takes, in order:
    /// regions, departments, grid cells, edges, components.
    pub(super) const ID_QUERIES: [&'static str; 5] = [
        "SELECT code FROM regions",
        "SELECT id FROM departments",
        "SELECT id FROM grid_cells",
        "SELECT id FROM edges",
        "SELECT id FROM components",
    ];
    /// (code, sensor type, default owner) of every class.
    pub(super) const CLASS_QUERY: &'static str =
        "SELECT code, sensor_type, default_owner FROM component_classes";

    pub(super) fn new(ids: [Vec<String>; 5], classes: Vec<(String, ClassRef)>) -> KnownIds {
        let [regions, departments, grid_cells, edges, components] = ids.map(HashSet::from_iter);
        KnownIds {
            regions,
            departments,
            classes: classes.into_iter().collect(),
            grid_cells,
            edges,
            components,
        }
    }
}

impl ReferenceLookup for KnownIds {
    fn region_known(&self, code: &str) -> Result<bool, RegistryError> {
        Ok(self.regions.contains(code))
    }

    fn class(&self, code: &str) -> Result<Option<ClassRef>, RegistryError> {
        Ok(self.classes.get(code).cloned())
    }

    fn grid_cell_known(&self, id: &str) -> Result<bool, RegistryError> {
        Ok(self.grid_cells.contains(id))
    }

    fn department_known(&self, id: &str) -> Result<bool, RegistryError> {
        Ok(self.departments.contains(id))
    }
}

/// A validated seed row, ready for a back end to upsert.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SeedRecord {
    Region {
        code: String,
        name_zh: String,
        name_en: String,
    },
    Department(Department),
    Class {
        code: String,
        major: String,
        name_zh: String,
        name_en: String,
        class: ClassRef,
        source: String,
    },
    GridCell(GridCell),
    Edge {
        id: String,
        name: String,
        site: String,
    },
    Component(Component),
    Sensor {
        sensor: Sensor,
        calibration: String,
    },
}

/// The records of each seed file present, in import order.
pub(super) type SeedRecords = Vec<(&'static str, Vec<SeedRecord>)>;

/// How many records each file had.
pub(super) fn summary(records: &SeedRecords) -> SeedSummary {
    SeedSummary {
        files: records
            .iter()
            .map(|(file, rows)| (file.to_string(), rows.len()))
            .collect(),
    }
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
pub(super) type SeedFiles = Vec<(&'static Table, PathBuf, String)>;

pub(super) fn read_seed_files(dir: &Path) -> Result<SeedFiles, SeedError> {
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

/// Validates every row of `files` against `known` and the rows before it; the first bad row
/// is the error. Writes nothing: the caller writes the records in the same transaction.
pub(super) fn validate(files: &SeedFiles, known: &mut KnownIds) -> Result<SeedRecords, SeedError> {
    let mut out = Vec::with_capacity(files.len());
    for (table, path, text) in files {
        let records = import_table(known, table, &path.display().to_string(), text)?;
        out.push((table.file, records));
    }
    Ok(out)
}

fn import_table(
    known: &mut KnownIds,
    table: &Table,
    file: &str,
    text: &str,
) -> Result<Vec<SeedRecord>, SeedError> {
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
    let mut records = Vec::with_capacity(parsed.rows().len());
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
        records.push(import_row(known, table, &row)?);
    }
    Ok(records)
}

fn import_row(known: &mut KnownIds, table: &Table, row: &Row<'_>) -> Result<SeedRecord, SeedError> {
    Ok(match table.file {
        "regions.csv" => {
            let code = row.digits("code", 6)?;
            known.regions.insert(code.clone());
            SeedRecord::Region {
                code,
                name_zh: row.req("name_zh")?,
                name_en: row.text("name_en"),
            }
        }
        "departments.csv" => {
            let id = row.req("id")?;
            let d = Department {
                name: row.req("name")?,
                duty: row.text("duty"),
                contact: row.text("contact"),
                id,
            };
            known.departments.insert(d.id.clone());
            SeedRecord::Department(d)
        }
        "classes.csv" => import_class(known, row)?,
        "grid_cells.csv" => import_grid_cell(known, row)?,
        "edges.csv" => {
            let id = row.req("id")?;
            known.edges.insert(id.clone());
            SeedRecord::Edge {
                id,
                name: row.text("name"),
                site: row.text("site"),
            }
        }
        "components.csv" => import_component(known, row)?,
        "sensors.csv" => import_sensor(known, row)?,
        other => {
            return Err(row.err("file", format!("no importer for {other}")));
        }
    })
}

/// A component class (部件小类); its code starts with its major class.
fn import_class(known: &mut KnownIds, row: &Row<'_>) -> Result<SeedRecord, SeedError> {
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
    let default_owner = row.reference(&known.departments, "default_owner", "department")?;
    let name_zh = row.req("name_zh")?;
    let class = ClassRef {
        sensor_type: row.req("sensor_type")?,
        default_owner,
    };
    known.classes.insert(code.clone(), class.clone());
    Ok(SeedRecord::Class {
        code,
        major,
        name_zh,
        name_en: row.text("name_en"),
        class,
        source: row.text("source"),
    })
}

/// A grid cell (单元网格); parents come before their children.
fn import_grid_cell(known: &mut KnownIds, row: &Row<'_>) -> Result<SeedRecord, SeedError> {
    let id = row.req("id")?;
    let parent = row.reference(
        &known.grid_cells,
        "parent",
        "grid cell (a parent must be listed before its children)",
    )?;
    let g = GridCell {
        id,
        name: row.req("name")?,
        parent,
        lat_min: row.float("lat_min")?,
        lon_min: row.float("lon_min")?,
        lat_max: row.float("lat_max")?,
        lon_max: row.float("lon_max")?,
    };
    known.grid_cells.insert(g.id.clone());
    Ok(SeedRecord::GridCell(g))
}

/// A component (部件), validated as the API validates it.
fn import_component(known: &mut KnownIds, row: &Row<'_>) -> Result<SeedRecord, SeedError> {
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
    let c = validate_component(known, &id, &input).map_err(|e| match e {
        RegistryError::Field { field, reason } => row.err(&field, reason),
        other => SeedError::Registry(other),
    })?;
    known.components.insert(c.id.clone());
    Ok(SeedRecord::Component(c))
}

/// A sensor on a component, read by an edge.
fn import_sensor(known: &mut KnownIds, row: &Row<'_>) -> Result<SeedRecord, SeedError> {
    let id = row.req("id")?;
    let component_id = row.reference(&known.components, "component_id", "component")?;
    let edge = row.reference(&known.edges, "edge", "edge")?;
    let interval_s = match row.opt("interval_s") {
        None => 60,
        Some(v) => v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            row.err(
                "interval_s",
                format!("{v:?} is not a positive whole number of seconds"),
            )
        })?,
    };
    Ok(SeedRecord::Sensor {
        sensor: Sensor {
            id,
            component_id,
            sensor_type: row.text("type"),
            profile: row.text("profile"),
            address: row.text("address"),
            interval_s,
            edge,
        },
        calibration: row.text("calibration"),
    })
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

/// Each seed table (its file and columns) with the SELECT that exports it (the same SQL on
/// every back end), in import order.
pub(super) fn export_queries() -> Vec<(&'static str, String)> {
    TABLES.iter().map(|t| (t.file, export_query(t))).collect()
}

/// Writes the exported cells of each table (one `Vec<String>` per row, in the order of
/// [`export_queries`]) to `dir`, created if needed. NULLs are empty cells; floats print as
/// Rust's shortest round-tripping form, so every back end writes the same bytes.
pub(super) fn write_export(
    dir: &Path,
    tables: Vec<Vec<Vec<String>>>,
) -> Result<SeedSummary, SeedError> {
    std::fs::create_dir_all(dir).map_err(|e| SeedError::Io {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut summary = SeedSummary::default();
    for (table, rows) in TABLES.iter().zip(tables) {
        let path = dir.join(table.file);
        let io = |e: &dyn fmt::Display| SeedError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        let mut w = csv::Writer::from_path(&path).map_err(|e| io(&e))?;
        w.write_record(table.columns).map_err(|e| io(&e))?;
        for rec in &rows {
            w.write_record(rec).map_err(|e| io(&e))?;
        }
        w.flush().map_err(|e| io(&e))?;
        summary.files.push((table.file.to_string(), rows.len()));
    }
    Ok(summary)
}
