//! TLS to a real PostgreSQL 15 started with `ssl=on` and the testkit's certificates (a CA and a
//! server certificate for `localhost` and 127.0.0.1).

use std::path::Path;
use wangge_pg::{Pg, PgError};
use wangge_testkit::postgres::{TlsLogins, PASSWORD, USER};
use wangge_testkit::{Postgres, TestCerts};

/// Whether this connection of the pool runs over TLS, as the server sees it.
fn server_sees_tls(pg: &Pg) -> bool {
    pg.query_opt(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .unwrap()
    .expect("pg_stat_ssl has a row for this backend")
    .get(0)
}

fn with(server: &Postgres, options: &str) -> String {
    format!("{}?{options}", server.url())
}

/// An error from connecting that must be `Unavailable`, name the server and not the password.
fn refused(url: &str) -> String {
    let e = Pg::connect(url, 1).expect_err("the connection is refused");
    let msg = e.to_string();
    assert!(matches!(e, PgError::Unavailable(_)), "{e:?}");
    assert!(msg.contains("127.0.0.1"), "names the host: {msg}");
    assert!(!msg.contains(PASSWORD), "never the password: {msg}");
    msg
}

#[test]
fn require_with_the_ca_speaks_tls_and_disable_speaks_plain() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::make(dir.path());
    let server = Postgres::start_tls(&certs, TlsLogins::TlsOrPlain);
    let ca = certs.ca.display();

    let pg = Pg::connect(
        &with(&server, &format!("sslmode=require&sslrootcert={ca}")),
        2,
    )
    .unwrap();
    assert!(server_sees_tls(&pg));
    assert!(pg.describe().ends_with("tls=on"), "{}", pg.describe());
    assert!(!format!("{pg:?} {}", pg.describe()).contains(PASSWORD));

    // verify-full: the certificate is for 127.0.0.1, the host connected to.
    let full = Pg::connect(
        &with(&server, &format!("sslmode=verify-full&sslrootcert={ca}")),
        1,
    );
    assert!(server_sees_tls(&full.unwrap()));
    // A CA alone means TLS (here a hub never ignores the CA it was given).
    assert!(server_sees_tls(
        &Pg::connect(&with(&server, &format!("sslrootcert={ca}")), 1).unwrap()
    ));

    let plain = Pg::connect(&with(&server, "sslmode=disable"), 1).unwrap();
    assert!(!server_sees_tls(&plain));
    assert!(
        plain.describe().ends_with("tls=off"),
        "{}",
        plain.describe()
    );
    // No sslmode and no CA: plain, unlike libpq's "prefer".
    assert!(!server_sees_tls(&Pg::connect(&server.url(), 1).unwrap()));
    // The key=value form reads the same options.
    let kv = format!(
        "host=127.0.0.1 port={} user={USER} password={PASSWORD} dbname=postgres \
         sslmode=verify-full sslrootcert='{ca}'",
        server.port
    );
    assert!(server_sees_tls(&Pg::connect(&kv, 1).unwrap()));
}

#[test]
fn a_certificate_from_another_ca_or_for_another_name_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::make(dir.path());
    let other_dir = tempfile::tempdir().unwrap();
    let other = TestCerts::make(other_dir.path());
    let server = Postgres::start_tls(&certs, TlsLogins::TlsOrPlain);

    let msg = refused(&with(
        &server,
        &format!("sslmode=require&sslrootcert={}", other.ca.display()),
    ));
    assert!(msg.contains("TLS handshake"), "{msg}");
    // Both test CAs are named alike: rustls finds the issuer by name, then its signature fails.
    assert!(
        msg.contains("invalid peer certificate: BadSignature"),
        "says why: {msg}"
    );
    assert!(msg.contains("not signed by the CA in sslrootcert"), "{msg}");
    // The webpki roots do not know a test CA either.
    let msg = refused(&with(&server, "sslmode=require"));
    assert!(
        msg.contains("invalid peer certificate: UnknownIssuer"),
        "{msg}"
    );
    assert!(msg.contains("not signed by the CA in sslrootcert"), "{msg}");

    // Reached at 127.0.0.1 under a name the certificate is not for: `require` checks the chain
    // only, `verify-full` the name too.
    let by_name = |mode: &str| {
        format!(
            "host=db.elsewhere.test hostaddr=127.0.0.1 port={} user={USER} password={PASSWORD} \
             dbname=postgres sslmode={mode} sslrootcert={}",
            server.port,
            certs.ca.display()
        )
    };
    assert!(server_sees_tls(
        &Pg::connect(&by_name("require"), 1).unwrap()
    ));
    let e = Pg::connect(&by_name("verify-full"), 1).expect_err("wrong name refused");
    let msg = e.to_string();
    assert!(matches!(e, PgError::Unavailable(_)), "{e:?}");
    assert!(msg.contains("db.elsewhere.test"), "names the host: {msg}");
    assert!(msg.contains("not valid for name"), "{msg}");
    assert!(
        msg.contains("certificate is for another host name"),
        "{msg}"
    );
    assert!(!msg.contains(PASSWORD), "{msg}");
}

#[test]
fn a_server_taking_tls_only_refuses_a_plain_login_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::make(dir.path());
    let server = Postgres::start_tls(&certs, TlsLogins::TlsOnly);

    let msg = refused(&with(&server, "sslmode=disable"));
    assert!(msg.contains("no encryption"), "the server's reason: {msg}");
    assert!(msg.contains("takes TLS connections only"), "{msg}");
    let pg = Pg::connect(
        &with(
            &server,
            &format!("sslmode=require&sslrootcert={}", certs.ca.display()),
        ),
        1,
    )
    .unwrap();
    assert!(server_sees_tls(&pg));
}

#[test]
fn tls_to_a_server_without_ssl_or_with_an_unreadable_ca_fails_clearly() {
    let server = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::make(dir.path());

    let msg = refused(&with(
        &server,
        &format!("sslmode=require&sslrootcert={}", certs.ca.display()),
    ));
    assert!(msg.contains("server does not support TLS"), "{msg}");
    // "prefer" falls back to plain when the server has no TLS.
    assert!(!server_sees_tls(
        &Pg::connect(&with(&server, "sslmode=prefer"), 1).unwrap()
    ));

    let missing = Path::new("/nonexistent/ca.pem");
    let e = Pg::connect(
        &with(&server, &format!("sslrootcert={}", missing.display())),
        1,
    )
    .expect_err("a missing CA file");
    assert!(matches!(e, PgError::Config(_)), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    let not_pem = dir.path().join("empty.pem");
    std::fs::write(&not_pem, "no certificate here\n").unwrap();
    let e = Pg::connect(
        &with(&server, &format!("sslrootcert={}", not_pem.display())),
        1,
    )
    .expect_err("a file without a certificate");
    assert!(e.to_string().contains("holds no certificate"), "{e}");
}
