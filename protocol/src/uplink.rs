//! Edge ↔ hub messages: canonical readings, uplink batches, acks and edge status.
//!
//! Every message is `version byte | postcard body | HMAC-SHA256 tag`: batches and statuses
//! are sealed by the edge, acks by the hub, all under the edge's MAC key, each kind with its
//! own domain-separation prefix in the MAC input so a tag of one kind never verifies as
//! another (see `protocol/README.md`).

pub use crate::sources_down::SourceDown;
use crate::sources_down::StatusWithoutSources;
use crate::{Quantity, Value};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version byte of every edge ↔ hub message.
/// Version 2: acks are sealed and name their edge; statuses carry a freshness counter.
pub const UPLINK_VERSION: u8 = 2;
/// Length of the HMAC-SHA256 tag that ends every message.
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
/// Sealed by the hub under the edge's key ([`Ack::seal`]) and naming the edge, so whoever can
/// publish on the broker cannot make an edge drop readings the hub never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub edge_id: EdgeId,
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
    /// Freshness: counts this edge's statuses within `epoch` (the edge's last will included).
    /// The hub keeps the newest (epoch, counter) it accepted and refuses anything not newer,
    /// so a replayed status changes nothing.
    pub counter: u64,
    /// The counter of the last will the edge registered for its current connection (an
    /// offline status names its own counter). The hub accepts that one will once even though
    /// it is older than the online statuses that announced it.
    pub will_counter: u64,
    pub backlog_readings: u64,
    pub backlog_bytes: u64,
    /// Timestamp of the oldest reading not yet acked, if any.
    pub oldest_unacked_ns: Option<i64>,
    /// When this status was produced, UTC ns.
    pub ts_ns: i64,
    /// The edge's sources that are down now (a Modbus line it cannot open, a slave that stopped
    /// answering) and the sensors behind each, within [`crate::sources_down`]'s bounds. Empty in
    /// an offline status (the will says nothing of sources) and in statuses of older edges:
    /// a status with none is encoded without the field (see [`EdgeStatus::seal`]).
    #[serde(default)]
    pub sources_down: Vec<SourceDown>,
}

/// Why an edge ↔ hub message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UplinkError {
    Empty,
    UnknownVersion(u8),
    Malformed,
    /// The batch's tag does not verify with its edge's key: forged, or sent with a wrong secret.
    BadMac,
    /// A whole, valid message body with no tag at all (an ack forged without a key).
    Unsigned,
    /// A correctly sealed message that names another edge.
    Foreign,
}

impl UplinkError {
    pub const fn reason(self) -> &'static str {
        match self {
            UplinkError::Empty => "empty",
            UplinkError::UnknownVersion(_) => "unknown_version",
            UplinkError::Malformed => "malformed",
            UplinkError::BadMac => "bad_mac",
            UplinkError::Unsigned => "unsigned",
            UplinkError::Foreign => "foreign",
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
            UplinkError::Unsigned => f.write_str("message carries no MAC"),
            UplinkError::Foreign => f.write_str("message names another edge"),
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

/// Which kind of message a tag seals. Its prefix goes into the MAC input before the message
/// bytes, so a batch's tag can never be presented as a valid ack or status tag (nor the
/// other way round), even if the bodies happened to decode as the other type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacDomain {
    Batch,
    Ack,
    Status,
    /// A desired configuration the hub sealed for one edge ([`crate::edge_config`]).
    Config,
    /// An edge's report of what it did with a desired configuration.
    ConfigReport,
}

impl MacDomain {
    pub const fn prefix(self) -> &'static [u8] {
        match self {
            MacDomain::Batch => b"wangge/v2/batch\0",
            MacDomain::Ack => b"wangge/v2/ack\0",
            MacDomain::Status => b"wangge/v2/status\0",
            MacDomain::Config => b"wangge/v2/config\0",
            MacDomain::ConfigReport => b"wangge/v2/config-report\0",
        }
    }
}

fn hmac(key: &[u8; 32], domain: MacDomain, signed: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac key of any length");
    m.update(domain.prefix());
    m.update(signed);
    m
}

fn tag(key: &[u8; 32], domain: MacDomain, signed: &[u8]) -> [u8; MAC_BYTES] {
    hmac(key, domain, signed).finalize().into_bytes().into()
}

