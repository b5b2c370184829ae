//! `firmware-sim`: simulated smart sensors over MQTT and serial lines. See README.md.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use firmware_sim::engine::{Engine, Outputs, RunConfig};
use firmware_sim::output::mqtt::{Mqtt, MqttConfig};
use firmware_sim::output::serial::SerialLine;
use firmware_sim::scenario::{self, Scenario};
use firmware_sim::sensors::{self, Dialect, Sensor, SensorType};
use firmware_sim::summary::{LoadSummary, Summary};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::watch;

/// Simulated smart sensors: every catalogue type, over MQTT (canonical JSON and vendor dialects)
/// and serial lines (binary frames on A, text lines on B), with scenarios and wire faults.
/// Without a subcommand it runs like `firmware-sim run`. Prints a JSON summary on stdout at exit.
#[derive(Parser)]
#[command(name = "firmware-sim", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate the registry's sensors (the default).
    Run(RunArgs),
    /// N synthetic sensors at R reports/s each, for benchmarks; prints the achieved msgs/s.
    Load(LoadArgs),
    /// Modbus slaves: devices on an RTU line (a pty) and behind a Modbus TCP listener, with
    /// faults (mute, slow, CRC-corrupted answers, exceptions); prints what each did at exit.
    Modbus(ModbusArgs),
}

#[derive(Args, Clone)]
struct ModbusArgs {
    /// Where the Modbus device profiles are (`<PROFILE>.toml`, kind = "modbus").
    #[arg(long, value_name = "DIR", default_value = "config/profiles")]
    profiles: PathBuf,
    /// RTU line: create a pseudo-terminal pair and symlink LINK to the end the edge opens.
    #[arg(long, value_name = "LINK")]
    rtu_pty: Option<PathBuf>,
    /// The RTU line's baud rate (answers are paced at 11 bits a character).
    #[arg(long, default_value_t = 9_600)]
    baud: u32,
    /// A device on the RTU line: UNIT:PROFILE[:mute|:slow=DUR|:crc=FRACTION|:exception=CODE].
    #[arg(long = "rtu-device", value_name = "UNIT:PROFILE[:FAULT]")]
    rtu_devices: Vec<firmware_sim::output::modbus::device::DeviceArg>,
    /// Modbus TCP: listen on HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    tcp: Option<std::net::SocketAddr>,
    /// A device behind the TCP listener (same syntax as --rtu-device).
    #[arg(long = "tcp-device", value_name = "UNIT:PROFILE[:FAULT]")]
    tcp_devices: Vec<firmware_sim::output::modbus::device::DeviceArg>,
    /// Serve the Modbus sensors of this registry (a directory with sensors.csv, or the file):
    /// each `modbus-*` sensor at its `LINE:UNIT`, valued by the sensor physics and its incidents.
    #[arg(long, value_name = "DIR|FILE")]
    registry: Option<PathBuf>,
    /// With --registry: incidents and Modbus faults (mute, slow, crc, exception) to play.
    #[arg(long, value_name = "FILE", requires = "registry")]
    scenario: Option<PathBuf>,
    /// With --registry: write every reading of an intact answer, one JSON object per line.
    #[arg(long, value_name = "FILE", requires = "registry")]
    record: Option<PathBuf>,
    /// The registry line served on --rtu-pty.
    #[arg(long, value_name = "NAME", default_value = "rs485-1")]
    rtu_line: String,
    /// The registry line served on --tcp.
    #[arg(long, value_name = "NAME", default_value = "tcp-1")]
    tcp_line: String,
    /// Wall seconds per scenario second (0.05 plays a scenario 20× faster).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    interval_scale: f64,
    /// Sensor-clock origin (day and night): Unix ms or RFC 3339 [default: the scenario's, else now].
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this long (else at Ctrl-C / SIGTERM).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Also write the summary JSON to FILE.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// The sensor registry to simulate.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "config/registry/sensors.csv"
    )]
    sensors: PathBuf,
    /// Only sensors whose id starts with one of these prefixes (e.g. `MH-,HY-0001`).
    #[arg(long, value_name = "PREFIX,..", value_delimiter = ',')]
    only: Vec<String>,
    /// Only sensors with these profiles (canonical, acme, lumen, gridsense, serial-binary, serial-text).
    #[arg(long, value_name = "PROFILE,..", value_delimiter = ',', value_parser = parse_dialect)]
    profiles: Vec<Dialect>,
    /// Incidents and wire faults to play (TOML; see config/scenarios/).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Seed of every random choice [default: the scenario's, else 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Sensor-clock origin: Unix ms or RFC 3339 [default: the scenario's, else now].
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// Wall seconds per scenario second: 0.05 runs 20× faster; 0 as fast as the outputs allow.
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    interval_scale: f64,
    /// Wall time to run (e.g. `60s`, `2m`); with --interval-scale 0, scenario time.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Reports per sensor, then stop (duplicates injected by faults come on top).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    #[command(flatten)]
    out: OutArgs,
}

