//! The broker gate: the hub's public MQTT listeners, enforcing who may do what before any byte
//! reaches the embedded broker.
//!
//! rumqttd authenticates CONNECT but has no topic ACL (its ACL pull request is unmerged), so
//! the embedded broker listens on loopback only and accepts nothing but connections the gate
//! opened for it (their CONNECT carries a per-process proof in place of the password). Every
//! client connects to the gate, which:
//! - reads CONNECT (bounded in time and size), authenticates username + password live against
//!   the registry (edges and department MQTT users), binds the client id to the username and
//!   refuses the hub's own client ids (no takeover of another edge or of the ingest link), and
//!   refuses a will the principal could not publish itself;
//! - then relays both directions frame by frame, checking every PUBLISH (topic and retain flag)
//!   and every SUBSCRIBE against [`acl`]: a forbidden SUBSCRIBE is answered by the gate with a
//!   SUBACK of failures and never reaches the broker; a forbidden PUBLISH closes the connection
//!   (MQTT 3.1.1 §3.3.5 lets a server close instead of acknowledging);
//! - closes the open connections of a principal whose credentials were revoked or re-issued,
//!   within `broker.revocation_check_ms`.
//!
//! The gate keeps MQTT's own semantics otherwise: keep-alive, wills (dropping the broker side
//! without DISCONNECT makes the broker publish the will), retained messages, QoS.

pub mod acl;
mod auth;
mod relay;
pub mod wire;

use super::BrokerMetrics;
use crate::registry::RegistryStore;
use acl::MqttPrincipal;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Bytes a CONNECT may take beyond the will payload (client id, username, password, topic).
const CONNECT_OVERHEAD_BYTES: usize = 4 * 65_540;
/// Bytes a frame may take beyond `max_payload_bytes` (topic, properties, header).
const FRAME_OVERHEAD_BYTES: usize = 65_540;

/// Settings of the gate, from `[broker]`.
#[derive(Debug, Clone)]
pub struct GateSettings {
    pub max_payload_bytes: usize,
    pub max_connections: usize,
    pub connect_timeout: Duration,
    pub revocation_check: Duration,
}

/// State shared by the gate's listeners and connections.
pub struct Gate {
    registry: Arc<dyn RegistryStore>,
    /// The embedded broker's loopback listener.
    internal: SocketAddr,
    /// Key of the per-process proof the gate puts in place of a client's password.
    internal_key: [u8; 32],
    settings: GateSettings,
    metrics: Arc<BrokerMetrics>,
    slots: Arc<Semaphore>,
    live: Mutex<HashMap<u64, LiveConnection>>,
    next_id: AtomicU64,
}

/// An open, authenticated connection, for revocation.
struct LiveConnection {
    principal: MqttPrincipal,
    /// The stored password hash the login was checked against: a re-issued secret changes it.
    fingerprint: String,
    close: CancellationToken,
}

impl Gate {
    pub fn new(
        registry: Arc<dyn RegistryStore>,
        internal: SocketAddr,
        internal_key: [u8; 32],
        settings: GateSettings,
        metrics: Arc<BrokerMetrics>,
    ) -> Arc<Gate> {
        Arc::new(Gate {
            registry,
            internal,
            internal_key,
            slots: Arc::new(Semaphore::new(settings.max_connections)),
            settings,
            metrics,
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        })
    }

    /// The password the embedded broker expects from the gate for `client_id`.
    pub fn internal_proof(key: &[u8; 32], client_id: &str) -> String {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac key of any length");
        m.update(b"wangge/v1/gate\0");
        m.update(client_id.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    fn max_frame_bytes(&self) -> usize {
        self.settings.max_payload_bytes + FRAME_OVERHEAD_BYTES
    }

    /// Accepts connections on `listener` until the process ends; TLS if `tls` is given.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, tls: Option<TlsAcceptor>) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "MQTT accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                self.metrics.refused_connection_cap.fetch_add(1, Relaxed);
                tracing::warn!(%peer, "MQTT connection refused: broker.max_connections reached");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let gate = self.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let _slot = slot;
                match tls {
                    Some(acceptor) => {
                        let hs = tokio::time::timeout(
                            gate.settings.connect_timeout,
                            acceptor.accept(stream),
                        )
                        .await;
                        match hs {
                            Ok(Ok(s)) => gate.connection(s, peer).await,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                    None => gate.connection(stream, peer).await,
                }
            });
        }
    }

