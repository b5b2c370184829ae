//! Stock MQTT clients (mosquitto_sub / mosquitto_pub from mosquitto-clients) as an attacker or a
//! department consumer would run them, against the hub's broker or an external mosquitto.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `mosquitto_sub -v -q 1`, its stdout and stderr lines collected; killed when dropped.
pub struct Sub {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Sub {
    pub fn start(port: u16, user: &str, password: &str, client_id: &str, filters: &[&str]) -> Sub {
        Self::start_with(port, user, password, client_id, filters, &[])
    }

    /// Like `start`, with `extra` mosquitto_sub arguments (e.g. a will).
    pub fn start_with(
        port: u16,
        user: &str,
        password: &str,
        client_id: &str,
        filters: &[&str],
        extra: &[&str],
    ) -> Sub {
        let mut c = Command::new("mosquitto_sub");
        c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv311"])
            .args(["-u", user, "-P", password, "-i", client_id, "-v", "-q", "1"])
            .args(extra);
        for f in filters {
            c.args(["-t", f]);
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub (mosquitto-clients) is installed: scripts/install-test-deps");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(l);
                }
            });
        }
        Sub { child, lines }
    }

    /// Every line it printed so far (messages as `topic payload`, and its errors).
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The lines that are messages of the Wangge topic tree.
    pub fn messages(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with("wangge/"))
            .collect()
    }

    /// The exit status within `secs`, `None` if it still runs.
    pub fn exited_within(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `mosquitto_pub -q 1` of `payload_file` (or "junk") as `user` with client id `user`; true
/// if the broker acknowledged it and it exited 0.
pub fn publish_once(
    port: u16,
    user: &str,
    password: &str,
    topic: &str,
    retain: bool,
    payload_file: Option<&std::path::Path>,
) -> bool {
    let mut c = Command::new("mosquitto_pub");
    c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv311"])
        .args([
            "-u", user, "-P", password, "-i", user, "-q", "1", "-t", topic,
        ]);
    match payload_file {
        Some(f) => c.arg("-f").arg(f),
        None => c.args(["-m", "junk"]),
    };
    if retain {
        c.arg("-r");
    }
    c.output()
        .expect("mosquitto_pub (mosquitto-clients) is installed: scripts/install-test-deps")
        .status
        .success()
}