/// Checks `bytes` = `signed | tag` under `key` in constant time and returns `signed`.
pub(crate) fn check_tag<'a>(
    key: &[u8; 32],
    domain: MacDomain,
    bytes: &'a [u8],
) -> Result<&'a [u8], UplinkError> {
    let (signed, t) = split_tag(bytes)?;
    hmac(key, domain, signed)
        .verify_slice(t)
        .map_err(|_| UplinkError::BadMac)?;
    Ok(signed)
}

/// Splits off the tag; the version byte is checked first so a peer of another protocol
/// version is named as such, whatever its message looks like.
fn split_tag(bytes: &[u8]) -> Result<(&[u8], &[u8]), UplinkError> {
    let &version = bytes.first().ok_or(UplinkError::Empty)?;
    if version != UPLINK_VERSION {
        return Err(UplinkError::UnknownVersion(version));
    }
    if bytes.len() < 1 + MAC_BYTES {
        return Err(UplinkError::Malformed);
    }
    Ok(bytes.split_at(bytes.len() - MAC_BYTES))
}

/// The version byte of a message, if any (for logs naming a peer's protocol version).
pub fn version_of(bytes: &[u8]) -> Option<u8> {
    bytes.first().copied()
}

fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = alloc::vec![UPLINK_VERSION];
    // Serializing into a Vec only fails on a type postcard cannot represent, which ours are not.
    out.extend(postcard::to_allocvec(msg).expect("postcard can encode wire types"));
    out
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, UplinkError> {
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
        seal(self, key, MacDomain::Batch)
    }

    /// Decodes a sealed batch without checking its tag: the caller learns which edge it claims
    /// to be from, looks up that edge's key and calls [`Unverified::verify`].
    pub fn open(bytes: &[u8]) -> Result<Unverified<'_>, UplinkError> {
        let (signed, tag) = split_tag(bytes)?;
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
        hmac(key, MacDomain::Batch, self.signed)
            .verify_slice(self.tag)
            .map_err(|_| UplinkError::BadMac)?;
        Ok(self.batch)
    }
}

pub(crate) fn seal<T: Serialize>(msg: &T, key: &[u8; 32], domain: MacDomain) -> Vec<u8> {
    let mut out = encode(msg);
    let t = tag(key, domain, &out);
    out.extend_from_slice(&t);
    out
}

impl Ack {
    /// `version | postcard(ack) | HMAC-SHA256(key, "wangge/v2/ack" 00 | version | postcard(ack))`,
    /// sealed by the hub under the key of the edge it answers.
    pub fn seal(&self, key: &[u8; 32]) -> Vec<u8> {
        seal(self, key, MacDomain::Ack)
    }

    /// Opens an ack addressed to `edge_id`: the version must be ours, the tag must verify
    /// under `key` and the ack must name `edge_id`. A well-formed body without a tag is
    /// [`UplinkError::Unsigned`], a sealed ack for another edge [`UplinkError::Foreign`].
    /// Whether its (epoch, seq) is in flight is the edge's delivery window's business.
    pub fn open(bytes: &[u8], key: &[u8; 32], edge_id: &str) -> Result<Ack, UplinkError> {
        let &version = bytes.first().ok_or(UplinkError::Empty)?;
        if version != UPLINK_VERSION {
            return Err(UplinkError::UnknownVersion(version));
        }
        if decode::<Ack>(bytes).is_ok() {
            return Err(UplinkError::Unsigned);
        }
        let ack: Ack = decode(check_tag(key, MacDomain::Ack, bytes)?)?;
        if ack.edge_id.as_str() != edge_id {
            return Err(UplinkError::Foreign);
        }
        Ok(ack)
    }

    /// The body without a tag. No edge accepts it ([`UplinkError::Unsigned`]); tests use it
    /// to play a forger.
    pub fn encode_unsigned(&self) -> Vec<u8> {
        encode(self)
    }
}

impl EdgeStatus {
    /// An online status of `edge_id` running `version`, produced at `ts_ns`: the `counter`-th
    /// status within `epoch`, announcing the will of counter `will_counter`. No backlog is
    /// reported; set `backlog_readings`, `backlog_bytes` and `oldest_unacked_ns` if there is one.
    pub fn online(
        edge_id: &str,
        version: &str,
        epoch: u64,
        counter: u64,
        will_counter: u64,
        ts_ns: i64,
    ) -> EdgeStatus {
        EdgeStatus {
            edge_id: edge_id.into(),
            online: true,
            version: version.into(),
            epoch,
            counter,
            will_counter,
            backlog_readings: 0,
            backlog_bytes: 0,
            oldest_unacked_ns: None,
            ts_ns,
            sources_down: Vec::new(),
        }
    }

