//! Modbus frames as a slave sees them: read requests (functions 1-4) in, answers and exceptions
//! out, with the RTU CRC and the TCP MBAP header.

/// A read request (functions 1-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    pub unit: u8,
    pub function: u8,
    pub address: u16,
    pub count: u16,
}

/// CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF), sent low byte first.
pub fn crc16(data: &[u8]) -> u16 {
    crc::Crc::<u16>::new(&crc::CRC_16_MODBUS).checksum(data)
}

/// Appends the CRC to an RTU frame body.
pub fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc16(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

/// The request at the start of `buf` if it is one of functions 1-4 with a valid CRC (8 bytes).
pub fn parse_rtu_request(buf: &[u8]) -> Option<ReadRequest> {
    let f = buf.get(..8)?;
    if !(1..=4).contains(&f[1]) || crc16(&f[..6]).to_le_bytes() != [f[6], f[7]] {
        return None;
    }
    Some(ReadRequest {
        unit: f[0],
        function: f[1],
        address: u16::from_be_bytes([f[2], f[3]]),
        count: u16::from_be_bytes([f[4], f[5]]),
    })
}

/// The answer's PDU (function, byte count, data) for registers.
pub fn registers_pdu(function: u8, words: &[u16]) -> Vec<u8> {
    let mut pdu = vec![function, (words.len() * 2) as u8];
    for w in words {
        pdu.extend_from_slice(&w.to_be_bytes());
    }
    pdu
}

/// The answer's PDU for bits (LSB of the first byte is the first bit).
pub fn bits_pdu(function: u8, bits: &[bool]) -> Vec<u8> {
    let mut data = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        if b {
            data[i / 8] |= 1 << (i % 8);
        }
    }
    let mut pdu = vec![function, data.len() as u8];
    pdu.extend_from_slice(&data);
    pdu
}

/// An exception answer's PDU.
pub fn exception_pdu(function: u8, code: u8) -> Vec<u8> {
    vec![function | 0x80, code]
}

/// An MBAP-framed TCP answer for `transaction` and `unit`.
pub fn tcp_frame(transaction: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(7 + pdu.len());
    out.extend_from_slice(&transaction.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    out.push(unit);
    out.extend_from_slice(pdu);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_specifications_example() {
        // Modbus over serial line 1.02, 6.2.2: read 2 holding registers... frame from the
        // well-known example "01 03 00 00 00 0A" -> CRC C5 CD.
        assert_eq!(
            with_crc(vec![0x01, 0x03, 0x00, 0x00, 0x00, 0x0A])[6..],
            [0xC5, 0xCD]
        );
        let req = with_crc(vec![0x11, 0x04, 0x00, 0x08, 0x00, 0x01]);
        assert_eq!(
            parse_rtu_request(&req),
            Some(ReadRequest {
                unit: 0x11,
                function: 4,
                address: 8,
                count: 1
            })
        );
        let mut bad = req.clone();
        bad[7] ^= 1;
        assert_eq!(parse_rtu_request(&bad), None);
    }

    #[test]
    fn bits_pack_lsb_first() {
        assert_eq!(
            bits_pdu(
                1,
                &[true, false, true, true, false, false, false, false, true]
            ),
            vec![1, 2, 0b0000_1101, 0b0000_0001]
        );
    }
}
