//! Why a migration was refused or failed. Every message names the file, table or column at
//! fault and, for the database, only `user@host:port/database` (never the password).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A SQLite file of the data dir cannot be read as it must be.
    #[error("{}: {reason}", path.display())]
    Source { path: PathBuf, reason: String },
    /// The SQLite and PostgreSQL schemas disagree: copying would drop or invent data.
    #[error("schema mismatch: {0}")]
    Schema(String),
    /// A stored value has no faithful PostgreSQL form (e.g. text in an integer column).
    #[error("table {table}, column {column}, row {row}: {reason}")]
    Value {
        table: String,
        column: String,
        row: usize,
        reason: String,
    },
    /// The target already holds hub data.
    #[error("target {target} is not empty: {detail}; migrate into a new, empty database")]
    TargetNotEmpty { target: String, detail: String },
    /// Opening or applying the PostgreSQL schemas failed.
    #[error("target {target}: {reason}")]
    Target { target: String, reason: String },
    /// The copied counts differ from the source's after the commit.
    #[error("verification failed after the commit: {0}")]
    Verify(String),
}

impl MigrateError {
    pub(crate) fn source(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        MigrateError::Source {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}
