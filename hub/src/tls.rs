//! TLS server setup shared by the MQTT gate and the HTTP API (rustls with the ring provider).
//!
//! One owner for loading a PEM certificate chain and private key; every error names the config
//! key and the file, so `[broker.tls]` and `[http.tls]` report the same way.

use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// Loads `cert` and `key` into an acceptor. `section` is the config table they came from
/// (`broker.tls`, `http.tls`), named in every error with the offending file.
pub fn acceptor(section: &str, cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| format!("{section}: cannot read {}: {e}", p.display()))
    };
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{section}.cert_path {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{section}.cert_path {}: no PEM certificate in it",
            cert.display()
        ));
    }
    let key_der = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| format!("{section}.key_path {}: {e}", key.display()))?
        .ok_or_else(|| {
            format!(
                "{section}.key_path {}: no PEM private key in it",
                key.display()
            )
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key_der))
        .map_err(|e| format!("{section}: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
