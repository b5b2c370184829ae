//! PostgreSQL 15 for tests: a cluster of its own, `initdb`-ed in a temp dir, listening on a free
//! loopback port (no Unix socket), with a password login (`scram-sha-256`), killed by its PID
//! when dropped. Never touches a system-wide cluster.
//!
//! [`Postgres::start_tls`] starts one with `ssl=on` and a [`TestCerts`] server certificate,
//! taking plain logins too or TLS ones only ([`TlsLogins`]).
//!
//! PostgreSQL refuses to run as root, so when the tests run as root (CI does) `initdb` and
//! `postgres` run as Debian's `postgres` user, which owns the temp dir.

use crate::certs::TestCerts;
use crate::paths::installed;
use crate::ports::free_port;
use crate::process::Proc;
use crate::wait::wait_until;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The login every test cluster has.
pub const USER: &str = "wangge";
/// Its password (the cluster is on loopback and lives as long as its test).
pub const PASSWORD: &str = "wangge-test-secret";

/// A `postgres` server process, killed by its PID when dropped.
pub struct Postgres {
    pub port: u16,
    pub proc: Proc,
    /// Its data directory's parent (the cluster is in `data/pg`, its log in `data/pg.log`).
    pub data: PathBuf,
    _own: Option<tempfile::TempDir>,
}

fn bin(name: &str) -> PathBuf {
    let debian = format!("/usr/lib/postgresql/15/bin/{name}");
    installed(name, &[debian.as_str()])
}

/// The uid and gid to run PostgreSQL as: ours, or the `postgres` user's when we are root.
fn run_as() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("a 'postgres' user exists (Debian's postgresql-15 package creates it)");
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

fn as_owner(cmd: &mut Command) -> &mut Command {
    if let Some((uid, gid)) = run_as() {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Which logins a TLS test cluster takes over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsLogins {
    /// TLS and plain alike (pg_hba `host`).
    TlsOrPlain,
    /// TLS only (pg_hba `hostssl`): a plain login is refused.
    TlsOnly,
}

fn chown_to_owner(path: &Path) {
    if let Some((uid, gid)) = run_as() {
        let _ = nix::unistd::chown(
            path,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        );
    }
}

/// Turns `ssl` on in the cluster `data/pg` with `certs` (the key copied in, 0600 and owned by
/// the server's user, as PostgreSQL demands) and, for `TlsOnly`, makes every TCP line of
/// pg_hba.conf `hostssl`. Kept in the cluster's files, so a restart keeps it.
fn enable_tls(cluster: &Path, certs: &TestCerts, logins: TlsLogins) {
    use std::os::unix::fs::PermissionsExt;
    for (from, to, mode) in [
        (&certs.cert, "server.crt", 0o644),
        (&certs.key, "server.key", 0o600),
    ] {
        let to = cluster.join(to);
        std::fs::copy(from, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
        chown_to_owner(&to);
    }
    let conf = cluster.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    std::fs::write(&conf, text).unwrap();
    if logins == TlsLogins::TlsOnly {
        let hba = cluster.join("pg_hba.conf");
        let text: String = std::fs::read_to_string(&hba)
            .unwrap()
            .lines()
            .map(|l| match l.strip_prefix("host ") {
                Some(rest) => format!("hostssl {rest}\n"),
                None => format!("{l}\n"),
            })
            .collect();
        std::fs::write(&hba, text).unwrap();
    }
}

impl Postgres {
    /// A new cluster with `ssl=on` (the server certificate of `certs`, for `localhost` and
    /// 127.0.0.1) on a free port in a temp dir of its own; returns once it takes logins.
    pub fn start_tls(certs: &TestCerts, logins: TlsLogins) -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        Postgres::initdb(dir.path());
        enable_tls(&dir.path().join("pg"), certs, logins);
        let mut pg = Postgres::start_on(dir.path(), free_port());
        pg._own = Some(dir);
        pg
    }

    /// A new cluster on a free port in a temp dir of its own; returns once it takes logins.
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let mut pg = Postgres::start_on(dir.path(), free_port());
        pg._own = Some(dir);
        pg
    }

    /// Starts the cluster in `data` on `port`, running `initdb` first if `data/pg` is not one
    /// yet; returns once it takes logins.
    pub fn start_on(data: &Path, port: u16) -> Postgres {
        Postgres::initdb(data);
        let pg = Postgres::spawn_on(data, port);
        wait_until("postgres takes logins", Duration::from_secs(30), || {
            pg.psql("SELECT 1").is_some()
        });
        pg
    }

    /// `initdb` in `data/pg` unless it is a cluster already; `data` is given to the server's user.
    fn initdb(data: &Path) {
        let cluster = data.join("pg");
        chown_to_owner(data);
        if !cluster.join("PG_VERSION").exists() {
            let pwfile = data.join("pwfile");
            std::fs::write(&pwfile, PASSWORD).unwrap();
            chown_to_owner(&pwfile);
            let out = as_owner(
                Command::new(bin("initdb"))
                    .arg("-D")
                    .arg(&cluster)
                    .args(["-U", USER, "--auth=scram-sha-256", "-E", "UTF8"])
                    .arg("--locale=C.UTF-8")
                    .arg(format!("--pwfile={}", pwfile.display())),
            )
            .output()
            .expect("initdb is installed (scripts/install-test-deps installs postgresql-15)");
            assert!(
                out.status.success(),
                "initdb: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Starts the cluster in `data/pg` (already `initdb`-ed) without waiting for it.
    pub fn spawn_on(data: &Path, port: u16) -> Postgres {
        let mut cmd = Command::new(bin("postgres"));
        cmd.arg("-D")
            .arg(data.join("pg"))
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "max_connections=200"]);
        as_owner(&mut cmd);
        let log = data.join("pg.log");
        let proc = Proc::spawn("postgres", cmd, &log).expect("postgres starts");
        Postgres {
            port,
            proc,
            data: data.to_path_buf(),
            _own: None,
        }
    }

    /// `postgres://wangge:…@127.0.0.1:PORT/DB`.
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The URL of the `postgres` database (always there).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|| panic!("create database {name}"));
        self.url_for(name)
    }

    /// Runs `sql` with psql against the `postgres` database; its output, or `None` if it failed.
    pub fn psql(&self, sql: &str) -> Option<String> {
        self.psql_in("postgres", sql)
    }

    /// Runs `sql` with psql against `database` (tuples only, unaligned).
    pub fn psql_in(&self, database: &str, sql: &str) -> Option<String> {
        let out = Command::new(installed("psql", &["/usr/bin/psql"]))
            .env("PGPASSWORD", PASSWORD)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args([
                "-d",
                database,
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `kill -9` the postmaster (its backends end when they notice).
    pub fn kill9(mut self) {
        self.proc.kill9();
    }

    /// Fast shutdown (SIGINT), waiting up to 15 s.
    pub fn stop(mut self) {
        self.proc.signal(nix::sys::signal::Signal::SIGINT);
        if self.proc.exited_within(Duration::from_secs(15)).is_none() {
            self.proc.kill9();
        }
    }
}
