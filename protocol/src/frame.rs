//! The serial sensor frame: what a smart sensor writes on its UART.

use crate::{cobs, Quantity, Value, CRC32};
use core::fmt;
use serde::{Deserialize, Serialize};

/// Current frame format version, the first byte of every decoded frame.
pub const FRAME_VERSION: u8 = 1;
/// Longest sensor id a frame may carry, in UTF-8 bytes.
pub const MAX_SENSOR_ID_BYTES: usize = 32;
/// Most measurements one frame may carry.
pub const MAX_VALUES: usize = 8;
/// Longest decoded frame (version + postcard body + CRC). The worst case of a valid frame
/// is 151 bytes (32-byte id, 8 measurements of 10-byte varints); the rest is headroom.
pub const MAX_FRAME_BYTES: usize = 160;
/// Longest COBS-encoded frame, without the 0x00 delimiter.
pub const MAX_ENCODED_FRAME_BYTES: usize = cobs::max_encoded_len(MAX_FRAME_BYTES);

/// One (quantity, value) pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub quantity: Quantity,
    pub value: Value,
}

/// A frame's values from `(quantity, value)` pairs, in order; `None` if there are more than
/// [`MAX_VALUES`].
pub fn measurements(list: &[(Quantity, Value)]) -> Option<heapless::Vec<Measurement, MAX_VALUES>> {
    let mut values = heapless::Vec::new();
    for &(quantity, value) in list {
        values.push(Measurement { quantity, value }).ok()?;
    }
    Some(values)
}

/// One report of one sensor, as sent on a serial line. Borrows its id from the decode buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorFrame<'a> {
    /// The sensor's id as registered at the hub, e.g. `MH-0001`.
    pub sensor_id: &'a str,
    /// Per-sensor sequence number; the edge drops repeats of (sensor, seq).
    pub seq: u32,
    /// The sensor's own clock, Unix milliseconds, if it has one worth trusting.
    pub ts_ms: Option<u64>,
    /// What was measured.
    pub values: heapless::Vec<Measurement, MAX_VALUES>,
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The sensor id is empty or longer than [`MAX_SENSOR_ID_BYTES`].
    SensorId,
    /// The output buffer is too small; [`MAX_ENCODED_FRAME_BYTES`]` + 1` always suffices.
    BufferTooSmall,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::SensorId => write!(f, "sensor id must be 1..={MAX_SENSOR_ID_BYTES} bytes"),
            EncodeError::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

/// Encodes `frame` into `out` as `COBS(version | postcard | crc32_le) 0x00` and returns the
/// number of bytes written, the delimiter included.
pub fn encode_frame(frame: &SensorFrame<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
    if frame.sensor_id.is_empty() || frame.sensor_id.len() > MAX_SENSOR_ID_BYTES {
        return Err(EncodeError::SensorId);
    }
    let mut raw = [0u8; MAX_FRAME_BYTES];
    raw[0] = FRAME_VERSION;
    // Cannot fail for a valid id and at most MAX_VALUES measurements: 151 bytes worst case.
    let body_len = postcard::to_slice(frame, &mut raw[1..MAX_FRAME_BYTES - 4])
        .map_err(|_| EncodeError::BufferTooSmall)?
        .len();
    let crc_at = 1 + body_len;
    let crc = CRC32.checksum(&raw[..crc_at]);
    raw[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    let raw_len = crc_at + 4;
    let n = cobs::encode(&raw[..raw_len], out).ok_or(EncodeError::BufferTooSmall)?;
    if n >= out.len() {
        return Err(EncodeError::BufferTooSmall);
    }
    out[n] = 0;
    Ok(n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_with_an_empty_or_long_id_is_refused() {
        let mut out = [0u8; 200];
        let mut f = SensorFrame {
            sensor_id: "",
            seq: 0,
            ts_ms: None,
            values: heapless::Vec::new(),
        };
        assert_eq!(encode_frame(&f, &mut out), Err(EncodeError::SensorId));
        f.sensor_id = "0123456789012345678901234567890123";
        assert_eq!(encode_frame(&f, &mut out), Err(EncodeError::SensorId));
    }

    #[test]
    fn the_worst_case_frame_fits() {
        let mut values = heapless::Vec::new();
        for _ in 0..MAX_VALUES {
            values
                .push(Measurement {
                    quantity: Quantity::Humidity,
                    value: Value::Int(i64::MIN),
                })
                .unwrap();
        }
        let f = SensorFrame {
            sensor_id: "01234567890123456789012345678901",
            seq: u32::MAX,
            ts_ms: Some(u64::MAX),
            values,
        };
        let mut out = [0u8; MAX_ENCODED_FRAME_BYTES + 1];
        let n = encode_frame(&f, &mut out).unwrap();
        assert!(n <= MAX_ENCODED_FRAME_BYTES + 1);
    }
}
