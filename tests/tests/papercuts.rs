//! The papercuts a new user hit running the demo (issue 15), each against the real binaries:
//! the demo stops quietly on Ctrl-C, a TCP readiness probe of the hub's broker port logs no
//! ERROR, the edge writes no colour codes into a log file, and `edge check` on a box whose agent
//! runs reports what the agent holds as OK.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use wangge_testkit::hub::HubServe;
use wangge_testkit::paths::workspace_root;
use wangge_testkit::process::Proc;
use wangge_testkit::{bin, free_port, port_open, wait_for};
use wangge_tests::system::{Edge, Hub};

/// Fails naming `whose` log when `text` holds an ANSI colour code.
fn assert_no_colour(whose: &str, text: &str) {
    assert!(
        !text.contains("\x1b["),
        "colour codes in {whose} log:\n{text:?}"
    );
}

/// Lines of `log` at ERROR level.
fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(" ERROR ")).collect()
}

#[test]
fn tcp_probes_of_the_hub_broker_port_log_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hub.log");
    let mut hub = HubServe::config(&bin("hub"), &log)
        .data_dir(&dir.path().join("data"))
        .admin_token("papercut-admin-7d1e4b9a2c6f08e3b5a7d9c1")
        .start()
        .unwrap();
    // What a load balancer, a script's `exec 3<>/dev/tcp/…` or the demo does: connect, close.
    for _ in 0..5 {
        drop(TcpStream::connect(("127.0.0.1", hub.mqtt)).unwrap());
    }
    wait_for(
        "the hub's HTTP API after the probes",
        Duration::from_secs(10),
        || wangge_testkit::http_get(hub.http, "/api/v1/health"),
    )
    .unwrap();
    let status = hub.proc.terminate(Duration::from_secs(20));
    assert!(status.is_some(), "the hub did not stop on SIGTERM");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("hub serving"), "{text}");
    assert_eq!(error_lines(&text), Vec::<&str>::new(), "{text}");
    assert_no_colour("the hub's", &text);
}

#[test]
fn the_edge_and_firmware_sim_write_no_colour_codes_into_a_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, site) = Hub::started_with_site(dir.path()).unwrap();
    let mut edge = Edge::prepare(dir.path(), &hub, &site).unwrap();
    // The default filter, as a technician's box runs it (the testkit sets RUST_LOG otherwise).
    edge.rust_log = "info,rumqttc=warn".into();
    edge.start().unwrap();
    wait_for("the edge's start-up lines", Duration::from_secs(20), || {
        let log = std::fs::read_to_string(edge.log_path()).ok()?;
        (log.lines().count() >= 2).then_some(())
    })
    .unwrap();
    let log = std::fs::read_to_string(edge.log_path()).unwrap();
    edge.kill9();
    hub.kill9();
    assert!(log.contains(" INFO "), "{log}");
    assert_no_colour("the edge's", &log);

    // firmware-sim too (its log is stderr; stdout carries the summary).
    let sim_log = dir.path().join("sim.log");
    let mut sim = Command::new(bin("firmware-sim"));
    sim.current_dir(workspace_root())
        .args(["--only", "MH-0001", "--count", "1", "--interval-scale", "0"])
        .arg("--mqtt-dump")
        .arg(dir.path().join("dump.txt"));
    let mut sim = Proc::spawn("firmware-sim", sim, &sim_log).unwrap();
    let status = sim.exited_within(Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "{}", sim.log());
    let text = std::fs::read_to_string(&sim_log).unwrap();
    assert!(text.contains(" INFO "), "{text}");
    assert_no_colour("firmware-sim's", &text);
}