    /// The offline status `edge_id` registers as its last will: counter `counter` within
    /// `epoch`, naming itself (`will_counter == counter`), no backlog.
    pub fn offline(
        edge_id: &str,
        version: &str,
        epoch: u64,
        counter: u64,
        ts_ns: i64,
    ) -> EdgeStatus {
        EdgeStatus {
            online: false,
            ..EdgeStatus::online(edge_id, version, epoch, counter, counter, ts_ns)
        }
    }

    /// `version | postcard(status) | HMAC-SHA256(key, version | postcard(status))`, as a batch:
    /// the hub's broker has no per-topic ACL, so only the tag proves which edge sent a status.
    /// With no source down the body is the layout without `sources_down`, so a hub that
    /// predates the field still reads it.
    pub fn seal(&self, key: &[u8; 32]) -> Vec<u8> {
        if self.sources_down.is_empty() {
            return seal_without_sources(self, key);
        }
        seal(self, key, MacDomain::Status)
    }

    /// Verifies a sealed status with the key of the edge its topic names, then decodes it
    /// (either layout). Freshness is checked by the receiver against what it accepted before
    /// ([`StatusMark::judge`]).
    pub fn open(bytes: &[u8], key: &[u8; 32]) -> Result<EdgeStatus, UplinkError> {
        EdgeStatus::decode(check_tag(key, MacDomain::Status, bytes)?)
    }

    /// The body without a tag (tests and tools that only read a status).
    pub fn encode(&self) -> Vec<u8> {
        if self.sources_down.is_empty() {
            return encode(&StatusWithoutSources::from(self));
        }
        encode(self)
    }

    /// Decodes an untagged body (see [`EdgeStatus::encode`]): with `sources_down`, or the
    /// layout without it (an older edge's, or nothing down).
    pub fn decode(bytes: &[u8]) -> Result<EdgeStatus, UplinkError> {
        decode::<EdgeStatus>(bytes)
            .or_else(|_| decode::<StatusWithoutSources>(bytes).map(EdgeStatus::from))
    }
}

/// A status sealed in the layout without `sources_down` (what older edges sent).
pub(crate) fn seal_without_sources(st: &EdgeStatus, key: &[u8; 32]) -> Vec<u8> {
    seal(&StatusWithoutSources::from(st), key, MacDomain::Status)
}

