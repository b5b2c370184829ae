//! Configuration from the hub: the desired configuration the hub seals for one edge, and the
//! edge's report of what it did with it.
//!
//! Both travel on the edge's authenticated MQTT plane and are sealed like batches and acks:
//! `version | postcard(message) | HMAC-SHA256(key, domain | version | postcard(message))`, with
//! the key of the edge they concern and their own MAC domain (so neither tag can be presented
//! as a batch's, an ack's or a status's). An edge applies only a [`DesiredConfig`] that opens
//! under its own key and names it; the hub counts only a [`ConfigReport`] that opens under the
//! key of the edge its topic names.

use crate::uplink::{check_tag, decode, seal, EdgeId, MacDomain, UplinkError};
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The largest document the hub may send and an edge will read: a district edge's sources,
/// profiles and limits fit in a few KiB; 256 KiB leaves room without letting a message be a
/// memory attack.
pub const CONFIG_DOCUMENT_BYTES_MAX: usize = 256 * 1024;

/// The top-level tables a desired configuration may hold: the sections of the edge's
/// `edge.toml` but `local_api`, and `profiles` (device profiles by name). The hub refuses a
/// document with any other before storing it and the edge refuses it again before applying.
pub const DOCUMENT_SECTIONS: &[&str] = &[
    "profiles",
    "edge",
    "hub",
    "mqtt",
    "site_broker",
    "serial",
    "modbus",
    "buffer",
    "uplink",
    "validate",
    "calibration",
];

/// The keys of `[edge]` and `[hub]` a document may set; the rest of those tables is the edge's
/// identity (id, paths, hub address, secret), which only its own file gives.
pub const DOCUMENT_KEYS_IN: &[(&str, &[&str])] =
    &[("edge", &["sensors"]), ("hub", &["keepalive_s", "ca_pem"])];

/// The keys `section` may set, if a document may set only some of them.
pub fn document_keys_in(section: &str) -> Option<&'static [&'static str]> {
    DOCUMENT_KEYS_IN
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, keys)| *keys)
}

/// One version of an edge's desired configuration (everything but its identity and secret),
/// as a TOML document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredConfig {
    pub edge_id: EdgeId,
    /// Increases by one with every change the hub accepts for this edge; an edge applies a
    /// version only if it is newer than every version it has seen (a replayed old config
    /// changes nothing).
    pub version: u64,
    /// `sha256:` + hex of `document`, so both ends name the same content.
    pub hash: String,
    pub document: String,
    /// When the hub stored this version, UTC ns.
    pub issued_ns: i64,
}

/// What an edge did with a desired configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigOutcome {
    /// Running on it (for a change of the uplink: after the uplink came back with it).
    Applied,
    /// Not applied: it does not validate; `error` names the field. The running config stays.
    Refused,
    /// Applied, but the uplink was not back within the confirm window: the edge went back to
    /// its last known good configuration by itself.
    RolledBack,
}

impl ConfigOutcome {
    pub const fn name(self) -> &'static str {
        match self {
            ConfigOutcome::Applied => "applied",
            ConfigOutcome::Refused => "refused",
            ConfigOutcome::RolledBack => "rolled_back",
        }
    }
}

/// The edge's report: which version it runs, and what happened to the newest one it saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigReport {
    pub edge_id: EdgeId,
    /// The version the edge runs on now (0: none from the hub, only its local file).
    pub applied_version: u64,
    pub applied_hash: String,
    /// The newest version it saw, and what it did with it (`Applied` when that is the one it
    /// runs).
    pub version: u64,
    pub outcome: ConfigOutcome,
    /// Why it was refused or rolled back (the same field-level message as `edge check`).
    pub error: Option<String>,
    /// When the edge made this report, UTC ns; the hub keeps only reports newer than the last
    /// one it accepted from this edge.
    pub ts_ns: i64,
}

