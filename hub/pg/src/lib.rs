//! PostgreSQL for the hub's stores, which are synchronous (the SQLite back ends are, and the
//! traits the hub codes against are): [`Pg`] is a small pool of tokio-postgres connections
//! whose I/O runs on a runtime of its own (one thread), so a store method can be called from
//! any thread — a blocking ingest thread or an async handler alike, as a SQLite call is today.
//!
//! - A query waits at most `statement_timeout` in the server and a connection attempt at most
//!   `connect_timeout`, so a hung or vanished database turns into an error, never a hang.
//! - A connection that failed is dropped from the pool; the next call connects anew. A hub that
//!   loses PostgreSQL therefore errs on every call (ingest stops acking, health says 503) and
//!   resumes by itself when the database is back.
//! - The URL (with its password) is never logged: [`Pg::describe`] gives host, port, database
//!   and whether TLS is on.
//! - TLS (rustls) follows the URL's `sslmode` and `sslrootcert` ([`sslmode`] says how; no
//!   `sslmode` means plain unless a CA is named). A failed handshake is
//!   [`PgError::Unavailable`] naming the host and the reason.
//!
//! [`migrate`] applies a back end's versioned migrations once, under an advisory lock, so hubs
//! starting together do not race.

mod migrate;
pub mod sslmode;
mod tls;

pub use migrate::{migrate, Migration};
pub use sslmode::{SslMode, TlsOptions};
pub use tokio_postgres::types::ToSql;
pub use tokio_postgres::{Client, Row, Transaction};

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long one statement may run in the server before it is cancelled there.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free connection when the pool is at its size.
const CHECKOUT_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The URL or options cannot be used.
    #[error("postgres config: {0}")]
    Config(String),
    /// No connection could be had (server down, refused, timed out, pool exhausted).
    #[error("postgres unavailable: {0}")]
    Unavailable(String),
    /// The server answered with an error (constraint, syntax, timeout …).
    #[error("postgres: {0}")]
    Db(#[from] tokio_postgres::Error),
}

impl PgError {
    /// A unique or primary-key violation (SQLSTATE 23505).
    pub fn is_unique_violation(&self) -> bool {
        self.code() == Some("23505")
    }

    /// A serialization failure or deadlock (SQLSTATE 40001/40P01): retry the transaction.
    pub fn is_retryable(&self) -> bool {
        matches!(self.code(), Some("40001") | Some("40P01"))
    }

    /// The SQLSTATE code, when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            PgError::Db(e) => e.code().map(|c| c.code()),
            _ => None,
        }
    }

    /// The database could not be reached or the connection broke (as opposed to a refused
    /// statement).
    pub fn is_unavailable(&self) -> bool {
        match self {
            PgError::Unavailable(_) => true,
            PgError::Db(e) => e.is_closed() || e.code().is_none(),
            PgError::Config(_) => false,
        }
    }
}

struct Pool {
    idle: Vec<Client>,
    open: usize,
}

struct Inner {
    config: tokio_postgres::Config,
    tls: tls::MakeRustls,
    size: usize,
    pool: Mutex<Pool>,
    freed: Condvar,
    /// `None` only while dropping (shut down in the background: a pool may be dropped inside
    /// an async context, where a plain runtime drop panics).
    rt: Option<tokio::runtime::Runtime>,
    describe: String,
}

/// A pool of PostgreSQL connections usable from synchronous code on any thread. Cheap to clone.
#[derive(Clone)]
pub struct Pg {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pg({})", self.inner.describe)
    }
}

impl Pg {
    /// A pool of at most `size` connections to `url` (`postgres://user:pass@host:port/db` or the
    /// key=value form, with `sslmode` and `sslrootcert` as libpq reads them). Connects once to
    /// check the URL, the TLS and the login.
    pub fn connect(url: &str, size: usize) -> Result<Pg, PgError> {
        let (url, tls_options) = sslmode::split(url)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| PgError::Config(format!("bad URL: {}", chain(&e))))?;
        config.ssl_mode(match tls_options.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        let tls = tls::MakeRustls::new(&tls_options)?;
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .options(format!(
                "-c statement_timeout={}",
                STATEMENT_TIMEOUT.as_millis()
            ))
            .application_name("wangge-hub");
        let describe = describe(&config, &tls_options);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("postgres-io")
            .enable_all()
            .build()
            .map_err(|e| PgError::Config(format!("cannot start its runtime: {e}")))?;
        let pg = Pg {
            inner: Arc::new(Inner {
                config,
                tls,
                size: size.max(1),
                pool: Mutex::new(Pool {
                    idle: Vec::new(),
                    open: 0,
                }),
                freed: Condvar::new(),
                rt: Some(rt),
                describe,
            }),
        };
        pg.run(async |c| c.simple_query("SELECT 1").await.map(|_| ()))?;
        Ok(pg)
    }

