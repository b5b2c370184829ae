//! `edge check`: the technician's pre-flight. One line per check, `OK` or `FAIL` with the
//! reason and the fix; any failure makes the command exit non-zero. On a box whose agent runs,
//! what the agent holds (serial ports, the site broker's and local API's ports, Modbus lines)
//! is OK "held by the running agent (pid N)" ([`agent`]).

mod agent;

use crate::config::Config;
use crate::normalize::Normalizer;
use crate::{registry, source, uplink};
use agent::RunningAgent;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Packet};
use std::time::Duration;

/// One check's verdict.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub fix: String,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ok {
            write!(f, "OK   {}: {}", self.name, self.detail)
        } else {
            write!(f, "FAIL {}: {} (fix: {})", self.name, self.detail, self.fix)
        }
    }
}

fn ok(name: impl Into<String>, detail: impl Into<String>) -> Verdict {
    Verdict {
        name: name.into(),
        ok: true,
        detail: detail.into(),
        fix: String::new(),
    }
}

fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Verdict {
    Verdict {
        name: name.into(),
        ok: false,
        detail: detail.into(),
        fix: fix.into(),
    }
}

/// Runs every check, printing each line as it completes.
pub async fn run(cfg: &Config, timeout: Duration) -> Vec<Verdict> {
    let mut out = Vec::new();
    let emit = |v: Verdict, out: &mut Vec<Verdict>| {
        println!("{v}");
        out.push(v);
    };
    emit(
        ok("config", format!("{} parsed", cfg.source_path.display())),
        &mut out,
    );
    let agent = RunningAgent::find(cfg, timeout.min(Duration::from_secs(2))).await;
    if let Some(a) = &agent {
        emit(
            ok(
                "agent",
                format!("running (pid {}), its local API answers", a.pid),
            ),
            &mut out,
        );
    }
    match Normalizer::load(&cfg.edge.profiles_dir, cfg) {
        Ok(n) => emit(ok("profiles", n.profile_names().join(", ")), &mut out),
        Err(e) => emit(
            fail(
                "profiles",
                e.to_string(),
                "correct the profile file named above",
            ),
            &mut out,
        ),
    }
    match registry::registered(cfg) {
        Ok(s) => emit(
            ok("registry", format!("{} registered sensors", s.len())),
            &mut out,
        ),
        Err(e) => emit(
            fail(
                "registry",
                e.to_string(),
                "point edge.registry at the sensors CSV",
            ),
            &mut out,
        ),
    }
    emit(check_data_dir(cfg), &mut out);
    let secret = cfg.secret();
    if let Err(e) = &secret {
        let hub = format!("hub ({}:{})", cfg.hub.host, cfg.hub.port);
        let v = Verdict {
            name: "hub.secret".into(),
            ok: false,
            detail: e.to_string(),
            fix: String::new(),
        };
        println!("FAIL {}: {}", v.name, v.detail);
        out.push(v);
        emit(
            fail(
                hub,
                "not checked: no secret to log in with",
                "fix hub.secret first",
            ),
            &mut out,
        );
    }
    for v in serial_verdicts(cfg, agent.as_ref()) {
        emit(v, &mut out);
    }
    for v in modbus_verdicts(cfg, agent.as_ref()).await {
        emit(v, &mut out);
    }
    for s in &cfg.mqtt {
        let name = format!("mqtt {} ({}:{})", s.name, s.host, s.port);
        let opts = source::mqtt::options(s, &cfg.edge.id, secret.as_deref().ok());
        emit(
            mqtt_connect(
                name,
                opts,
                timeout,
                "check mqtt.host/port and that the site broker runs",
                "check mqtt.username/password",
            )
            .await,
            &mut out,
        );
    }
    if let Ok(secret) = &secret {
        let name = format!("hub ({}:{})", cfg.hub.host, cfg.hub.port);
        // The hub binds the client id to the edge id, so while this edge runs, the check's
        // login briefly replaces its connection; the edge reconnects and resends what was not
        // acked (nothing is lost).
        match uplink::mqtt_options(cfg, secret) {
            Ok(opts) => emit(
                mqtt_connect(
                    name,
                    opts,
                    timeout,
                    "check hub.host/port, the network and the firewall; is the hub running?",
                    "check edge.id and hub.secret against what the hub issued",
                )
                .await,
                &mut out,
            ),
            Err(e) => emit(fail(name, e.to_string(), "check hub.ca_file"), &mut out),
        }
    }
    for v in port_verdicts(cfg, agent.as_ref()) {
        emit(v, &mut out);
    }
    out
}

/// Each serial port opened with its line settings; one the running agent has up is OK.
fn serial_verdicts(cfg: &Config, agent: Option<&RunningAgent>) -> Vec<Verdict> {
    cfg.serial
        .iter()
        .map(|s| {
            let name = format!("serial {} ({})", s.name, s.path.display());
            match (source::serial::open(s), agent) {
                (Ok(_), _) => ok(name, format!("opened at {} baud", s.baud)),
                (Err(_), Some(a)) if a.has_up(&s.name) => ok(name, a.held()),
                (Err(e), _) => fail(
                    name,
                    e.to_string(),
                    "check the cable/USB adapter and the path (`edge ports` lists ports present)",
                ),
            }
        })
        .collect()
}

