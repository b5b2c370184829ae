//! A tiny blocking HTTP client for health checks and `/metrics` (no async client needed), and
//! the Prometheus text format.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0); the body if the answer was 200.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    http_request(port, path).and_then(|(status, body)| (status == 200).then_some(body))
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0): the status code and the body.
pub fn http_request(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Sum of the samples of `metric` whose label set contains every `labels` pair (`k="v"`), from
/// Prometheus text. 0 when absent.
pub fn metric_sum(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name_labels, value) = l.rsplit_once(' ')?;
            let (name, rest) = match name_labels.split_once('{') {
                Some((n, r)) => (n, r),
                None => (name_labels, ""),
            };
            if name != metric {
                return None;
            }
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}
