//! The shared governance registry: grid cells, departments, components, sensors, edges, tokens.
//!
//! Only this module talks to the registry database (SQLite for one hub, PostgreSQL for a
//! cluster). Other modules use [`RegistryStore`] and [`RegistryAdmin`].

pub mod codes;
pub mod edge_config;
mod issued;
mod migrations;
pub mod model;
#[macro_use]
mod trait_impls;
mod pg;
mod rows;
pub mod seed;
mod sql;
mod sqlite;
pub mod validation;

pub use edge_config::{ConfigDelivery, EdgeConfigState, NewConfig, StoredConfig, StoredReport};
pub use model::*;
pub use pg::PgRegistry;
/// For bulk loads inside [`SqliteRegistry::write`] (the 100k-component bench).
pub use sqlite::upsert_component;
pub use sqlite::SqliteRegistry;

use protocol::uplink::{EdgeStatus, Gap};
pub use protocol::uplink::{Freshness, StatusMark};

/// The workspace's one clock and timestamp format (`protocol::time`).
pub use protocol::time::{format_ts, now_ns};

/// Where a sensor's readings belong. A sensor not in the registry has no assignment; its
/// readings are still stored and the sensor is listed for assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorAssignment {
    pub sensor_id: String,
    /// `None` while the sensor is registered but not yet attached to a component.
    pub component_id: Option<String>,
    /// The edge the sensor is registered to, if any: readings of it from another edge are
    /// refused (`foreign_sensor`).
    pub edge_id: Option<String>,
    pub component_type: Option<String>,
    pub grid_cell: Option<String>,
    pub owner_department: Option<String>,
    pub maintainer_department: Option<String>,
}

/// Issued API tokens look like `wgt_<id>.<secret>`: the id finds the row, the secret is checked
/// against its salted hash.
pub const TOKEN_PREFIX: &str = "wgt_";

/// A claim of a batch that ingest refused (e.g. `foreign_sensor`: readings of a sensor
/// registered to another edge), kept for an operator to look at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IngestRefusal<'a> {
    pub kind: &'a str,
    pub edge_id: &'a str,
    pub sensor_id: &'a str,
    pub detail: &'a str,
    pub at_ns: i64,
}

/// The gaps (readings lost on the edge) one batch (edge, epoch, seq) reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GapReport<'a> {
    pub edge_id: &'a str,
    pub epoch: u64,
    pub seq: u64,
    pub gaps: &'a [Gap],
}

impl<'a> GapReport<'a> {
    /// The gaps `batch` carries.
    pub fn of(batch: &'a protocol::uplink::UplinkBatch) -> GapReport<'a> {
        GapReport {
            edge_id: batch.edge_id.as_str(),
            epoch: batch.epoch,
            seq: batch.seq,
            gaps: &batch.gaps,
        }
    }
}

/// What the hub keeps of an edge's credentials: never the secret itself.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeCredentials {
    pub edge_id: String,
    /// `sha256$<salt hex>$<hex of sha256(salt | secret)>`: the MQTT password check.
    pub password_hash: String,
    /// `protocol::uplink::mac_key(secret)`: verifies the HMAC on every uplink batch.
    pub mac_key: [u8; 32],
    /// A revoked edge can neither log in nor have batches accepted.
    pub revoked: bool,
}

impl EdgeCredentials {
    /// True if `password` is the secret this edge was issued (and the edge is not revoked).
    pub fn verify_password(&self, password: &str) -> bool {
        !self.revoked && secrets::verify(&self.password_hash, password)
    }
}

/// What the hub keeps of a department MQTT consumer's credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttUserCredentials {
    /// `dept:{department}:{6 hex}`, also its only allowed client id.
    pub username: String,
    pub department_id: String,
    /// `secrets::hash` of the issued secret.
    pub password_hash: String,
    pub revoked: bool,
}

impl MqttUserCredentials {
    /// True if `password` is this user's secret and the user is not revoked.
    pub fn verify_password(&self, password: &str) -> bool {
        !self.revoked && secrets::verify(&self.password_hash, password)
    }
}

/// A department MQTT user as `hub mqtt-user list` shows it (never the secret or its hash).
#[derive(Debug, Clone, PartialEq)]
pub struct MqttUser {
    pub username: String,
    pub department_id: String,
    pub revoked: bool,
    pub created_at_ns: i64,
}