/// The ports the agent listens on (the site broker's, the local API's): free, or held by the
/// running agent, or held by another process.
fn port_verdicts(cfg: &Config, agent: Option<&RunningAgent>) -> Vec<Verdict> {
    let mut ports = Vec::new();
    if let Some(sb) = &cfg.site_broker {
        ports.push((
            "site_broker",
            sb.listen,
            "another process holds the port; stop it or change site_broker.listen",
        ));
    }
    ports.push((
        "local_api",
        cfg.local_api.listen,
        "another process (a running edge?) holds the port; stop it or change local_api.listen",
    ));
    ports
        .into_iter()
        .map(
            |(name, addr, fix)| match (std::net::TcpListener::bind(addr), agent) {
                (Ok(_), _) => ok(name, format!("{addr} free")),
                (Err(_), Some(a)) => ok(name, format!("{addr} {}", a.held())),
                (Err(e), None) => fail(name, format!("{addr}: {e}"), fix),
            },
        )
        .collect()
}

fn check_data_dir(cfg: &Config) -> Verdict {
    let dir = &cfg.edge.data_dir;
    let name = format!("data_dir ({})", dir.display());
    if let Err(e) = std::fs::create_dir_all(dir) {
        return fail(
            name,
            e.to_string(),
            "create the directory or set edge.data_dir",
        );
    }
    let probe = dir.join(".edge-check");
    if let Err(e) = std::fs::write(&probe, b"x").and_then(|_| std::fs::remove_file(&probe)) {
        return fail(
            name,
            format!("not writable: {e}"),
            "fix permissions or set edge.data_dir",
        );
    }
    match free_bytes(dir) {
        Some(free) if free < cfg.buffer.buffer_bytes_max / 2 => fail(
            name,
            format!(
                "only {} MiB free for buffer_bytes_max {} MiB",
                free >> 20,
                cfg.buffer.buffer_bytes_max >> 20
            ),
            "free disk space or lower buffer.buffer_bytes_max",
        ),
        Some(free) => ok(name, format!("writable, {} MiB free", free >> 20)),
        None => ok(name, "writable"),
    }
}

fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; c is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// Connects once and waits for CONNACK.
async fn mqtt_connect(
    name: String,
    mut opts: rumqttc::MqttOptions,
    timeout: Duration,
    fix_unreachable: &str,
    fix_refused: &str,
) -> Verdict {
    opts.set_clean_session(true);
    let (client, mut el) = AsyncClient::new(opts, 4);
    let res = tokio::time::timeout(timeout, async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(c))) => return Ok(c.code),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    let _ = client.try_disconnect();
    match res {
        Ok(Ok(ConnectReturnCode::Success)) => ok(name, "connected"),
        Ok(Ok(code)) => fail(name, format!("refused: {code:?}"), fix_refused),
        Ok(Err(rumqttc::ConnectionError::ConnectionRefused(code))) => {
            fail(name, format!("refused: {code:?}"), fix_refused)
        }
        Ok(Err(e)) => fail(name, format!("unreachable: {e}"), fix_unreachable),
        Err(_) => fail(
            name,
            format!("no answer within {} s", timeout.as_secs()),
            fix_unreachable,
        ),
    }
}

/// One verdict per block of every Modbus slave's read plan (or per line that does not open).
async fn modbus_verdicts(cfg: &Config, agent: Option<&RunningAgent>) -> Vec<Verdict> {
    let mut out = Vec::new();
    let lines = cfg.modbus_lines();
    let mut profiles: Vec<String> = lines
        .iter()
        .flat_map(|l| &l.slaves)
        .map(|s| {
            let n = s.plan.len();
            let plural = if n == 1 { "" } else { "s" };
            format!("{} ({n} request{plural} a cycle)", s.profile.name)
        })
        .collect();
    profiles.sort();
    profiles.dedup();
    if !profiles.is_empty() {
        out.push(ok("modbus profiles", profiles.join(", ")));
    }
    for line in lines {
        // The running agent polls this line: a second master would garble the bus (RTU) or take
        // a gateway's only connection (TCP), so the agent's word stands.
        if let Some(a) = agent.filter(|a| a.has_up(&line.name)) {
            out.push(ok(
                format!("modbus {}", line.name),
                format!(
                    "{} (`edge_modbus_slave_up` on its /metrics per slave; stop it to probe each block)",
                    a.held()
                ),
            ));
            continue;
        }
        match source::modbus::scan::probe_line(line).await {
            Err(e) => out.push(fail(
                format!("modbus {}", line.name),
                e.to_string(),
                "check the adapter path (`edge ports`) or the device's host:port",
            )),
            Ok(blocks) => {
                for b in blocks {
                    let name = format!(
                        "modbus {} unit {} ({}) {} {}+{}",
                        line.name,
                        b.unit,
                        b.sensor,
                        b.table.name(),
                        b.address,
                        b.count
                    );
                    out.push(match b.result {
                        Ok(()) => ok(name, "answers"),
                        Err(f) => fail(name, f.to_string(), b.fix()),
                    });
                }
            }
        }
    }
    out
}
