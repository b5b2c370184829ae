//! The webhook receiver of the end-to-end tests: a plain HTTP/1.1 server on a free port that verifies each signature and
//! records what it was sent. `Connection: close` on every answer keeps it to one request per
//! connection.

use hmac::{Hmac, Mac};
use serde_json::Value as Json;
use sha2::Sha256;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wangge_testkit::{free_port, wait_for};
use wangge_tests::system::ADMIN_TOKEN;

/// The subscription secret every receiver verifies signatures with.
pub const WEBHOOK_SECRET: &str = "e2e-webhook-secret-5d0c";

#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(u8)]
pub enum Mode {
    Up = 0,
    /// Answers 503 (and records nothing).
    Unavailable = 1,
    /// Not listening at all: connections are refused.
    Refusing = 2,
}

/// One delivery the receiver accepted.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub header_event_id: String,
    pub body_id: String,
    pub version: u64,
    pub signature_ok: bool,
}

pub struct Receiver {
    pub port: u16,
    mode: Arc<AtomicU8>,
    pub accepted: Arc<Mutex<Vec<Delivery>>>,
    pub refused_503: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let port = free_port();
        let r = Receiver {
            port,
            mode: Arc::new(AtomicU8::new(Mode::Up as u8)),
            accepted: Arc::default(),
            refused_503: Arc::default(),
            stop: Arc::default(),
        };
        let (mode, accepted, refused, stop) = (
            r.mode.clone(),
            r.accepted.clone(),
            r.refused_503.clone(),
            r.stop.clone(),
        );
        std::thread::spawn(move || {
            let mut listener: Option<TcpListener> = None;
            while !stop.load(Ordering::Relaxed) {
                if mode.load(Ordering::Relaxed) == Mode::Refusing as u8 {
                    listener = None; // closed: the kernel refuses connections
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                let l = match &listener {
                    Some(l) => l,
                    None => match TcpListener::bind(("127.0.0.1", port)) {
                        Ok(l) => {
                            l.set_nonblocking(true).unwrap();
                            listener.insert(l)
                        }
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    },
                };
                match l.accept() {
                    Ok((s, _)) => {
                        let (mode, accepted, refused) =
                            (mode.clone(), accepted.clone(), refused.clone());
                        std::thread::spawn(move || {
                            let _ = serve_one(s, &mode, &accepted, &refused);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        wait_for("the webhook receiver", Duration::from_secs(5), || {
            wangge_testkit::port_open(port).then_some(())
        })
        .unwrap();
        r
    }

    pub fn set(&self, m: Mode) {
        self.mode.store(m as u8, Ordering::Relaxed);
    }

    /// Subscribes this receiver, with [`WEBHOOK_SECRET`], to every event of the hub whose API is
    /// on `http` (as its admin); fails the test unless the subscription is created.
    pub fn subscribe_to(&self, http: u16) {
        let sub = reqwest::blocking::Client::new()
            .post(format!("http://127.0.0.1:{http}/api/v1/subscriptions"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({
                "url": format!("http://127.0.0.1:{}/hook", self.port),
                "secret": WEBHOOK_SECRET,
            }))
            .send()
            .unwrap();
        assert_eq!(sub.status().as_u16(), 201, "webhook subscription created");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_one(
    mut s: TcpStream,
    mode: &AtomicU8,
    accepted: &Mutex<Vec<Delivery>>,
    refused_503: &Mutex<u64>,
) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let header = |name: &str| -> Option<String> {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..(head_end + len).min(buf.len())];
    if mode.load(Ordering::Relaxed) != Mode::Up as u8 {
        *refused_503.lock().unwrap() += 1;
        s.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    let signature_ok = header("x-wangge-signature")
        .and_then(|h| h.strip_prefix("sha256=").map(str::to_string))
        .is_some_and(|hex| hex == hmac_hex(body));
    let j: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
    accepted.lock().unwrap().push(Delivery {
        header_event_id: header("x-wangge-event-id").unwrap_or_default(),
        body_id: id_string(&j["id"]),
        version: j["version"].as_u64().unwrap_or(0),
        signature_ok,
    });
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    Ok(())
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An event id as text, whether the JSON carries it as a number or a string.
pub fn id_string(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}
