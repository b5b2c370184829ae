//! Admission at CONNECT: who the client is (live against the registry), and whether what it
//! asks for at CONNECT (client id, will) is its own to ask.

use super::acl::{self, MqttPrincipal, DEPARTMENT_USER_PREFIX};
use super::wire::{Connect, ConnectRefusal};
use super::Gate;
use crate::registry::RegistryStore;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

/// The MQTT protocol the gate (and the embedded broker) speak: 3.1.1.
const PROTOCOL_NAME: &str = "MQTT";
const PROTOCOL_LEVEL: u8 = 4;

/// Admits `connect` or says which CONNACK code refuses it. Every refusal is counted and logged
/// (never with the password).
pub(super) async fn admit(
    gate: &Gate,
    connect: &Connect,
    peer: SocketAddr,
) -> Result<(MqttPrincipal, String), ConnectRefusal> {
    let m = &gate.metrics;
    if connect.protocol_name != PROTOCOL_NAME || connect.level != PROTOCOL_LEVEL {
        m.refused_protocol.fetch_add(1, Relaxed);
        tracing::warn!(%peer, protocol = %connect.protocol_name, level = connect.level,
            "MQTT connection refused: only MQTT 3.1.1 (level 4) is spoken here");
        return Err(ConnectRefusal::UnacceptableProtocol);
    }
    let (Some(username), Some(password)) = (&connect.username, &connect.password) else {
        m.logins_refused.fetch_add(1, Relaxed);
        tracing::warn!(%peer, "MQTT login refused: no username or password");
        return Err(ConnectRefusal::BadCredentials);
    };
    let password = String::from_utf8_lossy(password).into_owned();
    let registry = gate.registry.clone();
    let user = username.clone();
    let found = tokio::task::spawn_blocking(move || authenticate(&*registry, &user, &password))
        .await
        .unwrap_or(None);
    let Some((principal, fingerprint)) = found else {
        m.logins_refused.fetch_add(1, Relaxed);
        tracing::warn!(%peer, username = %truncated(username), "MQTT login refused");
        return Err(ConnectRefusal::BadCredentials);
    };
    if !acl::client_id_allowed(&principal, &connect.client_id) {
        m.refused_client_id.fetch_add(1, Relaxed);
        tracing::warn!(%peer, username = %username, client_id = %truncated(&connect.client_id),
            "MQTT connection refused: the client id must be the username");
        return Err(ConnectRefusal::IdentifierRejected);
    }
    if let Some(will) = &connect.will {
        if !principal.may_publish(&will.topic, will.retain) {
            m.refused_will.fetch_add(1, Relaxed);
            tracing::warn!(%peer, client_id = %username, topic = %truncated(&will.topic),
                retain = will.retain, "MQTT connection refused: a will it may not publish");
            return Err(ConnectRefusal::NotAuthorized);
        }
    }
    m.logins_accepted.fetch_add(1, Relaxed);
    Ok((principal, fingerprint))
}

/// The principal `username` / `password` prove, with the stored hash it was checked against.
fn authenticate(
    registry: &dyn RegistryStore,
    username: &str,
    password: &str,
) -> Option<(MqttPrincipal, String)> {
    let looked_up = if username.starts_with(DEPARTMENT_USER_PREFIX) {
        registry.mqtt_user_credentials(username).map(|c| {
            c.filter(|c| c.verify_password(password)).map(|c| {
                (
                    MqttPrincipal::Department {
                        username: c.username,
                        department_id: c.department_id,
                    },
                    c.password_hash,
                )
            })
        })
    } else {
        registry.edge_credentials(username).map(|c| {
            c.filter(|c| c.verify_password(password))
                .map(|c| (MqttPrincipal::Edge { edge_id: c.edge_id }, c.password_hash))
        })
    };
    looked_up.unwrap_or_else(|e| {
        tracing::error!(error = %e, username, "registry unavailable for MQTT login");
        None
    })
}

/// The stored password hash of a still-valid principal, `Ok(None)` if revoked or gone. A
/// registry error is passed on: an unreadable registry is not a revocation.
pub(super) fn current_fingerprint(
    registry: &dyn RegistryStore,
    principal: &MqttPrincipal,
) -> Result<Option<String>, crate::registry::RegistryError> {
    match principal {
        MqttPrincipal::Edge { edge_id } => registry
            .edge_credentials(edge_id)
            .map(|c| c.filter(|c| !c.revoked).map(|c| c.password_hash)),
        MqttPrincipal::Department { username, .. } => registry
            .mqtt_user_credentials(username)
            .map(|c| c.filter(|c| !c.revoked).map(|c| c.password_hash)),
    }
}

/// Attacker-chosen strings are cut before they reach a log line.
pub(super) fn truncated(s: &str) -> String {
    s.chars().take(128).collect()
}
