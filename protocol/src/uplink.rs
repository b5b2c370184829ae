//! Edge ↔ hub messages: canonical readings, uplink batches, acks and edge status.
//!
//! Every message is `version byte | postcard body`; an [`UplinkBatch`] is followed by a
//! 32-byte HMAC-SHA256 tag keyed by the edge's MAC key, so the hub knows which edge really
//! sent it whatever the broker does (see `protocol/README.md`).

use crate::{Quantity, Value};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version byte of every edge ↔ hub message.
pub const UPLINK_VERSION: u8 = 1;
/// Length of the HMAC-SHA256 tag that ends an uplink batch.
pub const MAC_BYTES: usize = 32;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(String::from(s))
            }
        }
    };
}

id_newtype!(
    /// A sensor's id, unique across the district, e.g. `MH-0001`.
    SensorId
);
id_newtype!(
    /// An edge box's id, also its MQTT username, e.g. `edge-xiqing-01`.
    EdgeId
);

/// How far a reading can be trusted. Validation marks quality instead of dropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Good,
    /// An implausible jump from the previous value.
    Suspect,
    /// Outside the sensor's physical range.
    Bad,
}

impl Quality {
    pub const fn name(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Suspect => "suspect",
            Quality::Bad => "bad",
        }
    }
}

/// Facts about how a reading was obtained, as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReadingFlags(pub u8);

impl ReadingFlags {
    /// The sensor sent no timestamp, or one more than 5 min ahead; the edge's receive time is used.
    pub const TS_FROM_EDGE: u8 = 1;
    /// The sensor is not in the edge's registry; forwarded for assignment, never dropped.
    pub const UNREGISTERED: u8 = 1 << 1;
    /// The quantity is urgent for this sensor's profile (alarms): it skips the backlog queue.
    pub const URGENT: u8 = 1 << 2;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    pub fn with(self, bit: u8) -> Self {
        ReadingFlags(self.0 | bit)
    }
}

/// One canonical reading: identified by (sensor, quantity, ts_ns) everywhere it is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub sensor: SensorId,
    pub quantity: Quantity,
    pub value: Value,
    /// UTC, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    pub quality: Quality,
    pub flags: ReadingFlags,
}

/// Why readings never reached the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The edge buffer hit `buffer_bytes_max` and evicted them.
    BufferFull,
    /// Torn records dropped when the buffer recovered after a crash.
    Recovery,
}

/// A run of readings of one sensor that were lost on the edge, reported so nobody mistakes
/// silence for normality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub sensor: SensorId,
    pub from_ns: i64,
    pub to_ns: i64,
    pub count: u64,
    pub reason: GapReason,
}

/// What an edge publishes on `wangge/v1/edges/{edge_id}/batches`. Identified by
/// (edge_id, epoch, seq): `epoch` changes on every boot of the edge's buffer, `seq` counts
/// batches within it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UplinkBatch {
    pub edge_id: EdgeId,
    pub epoch: u64,
    pub seq: u64,
    pub readings: Vec<Reading>,
    pub gaps: Vec<Gap>,
}

/// The hub's answer on `wangge/v1/edges/{edge_id}/acks`, sent only once the batch is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub epoch: u64,
    pub seq: u64,
    pub outcome: AckOutcome,
}

/// What the hub did with an acknowledged batch. Either way the edge may drop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckOutcome {
    /// Stored now.
    Stored,
    /// Stored before (a resend); nothing stored twice.
    Duplicate,
}

/// An edge's state, on `wangge/v1/edges/{edge_id}/status` (retained); the offline form is
/// the edge's MQTT last will.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeStatus {
    pub edge_id: EdgeId,
    pub online: bool,
    pub version: String,
    pub epoch: u64,
    pub backlog_readings: u64,
    pub backlog_bytes: u64,
    /// Timestamp of the oldest reading not yet acked, if any.
    pub oldest_unacked_ns: Option<i64>,
    /// When this status was produced, UTC ns.
    pub ts_ns: i64,
}

