//! One record of the log: `len u32 LE | crc32 u32 LE | postcard(Reading)`.
//!
//! The length comes first so a reader can skip without decoding; the CRC (of the payload)
//! tells a complete record from a torn or corrupted one after a crash.

use protocol::uplink::Reading;

pub const HEADER_BYTES: usize = 8;
/// A reading is ~40 bytes; anything above this is corruption, not a record.
pub const PAYLOAD_BYTES_MAX: u32 = 4096;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// Appends the encoded record for `r` to `out`.
pub fn encode(r: &Reading, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_BYTES]);
    // postcard cannot fail on a Reading into a Vec.
    let mut payload =
        postcard::to_extend(r, std::mem::take(out)).expect("postcard encodes a Reading into a Vec");
    let len = (payload.len() - start - HEADER_BYTES) as u32;
    let crc = CRC32.checksum(&payload[start + HEADER_BYTES..]);
    payload[start..start + 4].copy_from_slice(&len.to_le_bytes());
    payload[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    *out = payload;
}

/// What lies at the start of `bytes`.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// A valid record of `len` total bytes.
    Record(Reading, usize),
    /// Not enough bytes for the header or the payload: a torn tail.
    Incomplete,
    /// Length out of bounds, CRC mismatch or undecodable payload.
    Corrupt,
}

pub fn decode(bytes: &[u8]) -> Decoded {
    if bytes.len() < HEADER_BYTES {
        return Decoded::Incomplete;
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if len == 0 || len > PAYLOAD_BYTES_MAX {
        return Decoded::Corrupt;
    }
    let end = HEADER_BYTES + len as usize;
    if bytes.len() < end {
        return Decoded::Incomplete;
    }
    let payload = &bytes[HEADER_BYTES..end];
    if CRC32.checksum(payload) != crc {
        return Decoded::Corrupt;
    }
    match postcard::from_bytes::<Reading>(payload) {
        Ok(r) => Decoded::Record(r, end),
        Err(_) => Decoded::Corrupt,
    }
}
