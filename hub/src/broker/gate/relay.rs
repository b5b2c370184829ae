//! Relaying an admitted connection frame by frame, checking what the client sends.

use super::acl::MqttPrincipal;
use super::auth::truncated;
use super::wire::{self, WireError};
use super::Gate;
use bytes::{Buf, BytesMut};
use std::sync::atomic::Ordering::Relaxed;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Read buffer grown in steps of this many bytes.
const READ_CHUNK_BYTES: usize = 16 << 10;
/// SUBACKs the gate may owe a client at once; a client that floods forbidden SUBSCRIBEs
/// without reading its socket is disconnected instead of queueing without bound.
const INJECTED_MAX: usize = 64;

/// How a relayed connection ended.
#[derive(Debug)]
pub(super) enum Ended {
    ClientClosed,
    BrokerClosed,
    /// Revoked (or the hub is stopping).
    Closed,
    /// The client sent something it may not: the connection was cut.
    Refused(&'static str),
    Io(std::io::Error),
    Protocol(WireError),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::ClientClosed => f.write_str("client closed"),
            Ended::BrokerClosed => f.write_str("broker closed"),
            Ended::Closed => f.write_str("closed by the gate (revoked)"),
            Ended::Refused(why) => write!(f, "cut: refused {why}"),
            Ended::Io(e) => write!(f, "i/o: {e}"),
            Ended::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

/// Reads one whole frame of at most `max` bytes; `None` on a clean EOF before any byte.
pub(super) async fn read_frame<S: AsyncRead + Unpin>(
    s: &mut S,
    max: usize,
) -> Result<Option<Vec<u8>>, WireError> {
    let mut buf = BytesMut::with_capacity(512);
    loop {
        if let Some(len) = wire::frame_len(&buf, max)? {
            if len != buf.len() {
                // Only CONNECT may come before CONNACK; a client that pipelines is refused.
                return Err(WireError::Malformed(
                    "CONNECT (data after it before CONNACK)",
                ));
            }
            return Ok(Some(buf.to_vec()));
        }
        buf.reserve(512);
        match s.read_buf(&mut buf).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Err(WireError::Malformed("CONNECT (truncated)")),
            Ok(_) => {}
            Err(_) => return Ok(None),
        }
    }
}

/// Relays until either side closes, the client breaks a rule, or `close` is cancelled.
pub(super) async fn run<S>(
    gate: &Gate,
    client: S,
    broker: TcpStream,
    principal: &MqttPrincipal,
    close: &CancellationToken,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (broker_r, broker_w) = broker.into_split();
    let (inject_tx, inject_rx) = mpsc::channel(INJECTED_MAX);
    let max = gate.max_frame_bytes();
    let upstream = from_client(gate, client_r, broker_w, principal, inject_tx, max);
    let downstream = to_client(broker_r, client_w, inject_rx, max);
    // Dropping the futures drops both sockets: the broker sees the connection end without
    // DISCONNECT (unless the client sent one) and publishes the client's will, as MQTT says.
    tokio::select! {
        e = upstream => e,
        e = downstream => e,
        _ = close.cancelled() => Ended::Closed,
    }
}

/// Client → broker: every frame checked, forbidden SUBSCRIBEs answered here.
async fn from_client<R: AsyncRead + Unpin>(
    gate: &Gate,
    mut client: R,
    broker: tokio::net::tcp::OwnedWriteHalf,
    principal: &MqttPrincipal,
    inject: mpsc::Sender<Vec<u8>>,
    max: usize,
) -> Ended {
    let mut broker = BufWriter::with_capacity(READ_CHUNK_BYTES, broker);
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK_BYTES / 4 {
            buf.reserve(READ_CHUNK_BYTES);
        }
        match client.read_buf(&mut buf).await {
            Ok(0) => {
                let _ = broker.flush().await;
                return Ended::ClientClosed;
            }
            Ok(_) => {}
            Err(e) => return Ended::Io(e),
        }
        loop {
            let len = match wire::frame_len(&buf, max) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => {
                    gate.metrics.refused_protocol.fetch_add(1, Relaxed);
                    tracing::warn!(client_id = %principal.username(), error = %e,
                        "MQTT connection cut: bad frame");
                    return Ended::Protocol(e);
                }
            };
            let frame = &buf[..len];
            match check(gate, principal, frame) {
                Verdict::Forward => {
                    if let Err(e) = broker.write_all(frame).await {
                        return Ended::Io(e);
                    }
                }
                Verdict::Answer(reply) => {
                    if inject.try_send(reply).is_err() {
                        return Ended::Refused("too many refused subscriptions unread");
                    }
                }
                Verdict::Cut(why) => return Ended::Refused(why),
            }
            buf.advance(len);
        }
        if let Err(e) = broker.flush().await {
            return Ended::Io(e);
        }
    }
}

