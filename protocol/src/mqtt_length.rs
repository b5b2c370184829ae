//! MQTT's "remaining length" (a variable byte integer of 1 to 4 bytes after the packet's first
//! byte), read and written by the two places that look inside MQTT frames themselves: the hub's
//! broker gate and the edge's site-broker front door. `no_std`, allocation-free.

/// The largest remaining length four bytes can say (MQTT 3.1.1 §2.2.3).
pub const MAX: usize = 268_435_455;

/// The fourth length byte still says "more": the frame is not MQTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// `(remaining length, size of the fixed header)` of the frame starting `buf`; `Ok(None)` while
/// the length bytes are still incomplete.
pub fn read(buf: &[u8]) -> Result<Option<(usize, usize)>, Malformed> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, 2 + i)));
        }
    }
    Err(Malformed)
}

/// The bytes of `len` (at most [`MAX`]; larger values are cut to it) and how many are used.
pub fn encode(len: usize) -> ([u8; 4], usize) {
    let mut n = len.min(MAX);
    let mut out = [0u8; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = (n % 128) as u8;
        n /= 128;
        if n == 0 {
            return (out, i + 1);
        }
        *slot |= 0x80;
    }
    (out, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standards_boundaries_round_trip() {
        // MQTT 3.1.1 table 2.4: the first and last value of each length.
        for (len, bytes) in [
            (0, &[0x00][..]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (MAX, &[0xff, 0xff, 0xff, 0x7f]),
        ] {
            let (out, n) = encode(len);
            assert_eq!(&out[..n], bytes, "{len}");
            let mut frame = [0x30u8; 5];
            frame[1..1 + n].copy_from_slice(bytes);
            assert_eq!(read(&frame[..1 + n]), Ok(Some((len, 1 + n))));
            assert_eq!(read(&frame[..n]), Ok(None), "{len}: one byte short");
        }
    }

    #[test]
    fn a_fifth_length_byte_is_malformed() {
        assert_eq!(read(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), Err(Malformed));
    }
}
