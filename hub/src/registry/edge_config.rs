//! What the registry keeps of configuration from the hub (issue 14): every version of an edge's
//! desired configuration, and the newest report the edge sealed about it.
//!
//! The registry stores; it does not judge the document (`crate::fleet::document` checks it
//! before a version is stored, for the API and the CLI alike). Versions start at 1 per edge
//! and increase by one; a write naming a `base_version` other than the current one is a
//! `Conflict`, so two operators editing at once cannot overwrite each other unseen.

use super::rows::FromRow;
use super::sql::Listing;
use protocol::edge_config::ConfigReport;
use wangge_events::columns::Columns;

/// One stored version of an edge's desired configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConfig {
    pub edge_id: String,
    pub version: u64,
    /// `sha256:` + hex of `document`.
    pub hash: String,
    /// The TOML document (may hold site-broker passwords: shown only to who may write it).
    pub document: String,
    pub created_ns: i64,
    /// The token id that stored it (`admin` for the admin token, `cli` for `hub edge config set`).
    pub created_by: String,
}

impl StoredConfig {
    /// The version after `current` (0: none yet) that `c` stores; `Conflict` unless `c`'s
    /// `base_version` (if given) is `current`.
    pub(super) fn next(
        c: &NewConfig<'_>,
        current: u64,
    ) -> Result<StoredConfig, super::RegistryError> {
        check_base(c.base_version, current)?;
        Ok(StoredConfig {
            edge_id: c.edge_id.to_string(),
            version: current + 1,
            hash: protocol::edge_config::document_hash(c.document),
            document: c.document.to_string(),
            created_ns: c.created_ns,
            created_by: c.created_by.to_string(),
        })
    }
}

/// The newest report accepted from an edge.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReport {
    pub edge_id: String,
    /// The version the edge runs on (0: only its local file).
    pub applied_version: u64,
    pub applied_hash: String,
    /// The newest version it saw, and what it did with it.
    pub version: u64,
    /// `applied`, `refused` or `rolled_back` (`protocol::edge_config::ConfigOutcome::name`).
    pub outcome: String,
    pub error: Option<String>,
    /// When the edge made the report (its clock), UTC ns; a report not newer is refused.
    pub reported_ns: i64,
    /// When the hub accepted it, UTC ns.
    pub received_ns: i64,
}

/// An edge's configuration as the API shows it: the newest desired version and the newest report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EdgeConfigState {
    pub desired: Option<StoredConfig>,
    pub applied: Option<StoredReport>,
}

/// A new version to store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewConfig<'a> {
    pub edge_id: &'a str,
    pub document: &'a str,
    /// If given, must be the current version (0: none yet), else the write is a `Conflict`.
    pub base_version: Option<u64>,
    pub created_by: &'a str,
    pub created_ns: i64,
}

/// The newest version of one edge, with the version its newest report names: what the
/// delivery task publishes until the edge reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDelivery {
    pub config: StoredConfig,
    /// `version` of the edge's newest report, if it sent one.
    pub reported_version: Option<u64>,
}

impl ConfigDelivery {
    /// True while the edge has not reported seeing this version (whatever it did with it).
    pub fn pending(&self) -> bool {
        self.reported_version
            .is_none_or(|seen| seen < self.config.version)
    }
}

/// The statements, written once for both back ends: `$n` placeholders are PostgreSQL's, and
/// A row of [`sql::DESIRED`] (the first six columns of [`sql::DELIVERIES`]).
impl FromRow for StoredConfig {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(StoredConfig {
            edge_id: r.column(0)?,
            version: r.count(1)?,
            hash: r.column(2)?,
            document: r.column(3)?,
            created_ns: r.column(4)?,
            created_by: r.column(5)?,
        })
    }
}

