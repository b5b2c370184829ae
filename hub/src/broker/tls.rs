//! The TLS acceptor of the gate's MQTT listener (rustls with the ring provider).

use super::{BrokerError, TlsListenerConfig};
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// Loads the certificate chain and key named in `[broker.tls]`; errors name the file.
pub(super) fn acceptor(cfg: &TlsListenerConfig) -> Result<TlsAcceptor, BrokerError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| {
            BrokerError::Config(format!("broker.tls: cannot read {}: {e}", p.display()))
        })
    };
    let certs = rustls_pemfile::certs(&mut read(&cfg.cert_path)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            BrokerError::Config(format!(
                "broker.tls.cert_path {}: {e}",
                cfg.cert_path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(BrokerError::Config(format!(
            "broker.tls.cert_path {}: no PEM certificate in it",
            cfg.cert_path.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut read(&cfg.key_path)?.as_slice())
        .map_err(|e| {
            BrokerError::Config(format!(
                "broker.tls.key_path {}: {e}",
                cfg.key_path.display()
            ))
        })?
        .ok_or_else(|| {
            BrokerError::Config(format!(
                "broker.tls.key_path {}: no PEM private key in it",
                cfg.key_path.display()
            ))
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| BrokerError::Config(format!("broker.tls: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