/// Why an edge ↔ hub message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UplinkError {
    Empty,
    UnknownVersion(u8),
    Malformed,
    /// The batch's tag does not verify with its edge's key: forged, or sent with a wrong secret.
    BadMac,
}

impl UplinkError {
    pub const fn reason(self) -> &'static str {
        match self {
            UplinkError::Empty => "empty",
            UplinkError::UnknownVersion(_) => "unknown_version",
            UplinkError::Malformed => "malformed",
            UplinkError::BadMac => "bad_mac",
        }
    }
}

impl fmt::Display for UplinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UplinkError::UnknownVersion(v) => write!(f, "unknown message version {v}"),
            UplinkError::Empty => f.write_str("empty payload"),
            UplinkError::Malformed => f.write_str("malformed postcard body"),
            UplinkError::BadMac => f.write_str("MAC does not verify with the edge's key"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UplinkError {}

/// The key an edge signs its batches with, derived from the secret the hub issued.
/// The hub keeps this key (and only a salted hash of the secret for MQTT login).
pub fn mac_key(secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"wangge/v1/batch-mac\0");
    h.update(secret.as_bytes());
    h.finalize().into()
}

fn tag(key: &[u8; 32], signed: &[u8]) -> [u8; MAC_BYTES] {
    // HMAC accepts keys of any length; this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac key of any length");
    m.update(signed);
    m.finalize().into_bytes().into()
}

fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = alloc::vec![UPLINK_VERSION];
    // Serializing into a Vec only fails on a type postcard cannot represent, which ours are not.
    out.extend(postcard::to_allocvec(msg).expect("postcard can encode wire types"));
    out
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, UplinkError> {
    let (&version, body) = bytes.split_first().ok_or(UplinkError::Empty)?;
    if version != UPLINK_VERSION {
        return Err(UplinkError::UnknownVersion(version));
    }
    match postcard::take_from_bytes(body) {
        Ok((msg, [])) => Ok(msg),
        _ => Err(UplinkError::Malformed),
    }
}

impl UplinkBatch {
    /// `version | postcard(batch) | HMAC-SHA256(key, version | postcard(batch))`.
    pub fn seal(&self, key: &[u8; 32]) -> Vec<u8> {
        let mut out = encode(self);
        let t = tag(key, &out);
        out.extend_from_slice(&t);
        out
    }

    /// Decodes a sealed batch without checking its tag: the caller learns which edge it claims
    /// to be from, looks up that edge's key and calls [`Unverified::verify`].
    pub fn open(bytes: &[u8]) -> Result<Unverified<'_>, UplinkError> {
        if bytes.len() < 1 + MAC_BYTES {
            return Err(if bytes.is_empty() {
                UplinkError::Empty
            } else {
                UplinkError::Malformed
            });
        }
        let (signed, tag) = bytes.split_at(bytes.len() - MAC_BYTES);
        let batch = decode(signed)?;
        Ok(Unverified { batch, signed, tag })
    }
}

/// A decoded batch whose MAC has not been checked yet.
pub struct Unverified<'a> {
    pub batch: UplinkBatch,
    signed: &'a [u8],
    tag: &'a [u8],
}

impl Unverified<'_> {
    /// Returns the batch if its tag verifies under `key` (constant-time comparison).
    pub fn verify(self, key: &[u8; 32]) -> Result<UplinkBatch, UplinkError> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac key of any length");
        m.update(self.signed);
        m.verify_slice(self.tag).map_err(|_| UplinkError::BadMac)?;
        Ok(self.batch)
    }
}

impl Ack {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Ack, UplinkError> {
        decode(bytes)
    }
}

impl EdgeStatus {
    /// `version | postcard(status) | HMAC-SHA256(key, version | postcard(status))`, as a batch:
    /// the hub's broker has no per-topic ACL, so only the tag proves which edge sent a status.
    pub fn seal(&self, key: &[u8; 32]) -> Vec<u8> {
        let mut out = encode(self);
        let t = tag(key, &out);
        out.extend_from_slice(&t);
        out
    }