/// A row of [`sql::REPORT`].
impl FromRow for StoredReport {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(StoredReport {
            edge_id: r.column(0)?,
            applied_version: r.count(1)?,
            applied_hash: r.column(2)?,
            version: r.count(3)?,
            outcome: r.column(4)?,
            error: r.column(5)?,
            reported_ns: r.column(6)?,
            received_ns: r.column(7)?,
        })
    }
}

/// A row of [`sql::DELIVERIES`].
impl FromRow for ConfigDelivery {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(ConfigDelivery {
            config: StoredConfig::from_row(r)?,
            reported_version: r.column::<Option<i64>>(6)?.map(|v| v.max(0) as u64),
        })
    }
}

/// The newest version of every edge that has one, with its newest report's version.
pub(super) const DELIVERIES: Listing<ConfigDelivery> = Listing {
    sql: sql::DELIVERIES,
    key: |d| d.config.edge_id.clone(),
};

/// SQLite reads `$1`, `$2`, … as named parameters numbered in the order they first appear,
/// which each statement keeps (so positional binding is the same on both).
pub(super) mod sql {
    pub const EDGE_EXISTS: &str = "SELECT 1 FROM edges WHERE id = $1";
    pub const DESIRED: &str = "SELECT edge_id, version, hash, document, created_ns, created_by
         FROM edge_configs WHERE edge_id = $1 ORDER BY version DESC LIMIT 1";
    pub const INSERT: &str = "INSERT INTO edge_configs(edge_id, version, hash, document,
         created_ns, created_by) VALUES ($1, $2, $3, $4, $5, $6)";
    pub const REPORT: &str = "SELECT edge_id, applied_version, applied_hash, version, outcome,
         error, reported_ns, received_ns FROM edge_config_reports WHERE edge_id = $1";
    /// Stores a report unless the stored one is as new or newer: changes 0 rows then.
    pub const UPSERT_REPORT: &str = "INSERT INTO edge_config_reports(edge_id, applied_version,
             applied_hash, version, outcome, error, reported_ns, received_ns)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT(edge_id) DO UPDATE SET applied_version = excluded.applied_version,
             applied_hash = excluded.applied_hash, version = excluded.version,
             outcome = excluded.outcome, error = excluded.error,
             reported_ns = excluded.reported_ns, received_ns = excluded.received_ns
         WHERE edge_config_reports.reported_ns < excluded.reported_ns";
    pub const MAINTAINERS: &str = "SELECT DISTINCT c.maintainer_department
         FROM sensors s LEFT JOIN components c ON c.id = s.component_id WHERE s.edge = $1";
    /// The newest version of every edge after `$1`, with its newest report's version.
    pub const DELIVERIES: &str = "SELECT c.edge_id, c.version, c.hash, c.document, c.created_ns,
             c.created_by, r.version
         FROM edge_configs c LEFT JOIN edge_config_reports r ON r.edge_id = c.edge_id
         WHERE c.edge_id > $1
           AND c.version = (SELECT MAX(m.version) FROM edge_configs m WHERE m.edge_id = c.edge_id)
         ORDER BY c.edge_id LIMIT $2";
}

/// A version or count as the database's i64 (a value above i64::MAX is refused, naming `what`).
pub(super) fn stored_u64(what: &str, v: u64) -> Result<i64, super::RegistryError> {
    i64::try_from(v).map_err(|_| super::validation::field(what, format!("{v} is too large")))
}

/// The columns of a report row, in the order the back ends bind them.
pub(super) fn report_columns(r: &ConfigReport) -> Result<(i64, i64), super::RegistryError> {
    Ok((
        stored_u64("applied_version", r.applied_version)?,
        stored_u64("version", r.version)?,
    ))
}

/// `Conflict` unless `base` (if given) is the `current` version.
fn check_base(base: Option<u64>, current: u64) -> Result<(), super::RegistryError> {
    match base {
        Some(b) if b != current => Err(super::RegistryError::Conflict(format!(
            "base_version {b} is not the current version {current} (someone changed it since; \
             read it again)"
        ))),
        _ => Ok(()),
    }
}
