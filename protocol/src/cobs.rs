//! Consistent Overhead Byte Stuffing: removes every 0x00 from a frame so 0x00 can delimit frames.
//!
//! Written here rather than taken from a crate because it is part of the wire specification
//! (`protocol/README.md`) and must never panic on hostile input.

/// Upper bound of the COBS-encoded length of `len` bytes (without the trailing delimiter).
pub const fn max_encoded_len(len: usize) -> usize {
    len + len / 254 + 1
}

/// Encodes `src` into `dst`, returning the encoded length, or `None` if `dst` is too small.
/// The output contains no 0x00 byte; the caller appends the delimiter.
pub fn encode(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    if dst.len() < max_encoded_len(src.len()) {
        return None;
    }
    let mut code_at = 0; // where the current block's code byte goes
    let mut out = 1;
    let mut code: u8 = 1;
    for &byte in src {
        if byte == 0 {
            dst[code_at] = code;
            code_at = out;
            out += 1;
            code = 1;
        } else {
            dst[out] = byte;
            out += 1;
            code += 1;
            if code == 0xFF {
                dst[code_at] = code;
                code_at = out;
                out += 1;
                code = 1;
            }
        }
    }
    dst[code_at] = code;
    Some(out)
}

/// Why a COBS block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CobsError;

/// Decodes `buf[..len]` in place (it never grows), returning the decoded length.
/// `buf` must not contain the 0x00 delimiter.
pub fn decode_in_place(buf: &mut [u8]) -> Result<usize, CobsError> {
    let len = buf.len();
    let mut read = 0;
    let mut write = 0;
    while read < len {
        let code = buf[read] as usize;
        if code == 0 {
            return Err(CobsError);
        }
        read += 1;
        let block_end = read + code - 1;
        if block_end > len {
            return Err(CobsError);
        }
        while read < block_end {
            let b = buf[read];
            if b == 0 {
                return Err(CobsError);
            }
            buf[write] = b;
            write += 1;
            read += 1;
        }
        // A block shorter than 0xFF ends with an implicit zero, except the last block.
        if code < 0xFF && read < len {
            buf[write] = 0;
            write += 1;
        }
    }
    Ok(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(src: &[u8]) {
        let mut enc = [0u8; 1024];
        let n = encode(src, &mut enc).unwrap();
        assert!(!enc[..n].contains(&0), "encoded form contains a zero");
        let n = decode_in_place(&mut enc[..n]).unwrap();
        assert_eq!(&enc[..n], src);
    }

    #[test]
    fn known_vectors_round_trip() {
        roundtrip(&[]);
        roundtrip(&[0]);
        roundtrip(&[0, 0]);
        roundtrip(&[0x11, 0x22, 0x00, 0x33]);
        roundtrip(&[0x11; 253]);
        roundtrip(&[0x11; 254]);
        roundtrip(&[0x11; 255]);
        roundtrip(&[0x11; 600]);
    }

    #[test]
    fn wikipedia_example_encodes_exactly() {
        let mut enc = [0u8; 16];
        let n = encode(&[0x11, 0x22, 0x00, 0x33], &mut enc).unwrap();
        assert_eq!(&enc[..n], &[0x03, 0x11, 0x22, 0x02, 0x33]);
    }
}