#[derive(Args, Clone)]
struct LoadArgs {
    /// Number of synthetic sensors.
    #[arg(long, value_name = "N", default_value_t = 100)]
    sensors: u32,
    /// Reports per second per sensor.
    #[arg(long, value_name = "R", default_value_t = 1.0)]
    rate: f64,
    /// Dialect the sensors speak.
    #[arg(long, default_value = "canonical", value_parser = parse_dialect)]
    dialect: Dialect,
    /// Sensor type [default: manhole_cover; acme: fire_hydrant; lumen: street_light].
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    kind: Option<SensorType>,
    /// gridsense: sensors per gateway.
    #[arg(long, default_value_t = 50)]
    per_gateway: u32,
    /// How long to run.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    duration: Duration,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Include every sensor in the summary (large for many sensors).
    #[arg(long)]
    per_sensor: bool,
    #[command(flatten)]
    out: OutArgs,
}

#[derive(Args, Clone)]
struct OutArgs {
    /// MQTT broker to publish to (QoS 1).
    #[arg(long, value_name = "HOST:PORT")]
    mqtt: Option<String>,
    #[arg(long, value_name = "USER", env = "FIRMWARE_SIM_MQTT_USER")]
    mqtt_user: Option<String>,
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "FIRMWARE_SIM_MQTT_PASSWORD",
        hide_env_values = true
    )]
    mqtt_password: Option<String>,
    /// MQTT client id [default: firmware-sim-<pid>].
    #[arg(long, value_name = "ID")]
    mqtt_client_id: Option<String>,
    /// QoS 1 messages in flight at once.
    #[arg(long, default_value_t = 256)]
    mqtt_inflight: u16,
    /// How long to wait for the broker at start.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    mqtt_connect_timeout: Duration,
    /// Write every MQTT message as `TOPIC<tab>PAYLOAD` lines to FILE (with or without --mqtt).
    #[arg(long, value_name = "FILE")]
    mqtt_dump: Option<PathBuf>,
    /// Serial line A (binary frames): write to this existing device or file.
    #[arg(long, value_name = "PATH", conflicts_with = "pty_a")]
    serial_a: Option<PathBuf>,
    /// Serial line A: create a pseudo-terminal pair and symlink LINK to the end a reader opens.
    #[arg(long, value_name = "LINK")]
    pty_a: Option<PathBuf>,
    /// Serial line B (text lines): write to this existing device or file.
    #[arg(long, value_name = "PATH", conflicts_with = "pty_b")]
    serial_b: Option<PathBuf>,
    /// Serial line B: create a pseudo-terminal pair and symlink LINK to the end a reader opens.
    #[arg(long, value_name = "LINK")]
    pty_b: Option<PathBuf>,
    /// Line A baud rate (8N1: baud/10 bytes per second).
    #[arg(long, default_value_t = 115_200)]
    baud_a: u32,
    /// Line B baud rate.
    #[arg(long, default_value_t = 9_600)]
    baud_b: u32,
    /// Transmit queue per serial line; a transmission that does not fit is dropped and counted.
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    serial_queue_bytes: usize,
    /// Also write the summary JSON to FILE.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Write every reading a receiver must end up with, one JSON object per line.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// At exit, how long to wait for broker acks and serial readers.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    drain_timeout: Duration,
}