enum Verdict {
    Forward,
    /// Not forwarded; this frame goes back to the client instead.
    Answer(Vec<u8>),
    Cut(&'static str),
}

fn check(gate: &Gate, principal: &MqttPrincipal, frame: &[u8]) -> Verdict {
    let m = &gate.metrics;
    match wire::packet_type(frame) {
        wire::PUBLISH => match wire::PublishHeader::parse(frame) {
            Ok(p) if principal.may_publish(&p.topic, p.retain) => Verdict::Forward,
            Ok(p) => {
                m.refused_publish.fetch_add(1, Relaxed);
                tracing::warn!(client_id = %principal.username(), topic = %truncated(&p.topic),
                    retain = p.retain, "MQTT publish refused; connection cut");
                Verdict::Cut("publish")
            }
            Err(_) => Verdict::Cut("malformed publish"),
        },
        wire::SUBSCRIBE => match wire::Subscribe::parse(frame) {
            Ok(s) if s.filters.iter().all(|f| principal.may_subscribe(f)) => Verdict::Forward,
            Ok(s) => {
                m.refused_subscribe.fetch_add(1, Relaxed);
                let denied: Vec<String> = s
                    .filters
                    .iter()
                    .filter(|f| !principal.may_subscribe(f))
                    .map(|f| truncated(f))
                    .collect();
                tracing::warn!(client_id = %principal.username(), ?denied,
                    "MQTT subscribe refused");
                Verdict::Answer(wire::suback_refused(s.packet_id, s.filters.len()))
            }
            Err(_) => Verdict::Cut("malformed subscribe"),
        },
        wire::CONNECT => Verdict::Cut("second CONNECT"),
        _ => Verdict::Forward,
    }
}

/// Broker → client, with the gate's own answers slotted in between whole frames.
async fn to_client<W: AsyncWrite + Unpin>(
    mut broker: tokio::net::tcp::OwnedReadHalf,
    mut client: W,
    mut inject: mpsc::Receiver<Vec<u8>>,
    max: usize,
) -> Ended {
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK_BYTES / 4 {
            buf.reserve(READ_CHUNK_BYTES);
        }
        tokio::select! {
            biased;
            Some(reply) = inject.recv(), if buf.is_empty() => {
                if let Err(e) = client.write_all(&reply).await {
                    return Ended::Io(e);
                }
            }
            r = broker.read_buf(&mut buf) => {
                match r {
                    Ok(0) => return Ended::BrokerClosed,
                    Ok(_) => {}
                    Err(e) => return Ended::Io(e),
                }
                let mut whole = 0;
                loop {
                    match wire::frame_len(&buf[whole..], max) {
                        Ok(Some(len)) => whole += len,
                        Ok(None) => break,
                        Err(e) => return Ended::Protocol(e),
                    }
                }
                if whole > 0 {
                    if let Err(e) = client.write_all(&buf[..whole]).await {
                        return Ended::Io(e);
                    }
                    buf.advance(whole);
                }
                if let Err(e) = client.flush().await {
                    return Ended::Io(e);
                }
            }
        }
    }
}
