//! `edge`: the Wangge edge agent and the technician's commands.

use anyhow::Context;
use clap::{Parser, Subcommand};
use edge::config::Config;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "edge",
    version,
    about = "Wangge edge agent: sensors in, durable buffer, acknowledged uplink to the hub"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the agent.
    Run {
        #[arg(long, short, default_value = "edge.toml")]
        config: PathBuf,
    },
    /// Validate the config, open each serial port, connect to the brokers and the hub.
    /// Prints one OK/FAIL line per check; exits non-zero on any failure.
    Check {
        #[arg(long, short, default_value = "edge.toml")]
        config: PathBuf,
        /// Seconds to wait for each broker.
        #[arg(long, default_value_t = 5)]
        timeout_s: u64,
    },
    /// Stream live normalized readings from the running agent.
    Tail {
        #[arg(long, short, default_value = "edge.toml")]
        config: PathBuf,
        /// Only this sensor.
        #[arg(long)]
        sensor: Option<String>,
        /// The agent's local API address (default: local_api.listen from the config).
        #[arg(long)]
        api: Option<SocketAddr>,
    },
    /// Backlog, oldest reading, drain rate and time to drain of the running agent.
    Buffer {
        #[arg(long, short, default_value = "edge.toml")]
        config: PathBuf,
        #[arg(long)]
        api: Option<SocketAddr>,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Modbus tools for the technician.
    Modbus {
        #[command(subcommand)]
        cmd: ModbusCmd,
    },
    /// Serial ports present (and the configured serial paths).
    Ports {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ModbusCmd {
    /// Find which unit ids answer on a line (one holding-register read each; a device that
    /// answers with an exception is there too). Stop `edge run` first on an RTU line: two
    /// masters on one bus garble each other.
    Scan {
        #[arg(long, short, default_value = "edge.toml")]
        config: PathBuf,
        /// The `[[modbus]]` line's name.
        #[arg(long)]
        line: String,
        /// Unit ids to try, e.g. `1-247` or `5`.
        #[arg(long, default_value = "1-247", value_parser = edge::source::modbus::scan::parse_units)]
        units: std::ops::RangeInclusive<u8>,
        /// Wait per unit (default: the line's timeout).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
    },
}

fn main() -> ExitCode {
    edge::log::init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    // The error already names file, line, field and the fix.
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn api_addr(config: &std::path::Path, api: Option<SocketAddr>) -> anyhow::Result<SocketAddr> {
    match api {
        Some(a) => Ok(a),
        None => Ok(load(config)?.local_api.listen),
    }
}

/// A tiny HTTP/1.0 GET (the local API only): returns a reader positioned at the body.
fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<BufReader<TcpStream>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).with_context(|| {
        format!("cannot reach the agent's local API at {addr}: is `edge run` running? (fix: start it, or pass --api)")
    })?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status)?;
    if !status.contains(" 200 ") {
        anyhow::bail!("{addr}{path}: {}", status.trim());
    }
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    Ok(r)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Run { config } => {
            let cfg = load(&config)?;
            runtime()?.block_on(edge::run::run(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Modbus {
            cmd:
                ModbusCmd::Scan {
                    config,
                    line,
                    units,
                    timeout,
                },
        } => {
            let cfg = load(&config)?;
            let found = runtime()?.block_on(edge::source::modbus::scan::scan_command(
                &cfg, &line, units, timeout,
            ))?;
            Ok(if found > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Check { config, timeout_s } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    println!("FAIL config: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            // What the agent would run on: the local file joined with the hub's stored config.
            let cfg = match edge::fleet::boot(cfg) {
                Ok(b) => {
                    if let Some(c) = &b.state.current {
                        println!(
                            "OK   hub config: v{} ({}) joined with the local file",
                            c.version, c.hash
                        );
                    }
                    b.cfg
                }
                Err(e) => {
                    println!("FAIL config: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let verdicts =
                runtime()?.block_on(edge::check::run(&cfg, Duration::from_secs(timeout_s)));
            let failed = verdicts.iter().filter(|v| !v.ok).count();
            if failed > 0 {
                println!("{failed} check(s) FAILED");
                Ok(ExitCode::FAILURE)
            } else {
                println!("all {} checks OK", verdicts.len());
                Ok(ExitCode::SUCCESS)
            }
        }
        Cmd::Tail {
            config,
            sensor,
            api,
        } => {
            let addr = api_addr(&config, api)?;
            let path = match &sensor {
                Some(s) => format!("/tail?sensor={s}"),
                None => "/tail".into(),
            };
            let r = http_get(addr, &path)?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for line in r.lines() {
                let line = line?;
                let text = match serde_json::from_str::<protocol::uplink::Reading>(&line) {
                    Ok(x) => format!(
                        "{} {} {}={} {} {}{}",
                        protocol::time::format_ns(x.ts_ns),
                        x.sensor,
                        x.quantity,
                        x.value,
                        x.quantity.unit(),
                        x.quality.name(),
                        flags_text(x.flags)
                    ),
                    Err(_) => line,
                };
                if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
                    break;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Buffer { config, api, json } => buffer(&config, api, json),
        Cmd::Ports { config } => {
            match tokio_serial::available_ports() {
                Ok(ports) if !ports.is_empty() => {
                    for p in ports {
                        println!("{}\t{:?}", p.port_name, p.port_type);
                    }
                }
                Ok(_) => println!("(no serial ports enumerated)"),
                Err(e) => println!("(serial enumeration failed: {e})"),
            }
            if let Some(c) = config {
                let cfg = load(&c)?;
                for s in &cfg.serial {
                    let state = match std::fs::canonicalize(&s.path) {
                        Ok(real) => format!("present -> {}", real.display()),
                        Err(e) => format!("MISSING ({e})"),
                    };
                    println!("configured {} {}: {state}", s.name, s.path.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `buffer`: the backlog as the running agent reports it, else as read from the buffer directory.
fn buffer(
    config: &std::path::Path,
    api: Option<SocketAddr>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let addr = api_addr(config, api)?;
    let mut body = String::new();
    match http_get(addr, "/buffer") {
        Ok(mut r) => {
            r.read_to_string(&mut body)?;
        }
        Err(e) => {
            // The agent is down: read the buffer directory instead (read-only).
            let cfg = load(config).map_err(|_| e)?;
            let dir = cfg.edge.data_dir.join("buffer");
            let s = edge::buffer::offline_stats(&dir)
                .with_context(|| format!("reading {}", dir.display()))?;
            println!(
                "agent not running (local API unreachable): read from {}",
                dir.display()
            );
            println!(
                "backlog:      {} readings ({} urgent), {} bytes on disk",
                s.unacked, s.urgent_unacked, s.bytes
            );
            let oldest = s
                .oldest_unacked_ns
                .map(protocol::time::format_ms)
                .unwrap_or_else(|| "-".into());
            println!("oldest:       {oldest}");
            println!(
                "last epoch:   {}; torn tail bytes recovery will drop: {}",
                s.epoch, s.torn_bytes
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    if json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let b: edge::local_api::BufferReport = serde_json::from_str(&body)?;
    let oldest = b
        .oldest_unacked_ns
        .map(|t| {
            let age = (edge::ingest::now_ns() - t).max(0) as u64;
            format!(
                "{} ({} ago)",
                protocol::time::format_ms(t),
                humantime::format_duration(Duration::from_secs(age / 1_000_000_000))
            )
        })
        .unwrap_or_else(|| "-".into());
    println!(
        "backlog:      {} readings ({} urgent), {} bytes on disk",
        b.backlog_readings, b.urgent_backlog_readings, b.backlog_bytes
    );
    println!(
        "in flight:    {} readings awaiting the hub's ack",
        b.inflight_readings
    );
    println!("oldest:       {oldest}");
    println!(
        "drain rate:   {:.0} readings/s (ingest {:.0}/s)",
        b.drain_rate_per_s, b.ingest_rate_per_s
    );
    println!(
        "time to drain: {}",
        match b.eta_s {
            Some(s) => humantime::format_duration(Duration::from_secs(s.ceil() as u64)).to_string(),
            None => "not draining (uplink down or ingest ≥ drain)".into(),
        }
    );
    println!(
        "uplink:       {}",
        if b.uplink_connected {
            "connected"
        } else {
            "DISCONNECTED"
        }
    );
    println!(
        "evicted:      {} readings (buffer full); recovery dropped {}",
        b.evicted_readings, b.recovery_records_dropped
    );
    Ok(ExitCode::SUCCESS)
}

fn flags_text(f: protocol::uplink::ReadingFlags) -> String {
    use protocol::uplink::ReadingFlags as F;
    let mut s = String::new();
    for (bit, name) in [
        (F::TS_FROM_EDGE, " ts-from-edge"),
        (F::UNREGISTERED, " unregistered"),
        (F::URGENT, " urgent"),
    ] {
        if f.has(bit) {
            s.push_str(name);
        }
    }
    s
}