    /// Verifies a sealed status with the key of the edge its topic names, then decodes it.
    pub fn open(bytes: &[u8], key: &[u8; 32]) -> Result<EdgeStatus, UplinkError> {
        if bytes.len() < 1 + MAC_BYTES {
            return Err(if bytes.is_empty() {
                UplinkError::Empty
            } else {
                UplinkError::Malformed
            });
        }
        let (signed, t) = bytes.split_at(bytes.len() - MAC_BYTES);
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac key of any length");
        m.update(signed);
        m.verify_slice(t).map_err(|_| UplinkError::BadMac)?;
        decode(signed)
    }

    /// The body without a tag (tests and tools that only read a status).
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes an untagged body (see [`EdgeStatus::encode`]).
    pub fn decode(bytes: &[u8]) -> Result<EdgeStatus, UplinkError> {
        decode(bytes)
    }
}

/// MQTT topics of the edge ↔ hub contract.
pub mod topics {
    use alloc::format;
    use alloc::string::String;

    pub fn batches(edge_id: &str) -> String {
        format!("wangge/v1/edges/{edge_id}/batches")
    }
    pub fn acks(edge_id: &str) -> String {
        format!("wangge/v1/edges/{edge_id}/acks")
    }
    pub fn status(edge_id: &str) -> String {
        format!("wangge/v1/edges/{edge_id}/status")
    }
    /// Subscription filters the hub uses.
    pub const ALL_BATCHES: &str = "wangge/v1/edges/+/batches";
    pub const ALL_STATUS: &str = "wangge/v1/edges/+/status";

    /// The edge id in a `wangge/v1/edges/{id}/...` topic.
    pub fn edge_of(topic: &str) -> Option<&str> {
        let rest = topic.strip_prefix("wangge/v1/edges/")?;
        let (id, _) = rest.split_once('/')?;
        (!id.is_empty()).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn batch() -> UplinkBatch {
        UplinkBatch {
            edge_id: "edge-1".into(),
            epoch: 7,
            seq: 42,
            readings: vec![Reading {
                sensor: "MH-0001".into(),
                quantity: Quantity::Tilt,
                value: Value::Float(12.5),
                ts_ns: 1_732_500_000_123_000_000,
                quality: Quality::Good,
                flags: ReadingFlags::default(),
            }],
            gaps: vec![],
        }
    }

    #[test]
    fn a_sealed_batch_opens_only_with_its_edges_key() {
        let key = mac_key("s3cret");
        let bytes = batch().seal(&key);
        assert_eq!(
            UplinkBatch::open(&bytes).unwrap().verify(&key).unwrap(),
            batch()
        );
        let other = mac_key("other");
        assert_eq!(
            UplinkBatch::open(&bytes).unwrap().verify(&other),
            Err(UplinkError::BadMac)
        );
        let mut tampered = bytes.clone();
        tampered[5] ^= 1;
        assert!(UplinkBatch::open(&tampered)
            .and_then(|u| u.verify(&key))
            .is_err());
    }

    #[test]
    fn acks_and_status_round_trip_and_bad_versions_are_named() {
        let ack = Ack {
            epoch: 1,
            seq: 2,
            outcome: AckOutcome::Duplicate,
        };
        assert_eq!(Ack::decode(&ack.encode()), Ok(ack));
        let mut b = ack.encode();
        b[0] = 9;
        assert_eq!(Ack::decode(&b), Err(UplinkError::UnknownVersion(9)));
        assert_eq!(Ack::decode(&[]), Err(UplinkError::Empty));
    }

    #[test]
    fn topics_name_the_edge() {
        assert_eq!(topics::edge_of(&topics::batches("e-7")), Some("e-7"));
        assert_eq!(topics::edge_of("wangge/v1/edges//batches"), None);
        assert_eq!(topics::edge_of("sensors/x/readings"), None);
    }
}
