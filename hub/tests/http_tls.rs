//! The API over TLS, on a real `hub serve`: with `[http.tls]` configured the API answers over
//! HTTPS with the configured certificate, plain HTTP is off unless `keep_plain`, a stalled
//! handshake is cut like a slow request head, and a bad certificate path stops the start with
//! an error naming the key and the file.

mod hub_cli_support;

use hub_cli_support::HUB;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wangge_testkit::{free_port, TestCerts};

const ADMIN: &str = "tls-admin-5b2e8d0c7f1a49e6b3c8d2f0a7e1";

struct Serving {
    child: Child,
    plain: u16,
    https: u16,
    ca: reqwest::Certificate,
    dir: tempfile::TempDir,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hub serve` with `[http] <http_extra>` and a `[http.tls]` section on a free port.
fn spawn(http_extra: &str, cert: Option<(&Path, &Path)>) -> (Child, u16, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (plain, https) = (free_port(), free_port());
    let (cert_path, key_path) = match cert {
        Some((c, k)) => (c.to_path_buf(), k.to_path_buf()),
        None => (
            dir.path().join("missing.pem"),
            dir.path().join("missing.key"),
        ),
    };
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\n{http_extra}\n[http.tls]\nlisten = \"127.0.0.1:{https}\"\n\
             cert_path = \"{}\"\nkey_path = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
    let child = Command::new(HUB)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--http")
        .arg(format!("127.0.0.1:{plain}"))
        .arg("--mqtt")
        .arg(format!("127.0.0.1:{}", free_port()))
        .env("WANGGE_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    (child, plain, https, dir)
}

async fn start(http_extra: &str, certs: &Path) -> Serving {
    let made = TestCerts::make(certs);
    let (child, plain, https, dir) = spawn(http_extra, Some((&made.cert, &made.key)));
    let s = Serving {
        child,
        plain,
        https,
        ca: reqwest::Certificate::from_pem(&std::fs::read(&made.ca).unwrap()).unwrap(),
        dir,
    };
    let client = trusting(&s);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!("https://127.0.0.1:{}/api/v1/health", s.https);
        if let Ok(r) = client.get(url).send().await {
            if r.status() == 200 {
                return s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "hub did not become healthy over HTTPS: {}",
            std::fs::read_to_string(s.dir.path().join("hub.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client that trusts only the test CA.
fn trusting(s: &Serving) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(s.ca.clone())
        .build()
        .unwrap()
}

/// One plain `GET /api/v1/health` on a fresh connection; the whole response as text.
fn plain_health(port: u16) -> std::io::Result<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")?;
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn with_tls_configured_the_api_is_https_only() {
    let certs = tempfile::tempdir().unwrap();
    let hub = start("", certs.path()).await;
    let https = trusting(&hub);
    let base = format!("https://127.0.0.1:{}", hub.https);

    // Tokens travel only inside TLS: the API answers there, with its usual auth.
    let authed = https
        .get(format!("{base}/api/v1/components"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(authed.status(), 200);
    let anonymous = https
        .get(format!("{base}/api/v1/components"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Plain HTTP is off: nothing listens on `http.listen`.
    let refused = TcpStream::connect(("127.0.0.1", hub.plain));
    assert!(
        refused.is_err(),
        "plain HTTP still listens with TLS configured and keep_plain = false"
    );
    // Plain HTTP spoken to the TLS port is not served.
    let spoken = plain_health(hub.https).unwrap();
    assert!(!spoken.contains(" 200 "), "served plain HTTP: {spoken}");

    // A client that does not trust the hub's CA does not get through.
    let stranger = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(stranger
        .get(format!("{base}/api/v1/health"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn keep_plain_serves_both_listeners() {
    let certs = tempfile::tempdir().unwrap();
    let hub = start("keep_plain = true", certs.path()).await;
    let plain = plain_health(hub.plain).unwrap();
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    let r = trusting(&hub)
        .get(format!("https://127.0.0.1:{}/api/v1/health", hub.https))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_cut_off() {
    let certs = tempfile::tempdir().unwrap();
    let hub = start("header_read_timeout_ms = 500", certs.path()).await;
    let mut c = TcpStream::connect(("127.0.0.1", hub.https)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    // No ClientHello: the hub must close the connection after the bound, not hold the slot.
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the hub sent something to a silent client");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "cut only after {took:?}");
    assert!(
        took >= Duration::from_millis(400),
        "cut before the bound: {took:?}"
    );
}

#[test]
fn a_missing_certificate_stops_the_start_naming_key_and_file() {
    let (mut child, _, _, dir) = spawn("", None);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hub kept running with a missing TLS certificate");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let log = std::fs::read_to_string(dir.path().join("hub.log")).unwrap();
    let missing = dir.path().join("missing.pem");
    assert!(
        log.contains("http.tls") && log.contains(&missing.display().to_string()),
        "error does not name http.tls and the file: {log}"
    );
}
