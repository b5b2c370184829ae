//! The front door of the edge's own site broker: it lets MQTT 3.1.1 sensors connect with an
//! empty client id, as the specification allows (§3.1.3.1), which rumqttd 0.19 refuses.
//!
//! rumqttd listens on loopback only; sensors connect here. The front reads each connection's
//! CONNECT (bounded in size and time) and then copies bytes both ways untouched:
//! - empty client id with clean session: the front assigns one (`site-anon-<n>-<random>`,
//!   unique for the process) and forwards the rewritten CONNECT;
//! - empty client id without clean session: CONNACK 0x02 "identifier rejected", as the
//!   specification requires, and the connection is closed;
//! - anything else (a client id, another protocol level): forwarded unchanged, so rumqttd's
//!   own checks (login, keep-alive, protocol) answer as before.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a new connection may take to send its CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// CONNACK with return code 2, identifier rejected (MQTT 3.1.1 §3.2.2.3).
const CONNACK_IDENTIFIER_REJECTED: [u8; 4] = [0x20, 0x02, 0x00, 0x02];

/// What the front does with one CONNECT.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Forward these bytes (the CONNECT, possibly rewritten) and relay.
    Forward(Vec<u8>),
    /// Answer CONNACK "identifier rejected" and close.
    RejectIdentifier,
}

/// Decides on one complete CONNECT frame. `assign` makes a fresh client id.
pub fn admit(frame: &[u8], assign: impl FnOnce() -> String) -> Admission {
    match empty_client_id_at(frame) {
        Some(EmptyId {
            header,
            offset,
            clean_session: true,
        }) => {
            let id = assign();
            let mut body = Vec::with_capacity(frame.len() + id.len());
            body.extend_from_slice(&frame[header..offset]);
            body.extend_from_slice(&(id.len() as u16).to_be_bytes());
            body.extend_from_slice(id.as_bytes());
            body.extend_from_slice(&frame[offset + 2..]);
            let mut out = vec![frame[0]];
            encode_remaining_len(body.len(), &mut out);
            out.extend_from_slice(&body);
            Admission::Forward(out)
        }
        Some(_) => Admission::RejectIdentifier,
        None => Admission::Forward(frame.to_vec()),
    }
}

/// Where a 3.1.1 CONNECT with an empty client id keeps it.
struct EmptyId {
    /// Size of the fixed header.
    header: usize,
    /// Offset of the client id's (zero) length field.
    offset: usize,
    clean_session: bool,
}

/// For a 3.1.1 CONNECT with an empty client id: where it is and the clean-session flag.
/// `None` for anything else, which is forwarded as it is.
fn empty_client_id_at(frame: &[u8]) -> Option<EmptyId> {
    if frame.first() != Some(&0x10) {
        return None;
    }
    let (len, header) = remaining_len(frame)?;
    if frame.len() != header + len {
        return None;
    }
    let vh = &frame[header..];
    // Protocol name "MQTT", level 4, flags, keep-alive: 10 bytes, then the client id.
    if vh.len() < 12 || &vh[..6] != b"\x00\x04MQTT" || vh[6] != 4 {
        return None;
    }
    let clean_session = vh[7] & 0x02 != 0;
    (vh[10] == 0 && vh[11] == 0).then_some(EmptyId {
        header,
        offset: header + 10,
        clean_session,
    })
}

/// The remaining length and the size of the fixed header, if the frame holds them (`None` also
/// for a malformed length, which `read_frame` tells apart by the bytes it has).
fn remaining_len(frame: &[u8]) -> Option<(usize, usize)> {
    protocol::mqtt_length::read(frame).ok().flatten()
}

fn encode_remaining_len(len: usize, out: &mut Vec<u8>) {
    let (bytes, n) = protocol::mqtt_length::encode(len);
    out.extend_from_slice(&bytes[..n]);
}

