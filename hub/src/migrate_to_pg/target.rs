//! The PostgreSQL side: the schemas applied as the cluster's hubs apply them, what each table
//! looks like there, and whether the target already holds hub data.

use super::error::MigrateError;
use super::plan::TABLES;
use super::values::PgType;
use crate::registry::PgRegistry;
use std::sync::Arc;
use wangge_pg::{migrate, Migration, Pg, PgError};

/// The cluster's tables (members, leases, roles, batch ledger): `hub::cluster` owns them.
const CLUSTER_MIGRATIONS: &[Migration] = crate::cluster::MIGRATIONS;

/// One PostgreSQL column of a copied table.
#[derive(Debug, Clone)]
pub struct PgColumn {
    pub name: String,
    pub ty: PgType,
    /// `GENERATED … AS IDENTITY`: inserted with `OVERRIDING SYSTEM VALUE`, its sequence reset.
    pub identity: bool,
}

pub(crate) fn target_err(pg: &Pg, e: impl std::fmt::Display) -> MigrateError {
    MigrateError::Target {
        target: pg.describe().to_string(),
        reason: e.to_string(),
    }
}

/// A refused statement with what the server said about it (message, detail, table,
/// constraint), which the driver's own `Display` ("db error") leaves out.
pub(crate) fn refused(pg: &Pg, e: PgError) -> MigrateError {
    let reason = match &e {
        PgError::Db(db) => match db.as_db_error() {
            Some(d) => {
                let mut r = d.message().to_string();
                if let Some(detail) = d.detail() {
                    r.push_str(&format!(" ({detail})"));
                }
                if let Some(t) = d.table() {
                    r.push_str(&format!(", table {t}"));
                }
                if let Some(c) = d.constraint() {
                    r.push_str(&format!(", constraint {c}"));
                }
                r
            }
            None => e.to_string(),
        },
        _ => e.to_string(),
    };
    target_err(
        pg,
        format!("{reason}; nothing was copied (one transaction)"),
    )
}

/// Connects to `url`; the error names the server by `user@host:port/database` only.
pub fn connect(url: &str) -> Result<Pg, MigrateError> {
    Pg::connect(url, 1).map_err(|e| MigrateError::Target {
        target: "PostgreSQL".into(),
        reason: e.to_string(),
    })
}

/// Applies the registry, events and cluster schemas (each once, as a hub starting does).
pub fn apply_schemas(pg: &Pg) -> Result<(), MigrateError> {
    let shared = Arc::new(pg.clone());
    PgRegistry::open(shared.clone()).map_err(|e| target_err(pg, e))?;
    wangge_events::store::PgStore::open(shared, wangge_events::lifecycle::Deadlines::default())
        .map_err(|e| target_err(pg, e))?;
    migrate(pg, "cluster", CLUSTER_MIGRATIONS).map_err(|e| target_err(pg, e))?;
    Ok(())
}

/// The columns of `table` in the current schema, in table order.
pub fn columns(pg: &Pg, table: &str) -> Result<Vec<PgColumn>, MigrateError> {
    let rows = pg
        .query(
            "SELECT column_name::text, data_type::text, is_identity::text = 'YES' \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 \
             ORDER BY ordinal_position",
            &[&table],
        )
        .map_err(|e| target_err(pg, e))?;
    if rows.is_empty() {
        return Err(MigrateError::Schema(format!(
            "PostgreSQL has no table {table} (in {})",
            pg.describe()
        )));
    }
    rows.iter()
        .map(|r| {
            let name: String = r.get(0);
            let data_type: String = r.get(1);
            let ty = PgType::from_data_type(&data_type).ok_or_else(|| {
                MigrateError::Schema(format!(
                    "PostgreSQL {table}.{name} is {data_type}, a type the copy does not know"
                ))
            })?;
            Ok(PgColumn {
                name,
                ty,
                identity: r.get(2),
            })
        })
        .collect()
}

/// Refuses a target whose copied tables hold any row (a second migration, or a cluster that
/// already runs): merging two hubs' states is not what this command does.
pub fn ensure_empty(pg: &Pg) -> Result<(), MigrateError> {
    let mut holding = Vec::new();
    for table in TABLES.iter().map(|t| t.pg).chain([super::blobs::TABLE]) {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {table})");
        let row = pg.query(&sql, &[]).map_err(|e| target_err(pg, e))?;
        if row.first().map(|r| r.get::<_, bool>(0)).unwrap_or(false) {
            holding.push(table);
        }
    }
    if holding.is_empty() {
        return Ok(());
    }
    Err(MigrateError::TargetNotEmpty {
        target: pg.describe().to_string(),
        detail: format!("{} already hold rows", holding.join(", ")),
    })
}

/// Rows of `table` now.
pub fn count(pg: &Pg, table: &str) -> Result<i64, PgError> {
    let row = pg.query(&format!("SELECT COUNT(*) FROM {table}"), &[])?;
    Ok(row.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0))
}
