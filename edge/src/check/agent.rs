//! The agent running on this box, as `edge check` sees it: while `edge run` holds the serial
//! ports, the site broker's port and the local API's port, opening or binding them again fails
//! — not because a cable is loose, but because the agent has them. The check asks the agent's
//! local API (`/health`, which carries its pid and each source's state) and reports what the
//! agent holds as OK instead of sending the technician to the cable.

use crate::config::Config;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most of `/health`'s answer read (it is a few hundred bytes).
const HEALTH_BYTES_MAX: u64 = 64 * 1024;

/// An agent that answered on the config's local API.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningAgent {
    pub pid: u32,
    /// Each source's name and whether the agent has it up.
    pub sources_up: HashMap<String, bool>,
}

impl RunningAgent {
    /// Asks `/health` on `local_api.listen` (loopback if it listens on every address); None if
    /// nothing answers there like an edge agent within `timeout`.
    pub async fn find(cfg: &Config, timeout: Duration) -> Option<RunningAgent> {
        let mut addr = cfg.local_api.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let body = tokio::time::timeout(timeout, get_health(addr))
            .await
            .ok()??;
        RunningAgent::from_health(&body)
    }

    /// Reads the agent from `/health`'s JSON; None unless it carries a pid.
    pub fn from_health(body: &str) -> Option<RunningAgent> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        let pid = u32::try_from(v.get("pid")?.as_u64()?).ok()?;
        let sources_up = v
            .get("sources")
            .and_then(|s| s.as_array())
            .map(|list| {
                list.iter()
                    .filter_map(|s| {
                        let name = s.get("name")?.as_str()?.to_string();
                        Some((name, s.get("up")?.as_bool()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(RunningAgent { pid, sources_up })
    }

    /// Whether the agent has the source `name` open and up.
    pub fn has_up(&self, name: &str) -> bool {
        self.sources_up.get(name).copied().unwrap_or(false)
    }

    /// The verdict's detail for what the agent holds.
    pub fn held(&self) -> String {
        format!("held by the running agent (pid {})", self.pid)
    }
}

/// `GET /health` over HTTP/1.0; the body if the answer is 200.
async fn get_health(addr: SocketAddr) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    s.take(HEALTH_BYTES_MAX).read_to_end(&mut raw).await.ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.lines()
        .next()
        .is_some_and(|status| status.contains(" 200 "))
        .then(|| body.to_string())
}

#[cfg(test)]
mod tests {
    use super::RunningAgent;

    #[test]
    fn health_with_a_pid_names_the_agent_and_its_sources() {
        let a = RunningAgent::from_health(
            r#"{"status":"ok","pid":4242,"sources":[{"name":"A","kind":"serial","up":true},{"name":"B","kind":"serial","up":false}]}"#,
        )
        .expect("an agent");
        assert_eq!(a.pid, 4242);
        assert!(a.has_up("A"));
        assert!(!a.has_up("B"));
        assert!(!a.has_up("C"));
        assert_eq!(a.held(), "held by the running agent (pid 4242)");
    }

    #[test]
    fn an_answer_without_a_pid_or_not_json_is_no_agent() {
        assert_eq!(RunningAgent::from_health(r#"{"status":"ok"}"#), None);
        assert_eq!(RunningAgent::from_health("<html>"), None);
        assert_eq!(RunningAgent::from_health(r#"{"pid":-1}"#), None);
    }
}