    /// One client connection, from CONNECT to close.
    async fn connection<S>(self: Arc<Self>, mut client: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let max_connect = self.settings.max_payload_bytes + CONNECT_OVERHEAD_BYTES;
        let first = tokio::time::timeout(
            self.settings.connect_timeout,
            relay::read_frame(&mut client, max_connect),
        )
        .await;
        let frame = match first {
            Ok(Ok(Some(f))) => f,
            Ok(Ok(None)) => {
                // A TCP readiness probe (a load balancer's, a script's): not an error.
                tracing::debug!(%peer, "MQTT connection closed before CONNECT");
                return;
            }
            Ok(Err(e)) => {
                self.metrics.refused_protocol.fetch_add(1, Relaxed);
                tracing::warn!(%peer, error = %e, "MQTT connection refused: bad first packet");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "MQTT connection closed: no CONNECT in time");
                return;
            }
        };
        let mut connect = match wire::Connect::parse(&frame) {
            Ok(c) => c,
            Err(e) => {
                self.metrics.refused_protocol.fetch_add(1, Relaxed);
                tracing::warn!(%peer, error = %e, "MQTT connection refused");
                return;
            }
        };
        let (principal, fingerprint) = match auth::admit(&self, &connect, peer).await {
            Ok(admitted) => admitted,
            Err(code) => {
                let _ = client.write_all(&wire::connack_refused(code)).await;
                let _ = client.shutdown().await;
                return;
            }
        };
        connect.password =
            Some(Self::internal_proof(&self.internal_key, &connect.client_id).into());
        connect.username = Some(connect.client_id.clone());
        let mut broker = match TcpStream::connect(self.internal).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "embedded broker unreachable from the gate");
                return;
            }
        };
        let _ = broker.set_nodelay(true);
        if broker.write_all(&connect.encode()).await.is_err() {
            return;
        }

        let close = CancellationToken::new();
        let id = self.next_id.fetch_add(1, Relaxed);
        self.live_lock().insert(
            id,
            LiveConnection {
                principal: principal.clone(),
                fingerprint,
                close: close.clone(),
            },
        );
        self.metrics.connections_open.fetch_add(1, Relaxed);
        let outcome = relay::run(&self, client, broker, &principal, &close).await;
        self.metrics.connections_open.fetch_sub(1, Relaxed);
        self.live_lock().remove(&id);
        tracing::debug!(client_id = %principal.username(), %outcome, "MQTT connection ended");
    }

    fn live_lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, LiveConnection>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes every open connection whose principal is no longer valid: revoked, deleted, or
    /// issued a new secret. Runs every `broker.revocation_check_ms`.
    pub async fn watch_revocations(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.revocation_check);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let snapshot: Vec<(u64, MqttPrincipal, String)> = self
                .live_lock()
                .iter()
                .map(|(id, c)| (*id, c.principal.clone(), c.fingerprint.clone()))
                .collect();
            if snapshot.is_empty() {
                continue;
            }
            let gate = self.clone();
            let stale = tokio::task::spawn_blocking(move || {
                let mut verdicts = HashMap::new();
                snapshot
                    .into_iter()
                    .filter(|(_, p, fingerprint)| {
                        let current = verdicts
                            .entry(p.username().to_string())
                            .or_insert_with(|| auth::current_fingerprint(&*gate.registry, p));
                        match current {
                            Ok(current) => current.as_deref() != Some(fingerprint.as_str()),
                            Err(e) => {
                                tracing::error!(error = %e,
                                    "registry unavailable for the revocation check");
                                false
                            }
                        }
                    })
                    .map(|(id, p, _)| (id, p))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            let live = self.live_lock();
            for (id, principal) in stale {
                if let Some(c) = live.get(&id) {
                    c.close.cancel();
                    self.metrics.closed_revoked.fetch_add(1, Relaxed);
                    tracing::warn!(client_id = %principal.username(),
                        "MQTT connection closed: credentials revoked or re-issued");
                }
            }
        }
    }
}