/// An account an external broker must know (`broker::mosquitto` writes them out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAccount {
    /// MQTT username (and client id).
    pub username: String,
    pub kind: BrokerAccountKind,
    /// The secret in the broker's own password format (mosquitto `$7$`).
    pub broker_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerAccountKind {
    Edge,
    Department { department_id: String },
}

/// Salted hashing of issued secrets (edge passwords, API tokens).
pub mod secrets {
    use sha2::{Digest, Sha256};

    /// A fresh random secret: 24 random bytes as 48 hex characters. Printed once, stored hashed.
    pub fn generate() -> String {
        let bytes: [u8; 24] = rand::random();
        hex::encode(bytes)
    }

    /// `sha256$<salt>$<hex>`; the secrets are high-entropy random strings, so one round suffices.
    pub fn hash(secret: &str) -> String {
        let salt: [u8; 16] = rand::random();
        let salt = hex::encode(salt);
        format!("sha256${salt}${}", digest(&salt, secret))
    }

    /// Constant-time check of `secret` against a stored [`hash`].
    pub fn verify(stored: &str, secret: &str) -> bool {
        let mut parts = stored.splitn(3, '$');
        let (Some("sha256"), Some(salt), Some(want)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let got = digest(salt, secret);
        got.len() == want.len()
            && got
                .bytes()
                .zip(want.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    fn digest(salt: &str, secret: &str) -> String {
        let mut h = Sha256::new();
        h.update(salt.as_bytes());
        h.update(b"$");
        h.update(secret.as_bytes());
        hex::encode(h.finalize())
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_secret_verifies_only_against_its_own_hash() {
            let s = super::generate();
            let h = super::hash(&s);
            assert!(super::verify(&h, &s));
            assert!(!super::verify(&h, "wrong"));
            assert!(!super::verify("garbage", &s));
            assert_ne!(
                super::hash(&s),
                h,
                "salted: two hashes of one secret differ"
            );
        }
    }
}

/// Error from a registry store.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry database: {0}")]
    Db(String),
    #[error("{0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// Bad input, naming the field at fault.
    #[error("{field}: {reason}")]
    Field { field: String, reason: String },
    /// The request conflicts with what is stored (e.g. creating an existing component).
    #[error("{0}")]
    Conflict(String),
}

/// The registry as the ingest path sees it. Implemented by [`SqliteRegistry`] (one hub) and
/// [`PgRegistry`] (a cluster's hubs sharing one database), with the same behaviour.
/// Methods are synchronous: callers on the async runtime use `spawn_blocking` or a cache.
pub trait RegistryStore: Send + Sync + 'static {
    /// The component etc. a sensor belongs to, or `None` if the sensor is unknown.
    fn sensor_assignment(&self, sensor_id: &str)
        -> Result<Option<SensorAssignment>, RegistryError>;
    /// The credentials of an edge, or `None` if the hub never issued any.
    fn edge_credentials(&self, edge_id: &str) -> Result<Option<EdgeCredentials>, RegistryError>;
    /// Records a status message (online/offline, backlog, version) from an edge if it is fresh
    /// ([`protocol::uplink::StatusMark::judge`] against the mark stored with the edge, updated
    /// in the same transaction); a replayed or stale one changes nothing.
    fn record_edge_status(&self, status: &EdgeStatus) -> Result<Freshness, RegistryError>;
    /// Records a refused claim of a batch (`kind`, e.g. `foreign_sensor`) durably, once per
    /// (kind, edge, sensor); returns `true` the first time.
    fn audit_ingest(&self, refusal: &IngestRefusal<'_>) -> Result<bool, RegistryError>;
    /// Records that an edge delivered a batch at `at_ns`.
    fn record_edge_seen(&self, edge_id: &str, at_ns: i64) -> Result<(), RegistryError>;
    /// Records the gaps (readings lost on the edge) carried by batch (edge, epoch, seq);
    /// idempotent, so a resent batch records nothing twice.
    fn record_gaps(&self, report: &GapReport<'_>, at_ns: i64) -> Result<(), RegistryError>;
    /// Lists a sensor that sent readings but is not registered, for an operator to assign.
    fn note_unassigned_sensor(
        &self,
        sensor_id: &str,
        edge_id: &str,
        at_ns: i64,
    ) -> Result<(), RegistryError>;
    /// A department MQTT user's credentials, or `None`. Stores without department MQTT users
    /// (test doubles) deny every such login.
    fn mqtt_user_credentials(
        &self,
        _username: &str,
    ) -> Result<Option<MqttUserCredentials>, RegistryError> {
        Ok(None)
    }
    /// Every unrevoked edge and department MQTT user with a broker hash, ordered by username
    /// (for provisioning an external broker). Stores without them have none.
    fn broker_accounts(&self) -> Result<Vec<BrokerAccount>, RegistryError> {
        Ok(Vec::new())
    }
}

/// The registry as operators and the API see it: components, edges, tokens, stats.
/// Implemented by [`SqliteRegistry`] and [`PgRegistry`].
pub trait RegistryAdmin: RegistryStore {
    /// Components matching `filter`, ordered by id, at most `filter.limit`, keyset-paginated.
    fn list_components(&self, filter: &ComponentFilter) -> Result<Page<Component>, RegistryError>;
    fn component(&self, id: &str) -> Result<Option<Component>, RegistryError>;
    /// Validates (code shape, known region and class, known grid cell and departments) and stores a
    /// new component; `Conflict` if it exists.
    fn create_component(&self, input: &ComponentInput) -> Result<Component, RegistryError>;
    /// What `create_component`/`put_component` would store, without storing it (same checks).
    fn preview_component(
        &self,
        id: &str,
        input: &ComponentInput,
    ) -> Result<Component, RegistryError>;
    /// Creates or replaces the component `id`; the bool is true if it was created.
    fn put_component(
        &self,
        id: &str,
        input: &ComponentInput,
    ) -> Result<(Component, bool), RegistryError>;
    /// Sets a component's status (the events engine derives it); false if the component is unknown.
    fn set_component_status(
        &self,
        id: &str,
        status: ComponentStatus,
    ) -> Result<bool, RegistryError>;
    /// True if the component existed. Its sensors stay registered, unattached.
    fn delete_component(&self, id: &str) -> Result<bool, RegistryError>;
    fn component_sensors(&self, component_id: &str) -> Result<Vec<Sensor>, RegistryError>;
    fn sensor(&self, id: &str) -> Result<Option<Sensor>, RegistryError>;
    /// Registers or replaces a sensor (component and edge must exist); true if created.
    fn put_sensor(&self, id: &str, input: &SensorInput) -> Result<(Sensor, bool), RegistryError>;
    fn list_edges(&self, after: Option<&str>, limit: usize) -> Result<Page<Edge>, RegistryError>;
    fn list_unassigned_sensors(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<UnassignedSensor>, RegistryError>;
    fn stats(&self) -> Result<RegistryStats, RegistryError>;
    /// Every sensor attached to a component, with the component's type and the sensor's interval.
    fn sensor_contexts(&self) -> Result<Vec<SensorContext>, RegistryError>;
    /// The same for one sensor; `None` if unknown or not attached.
    fn sensor_context(&self, sensor_id: &str) -> Result<Option<SensorContext>, RegistryError>;
    /// Grid cells ordered by id, keyset-paginated.
    fn list_grid_cells(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<GridCell>, RegistryError>;
    /// Departments ordered by id, keyset-paginated.
    fn list_departments(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Department>, RegistryError>;
    /// Issues (or re-issues) an edge's secret; returns it. Only its hash and MAC key are stored.
    fn add_edge(
        &self,
        edge_id: &str,
        name: Option<&str>,
        site: Option<&str>,
    ) -> Result<String, RegistryError>;
    fn revoke_edge(&self, edge_id: &str) -> Result<(), RegistryError>;
    /// Issues an API token; returns it (printed once, stored hashed).
    fn add_token(&self, department: Option<&str>, scope: Scope) -> Result<String, RegistryError>;
    /// The principal of a valid, unrevoked issued token, or `None`.
    fn verify_token(&self, token: &str) -> Result<Option<Principal>, RegistryError>;
    fn revoke_token(&self, token_id: &str) -> Result<(), RegistryError>;

    /// Issues MQTT credentials for department `department`: returns (username, secret).
    fn add_mqtt_user(&self, department: &str) -> Result<(String, String), RegistryError>;
    fn revoke_mqtt_user(&self, username: &str) -> Result<(), RegistryError>;
    fn list_mqtt_users(&self) -> Result<Vec<MqttUser>, RegistryError>;
    /// Whether department `id` is registered (the events engine's dispatch check).
    fn department_exists(&self, id: &str) -> Result<bool, RegistryError>;
    /// Every sensor attached to a component, in no particular order (the report ranks them),
    /// with what the evaluation report's data completeness needs (one query, not one per
    /// component).
    fn coverage_sensors(&self) -> Result<Vec<CoverageSensor>, RegistryError>;
    /// Imports every seed file present in `dir` in one transaction (see [`seed`]).
    fn import_seed(&self, dir: &std::path::Path) -> Result<seed::SeedSummary, seed::SeedError>;
    /// Writes every seed table to `dir` in the import format (see [`seed`]).
    fn export_seed(&self, dir: &std::path::Path) -> Result<seed::SeedSummary, seed::SeedError>;

    /// The newest desired configuration of edge `edge_id` and its newest report; `None` if the
    /// edge is unknown (see [`edge_config`]).
    fn edge_config(&self, edge_id: &str) -> Result<Option<EdgeConfigState>, RegistryError>;
    /// Stores the next version (the current + 1, from 1) of an edge's desired configuration;
    /// the bool is true for its first. `NotFound` for an unknown edge, `Conflict` if
    /// `base_version` is given and is not the current version. The document is not checked here.
    fn put_edge_config(
        &self,
        config: &NewConfig<'_>,
    ) -> Result<(StoredConfig, bool), RegistryError>;
    /// Stores an opened report if it is newer (`ts_ns`) than the one stored for its edge;
    /// false (nothing changed) for a replayed or older one.
    fn record_config_report(
        &self,
        report: &protocol::edge_config::ConfigReport,
        received_ns: i64,
    ) -> Result<bool, RegistryError>;
    /// The maintaining department of the component of every sensor registered to the edge,
    /// distinct (`None`: a sensor on no component, or a component without a maintainer).
    fn edge_sensor_maintainers(&self, edge_id: &str) -> Result<Vec<Option<String>>, RegistryError>;
    /// The newest version of every edge that has one, by edge id, keyset-paginated, with the
    /// version its newest report names (the delivery task's work list).
    fn list_config_deliveries(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ConfigDelivery>, RegistryError>;
}

/// The invariant "only `hub::registry` talks to the registry database", checked on the sources:
/// `registry::sqlite` and `registry::pg` are private (a compile error for anyone else), and
/// outside `registry/` no file of the hub crate names `rusqlite` or `tokio_postgres` (but the
/// owners of the other databases) or the registry's file name (but `config.rs`, which sets its
/// path).
#[cfg(test)]
mod ownership_tests {
    use std::path::Path;

    /// The other SQLite databases and their one owner each.
    /// (`migrate_to_pg/sqlite_source.rs` reads every SQLite file, the registry's too, read-only
    /// and only while the hub is stopped, to copy it into PostgreSQL.)
    const OTHER_DATABASES: &[&str] = &[
        "timeseries/embedded.rs",
        "timeseries/embedded/counts.rs",
        "timeseries/embedded/day_blocks.rs",
        "ingest/dedup.rs",
        "migrate_to_pg/sqlite_source.rs",
    ];

    /// The folders of the hub crate whose files own PostgreSQL tables of their own (the pool
    /// itself is the `wangge-pg` crate, outside `hub/src`).
    const OTHER_POSTGRES_OWNERS: &[&str] = &["cluster/"];

    #[test]
    fn only_the_registry_module_touches_the_registry_database() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let files: Vec<_> = wangge_testkit::paths::files_under(&src)
            .into_iter()
            .filter(|(_, rel)| rel.ends_with(".rs"))
            .collect();
        assert!(
            files.len() > 20,
            "read {} files under {}",
            files.len(),
            src.display()
        );
        let mut found = Vec::new();
        for (f, rel) in files {
            if rel.starts_with("registry/") {
                continue;
            }
            // The log filter naming the driver's target is not a use of it.
            let text = std::fs::read_to_string(&f)
                .unwrap()
                .replace("tokio_postgres=warn", "");
            if text.contains("rusqlite") && !OTHER_DATABASES.contains(&rel.as_str()) {
                found.push(format!("{rel}: uses rusqlite"));
            }
            if text.contains("registry.sqlite") && rel != "config.rs" {
                found.push(format!("{rel}: names the registry database file"));
            }
            if text.contains("tokio_postgres")
                && !OTHER_POSTGRES_OWNERS.iter().any(|o| rel.starts_with(o))
            {
                found.push(format!("{rel}: uses tokio_postgres"));
            }
            for private in ["registry::sqlite", "registry::pg"] {
                if text.contains(private) {
                    found.push(format!("{rel}: reaches into {private}"));
                }
            }
        }
        assert!(found.is_empty(), "outside hub::registry: {found:#?}");
    }
}
