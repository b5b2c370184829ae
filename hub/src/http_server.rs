//! The API's HTTP server: an accept loop over hyper-util instead of `axum::serve`, because
//! `axum::serve` has no header-read timeout and no connection cap.
//!
//! - A client that sends its request head slower than `header_read_timeout` (slowloris) is cut
//!   off: hyper closes the connection (HTTP/1 answers 408 first).
//! - At most `max_connections` connections are served at once. One past the cap gets a
//!   short `503` with the API's error JSON and is closed at once, so a flood costs a write, not
//!   a task that waits.
//! - Each request's handler must produce its response head within `request_timeout` (503
//!   `timeout` otherwise). An SSE stream answers its head at once, so the bound never cuts a
//!   stream, only a handler stuck before it.
//! - With `[http.tls]`, a TLS listener serves the same app; its handshake is bounded by
//!   `header_read_timeout` too, and the connection cap counts both listeners together.
//! - On shutdown the listeners close, open connections get `drain_grace` to finish (SSE streams
//!   never finish by themselves), then the server returns.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The server's bounds (from `[http]`).
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub drain_grace: Duration,
}

/// How long writing the 503 to a connection past the cap may take before it is just closed.
const REFUSE_WRITE_TIMEOUT: Duration = Duration::from_millis(500);

const REFUSED_BODY: &str = r#"{"error":{"code":"too_many_connections","message":"the hub serves its maximum number of connections; retry later"}}"#;

/// One listening socket of the API: plain HTTP, or HTTPS when `tls` is set.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

/// Serves `app` on every listener until `shutdown` is cancelled, then drains (bounded). The
/// connection cap counts the connections of all listeners together.
pub async fn serve(
    listeners: Vec<Listener>,
    app: axum::Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let accepting = listeners.into_iter().map(|l| {
        accept_loop(
            l,
            &app,
            &builder,
            &graceful,
            &slots,
            limits.header_read_timeout,
            &shutdown,
        )
    });
    futures::future::join_all(accepting).await;
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.drain_grace) => {
            tracing::warn!("HTTP connections still open after the drain grace; closing them");
        }
    }
}

/// Accepts on one listener until shutdown; each connection gets a slot or a 503.
async fn accept_loop(
    listener: Listener,
    app: &axum::Router,
    builder: &auto::Builder<TokioExecutor>,
    graceful: &hyper_util::server::graceful::GracefulShutdown,
    slots: &Arc<Semaphore>,
    handshake_timeout: Duration,
    shutdown: &CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.tcp.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "HTTP connection past max_connections refused");
            tokio::spawn(refuse(stream));
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = listener.tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_io(&builder, watcher, stream, service, peer).await,
                Some(acceptor) => {
                    // The handshake is bounded like a request head: a client that opens TLS and
                    // stalls holds a slot no longer than a slow plain client would.
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            serve_io(&builder, watcher, tls_stream, service, peer).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                    }
                }
            }
            drop(slot);
        });
    }
}

/// Serves one connection (plain TCP or TLS) until it ends or the graceful shutdown closes it.
async fn serve_io<I>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    io: I,
    service: TowerToHyperService<axum::Router>,
    peer: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

/// Answers a connection past the cap with 503 and closes it, without reading its request.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        REFUSED_BODY.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(REFUSED_BODY.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(REFUSE_WRITE_TIMEOUT, write).await;
}

/// Middleware: a handler that has not produced its response head within the bound gets 503.
pub async fn request_timeout(State(bound): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(bound, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => crate::api::error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than http.request_timeout_ms ({} ms)",
                bound.as_millis()
            ),
        )
        .into_response(),
    }
}