/// Accepts sensors on `listener` and relays each to the broker at `inner`, for as long as the
/// process runs.
pub async fn serve(listener: TcpListener, inner: SocketAddr, max_frame_bytes: usize) {
    // Unique across restarts too, so an assigned id never meets a session of a previous run.
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    let next = std::sync::Arc::new(AtomicU64::new(0));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "site broker accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let next = next.clone();
        tokio::spawn(async move {
            let assign = || format!("site-anon-{}-{salt:08x}", next.fetch_add(1, Relaxed));
            if let Err(e) = relay(stream, inner, max_frame_bytes, assign).await {
                tracing::debug!(%peer, error = %e, "site broker connection ended");
            }
        });
    }
}

async fn relay(
    mut sensor: TcpStream,
    inner: SocketAddr,
    max_frame_bytes: usize,
    assign: impl FnOnce() -> String,
) -> std::io::Result<()> {
    let frame = tokio::time::timeout(CONNECT_TIMEOUT, read_frame(&mut sensor, max_frame_bytes))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no CONNECT in time"))??;
    match admit(&frame, assign) {
        Admission::RejectIdentifier => {
            sensor.write_all(&CONNACK_IDENTIFIER_REJECTED).await?;
            sensor.shutdown().await
        }
        Admission::Forward(connect) => {
            let mut broker = TcpStream::connect(inner).await?;
            broker.set_nodelay(true)?;
            sensor.set_nodelay(true)?;
            broker.write_all(&connect).await?;
            tokio::io::copy_bidirectional(&mut sensor, &mut broker).await?;
            Ok(())
        }
    }
}

/// Reads one whole MQTT frame (fixed header and remaining length).
async fn read_frame(s: &mut TcpStream, max_frame_bytes: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(64);
    loop {
        if let Some((len, header)) = remaining_len(&buf) {
            if header + len > max_frame_bytes {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "CONNECT larger than site_broker.max_payload_bytes",
                ));
            }
            if buf.len() >= header + len {
                buf.truncate(header + len);
                return Ok(buf);
            }
        } else if buf.len() >= 5 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "malformed remaining length",
            ));
        }
        let mut chunk = [0u8; 1024];
        // Read only what the CONNECT needs once its length is known, so nothing after it
        // (a client may pipeline SUBSCRIBE) is lost: read byte-wise past the header.
        let want = match remaining_len(&buf) {
            Some((len, header)) => (header + len - buf.len()).min(chunk.len()),
            None => 1,
        };
        let n = s.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(client_id: &str, flags: u8) -> Vec<u8> {
        let mut body = b"\x00\x04MQTT\x04".to_vec();
        body.push(flags);
        body.extend_from_slice(&[0, 30]);
        body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
        body.extend_from_slice(client_id.as_bytes());
        // username "u", password "p" when the flags say so
        if flags & 0x80 != 0 {
            body.extend_from_slice(b"\x00\x01u");
        }
        if flags & 0x40 != 0 {
            body.extend_from_slice(b"\x00\x01p");
        }
        let mut out = vec![0x10];
        encode_remaining_len(body.len(), &mut out);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn an_empty_id_with_clean_session_gets_one_assigned() {
        let got = admit(&connect("", 0xc2), || "site-anon-7".into());
        assert_eq!(got, Admission::Forward(connect("site-anon-7", 0xc2)));
    }

    #[test]
    fn an_empty_id_without_clean_session_is_rejected() {
        assert_eq!(
            admit(&connect("", 0x00), || unreachable!()),
            Admission::RejectIdentifier
        );
    }

    #[test]
    fn a_named_client_passes_unchanged() {
        let frame = connect("gauge-17", 0x02);
        assert_eq!(
            admit(&frame, || unreachable!()),
            Admission::Forward(frame.clone())
        );
    }

    #[test]
    fn a_long_rewritten_connect_re_encodes_its_length() {
        let id = "x".repeat(200); // pushes the remaining length past one byte
        let got = admit(&connect("", 0x02), || id.clone());
        let want = connect(&id, 0x02);
        assert_eq!(got, Admission::Forward(want));
    }
}
