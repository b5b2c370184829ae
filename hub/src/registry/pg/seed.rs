//! The seed import's writes and the export's reads on PostgreSQL; parsing, validation and the
//! CSV files are shared (`registry::seed`), so both back ends refuse the same rows with the same
//! words and export the same bytes.

use super::*;
use crate::registry::seed::{self, KnownIds, SeedRecord};
use crate::registry::validation::ClassRef;

impl PgRegistry {
    /// Imports every seed file present in `dir` in one transaction.
    pub(super) fn import_seed(&self, dir: &Path) -> Result<SeedSummary, SeedError> {
        let files = seed::read_seed_files(dir)?;
        self.write(async |tx| {
            let mut known = known_ids(tx).await?;
            let records = seed::validate(&files, &mut known)?;
            for (_, rows) in &records {
                for r in rows {
                    write_record(tx, r).await?;
                }
            }
            Ok(seed::summary(&records))
        })
    }

    /// Writes every seed table to `dir`, read in one snapshot.
    pub(super) fn export_seed(&self, dir: &Path) -> Result<SeedSummary, SeedError> {
        let tables = self.write(async |tx| {
            tx.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?;
            let mut tables = Vec::new();
            for (_, sql) in seed::export_queries() {
                let rows = tx.query(&sql, &[]).await?;
                tables.push(rows.iter().map(cells).collect::<Result<_, _>>()?);
            }
            Ok::<_, Failure<SeedError>>(tables)
        })?;
        seed::write_export(dir, tables)
    }
}

async fn known_ids(tx: &Transaction<'_>) -> Result<KnownIds, SqlError> {
    let mut ids: [Vec<String>; 5] = Default::default();
    for (sql, into) in KnownIds::ID_QUERIES.iter().zip(ids.iter_mut()) {
        *into = tx
            .query(*sql, &[])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
    }
    let classes = tx
        .query(KnownIds::CLASS_QUERY, &[])
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                ClassRef {
                    sensor_type: r.try_get(1)?,
                    default_owner: r.try_get(2)?,
                },
            ))
        })
        .collect::<Result<_, SqlError>>()?;
    Ok(KnownIds::new(ids, classes))
}

/// Upserts one validated record (keyed by its id: importing a seed twice changes nothing).
async fn write_record(tx: &Transaction<'_>, record: &SeedRecord) -> Result<(), SqlError> {
    match record {
        SeedRecord::Region {
            code,
            name_zh,
            name_en,
        } => {
            tx.execute(
                "INSERT INTO regions(code, name_zh, name_en) VALUES ($1, $2, $3)
                 ON CONFLICT(code) DO UPDATE SET name_zh = excluded.name_zh,
                     name_en = excluded.name_en",
                &[code, name_zh, name_en],
            )
            .await?;
        }
        SeedRecord::Department(d) => {
            tx.execute(
                "INSERT INTO departments(id, name, duty, contact) VALUES ($1, $2, $3, $4)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, duty = excluded.duty,
                     contact = excluded.contact",
                &[&d.id, &d.name, &d.duty, &d.contact],
            )
            .await?;
        }
        SeedRecord::Class {
            code,
            major,
            name_zh,
            name_en,
            class,
            source,
        } => {
            tx.execute(
                "INSERT INTO component_classes(code, major, name_zh, name_en, sensor_type,
                                               default_owner, source)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT(code) DO UPDATE SET major = excluded.major,
                     name_zh = excluded.name_zh, name_en = excluded.name_en,
                     sensor_type = excluded.sensor_type, default_owner = excluded.default_owner,
                     source = excluded.source",
                &[
                    code,
                    major,
                    name_zh,
                    name_en,
                    &class.sensor_type,
                    &class.default_owner,
                    source,
                ],
            )
            .await?;
        }
        SeedRecord::GridCell(g) => {
            tx.execute(
                "INSERT INTO grid_cells(id, name, parent, lat_min, lon_min, lat_max, lon_max)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, parent = excluded.parent,
                     lat_min = excluded.lat_min, lon_min = excluded.lon_min,
                     lat_max = excluded.lat_max, lon_max = excluded.lon_max",
                &[
                    &g.id, &g.name, &g.parent, &g.lat_min, &g.lon_min, &g.lat_max, &g.lon_max,
                ],
            )
            .await?;
        }
        SeedRecord::Edge { id, name, site } => {
            tx.execute(
                "INSERT INTO edges(id, name, site) VALUES ($1, $2, $3)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, site = excluded.site",
                &[id, name, site],
            )
            .await?;
        }
        SeedRecord::Component(c) => components::store_component(tx, c, true).await?,
        SeedRecord::Sensor {
            sensor,
            calibration,
        } => sensors::upsert_sensor(tx, sensor, Some(calibration)).await?,
    }
    Ok(())
}

/// A row's cells as the export writes them: the same text SQLite's export gives (NULL empty,
/// integers in decimal, floats in Rust's shortest round-tripping form).
fn cells(r: &Row) -> Result<Vec<String>, SqlError> {
    use tokio_postgres::types::Type;
    (0..r.len())
        .map(|i| {
            let ty = r.columns()[i].type_().clone();
            Ok(if ty == Type::FLOAT8 {
                r.try_get::<_, Option<f64>>(i)?.map(|f| f.to_string())
            } else if ty == Type::INT8 {
                r.try_get::<_, Option<i64>>(i)?.map(|n| n.to_string())
            } else if ty == Type::BOOL {
                r.try_get::<_, Option<bool>>(i)?
                    .map(|b| u8::from(b).to_string())
            } else {
                r.try_get::<_, Option<String>>(i)?
            }
            .unwrap_or_default())
        })
        .collect()
}