pub use crate::status_mark::{Freshness, StatusMark};

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
    /// The hub's desired configuration for the edge (sealed, retained; hub → edge).
    pub fn config(edge_id: &str) -> String {
        format!("wangge/v1/edges/{edge_id}/config")
    }
    /// The edge's report on a desired configuration (sealed; edge → hub).
    pub fn config_report(edge_id: &str) -> String {
        format!("wangge/v1/edges/{edge_id}/config-report")
    }
    /// Subscription filters the hub uses.
    pub const ALL_BATCHES: &str = "wangge/v1/edges/+/batches";
    pub const ALL_STATUS: &str = "wangge/v1/edges/+/status";
    pub const ALL_CONFIG_REPORTS: &str = "wangge/v1/edges/+/config-report";

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

    fn ack() -> Ack {
        Ack {
            edge_id: "edge-1".into(),
            epoch: 7,
            seq: 42,
            outcome: AckOutcome::Duplicate,
        }
    }

    fn status(online: bool, epoch: u64, counter: u64, will_counter: u64) -> EdgeStatus {
        let st = EdgeStatus::online("edge-1", "0.1.0", epoch, counter, will_counter, 1);
        EdgeStatus { online, ..st }
    }

    #[test]
    fn a_sealed_ack_opens_only_for_its_edge_under_its_key() {
        let key = mac_key("s3cret");
        let bytes = ack().seal(&key);
        assert_eq!(Ack::open(&bytes, &key, "edge-1"), Ok(ack()));
        assert_eq!(
            Ack::open(&bytes, &mac_key("other"), "edge-1"),
            Err(UplinkError::BadMac)
        );
        assert_eq!(Ack::open(&bytes, &key, "edge-2"), Err(UplinkError::Foreign));
        let mut tampered = bytes.clone();
        tampered[3] ^= 1;
        assert_eq!(
            Ack::open(&tampered, &key, "edge-1"),
            Err(UplinkError::BadMac)
        );
    }

    #[test]
    fn an_unsigned_or_old_version_ack_is_named_as_such() {
        let key = mac_key("s3cret");
        assert_eq!(
            Ack::open(&ack().encode_unsigned(), &key, "edge-1"),
            Err(UplinkError::Unsigned)
        );
        let mut old = ack().seal(&key);
        old[0] = 1;
        assert_eq!(
            Ack::open(&old, &key, "edge-1"),
            Err(UplinkError::UnknownVersion(1))
        );
        assert_eq!(Ack::open(&[], &key, "edge-1"), Err(UplinkError::Empty));
        assert_eq!(
            Ack::open(&[UPLINK_VERSION, 0xff], &key, "edge-1"),
            Err(UplinkError::Malformed)
        );
    }

    #[test]
    fn a_tag_of_one_message_kind_never_verifies_as_another() {
        let key = mac_key("s3cret");
        // Same signed bytes, other domain: the batch tag over an ack body is refused.
        let body = ack().encode_unsigned();
        let mut as_batch = body.clone();
        as_batch.extend_from_slice(&tag(&key, MacDomain::Batch, &body));
        assert_eq!(
            Ack::open(&as_batch, &key, "edge-1"),
            Err(UplinkError::BadMac)
        );
        let st = status(true, 1, 1, 0).encode();
        let mut as_ack = st.clone();
        as_ack.extend_from_slice(&tag(&key, MacDomain::Ack, &st));
        assert_eq!(EdgeStatus::open(&as_ack, &key), Err(UplinkError::BadMac));
        let sealed = status(true, 1, 1, 0).seal(&key);
        assert_eq!(EdgeStatus::open(&sealed, &key), Ok(status(true, 1, 1, 0)));
    }

    #[test]
    fn a_replayed_online_status_is_stale_and_a_new_epoch_is_fresh() {
        let first = status(true, 3, 1, 0);
        let mark = StatusMark::after(None, &first, StatusMark::judge(None, &first));
        let next = status(true, 3, 2, 0);
        assert_eq!(StatusMark::judge(mark.as_ref(), &next), Freshness::Fresh);
        let mark = StatusMark::after(mark.as_ref(), &next, Freshness::Fresh);
        assert_eq!(StatusMark::judge(mark.as_ref(), &first), Freshness::Stale);
        assert_eq!(StatusMark::judge(mark.as_ref(), &next), Freshness::Same);
        assert_eq!(
            StatusMark::judge(mark.as_ref(), &status(true, 4, 0, 0)),
            Freshness::Fresh
        );
    }

    #[test]
    fn the_announced_will_is_accepted_once_and_an_old_one_never() {
        // Connection 1: will 0, online 1 announcing will 0. Connection 2: will 2, online 3.
        let online = status(true, 5, 3, 2);
        let mark = StatusMark::after(None, &online, Freshness::Fresh);
        assert_eq!(
            StatusMark::judge(mark.as_ref(), &status(false, 5, 0, 0)),
            Freshness::Stale,
            "the will of an earlier connection"
        );
        let will = status(false, 5, 2, 2);
        assert_eq!(
            StatusMark::judge(mark.as_ref(), &will),
            Freshness::AnnouncedWill
        );
        let mark = StatusMark::after(mark.as_ref(), &will, Freshness::AnnouncedWill);
        assert_eq!(StatusMark::judge(mark.as_ref(), &will), Freshness::Stale);
        assert_eq!(
            StatusMark::judge(mark.as_ref(), &online),
            Freshness::Same,
            "the last online again changes nothing"
        );
        assert_eq!(
            StatusMark::judge(mark.as_ref(), &status(false, 4, 9, 9)),
            Freshness::Stale,
            "a will of an older epoch"
        );
    }

    #[test]
    fn topics_name_the_edge() {
        assert_eq!(topics::edge_of(&topics::batches("e-7")), Some("e-7"));
        assert_eq!(topics::edge_of("wangge/v1/edges//batches"), None);
        assert_eq!(topics::edge_of("sensors/x/readings"), None);
    }
}