fn parse_dialect(s: &str) -> Result<Dialect, String> {
    Dialect::from_name(s).ok_or_else(|| {
        let all: Vec<_> = Dialect::ALL.iter().map(|d| d.name()).collect();
        format!("unknown profile {s:?}; one of {}", all.join(", "))
    })
}

fn parse_type(s: &str) -> Result<SensorType, String> {
    SensorType::from_name(s).ok_or_else(|| {
        let all: Vec<_> = SensorType::ALL.iter().map(|t| t.name()).collect();
        format!("unknown sensor type {s:?}; one of {}", all.join(", "))
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Load(a)) => load(a).await,
        Some(Command::Modbus(a)) => modbus(a).await,
        Some(Command::Run(a)) => run(a).await,
        None => run(cli.run).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("firmware-sim: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Turns true on Ctrl-C or SIGTERM: the run stops, drains and prints its summary.
fn stop_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match &mut term { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("stopping: finishing what is in flight");
        let _ = tx.send(true);
    });
    rx
}

/// Which outputs a run has.
struct Wanted {
    mqtt: bool,
    line_a: bool,
    line_b: bool,
}

impl OutArgs {
    fn wanted(&self) -> Wanted {
        Wanted {
            mqtt: self.mqtt.is_some() || self.mqtt_dump.is_some(),
            line_a: self.serial_a.is_some() || self.pty_a.is_some(),
            line_b: self.serial_b.is_some() || self.pty_b.is_some(),
        }
    }

    async fn open(&self) -> Result<Outputs> {
        let mut out = Outputs {
            drain_timeout: self.drain_timeout,
            ..Outputs::default()
        };
        if let Some(broker) = &self.mqtt {
            let cfg = MqttConfig {
                broker: broker.clone(),
                user: self.mqtt_user.clone(),
                password: self.mqtt_password.clone(),
                client_id: self
                    .mqtt_client_id
                    .clone()
                    .unwrap_or_else(|| format!("firmware-sim-{}", std::process::id())),
                inflight: self.mqtt_inflight,
                connect_timeout: self.mqtt_connect_timeout,
            };
            out.mqtt = Some(Mqtt::connect(&cfg).await?);
            tracing::info!("MQTT: connected to {broker}");
        }
        if let Some(p) = &self.mqtt_dump {
            let f =
                File::create(p).with_context(|| format!("creating --mqtt-dump {}", p.display()))?;
            out.mqtt_dump = Some((p.display().to_string(), BufWriter::new(f)));
        }
        for (name, dev, pty, baud) in [
            ("A", &self.serial_a, &self.pty_a, self.baud_a),
            ("B", &self.serial_b, &self.pty_b, self.baud_b),
        ] {
            if baud < 300 {
                bail!("--baud-{}: {baud} is below 300", name.to_lowercase());
            }
            let line = match (dev, pty) {
                (Some(path), _) => {
                    SerialLine::open_device(name, path, baud, self.serial_queue_bytes)?
                }
                (None, Some(link)) => {
                    let l = SerialLine::create_pty(name, link, baud, self.serial_queue_bytes)?;
                    // The path a reader opens; stdout is kept for the summary.
                    eprintln!("serial {name}: {} (link {})", l.path, link.display());
                    l
                }
                (None, None) => continue,
            };
            if name == "A" {
                out.line_a = Some(line);
            } else {
                out.line_b = Some(line);
            }
        }
        if let Some(p) = &self.record {
            let f =
                File::create(p).with_context(|| format!("creating --record {}", p.display()))?;
            out.record = Some(BufWriter::new(f));
        }
        Ok(out)
    }

    fn write_summary(&self, summary: &Summary) -> Result<()> {
        let json = serde_json::to_string(summary)?;
        if let Some(p) = &self.summary {
            std::fs::write(p, format!("{json}\n"))
                .with_context(|| format!("writing --summary {}", p.display()))?;
        }
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{json}")?;
        stdout.flush()?;
        Ok(())
    }
}

/// Keeps the sensors some output can carry; says which were left out.
fn with_outputs(sensors: Vec<Sensor>, w: &Wanted) -> Vec<Sensor> {
    let (keep, left): (Vec<_>, Vec<_>) = sensors.into_iter().partition(|s| match s.dialect {
        Dialect::SerialBinary => w.line_a,
        Dialect::SerialText => w.line_b,
        // Served by `firmware-sim modbus --registry` (they answer polls, they never transmit).
        Dialect::Modbus => false,
        _ => w.mqtt,
    });
    if !left.is_empty() {
        let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
        for s in &left {
            *by.entry(s.dialect.name()).or_default() += 1;
        }
        let list: Vec<String> = by.iter().map(|(d, n)| format!("{n} {d}")).collect();
        tracing::info!(
            "leaving out {} sensors with no output ({}); add --mqtt/--mqtt-dump, --pty-a/--serial-a, --pty-b/--serial-b",
            left.len(),
            list.join(", ")
        );
    }
    keep
}

/// The scenario at `path` (none: the default) for the sensors `run` of `registry`, its skipped
/// entries logged, and the simulated start: `--start` if given, else the scenario's, else now.
fn scenario_and_start(
    path: &Option<PathBuf>,
    start: &Option<String>,
    registry: &[Sensor],
    run: &[Sensor],
) -> Result<(Scenario, u64)> {
    let scenario = match path {
        Some(p) => scenario::load(p, registry, run)?,
        None => Scenario::default(),
    };
    for note in &scenario.skipped {
        tracing::info!("scenario: skipped {note}");
    }
    let start_ms = match start {
        Some(s) => scenario::parse_time_ms(s)
            .with_context(|| format!("--start {s:?}: neither Unix ms nor RFC 3339"))?,
        None => scenario.start_ms.unwrap_or_else(now_ms),
    };
    Ok((scenario, start_ms))
}

fn now_ms() -> u64 {
    (protocol::time::now_ns() / 1_000_000) as u64
}

async fn run(a: RunArgs) -> Result<()> {
    if !(a.interval_scale.is_finite() && a.interval_scale >= 0.0) {
        bail!("--interval-scale: {} is not a number ≥ 0", a.interval_scale);
    }
    if a.count == Some(0) {
        bail!("--count: must be at least 1");
    }
    if a.interval_scale == 0.0 && a.count.is_none() && a.duration.is_none() {
        bail!("--interval-scale 0 runs as fast as it can: give --count or --duration");
    }
    let wanted = a.out.wanted();
    if !(wanted.mqtt || wanted.line_a || wanted.line_b) {
        bail!("no output: give --mqtt HOST:PORT (or --mqtt-dump FILE), --pty-a/--serial-a, --pty-b/--serial-b");
    }
    let registry = sensors::load_sensors(&a.sensors)?;
    let selected = sensors::select(registry.clone(), &a.only, &a.profiles);
    let run_sensors = with_outputs(selected, &wanted);
    if run_sensors.is_empty() && !(wanted.line_a || wanted.line_b) {
        bail!("no sensor left to simulate (check --only, --profiles and the outputs)");
    }
    let (scenario, start_ms) = scenario_and_start(&a.scenario, &a.start, &registry, &run_sensors)?;
    let seed = a.seed.or(scenario.seed).unwrap_or(1);
    let horizon_ms = a.duration.map(|d| {
        let wall_ms = d.as_secs_f64() * 1000.0;
        if a.interval_scale > 0.0 {
            (wall_ms / a.interval_scale) as u64
        } else {
            wall_ms as u64
        }
    });
    let cfg = RunConfig {
        seed,
        start_ms,
        scale: a.interval_scale,
        horizon_ms,
        count: a.count,
        jitter: 0.02,
        first_report_within_ms: Some(10_000),
        gateway_tick_ms: 5_000,
        utc_offset_h: 8,
    };
    tracing::info!(
        sensors = run_sensors.len(),
        incidents = scenario.incidents.len(),
        faults = scenario.faults.len(),
        seed,
        "simulating"
    );
    let out = a.out.open().await?;
    let stop = stop_signal();
    let summary = Engine::new(cfg, run_sensors, scenario, out)
        .run(stop)
        .await?;
    a.out.write_summary(&summary)
}

async fn load(a: LoadArgs) -> Result<()> {
    if !(a.rate.is_finite() && a.rate > 0.0 && a.rate <= 1000.0) {
        bail!("--rate: {} is not in (0, 1000] reports per second", a.rate);
    }
    if a.sensors == 0 {
        bail!("--sensors: at least 1");
    }
    if a.dialect == Dialect::Acme && a.rate > 1.0 {
        bail!("--rate: acme stamps whole seconds, so at most 1 report per second per sensor");
    }
    let kind = a.kind.unwrap_or(match a.dialect {
        Dialect::Acme => SensorType::FireHydrant,
        Dialect::Lumen => SensorType::StreetLight,
        _ => SensorType::ManholeCover,
    });
    if !a.dialect.supports(kind) {
        bail!("--type: {} has no {kind} sensors", a.dialect);
    }
    let wanted = a.out.wanted();
    let has_output = match a.dialect {
        Dialect::SerialBinary => wanted.line_a,
        Dialect::SerialText => wanted.line_b,
        _ => wanted.mqtt,
    };
    if !has_output {
        bail!(
            "no output for {} sensors: give --mqtt HOST:PORT (or the serial line)",
            a.dialect
        );
    }
    let interval_ms = ((1000.0 / a.rate).round() as u64).max(1);
    let per_gw = a.per_gateway.max(1);
    let sensors: Vec<Sensor> = (0..a.sensors)
        .map(|i| Sensor {
            id: format!("LD-{i:06}"),
            kind,
            dialect: a.dialect,
            address: match a.dialect {
                Dialect::Gridsense => format!("GW-L{:04}", i / per_gw),
                Dialect::SerialBinary => "A".into(),
                Dialect::SerialText => "B".into(),
                _ => String::new(),
            },
            profile: a.dialect.name().into(),
            interval_ms,
        })
        .collect();
    let cfg = RunConfig {
        seed: a.seed,
        start_ms: now_ms(),
        scale: 1.0,
        horizon_ms: Some(a.duration.as_millis() as u64),
        count: None,
        jitter: 0.0,
        first_report_within_ms: None,
        gateway_tick_ms: 5_000,
        utc_offset_h: 8,
    };
    let out = a.out.open().await?;
    let stop = stop_signal();
    let mut summary = Engine::new(cfg, sensors, Scenario::default(), out)
        .run(stop)
        .await?;
    let secs = summary.duration_ms as f64 / 1000.0;
    let sent = summary
        .mqtt
        .as_ref()
        .map_or(summary.totals.messages, |m| m.acked);
    let target = if a.dialect == Dialect::Gridsense {
        a.sensors.div_ceil(per_gw) as f64 * 1000.0 / interval_ms as f64
    } else {
        a.sensors as f64 * 1000.0 / interval_ms as f64
    };
    let achieved = if secs > 0.0 { sent as f64 / secs } else { 0.0 };
    eprintln!(
        "load: {} {} sensors × {}/s: target {:.0} msgs/s, achieved {:.0} msgs/s ({} messages in {:.2} s)",
        a.sensors, a.dialect, a.rate, target, achieved, sent, secs
    );
    summary.load = Some(LoadSummary {
        sensors: a.sensors as u64,
        dialect: a.dialect.name().into(),
        rate_per_sensor: a.rate,
        target_msgs_per_s: target,
        achieved_msgs_per_s: achieved,
    });
    if !a.per_sensor {
        summary.sensors.clear();
    }
    a.out.write_summary(&summary)
}

/// `--registry`: the Modbus sensors on the served lines, their scenario and clock.
fn modbus_registry(a: &ModbusArgs) -> Result<Option<firmware_sim::output::modbus::RegistryRun>> {
    use firmware_sim::output::modbus::{played::ScenarioClock, RegistryRun};
    let Some(reg) = &a.registry else {
        return Ok(None);
    };
    if !(a.interval_scale.is_finite() && a.interval_scale > 0.0) {
        bail!("--interval-scale: {} is not a number > 0", a.interval_scale);
    }
    let path = if reg.is_dir() {
        reg.join("sensors.csv")
    } else {
        reg.clone()
    };
    let registry = sensors::load_sensors(&path)?;
    let lines: Vec<&str> = [
        a.rtu_pty.as_ref().map(|_| a.rtu_line.as_str()),
        a.tcp.as_ref().map(|_| a.tcp_line.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let served: Vec<Sensor> = registry
        .iter()
        .filter(|s| {
            sensors::modbus_address(&s.address).is_some_and(|(l, _)| lines.contains(&l))
                && s.dialect == Dialect::Modbus
        })
        .cloned()
        .collect();
    let modbus = registry
        .iter()
        .filter(|s| s.dialect == Dialect::Modbus)
        .count();
    if served.is_empty() {
        bail!(
            "--registry {}: no Modbus sensor on line {} (their `address` is LINE:UNIT; see --rtu-line, --tcp-line)",
            path.display(),
            lines.join(" or ")
        );
    }
    if served.len() < modbus {
        tracing::info!(
            "leaving out {} Modbus sensors on other lines than {}",
            modbus - served.len(),
            lines.join(", ")
        );
    }
    let (scenario, start_ms) = scenario_and_start(&a.scenario, &a.start, &registry, &served)?;
    tracing::info!(
        sensors = served.len(),
        incidents = scenario.incidents.len(),
        faults = scenario.faults.len(),
        "modbus: playing the registry"
    );
    Ok(Some(RegistryRun {
        sensors: served,
        scenario,
        rtu_line: a.rtu_line.clone(),
        tcp_line: a.tcp_line.clone(),
        clock: std::sync::Arc::new(ScenarioClock::new(a.interval_scale, start_ms)),
        record: a.record.clone(),
    }))
}

async fn modbus(a: ModbusArgs) -> Result<()> {
    use firmware_sim::output::modbus::{run, ModbusRun};
    if a.rtu_pty.is_none() && a.tcp.is_none() {
        bail!("nothing to serve: give --rtu-pty LINK and/or --tcp HOST:PORT");
    }
    if a.registry.is_none()
        && (a.rtu_pty.is_some() == a.rtu_devices.is_empty()
            || a.tcp.is_some() == a.tcp_devices.is_empty())
    {
        bail!(
            "each server needs its devices: --rtu-pty with --rtu-device, --tcp with --tcp-device (or --registry)"
        );
    }
    if a.rtu_pty.is_none() && !a.rtu_devices.is_empty() {
        bail!("--rtu-device: no RTU line to put it on (give --rtu-pty LINK)");
    }
    if a.tcp.is_none() && !a.tcp_devices.is_empty() {
        bail!("--tcp-device: no TCP listener to put it behind (give --tcp HOST:PORT)");
    }
    let registry = modbus_registry(&a)?;
    let mut stop = stop_signal();
    if let Some(d) = a.duration {
        let (tx, rx) = watch::channel(false);
        let mut outer = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = outer.changed() => {}
            }
            let _ = tx.send(true);
        });
        stop = rx;
    }
    let cfg = ModbusRun {
        profiles_dir: a.profiles,
        rtu: a.rtu_pty.map(|l| (l, a.baud)),
        rtu_devices: a.rtu_devices,
        tcp: a.tcp,
        tcp_devices: a.tcp_devices,
        seed: a.seed,
        registry,
    };
    let summary = run(cfg, stop).await?;
    let json = serde_json::to_string_pretty(&summary)?;
    println!("{json}");
    if let Some(path) = a.summary {
        std::fs::write(&path, json + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
