//! Just enough of MQTT 3.1.1 (OASIS, protocol level 4) for the gate: framing, the fields of
//! CONNECT, SUBSCRIBE and PUBLISH it checks, and the CONNACK / SUBACK it answers itself.
//!
//! Everything here parses hostile bytes: every length is checked against the frame, nothing
//! panics on input, and a frame larger than the caller's bound is an error before its body is
//! buffered.

/// MQTT control packet types (upper nibble of the first byte).
pub const CONNECT: u8 = 1;
pub const PUBLISH: u8 = 3;
pub const SUBSCRIBE: u8 = 8;

/// CONNACK return codes (MQTT 3.1.1 §3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefusal {
    UnacceptableProtocol = 1,
    IdentifierRejected = 2,
    BadCredentials = 4,
    NotAuthorized = 5,
}

/// Why bytes from a peer are not MQTT the gate accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("remaining length is not a valid MQTT variable byte integer")]
    BadLength,
    #[error("frame of {0} bytes exceeds the bound")]
    TooLarge(usize),
    #[error("malformed {0} packet")]
    Malformed(&'static str),
    #[error("expected CONNECT as the first packet")]
    NotConnect,
}

/// A complete frame at the start of `buf`: `Ok(Some(total_len))`, `Ok(None)` if more bytes are
/// needed, an error if the header is invalid or announces more than `max_frame_bytes`.
pub fn frame_len(buf: &[u8], max_frame_bytes: usize) -> Result<Option<usize>, WireError> {
    let Some((remaining, header)) = remaining_length(buf)? else {
        return Ok(None);
    };
    let total = header + remaining;
    if total > max_frame_bytes {
        return Err(WireError::TooLarge(total));
    }
    Ok((buf.len() >= total).then_some(total))
}

/// (remaining length, bytes of fixed header) if the fixed header is complete.
fn remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, WireError> {
    protocol::mqtt_length::read(buf).map_err(|_| WireError::BadLength)
}

/// The packet type of a complete frame.
pub fn packet_type(frame: &[u8]) -> u8 {
    frame.first().map_or(0, |b| b >> 4)
}

/// The body of a complete frame (after the fixed header).
fn body(frame: &[u8]) -> Result<&[u8], WireError> {
    let (_, header) = remaining_length(frame)?.ok_or(WireError::BadLength)?;
    frame.get(header..).ok_or(WireError::BadLength)
}

/// A cursor over a packet body that fails instead of panicking.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, WireError> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or(WireError::Malformed(self.what))?;
        self.buf = rest;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u16()? as usize;
        if self.buf.len() < n {
            return Err(WireError::Malformed(self.what));
        }
        let (b, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(b)
    }
    fn string(&mut self) -> Result<String, WireError> {
        let what = self.what;
        let b = self.bytes()?;
        // MQTT strings are UTF-8 without U+0000.
        let s = std::str::from_utf8(b).map_err(|_| WireError::Malformed(what))?;
        if s.contains('\0') {
            return Err(WireError::Malformed(what));
        }
        Ok(s.to_string())
    }
}

/// The will a client asks the broker to publish if its connection ends without DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
}

/// The fields of a CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub protocol_name: String,
    pub level: u8,
    pub clean_session: bool,
    pub keep_alive_s: u16,
    pub client_id: String,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
}

impl Connect {
    /// Parses a complete CONNECT frame.
    pub fn parse(frame: &[u8]) -> Result<Connect, WireError> {
        if packet_type(frame) != CONNECT {
            return Err(WireError::NotConnect);
        }
        let mut r = Reader {
            buf: body(frame)?,
            what: "CONNECT",
        };
        let protocol_name = r.string()?;
        let level = r.u8()?;
        let flags = r.u8()?;
        if flags & 1 != 0 {
            return Err(WireError::Malformed("CONNECT")); // reserved flag (§3.1.2.3)
        }
        let keep_alive_s = r.u16()?;
        let client_id = r.string()?;
        let will = if flags & 0x04 != 0 {
            let topic = r.string()?;
            let payload = r.bytes()?.to_vec();
            Some(Will {
                topic,
                payload,
                qos: (flags >> 3) & 3,
                retain: flags & 0x20 != 0,
            })
        } else {
            None
        };
        let username = if flags & 0x80 != 0 {
            Some(r.string()?)
        } else {
            None
        };
        let password = if flags & 0x40 != 0 {
            Some(r.bytes()?.to_vec())
        } else {
            None
        };
        if !r.buf.is_empty() {
            return Err(WireError::Malformed("CONNECT"));
        }
        Ok(Connect {
            protocol_name,
            level,
            clean_session: flags & 0x02 != 0,
            keep_alive_s,
            client_id,
            will,
            username,
            password,
        })
    }

