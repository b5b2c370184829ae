//! The seed import's writes and the export's reads on SQLite; parsing, validation and the CSV
//! files are shared (`registry::seed`).

use super::*;
use crate::registry::seed::{self, KnownIds, SeedRecord};
use crate::registry::validation::ClassRef;

impl SqliteRegistry {
    /// Imports every seed file present in `dir` in one write transaction.
    pub(super) fn import_seed(&self, dir: &Path) -> Result<SeedSummary, SeedError> {
        let files = seed::read_seed_files(dir)?;
        self.write(|tx| {
            let mut known = known_ids(tx).map_err(db)?;
            let records = seed::validate(&files, &mut known)?;
            for (_, rows) in &records {
                for r in rows {
                    write_record(tx, r)?;
                }
            }
            Ok(seed::summary(&records))
        })
    }

    /// Writes every seed table to `dir`, read in one transaction (a consistent snapshot).
    pub(super) fn export_seed(&self, dir: &Path) -> Result<SeedSummary, SeedError> {
        let tables = self.write(|tx| {
            let mut tables = Vec::new();
            for (_, sql) in seed::export_queries() {
                tables.push(export_rows(tx, &sql).map_err(db)?);
            }
            Ok::<_, SeedError>(tables)
        })?;
        seed::write_export(dir, tables)
    }
}

fn known_ids(conn: &Connection) -> rusqlite::Result<KnownIds> {
    let mut ids: [Vec<String>; 5] = Default::default();
    for (sql, into) in KnownIds::ID_QUERIES.iter().zip(ids.iter_mut()) {
        let mut st = conn.prepare(sql)?;
        *into = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    }
    let mut st = conn.prepare(KnownIds::CLASS_QUERY)?;
    let classes = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                ClassRef {
                    sensor_type: r.get(1)?,
                    default_owner: r.get(2)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok(KnownIds::new(ids, classes))
}

/// Upserts one validated record (keyed by its id: importing a seed twice changes nothing).
fn write_record(conn: &Connection, record: &SeedRecord) -> Result<(), RegistryError> {
    match record {
        SeedRecord::Region {
            code,
            name_zh,
            name_en,
        } => conn.execute(
            "INSERT INTO regions(code, name_zh, name_en) VALUES (?1, ?2, ?3)
             ON CONFLICT(code) DO UPDATE SET name_zh = excluded.name_zh,
                 name_en = excluded.name_en",
            params![code, name_zh, name_en],
        ),
        SeedRecord::Department(d) => conn.execute(
            "INSERT INTO departments(id, name, duty, contact) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, duty = excluded.duty,
                 contact = excluded.contact",
            params![d.id, d.name, d.duty, d.contact],
        ),
        SeedRecord::Class {
            code,
            major,
            name_zh,
            name_en,
            class,
            source,
        } => conn.execute(
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
                name_zh,
                name_en,
                class.sensor_type,
                class.default_owner,
                source
            ],
        ),
        SeedRecord::GridCell(g) => conn.execute(
            "INSERT INTO grid_cells(id, name, parent, lat_min, lon_min, lat_max, lon_max)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, parent = excluded.parent,
                 lat_min = excluded.lat_min, lon_min = excluded.lon_min,
                 lat_max = excluded.lat_max, lon_max = excluded.lon_max",
            params![g.id, g.name, g.parent, g.lat_min, g.lon_min, g.lat_max, g.lon_max],
        ),
        SeedRecord::Edge { id, name, site } => conn.execute(
            "INSERT INTO edges(id, name, site) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, site = excluded.site",
            params![id, name, site],
        ),
        SeedRecord::Component(c) => return upsert_component(conn, c),
        SeedRecord::Sensor {
            sensor: s,
            calibration,
        } => conn.execute(
            "INSERT INTO sensors(id, component_id, type, profile, address, interval_s, edge,
                                 calibration)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET component_id = excluded.component_id,
                 type = excluded.type, profile = excluded.profile,
                 address = excluded.address, interval_s = excluded.interval_s,
                 edge = excluded.edge, calibration = excluded.calibration",
            params![
                s.id,
                s.component_id,
                s.sensor_type,
                s.profile,
                s.address,
                s.interval_s,
                s.edge,
                calibration
            ],
        ),
    }
    .map(|_| ())
    .map_err(db)
}

/// Every row of `sql` as export cells.
fn export_rows(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<Vec<String>>> {
    let mut st = conn.prepare(sql)?;
    let columns = st.column_count();
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut rec = Vec::with_capacity(columns);
        for i in 0..columns {
            rec.push(cell(r.get_ref(i)?));
        }
        out.push(rec);
    }
    Ok(out)
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
