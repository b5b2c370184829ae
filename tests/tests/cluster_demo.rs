//! `scripts/cluster-demo`, as a user runs it: PostgreSQL, mosquitto, VictoriaMetrics, three hubs,
//! an edge and firmware-sim come up, the script says "cluster is running" with the three
//! dashboards and a cluster status where every member is live and the edge owned, the dashboards
//! answer, and Ctrl-C (SIGINT) stops every process it started (nothing listens on its ports).
//! Free ports, a temp demo dir and the debug binaries are given through the script's overrides.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wangge_testkit::{bin, free_port, wait_for, workspace_root};

/// The script's process; SIGTERM (its own clean stop) if the test ends before it did.
struct Demo {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    fn output(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }

    fn signal(&self, s: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), s);
    }

    fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        wait_for("the demo to exit", limit, || {
            self.child.try_wait().ok().flatten()
        })
        .ok()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(nix::sys::signal::Signal::SIGTERM);
            if self.exited_within(Duration::from_secs(30)).is_none() {
                let _ = self.child.kill();
            }
        }
    }
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_ok()
}

#[test]
fn the_cluster_demo_runs_three_hubs_and_ctrl_c_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let http: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let ports = [
        ("WANGGE_DEMO_PG_PORT", free_port()),
        ("WANGGE_DEMO_MQTT_PORT", free_port()),
        ("WANGGE_DEMO_VM_PORT", free_port()),
        ("WANGGE_DEMO_SITE_PORT", free_port()),
        ("WANGGE_DEMO_EDGE_API_PORT", free_port()),
    ];
    let hub = bin("hub");
    let mut cmd = Command::new(workspace_root().join("scripts/cluster-demo"));
    cmd.env("WANGGE_DEMO_DIR", dir.path().join("demo"))
        .env("WANGGE_BIN_DIR", hub.parent().unwrap())
        .env("WANGGE_DEMO_NO_INSTALL", "1")
        .env(
            "WANGGE_DEMO_HTTP_PORTS",
            format!("{} {} {}", http[0], http[1], http[2]),
        )
        .env_remove("WANGGE_POSTGRES_URL")
        .env_remove("WANGGE_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in ports {
        cmd.env(k, v.to_string());
    }
    let mut child = cmd.spawn().expect("scripts/cluster-demo starts");
    let out: Arc<Mutex<Vec<String>>> = Arc::default();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let out = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                out.lock().unwrap().push(line);
            }
        });
    }
    let mut demo = Demo { child, out };

    let running = wait_for("the demo to say so", Duration::from_secs(180), || {
        let out = demo.output();
        if out.contains("cluster-demo: cluster is running") {
            return Some(true);
        }
        demo.child.try_wait().ok().flatten().map(|_| false)
    });
    let text = demo.output();
    assert!(
        matches!(running, Ok(true)),
        "the demo never said `cluster is running`:\n{text}"
    );
    for p in &http {
        assert!(
            text.contains(&format!("http://127.0.0.1:{p}/")),
            "dashboard {p} printed:\n{text}"
        );
    }
    let members: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("hub-") && l.contains(" live "))
        .collect();
    assert_eq!(
        members.len(),
        3,
        "three live members in the status:\n{text}"
    );
    assert!(
        members.iter().any(|l| l.contains("edge-xq-01")),
        "the edge is owned by a member:\n{text}"
    );
    for p in &http {
        let health = reqwest::blocking::get(format!("http://127.0.0.1:{p}/api/v1/health"))
            .map(|r| r.status().as_u16());
        assert_eq!(health.ok(), Some(200), "hub on {p} answers:\n{text}");
    }

    // Ctrl-C.
    demo.signal(nix::sys::signal::Signal::SIGINT);
    let status = demo.exited_within(Duration::from_secs(60));
    let text = demo.output();
    assert!(status.is_some(), "the demo did not stop on SIGINT:\n{text}");
    assert!(text.contains("cluster-demo: stopped"), "{text}");
    let all: Vec<u16> = http.iter().copied().chain(ports.map(|(_, p)| p)).collect();
    let closed = wait_for("every port closed", Duration::from_secs(20), || {
        all.iter().all(|p| !port_open(*p)).then_some(())
    });
    assert!(
        closed.is_ok(),
        "still listening after the stop: {:?}\n{text}",
        all.iter().filter(|p| port_open(**p)).collect::<Vec<_>>()
    );
}