    /// `user@host:port/database tls=on|off`, never the password.
    pub fn describe(&self) -> &str {
        &self.inner.describe
    }

    /// Runs `f` with a connection of the pool and waits for it (blocking this thread).
    pub fn run<R>(
        &self,
        f: impl AsyncFnOnce(&mut Client) -> Result<R, tokio_postgres::Error>,
    ) -> Result<R, PgError> {
        let mut client = self.checkout()?;
        let out = futures::executor::block_on(f(&mut client));
        self.checkin(client);
        out.map_err(PgError::Db)
    }

    /// Runs `f` in one transaction, committed if it returns Ok and rolled back otherwise.
    pub fn transaction<R>(
        &self,
        f: impl AsyncFnOnce(&Transaction<'_>) -> Result<R, tokio_postgres::Error>,
    ) -> Result<R, PgError> {
        self.run(async |c| {
            let tx = c.transaction().await?;
            let r = f(&tx).await?;
            tx.commit().await?;
            Ok(r)
        })
    }

    /// Shorthand: `execute` one statement, returning the rows it touched.
    pub fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, PgError> {
        self.run(async |c| c.execute(sql, params).await)
    }

    /// Shorthand: every row of one query.
    pub fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, PgError> {
        self.run(async |c| c.query(sql, params).await)
    }

    /// Shorthand: at most one row of one query.
    pub fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, PgError> {
        self.run(async |c| c.query_opt(sql, params).await)
    }

    fn checkout(&self) -> Result<Client, PgError> {
        let inner = &self.inner;
        let mut pool = inner.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            while let Some(c) = pool.idle.pop() {
                if !c.is_closed() {
                    return Ok(c);
                }
                pool.open -= 1;
            }
            if pool.open < inner.size {
                pool.open += 1;
                drop(pool);
                return self.open_connection().inspect_err(|_| {
                    let mut pool = inner.pool.lock().unwrap_or_else(|p| p.into_inner());
                    pool.open -= 1;
                    inner.freed.notify_one();
                });
            }
            let (next, waited) = inner
                .freed
                .wait_timeout(pool, CHECKOUT_WAIT)
                .unwrap_or_else(|p| p.into_inner());
            pool = next;
            if waited.timed_out() && pool.idle.is_empty() && pool.open >= inner.size {
                return Err(PgError::Unavailable(format!(
                    "all {} connections busy for {CHECKOUT_WAIT:?}",
                    inner.size
                )));
            }
        }
    }

    fn checkin(&self, client: Client) {
        let mut pool = self.inner.pool.lock().unwrap_or_else(|p| p.into_inner());
        if client.is_closed() {
            pool.open -= 1;
        } else {
            pool.idle.push(client);
        }
        self.inner.freed.notify_one();
    }

    /// Connects on the pool's runtime (the socket needs its reactor) and leaves the
    /// connection's I/O task running there.
    fn open_connection(&self) -> Result<Client, PgError> {
        let config = self.inner.config.clone();
        let tls = self.inner.tls.clone();
        let describe = self.inner.describe.clone();
        let rt = self
            .inner
            .rt
            .as_ref()
            .expect("the runtime lives as long as the pool");
        let task = rt.spawn(async move {
            let (client, connection) = config.connect(tls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(db = %describe, error = %e, "postgres connection ended");
                }
            });
            Ok::<_, tokio_postgres::Error>(client)
        });
        match futures::executor::block_on(task) {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(PgError::Unavailable(format!(
                "{}: {}{}",
                self.inner.describe,
                chain(&e),
                hint(&e)
            ))),
            Err(e) => Err(PgError::Unavailable(format!("connect task: {e}"))),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Close the connections before the runtime that drives them goes.
        self.pool
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .idle
            .clear();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The error and its causes, `a: b: c` (tokio-postgres' own text stops at "error performing
/// TLS handshake" or "db error"). Neither holds the URL.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// What to do about a connection refused for its TLS, for the person reading the error.
fn hint(e: &tokio_postgres::Error) -> &'static str {
    let text = chain(e);
    if text.contains("no encryption") {
        " (the server takes TLS connections only: set sslmode=require and sslrootcert)"
    } else if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        " (the server's certificate is not signed by the CA in sslrootcert)"
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        " (the certificate is for another host name: connect by its name or use sslmode=require)"
    } else if text.contains("server does not support TLS") {
        " (the server has ssl=off: enable it, or set sslmode=disable)"
    } else {
        ""
    }
}

fn describe(c: &tokio_postgres::Config, tls: &TlsOptions) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{} tls={}",
        c.get_user().unwrap_or("?"),
        c.get_dbname().unwrap_or("?"),
        if tls.is_on() { "on" } else { "off" }
    )
}