    /// Encodes this CONNECT as a frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0u8;
        let mut payload = Vec::new();
        put_str(&mut payload, self.client_id.as_bytes());
        if let Some(w) = &self.will {
            flags |= 0x04 | ((w.qos & 3) << 3) | if w.retain { 0x20 } else { 0 };
            put_str(&mut payload, w.topic.as_bytes());
            put_str(&mut payload, &w.payload);
        }
        if let Some(u) = &self.username {
            flags |= 0x80;
            put_str(&mut payload, u.as_bytes());
        }
        if let Some(p) = &self.password {
            flags |= 0x40;
            put_str(&mut payload, p);
        }
        if self.clean_session {
            flags |= 0x02;
        }
        let mut body = Vec::with_capacity(10 + payload.len());
        put_str(&mut body, self.protocol_name.as_bytes());
        body.push(self.level);
        body.push(flags);
        body.extend_from_slice(&self.keep_alive_s.to_be_bytes());
        body.extend_from_slice(&payload);
        frame(CONNECT << 4, &body)
    }
}

/// The topic, QoS and retain flag of a PUBLISH frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishHeader {
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
}

impl PublishHeader {
    pub fn parse(frame: &[u8]) -> Result<PublishHeader, WireError> {
        let flags = frame.first().map_or(0, |b| b & 0x0f);
        let qos = (flags >> 1) & 3;
        if qos == 3 {
            return Err(WireError::Malformed("PUBLISH"));
        }
        let mut r = Reader {
            buf: body(frame)?,
            what: "PUBLISH",
        };
        Ok(PublishHeader {
            topic: r.string()?,
            qos,
            retain: flags & 1 != 0,
        })
    }
}

/// The packet id and topic filters of a SUBSCRIBE frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    pub filters: Vec<String>,
}

impl Subscribe {
    pub fn parse(frame: &[u8]) -> Result<Subscribe, WireError> {
        // §3.8.1: the fixed header flags of SUBSCRIBE are 0b0010.
        if frame.first().map(|b| b & 0x0f) != Some(0x02) {
            return Err(WireError::Malformed("SUBSCRIBE"));
        }
        let mut r = Reader {
            buf: body(frame)?,
            what: "SUBSCRIBE",
        };
        let packet_id = r.u16()?;
        let mut filters = Vec::new();
        while !r.buf.is_empty() {
            filters.push(r.string()?);
            r.u8()?; // requested QoS
        }
        if filters.is_empty() {
            return Err(WireError::Malformed("SUBSCRIBE"));
        }
        Ok(Subscribe { packet_id, filters })
    }
}

/// CONNACK refusing the connection (session present = 0).
pub fn connack_refused(code: ConnectRefusal) -> [u8; 4] {
    [0x20, 0x02, 0x00, code as u8]
}

/// SUBACK answering `packet_id` with "failure" (0x80) for each of `count` filters.
pub fn suback_refused(packet_id: u16, count: usize) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.extend(std::iter::repeat_n(0x80u8, count));
    frame(0x90, &body)
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    // Callers pass fields parsed from a u16-prefixed string, or short ones of their own.
    let n = s.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&s[..n]);
}

fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first);
    let (len, n) = protocol::mqtt_length::encode(body.len());
    out.extend_from_slice(&len[..n]);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Connect {
        Connect {
            protocol_name: "MQTT".into(),
            level: 4,
            clean_session: false,
            keep_alive_s: 15,
            client_id: "edge-1".into(),
            will: Some(Will {
                topic: "wangge/v1/edges/edge-1/status".into(),
                payload: vec![2, 0, 1],
                qos: 1,
                retain: true,
            }),
            username: Some("edge-1".into()),
            password: Some(b"secret".to_vec()),
        }
    }

    #[test]
    fn connect_round_trips_with_will_and_credentials() {
        let c = sample();
        let f = c.encode();
        assert_eq!(frame_len(&f, 1 << 20), Ok(Some(f.len())));
        assert_eq!(Connect::parse(&f), Ok(c));
    }

    #[test]
    fn truncated_or_oversized_frames_are_errors_not_panics() {
        let f = sample().encode();
        for cut in 0..f.len() {
            assert_eq!(frame_len(&f[..cut], 1 << 20).ok().flatten(), None);
            let _ = Connect::parse(&f[..cut]);
            let _ = Subscribe::parse(&f[..cut]);
            let _ = PublishHeader::parse(&f[..cut]);
        }
        assert_eq!(frame_len(&f, 10), Err(WireError::TooLarge(f.len())));
        assert_eq!(
            frame_len(&[0x30, 0xff, 0xff, 0xff, 0xff], 1 << 30),
            Err(WireError::BadLength)
        );
    }

    #[test]
    fn subscribe_filters_and_publish_topic_are_read() {
        // SUBSCRIBE id 7: "a/#" qos 1, "b" qos 0
        let body = [0, 7, 0, 3, b'a', b'/', b'#', 1, 0, 1, b'b', 0];
        let f = frame(0x82, &body);
        assert_eq!(
            Subscribe::parse(&f),
            Ok(Subscribe {
                packet_id: 7,
                filters: vec!["a/#".into(), "b".into()]
            })
        );
        assert_eq!(suback_refused(7, 2), vec![0x90, 4, 0, 7, 0x80, 0x80]);
        // PUBLISH qos 1 retain, topic "t/x", packet id 3, payload "hi"
        let f = frame(0x33, &[0, 3, b't', b'/', b'x', 0, 3, b'h', b'i']);
        assert_eq!(
            PublishHeader::parse(&f),
            Ok(PublishHeader {
                topic: "t/x".into(),
                qos: 1,
                retain: true
            })
        );
    }
}