#[test]
fn edge_check_on_a_running_box_reports_what_the_agent_holds_as_ok() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, site) = Hub::started_with_site(dir.path()).unwrap();
    // firmware-sim makes the two serial lines (ptys) the edge's config names.
    let mut sim = Command::new(bin("firmware-sim"));
    sim.current_dir(workspace_root())
        .args([
            "--profiles",
            "serial-binary,serial-text",
            "--duration",
            "300s",
        ])
        .arg("--pty-a")
        .arg(dir.path().join("ttyA"))
        .arg("--pty-b")
        .arg(dir.path().join("ttyB"));
    let _sim = Proc::spawn("firmware-sim", sim, &dir.path().join("sim.log")).unwrap();
    wait_for("the simulator's ptys", Duration::from_secs(20), || {
        (dir.path().join("ttyA").exists() && dir.path().join("ttyB").exists()).then_some(())
    })
    .unwrap();
    // And a Modbus RTU line the agent polls (firmware-sim's slave on a pty).
    let rs485 = dir.path().join("rs485");
    let mut slave = Command::new(bin("firmware-sim"));
    slave
        .current_dir(workspace_root())
        .args([
            "modbus",
            "--baud",
            "19200",
            "--rtu-device",
            "1:modbus-flood-level",
        ])
        .arg("--rtu-pty")
        .arg(&rs485);
    let _slave = Proc::spawn("firmware-sim modbus", slave, &dir.path().join("modbus.log")).unwrap();
    wait_for("the Modbus pty", Duration::from_secs(20), || {
        rs485.exists().then_some(())
    })
    .unwrap();
    let site_broker = free_port();
    let extra = format!(
        "[site_broker]\nlisten = \"127.0.0.1:{site_broker}\"\n[[modbus]]\nname = \"rs485-1\"\nrtu = {{ path = {:?}, baud = 19200 }}\n[[modbus.slave]]\nunit = 1\nprofile = \"modbus-flood-level\"\nsensor = \"FL-9001\"\n",
        rs485.display().to_string()
    );
    let mut edge = Edge::prepare_with(dir.path(), &hub, &site, &extra).unwrap();
    edge.start().unwrap();
    let pid = edge.proc.as_ref().unwrap().pid();
    wait_for("both serial sources up", Duration::from_secs(30), || {
        let t = edge.metrics().ok()?;
        let up = |name: &str| {
            wangge_testkit::metric_sum(&t, "edge_source_up", &[("source", name)]) == 1.0
        };
        (up("A") && up("B") && up("rs485-1")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.log_tail()));

    let out = Command::new(bin("edge"))
        .args(["check", "--config"])
        .arg(&edge.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let held = format!("held by the running agent (pid {pid})");
    for line in [
        "serial A",
        "serial B",
        "modbus rs485-1:",
        "site_broker",
        "local_api",
    ] {
        let l = text
            .lines()
            .find(|l| l.contains(&format!(" {line}")))
            .unwrap_or_else(|| panic!("no {line} line:\n{text}"));
        assert!(l.starts_with("OK ") && l.contains(&held), "{l}\n{text}");
    }
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The check took nothing from the agent: its sources are still up.
    let t = edge.metrics().unwrap();
    assert_eq!(
        wangge_testkit::metric_sum(&t, "edge_source_up", &[("source", "A")]),
        1.0,
        "{t}"
    );
    edge.kill9();
    hub.kill9();
}

/// A copy of the demo (script and config) in `to`, on free ports and with its device links
/// under `to`, so it runs beside anything else on this machine.
fn demo_copy(to: &Path) {
    let root = workspace_root();
    let mut ports: Vec<(String, String)> = ["1883", "1884", "1502", "8080", "9700"]
        .iter()
        .map(|p| (p.to_string(), free_port().to_string()))
        .collect();
    ports.push(("0.0.0.0:".into(), "127.0.0.1:".into()));
    ports.push(("/tmp/wangge-".into(), format!("{}/wangge-", to.display())));
    let rewrite = |rel: &str| {
        let mut text = std::fs::read_to_string(root.join(rel)).unwrap();
        for (from, to) in &ports {
            text = text.replace(from.as_str(), to);
        }
        text
    };
    let status = Command::new("cp")
        .arg("-r")
        .arg(root.join("config"))
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::create_dir_all(to.join("scripts")).unwrap();
    for rel in ["scripts/demo", "config/hub.toml", "config/edge.toml"] {
        std::fs::write(to.join(rel), rewrite(rel)).unwrap();
    }
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(to.join("scripts/demo"), mode).unwrap();
}

#[test]
fn the_demo_stops_quietly_and_exits_0_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    demo_copy(dir.path());
    let bin_dir = bin("hub").parent().unwrap().to_path_buf();
    let out_path = dir.path().join("demo.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut c = Command::new(dir.path().join("scripts/demo"));
    c.env("WANGGE_DEMO_BIN", &bin_dir)
        .env("WANGGE_ADMIN_TOKEN", "papercut-demo-3b8e1f6a9c2d47e05a1b")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        // Its own process group, as a terminal gives it: Ctrl-C goes to the whole group.
        .process_group(0);
    let mut demo = Proc::start("demo", c).unwrap();
    let read = || std::fs::read_to_string(&out_path).unwrap_or_default();
    wait_for("demo is running", Duration::from_secs(180), || {
        read().contains("demo is running").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", read()));
    // Its simulators are up: the serial and Modbus ptys exist, the Modbus registry is played.
    wait_for("the demo's ptys", Duration::from_secs(60), || {
        ["wangge-serial-A", "wangge-serial-B", "wangge-modbus"]
            .iter()
            .all(|l| dir.path().join(l).exists())
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", read()));
    let modbus_log = dir.path().join("data/firmware-sim-modbus.log");
    wait_for(
        "the demo's Modbus registry played",
        Duration::from_secs(30),
        || {
            let log = std::fs::read_to_string(&modbus_log).ok()?;
            log.contains("playing the registry").then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            std::fs::read_to_string(&modbus_log).unwrap_or_default()
        )
    });
    let group = nix::unistd::Pid::from_raw(demo.pid() as i32);
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = demo.exited_within(Duration::from_secs(60));
    let text = read();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{text}");
    assert!(!text.contains("exited early"), "{text}");
    assert!(text.contains("demo: stopped"), "{text}");
    // Everything it started is gone (its HTTP port is closed) and logged no ERROR.
    let hub_toml = std::fs::read_to_string(dir.path().join("config/hub.toml")).unwrap();
    let http: u16 = hub_toml
        .lines()
        .find_map(|l| l.trim().strip_prefix("listen = \"127.0.0.1:"))
        .and_then(|p| p.trim_end_matches('"').parse().ok())
        .unwrap();
    assert!(!port_open(http), "the demo's hub still listens on {http}");
    for log in ["hub.log", "edge.log"] {
        let t = std::fs::read_to_string(dir.path().join("data").join(log)).unwrap();
        assert_eq!(error_lines(&t), Vec::<&str>::new(), "{log}:\n{t}");
    }
}
