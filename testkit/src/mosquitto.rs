//! mosquitto for tests: one configurable launcher (free port, temp dir, conf file, optional TLS
//! listener, extra settings such as `user root`, `use_username_as_clientid true` or password and
//! ACL files), and the stock `mosquitto_sub` / `mosquitto_pub` clients.

use crate::certs::TestCerts;
use crate::paths::installed;
use crate::ports::{free_port, port_open};
use crate::process::Proc;
use crate::wait::wait_until;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn exe(name: &str) -> PathBuf {
    installed(
        name,
        &[
            &format!("/usr/sbin/{name}"),
            &format!("/usr/bin/{name}"),
            &format!("/usr/local/sbin/{name}"),
        ],
    )
}

/// A running mosquitto on 127.0.0.1, killed by its PID when dropped.
pub struct Mosquitto {
    /// The plain listener.
    pub port: u16,
    /// The TLS listener, when configured.
    pub tls_port: Option<u16>,
    pub proc: Proc,
    dir: tempfile::TempDir,
}

/// How to start a [`Mosquitto`]; [`Mosquitto::start`] takes the defaults.
pub struct MosquittoConfig<'a> {
    port: Option<u16>,
    dir: Option<tempfile::TempDir>,
    anonymous: bool,
    tls: Option<&'a TestCerts>,
    settings: String,
}

impl<'a> MosquittoConfig<'a> {
    /// Listen on `port` (e.g. to restart a broker where clients expect it) instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Keep the conf (and files the settings name) in `dir` instead of a new temp dir.
    pub fn dir(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// Whether clients without credentials may connect (default: yes).
    pub fn anonymous(mut self, allow: bool) -> Self {
        self.anonymous = allow;
        self
    }

    /// A second listener on a free port with TLS from `certs` (settings become global).
    pub fn tls(mut self, certs: &'a TestCerts) -> Self {
        self.tls = Some(certs);
        self
    }

    /// Extra conf lines, e.g. `"user root\nuse_username_as_clientid true\n"`.
    pub fn settings(mut self, lines: &str) -> Self {
        self.settings.push_str(lines);
        if !lines.ends_with('\n') {
            self.settings.push('\n');
        }
        self
    }

    /// Starts mosquitto and waits until every listener accepts connections.
    pub fn start(self) -> Mosquitto {
        let dir = match self.dir {
            Some(d) => d,
            None => tempfile::tempdir().unwrap(),
        };
        let port = self.port.unwrap_or_else(free_port);
        let tls_port = self.tls.map(|_| free_port());
        // Unlimited queues: count the test's messages, not the broker's drops.
        let mut conf = format!(
            "allow_anonymous {}\nmax_queued_messages 0\npersistence false\n{}",
            self.anonymous, self.settings
        );
        match (self.tls, tls_port) {
            (Some(c), Some(tls)) => {
                conf = format!(
                    "per_listener_settings false\n{conf}listener {port} 127.0.0.1\n\
                 listener {tls} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                    c.ca.display(),
                    c.cert.display(),
                    c.key.display()
                )
            }
            _ => conf = format!("listener {port} 127.0.0.1\n{conf}"),
        }
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, conf).unwrap();
        let mut cmd = Command::new(exe("mosquitto"));
        cmd.arg("-c").arg(&path);
        let proc = Proc::spawn("mosquitto", cmd, &dir.path().join("mosquitto.log"))
            .expect("mosquitto is installed (scripts/install-test-deps)");
        let m = Mosquitto {
            port,
            tls_port,
            proc,
            dir,
        };
        wait_until("mosquitto listening", Duration::from_secs(30), || {
            port_open(port) && tls_port.is_none_or(port_open)
        });
        m
    }
}

impl Mosquitto {
    /// Anonymous clients allowed, unlimited queues, no persistence, on a free port.
    pub fn start() -> Mosquitto {
        Mosquitto::config().start()
    }

    pub fn config<'a>() -> MosquittoConfig<'a> {
        MosquittoConfig {
            port: None,
            dir: None,
            anonymous: true,
            tls: None,
            settings: String::new(),
        }
    }

    /// Its conf, log and other files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A running `mosquitto_sub -v`, its output lines collected; killed by its PID when dropped.
pub struct MosquittoSub {
    proc: Proc,
    /// Everything it printed: messages (`topic payload`) and errors, in order.
    all: Arc<Mutex<Vec<String>>>,
    /// Only its stdout (the messages).
    out: Arc<Mutex<Vec<String>>>,
}

impl MosquittoSub {
    /// `mosquitto_sub -h 127.0.0.1 -p port -V mqttv311 -v <args> -t <filter>…`.
    pub fn start(port: u16, args: &[&str], filters: &[&str]) -> MosquittoSub {
        let mut c = Command::new(exe("mosquitto_sub"));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-V",
            "mqttv311",
            "-v",
        ])
        .args(args);
        for f in filters {
            c.args(["-t", f]);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::start("mosquitto_sub", c)
            .expect("mosquitto_sub (mosquitto-clients) is installed: scripts/install-test-deps");
        let all = Arc::new(Mutex::new(Vec::new()));
        let out = Arc::new(Mutex::new(Vec::new()));
        let stdout = proc.child_mut().stdout.take().expect("piped");
        let stderr = proc.child_mut().stderr.take().expect("piped");
        for (stream, also) in [
            (
                Box::new(stdout) as Box<dyn std::io::Read + Send>,
                Some(out.clone()),
            ),
            (Box::new(stderr), None),
        ] {
            let all = all.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(o) = &also {
                        o.lock().unwrap().push(l.clone());
                    }
                    all.lock().unwrap().push(l);
                }
            });
        }
        MosquittoSub { proc, all, out }
    }

    /// Every line it printed so far (messages as `topic payload`, and its errors).
    pub fn lines(&self) -> Vec<String> {
        self.all.lock().unwrap().clone()
    }

    /// The messages so far (`topic payload`, its stdout).
    pub fn stdout(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }

    /// The messages whose topic starts with `prefix`.
    pub fn messages(&self, prefix: &str) -> Vec<String> {
        self.stdout()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    /// Publishes probes on `topic` (anonymous, `mosquitto_pub`) until one comes through: the
    /// subscription is live.
    pub fn wait_subscribed(&self, port: u16, topic: &str) {
        wait_until(
            "mosquitto_sub receives a probe",
            Duration::from_secs(30),
            || {
                publish(port, &["-t", topic, "-m", "probe", "-q", "1"]);
                std::thread::sleep(Duration::from_millis(50));
                !self.messages(topic).is_empty()
            },
        );
    }

    /// The exit status once it exits within `limit`, `None` if it still runs.
    pub fn exited_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.proc.exited_within(limit)
    }
}

/// One `mosquitto_pub -h 127.0.0.1 -p port -V mqttv311 <args>`; true if it exited 0 (with
/// `-q 1`: the broker acknowledged).
pub fn publish(port: u16, args: &[&str]) -> bool {
    Command::new(exe("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv311"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("mosquitto_pub (mosquitto-clients) is installed: scripts/install-test-deps")
        .success()
}
