//! The API server's bounds against hostile clients, on a real `hub serve`: a slow request head
//! is cut off, connections past the cap get a quick 503.

mod hub_cli_support;

use hub_cli_support::serve;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const ADMIN: &str = "limits-admin-7d1e0c4b9a3f26e8c5b0a9d3f1e4";

struct Serving {
    addr: String,
    _serve: wangge_testkit::hub::HubServe,
    _dir: tempfile::TempDir,
}

fn start(http_section: &str) -> Serving {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, format!("[http]\n{http_section}\n")).unwrap();
    let serve = serve(dir.path(), "hub.log", ADMIN)
        .config_file(&config)
        .data_dir(&dir.path().join("data"))
        .start()
        .unwrap();
    Serving {
        addr: format!("127.0.0.1:{}", serve.http),
        _serve: serve,
        _dir: dir,
    }
}

/// One `GET /api/v1/health` on a fresh connection; the whole response as text.
fn get_health(addr: &str) -> std::io::Result<String> {
    let mut c = TcpStream::connect(addr)?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")?;
    let mut out = String::new();
    c.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn a_slow_header_client_is_cut_off() {
    let hub = start("header_read_timeout_ms = 500");
    let mut c = TcpStream::connect(&hub.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let started = Instant::now();
    let head = b"GET /api/v1/health HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut cut = false;
    // One byte every 100 ms: the head would take ~10 s; the hub must not wait that long.
    for b in head {
        if c.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 512];
        match c.read(&mut buf) {
            Ok(0) => {
                cut = true;
                break;
            }
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(!text.contains(" 200 "), "a slow head was served: {text}");
                cut = true; // hyper answers 408 before it closes
                break;
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                cut = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed();
    assert!(cut, "the slow client was never cut off");
    assert!(took < Duration::from_secs(3), "cut only after {took:?}");
    // The hub still serves others.
    assert!(get_health(&hub.addr).unwrap().starts_with("HTTP/1.1 200"));
}

#[test]
fn connections_past_the_cap_are_refused() {
    let hub = start("max_connections = 3\nheader_read_timeout_ms = 20000");
    // Three idle connections hold every slot.
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&hub.addr).unwrap())
        .collect();
    // The hub takes them in its own time (a loaded machine may need more than a moment): until
    // it has, a probe is served and gives its slot back; once it has, every probe is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (refused, started) = loop {
        let started = Instant::now();
        let r = get_health(&hub.addr).unwrap();
        if r.starts_with("HTTP/1.1 503") {
            break (r, started);
        }
        assert!(
            r.starts_with("HTTP/1.1 200"),
            "neither served nor refused: {r}"
        );
        assert!(
            Instant::now() < deadline,
            "three idle connections never filled the cap of 3"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        refused.contains(r#""code":"too_many_connections""#),
        "{refused}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refusal was slow"
    );
    // Slots come back when the idle connections go.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = get_health(&hub.addr).unwrap();
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "slots never freed: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn sse_streams_past_the_per_token_cap_get_429() {
    let hub = start("sse_streams_per_token_max = 2");
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/v1/events/stream", hub.addr);
    let open = || http.get(&url).bearer_auth(ADMIN).send();
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open().await.unwrap();
    assert_eq!(third.status(), 429);
    let body: serde_json::Value = third.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
    assert!(body["error"]["message"].is_string());
    // Closing one frees its place.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = open().await.unwrap();
        if again.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);
}

#[tokio::test]
async fn a_report_range_past_the_bound_is_400() {
    let hub = start("report_range_max_days = 7");
    let http = reqwest::Client::new();
    let get = |q: &'static str| {
        http.get(format!("http://{}/api/v1/reports/evaluation?{q}", hub.addr))
            .bearer_auth(ADMIN)
            .send()
    };
    let ok = get("from=2026-01-01T00:00:00Z&to=2026-01-07T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let long = get("from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(long.status(), 400);
    let body: serde_json::Value = long.json().await.unwrap();
    assert_eq!(body["error"]["field"], "from", "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("`to`") && msg.contains("report_range_max_days"),
        "{msg}"
    );
    // The default range (30 days) is past a 7-day bound too.
    assert_eq!(get("").await.unwrap().status(), 400);
}