/// `sha256:` + lower-case hex of `document`.
pub fn document_hash(document: &str) -> String {
    let digest = Sha256::digest(document.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

impl DesiredConfig {
    /// A desired configuration for `edge_id` with its hash computed.
    pub fn new(edge_id: &str, version: u64, document: String, issued_ns: i64) -> DesiredConfig {
        DesiredConfig {
            edge_id: EdgeId(edge_id.into()),
            version,
            hash: document_hash(&document),
            document,
            issued_ns,
        }
    }

    /// Sealed by the hub under the key of the edge it is for.
    pub fn seal(&self, key: &[u8; 32]) -> Vec<u8> {
        seal(self, key, MacDomain::Config)
    }

    /// Opens a desired configuration addressed to `edge_id`: the tag must verify under `key`,
    /// it must name `edge_id`, the document must fit [`CONFIG_DOCUMENT_BYTES_MAX`] and match
    /// its hash.
    pub fn open(bytes: &[u8], key: &[u8; 32], edge_id: &str) -> Result<DesiredConfig, UplinkError> {
        if bytes.len() > CONFIG_DOCUMENT_BYTES_MAX + 1024 {
            return Err(UplinkError::Malformed);
        }
        let c: DesiredConfig = decode(check_tag(key, MacDomain::Config, bytes)?)?;
        if c.edge_id.as_str() != edge_id {
            return Err(UplinkError::Foreign);
        }
        if c.document.len() > CONFIG_DOCUMENT_BYTES_MAX || c.hash != document_hash(&c.document) {
            return Err(UplinkError::Malformed);
        }
        Ok(c)
    }
}

impl ConfigReport {
    /// Sealed by the edge under its own key.
    pub fn seal(&self, key: &[u8; 32]) -> Vec<u8> {
        seal(self, key, MacDomain::ConfigReport)
    }

    /// Opens a report with the key of the edge its topic names; it must name that edge.
    pub fn open(bytes: &[u8], key: &[u8; 32], edge_id: &str) -> Result<ConfigReport, UplinkError> {
        let r: ConfigReport = decode(check_tag(key, MacDomain::ConfigReport, bytes)?)?;
        if r.edge_id.as_str() != edge_id {
            return Err(UplinkError::Foreign);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uplink::mac_key;

    fn desired() -> DesiredConfig {
        DesiredConfig::new("edge-1", 3, "[uplink]\nbatch_age_ms = 100\n".into(), 7)
    }

    #[test]
    fn a_sealed_config_opens_only_for_its_edge_under_its_key() {
        let (k1, k2) = (mac_key("s1"), mac_key("s2"));
        let sealed = desired().seal(&k1);
        assert_eq!(
            DesiredConfig::open(&sealed, &k1, "edge-1").unwrap(),
            desired()
        );
        assert_eq!(
            DesiredConfig::open(&sealed, &k2, "edge-1"),
            Err(UplinkError::BadMac)
        );
        assert_eq!(
            DesiredConfig::open(&sealed, &k1, "edge-2"),
            Err(UplinkError::Foreign)
        );
    }

    #[test]
    fn a_config_tag_is_not_a_report_tag_and_a_tampered_document_is_refused() {
        let k = mac_key("s1");
        let sealed = desired().seal(&k);
        assert!(ConfigReport::open(&sealed, &k, "edge-1").is_err());
        let mut c = desired();
        c.document.push('x'); // hash no longer matches
        assert_eq!(
            DesiredConfig::open(&c.seal(&k), &k, "edge-1"),
            Err(UplinkError::Malformed)
        );
    }

    #[test]
    fn a_report_round_trips() {
        let k = mac_key("s1");
        let r = ConfigReport {
            edge_id: EdgeId("edge-1".into()),
            applied_version: 2,
            applied_hash: document_hash("a"),
            version: 3,
            outcome: ConfigOutcome::Refused,
            error: Some("validate.limits.x: unknown quantity".into()),
            ts_ns: 9,
        };
        assert_eq!(ConfigReport::open(&r.seal(&k), &k, "edge-1").unwrap(), r);
        assert_eq!(
            ConfigReport::open(&r.seal(&k), &k, "edge-2"),
            Err(UplinkError::Foreign)
        );
    }

    #[test]
    fn the_hash_names_the_content() {
        assert_eq!(
            document_hash(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
