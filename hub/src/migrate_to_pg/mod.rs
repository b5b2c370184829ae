//! `hub migrate --from DATA_DIR --to postgres://…`: a single-node hub's state moved into the
//! PostgreSQL a cluster runs on, without loss.
//!
//! The hub must be stopped (a live `-wal` file is refused, see [`sqlite_source`]). Then:
//! 1. the SQLite files are opened read-only and every table they have must have a place in
//!    [`plan::TABLES`] (or be bookkeeping, [`plan::NOT_COPIED`]);
//! 2. the PostgreSQL schemas are applied as a hub applies them (registry, events, cluster) and
//!    a target that already holds hub data is refused;
//! 3. each table's columns are matched one to one and its values converted ([`prepare`]), all
//!    before the target is written, and the photos' bytes under `<data_dir>/attachments/` read
//!    and their hashes checked ([`blobs`]);
//! 4. everything is inserted in one transaction with its ids (the photos' bytes into the
//!    cluster's blob store), and the sequences reset past them ([`copy`]); the counts are
//!    verified after the commit.
//!
//! Readings are not copied: they live in the time-series store (see hub/README.md, "Moving a
//! single-node hub into a cluster"). Every table is read into memory before the copy: the
//! registry and event state of one district, not its readings.

mod blobs;
mod copy;
pub mod error;
mod plan;
mod prepare;
mod sqlite_source;
mod target;
mod values;

pub use error::MigrateError;
pub use plan::SINGLE_NODE_HUB_ID;

use crate::config::HubConfig;
use plan::{SourceFile, NOT_COPIED, TABLES};
use sqlite_source::SqliteSource;
use std::path::PathBuf;

/// Where the single node keeps each SQLite file.
#[derive(Debug, Clone)]
pub struct Sources {
    pub registry: PathBuf,
    pub events: PathBuf,
    pub dedup: PathBuf,
    /// The photos' bytes (the filesystem blob store), `<data_dir>/attachments`.
    pub attachments: PathBuf,
}

impl Sources {
    /// The files under their default names in a single node's data dir `dir`.
    pub fn in_data_dir(dir: &std::path::Path) -> Sources {
        let mut cfg = HubConfig {
            data_dir: dir.to_path_buf(),
            ..HubConfig::default()
        };
        cfg.resolve_paths();
        Sources::of(&cfg)
    }

    /// The files of the hub configured by `cfg` (paths resolved, as `serve` opens them).
    pub fn of(cfg: &HubConfig) -> Sources {
        Sources {
            registry: cfg.registry_path(),
            events: cfg.data_dir.join("events.db"),
            dedup: cfg.ingest.data_dir.join("ingest.sqlite"),
            attachments: cfg.data_dir.join("attachments"),
        }
    }
}

/// What was copied: rows per table, and the target named without its password.
#[derive(Debug, Clone)]
pub struct Summary {
    pub target: String,
    pub tables: Vec<(&'static str, usize)>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "migrated into {} (verified):", self.target)?;
        for (table, rows) in &self.tables {
            writeln!(f, "  {table:<20} {rows:>8} rows")?;
        }
        Ok(())
    }
}

struct Opened {
    registry: SqliteSource,
    events: Option<SqliteSource>,
    dedup: Option<SqliteSource>,
}

impl Opened {
    fn get(&self, file: SourceFile) -> Option<&SqliteSource> {
        match file {
            SourceFile::Registry => Some(&self.registry),
            SourceFile::Events => self.events.as_ref(),
            SourceFile::Dedup => self.dedup.as_ref(),
        }
    }
}

/// Opens the files; the registry must exist (else this is no hub's data dir).
fn open_sources(sources: &Sources) -> Result<Opened, MigrateError> {
    let registry = SqliteSource::open(&sources.registry)?.ok_or_else(|| {
        MigrateError::source(
            &sources.registry,
            "no registry here: is this a hub's data dir?",
        )
    })?;
    Ok(Opened {
        registry,
        events: SqliteSource::open(&sources.events)?,
        dedup: SqliteSource::open(&sources.dedup)?,
    })
}

/// Every table the SQLite files have is copied or known bookkeeping: a table a future SQLite
/// migration adds without a place here is an error, not silently left behind.
fn ensure_every_table_planned(opened: &Opened) -> Result<(), MigrateError> {
    for file in [SourceFile::Registry, SourceFile::Events, SourceFile::Dedup] {
        let Some(source) = opened.get(file) else {
            continue;
        };
        for table in source.tables()? {
            let planned = TABLES.iter().any(|t| t.file == file && t.sqlite == table)
                || NOT_COPIED.contains(&(file, table.as_str()));
            if !planned {
                return Err(MigrateError::Schema(format!(
                    "{} has table {table}, which the migration does not know how to copy",
                    source.path().display()
                )));
            }
        }
    }
    Ok(())
}

/// Copies the single node's state in `sources` into the PostgreSQL at `url`.
pub fn migrate(sources: &Sources, url: &str) -> Result<Summary, MigrateError> {
    let opened = open_sources(sources)?;
    ensure_every_table_planned(&opened)?;
    let pg = target::connect(url)?;
    target::apply_schemas(&pg)?;
    target::ensure_empty(&pg)?;
    let mut prepared = Vec::with_capacity(TABLES.len());
    for plan in TABLES {
        let columns = target::columns(&pg, plan.pg)?;
        prepared.push(prepare::prepare(*plan, opened.get(plan.file), &columns)?);
    }
    let blobs = blobs::read_all(&sources.attachments)?;
    copy::copy_all(&pg, &prepared, &blobs).map_err(|e| target::refused(&pg, e))?;
    let mut tables = Vec::with_capacity(prepared.len() + 1);
    for t in &prepared {
        let found = target::count(&pg, t.plan.pg).map_err(|e| target::target_err(&pg, e))?;
        if found != t.rows.len() as i64 {
            return Err(MigrateError::Verify(format!(
                "{} holds {found} rows, {} were copied from {}",
                t.plan.pg,
                t.rows.len(),
                t.plan.sqlite
            )));
        }
        tables.push((t.plan.pg, t.rows.len()));
    }
    let found = target::count(&pg, blobs::TABLE).map_err(|e| target::target_err(&pg, e))?;
    if found != blobs.len() as i64 {
        return Err(MigrateError::Verify(format!(
            "{} holds {found} photos, {} were copied from {}",
            blobs::TABLE,
            blobs.len(),
            sources.attachments.display()
        )));
    }
    tables.push((blobs::TABLE, blobs.len()));
    Ok(Summary {
        target: pg.describe().to_string(),
        tables,
    })
}
