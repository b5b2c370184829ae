//! The shared governance registry: grid cells, departments, components, sensors, edges, tokens.
//!
//! Only this module talks to the registry database. Other modules use [`RegistryStore`].

use protocol::uplink::EdgeStatus;

/// Where a sensor's readings belong. A sensor not in the registry has no assignment; its
/// readings are still stored and the sensor is listed for assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorAssignment {
    pub sensor_id: String,
    /// `None` while the sensor is registered but not yet attached to a component.
    pub component_id: Option<String>,
    pub component_type: Option<String>,
    pub grid_cell: Option<String>,
    pub owner_department: Option<String>,
    pub maintainer_department: Option<String>,
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
}

/// The registry as the ingest path sees it. Implemented by the SQLite store; PostgreSQL can follow.
/// Methods are synchronous: callers on the async runtime use `spawn_blocking` or a cache.
pub trait RegistryStore: Send + Sync + 'static {
    /// The component etc. a sensor belongs to, or `None` if the sensor is unknown.
    fn sensor_assignment(&self, sensor_id: &str)
        -> Result<Option<SensorAssignment>, RegistryError>;
    /// The credentials of an edge, or `None` if the hub never issued any.
    fn edge_credentials(&self, edge_id: &str) -> Result<Option<EdgeCredentials>, RegistryError>;
    /// Records a status message (online/offline, backlog, version) from an edge.
    fn record_edge_status(&self, status: &EdgeStatus) -> Result<(), RegistryError>;
    /// Records that an edge delivered a batch at `at_ns`.
    fn record_edge_seen(&self, edge_id: &str, at_ns: i64) -> Result<(), RegistryError>;
    /// Lists a sensor that sent readings but is not registered, for an operator to assign.
    fn note_unassigned_sensor(
        &self,
        sensor_id: &str,
        edge_id: &str,
        at_ns: i64,
    ) -> Result<(), RegistryError>;
}
