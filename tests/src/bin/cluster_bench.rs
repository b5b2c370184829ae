//! Hub cluster bench (issue 12), on the real processes of `wangge_tests::cluster::Cluster`
//! (PostgreSQL 15, mosquitto, VictoriaMetrics, N hubs, three edges on one site broker):
//!
//! * **ingest** with 1, 2 and 3 hubs: `firmware-sim load` publishes a fixed load on the site
//!   broker; every edge forwards all of it (the load's sensors are unregistered, so each of the
//!   three edges forwards each reading: the hubs see 3 × the load). Figures: readings stored per
//!   second summed over the hubs (`wangge_ingest_readings_stored_total`) over a window after a
//!   warm-up, each hub's CPU per stored reading (`/proc/<pid>/stat` utime+stime), and the CPU of
//!   PostgreSQL (the postmaster and its backends, exited children included) next to the hubs';
//! * **takeover**: with 3 hubs under a light load, the owner of one edge is `kill -9`ed, KILLS
//!   times (restarted, and the leases back to one edge per hub, between kills). Per kill: the
//!   arrival time, on mosquitto, of the last ack on the edge's ack topic before the kill (plus
//!   100 ms for acks already on the wire) and of the first after it (the successor's).
//!
//! Every process shares the machine's cores (`nproc` is printed): the figures are the cluster's
//! on one box, not one hub's on its own machine.
//!
//! Run: `cargo build --release --bins -p hub -p edge -p firmware-sim && cargo run -p wangge-tests
//! --bin cluster_bench -- [KILLS] [LOAD_SENSORS] [LOAD_RATE] [WINDOW_S]` (defaults 20 kills, 300
//! sensors × 5 reports/s of 4 readings, a 20 s window; KILLS 0 skips the takeover part). The bench
//! itself only orchestrates; the processes it measures are the release builds when all three
//! exist, else the debug ones, and it says which.

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wangge_testkit::bench::{arg, percentile};
use wangge_testkit::{wait_for, workspace_root, Proc};
use wangge_tests::cluster::{Cluster, EDGES, HEARTBEAT_MS, LEASE_TTL_MS};

/// Acks arriving this soon after the kill were on the wire already: the dead hub's.
const IN_FLIGHT: Duration = Duration::from_millis(100);
const WARM_UP: Duration = Duration::from_secs(5);

/// A process's CPU seconds so far: utime + stime, plus its waited-for children's when
/// `children` (PostgreSQL's backends that exited).
fn cpu_s(pid: u32, children: bool) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses: state is field 3.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14..=17, here indices 11..=14.
    let mut ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    if children {
        ticks += f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0);
    }
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// The PIDs whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// CPU seconds of PostgreSQL: the postmaster, its live backends, and the ones that exited.
fn postgres_cpu_s(c: &Cluster) -> f64 {
    let pm = c.pg.proc.pid();
    cpu_s(pm, true)
        + children_of(pm)
            .into_iter()
            .map(|p| cpu_s(p, false))
            .sum::<f64>()
}

/// CPU seconds of each hub.
fn hubs_cpu_s(c: &Cluster) -> Vec<f64> {
    c.hubs
        .iter()
        .map(|h| h.proc.as_ref().map_or(0.0, |p| cpu_s(p.pid(), false)))
        .collect()
}

/// CPU seconds of the rest: edges, mosquitto (both), VictoriaMetrics.
fn others_cpu_s(c: &Cluster) -> f64 {
    let mut pids: Vec<u32> = c
        .edges
        .iter()
        .filter_map(|e| e.proc.as_ref().map(Proc::pid))
        .collect();
    pids.push(c.site.proc.pid());
    pids.extend(c.mosquitto.as_ref().map(|m| m.proc.pid()));
    pids.push(c.vm.proc.pid());
    pids.into_iter().map(|p| cpu_s(p, false)).sum()
}

fn stored(c: &Cluster) -> f64 {
    c.hubs
        .iter()
        .filter(|h| h.proc.is_some())
        .map(|h| Cluster::hub_metric(h, "wangge_ingest_readings_stored_total"))
        .sum()
}

/// `firmware-sim load` of manhole covers (4 readings a report) on the cluster's site broker.
fn start_load(c: &Cluster, sensors: u64, rate: u64, duration: Duration, tag: &str) -> Proc {
    let mut cmd = Command::new(wangge_testkit::bin("firmware-sim"));
    cmd.current_dir(workspace_root())
        .arg("load")
        .args(["--sensors", &sensors.to_string()])
        .args(["--rate", &rate.to_string()])
        .args(["--type", "manhole_cover", "--dialect", "canonical"])
        .args(["--duration", &format!("{}s", duration.as_secs())])
        .args(["--mqtt", &format!("127.0.0.1:{}", c.site.port)]);
    Proc::spawn(
        "firmware-sim load",
        cmd,
        &c.dir.path().join(format!("{tag}.log")),
    )
    .expect("firmware-sim load starts")
}

/// The counters the ingest figures are differences of.
struct Sample {
    /// Readings stored, summed over the hubs.
    stored: f64,
    /// Each hub's CPU seconds.
    hubs: Vec<f64>,
    postgres: f64,
    /// Edges, brokers and VictoriaMetrics.
    others: f64,
}

impl Sample {
    fn of(c: &Cluster) -> Sample {
        Sample {
            stored: stored(c),
            hubs: hubs_cpu_s(c),
            postgres: postgres_cpu_s(c),
            others: others_cpu_s(c),
        }
    }
}

fn ingest(hubs: usize, sensors: u64, rate: u64, window: Duration) -> anyhow::Result<()> {
    // WANGGE_BENCH_OPEN_BROKER=1: the broker open to anonymous clients (for before/after runs
    // of the provisioned one).
    let c = if std::env::var_os("WANGGE_BENCH_OPEN_BROKER").is_some() {
        Cluster::start_open_broker(hubs)
    } else {
        Cluster::start(hubs)
    };
    c.wait_every_edge_owned(Duration::from_secs(60))?;
    let mut load = start_load(&c, sensors, rate, WARM_UP + window, "load");
    std::thread::sleep(WARM_UP);
    let (before, t0) = (Sample::of(&c), Instant::now());
    std::thread::sleep(window);
    let (after, dt) = (Sample::of(&c), t0.elapsed().as_secs_f64());
    let (s0, h0, p0, o0) = (before.stored, before.hubs, before.postgres, before.others);
    let (s1, h1, p1, o1) = (after.stored, after.hubs, after.postgres, after.others);
    let _ = wait_for("the load to finish", Duration::from_secs(30), || {
        load.try_wait()
    });
    let load_line = load
        .log()
        .lines()
        .find(|l| l.contains("achieved"))
        .unwrap_or("(no load summary)")
        .to_string();
    let n = s1 - s0;
    let hub_cpu: Vec<f64> = h1.iter().zip(&h0).map(|(a, b)| a - b).collect();
    let hub_total: f64 = hub_cpu.iter().sum();
    let pg = p1 - p0;
    println!(
        "\n{hubs} hub(s): {:.0} readings/s stored ({n:.0} in {dt:.1} s)",
        n / dt
    );
    println!("  offered: {load_line} (× 3 edges × 4 readings)");
    for (i, cpu) in hub_cpu.iter().enumerate() {
        println!(
            "  hub-{i}: {:.2} CPU s = {:.0}% of a core, {:.1} µs CPU per stored reading (cluster-wide)",
            cpu,
            100.0 * cpu / dt,
            1e6 * cpu / n.max(1.0)
        );
    }
    println!(
        "  hubs: {hub_total:.2} CPU s ({:.1} µs/reading); PostgreSQL: {pg:.2} CPU s ({:.1} µs/reading, {:.0}% of hubs+PostgreSQL); edges+brokers+VictoriaMetrics: {:.2} CPU s",
        1e6 * hub_total / n.max(1.0),
        1e6 * pg / n.max(1.0),
        100.0 * pg / (pg + hub_total).max(1e-9),
        o1 - o0
    );
    c.stop();
    Ok(())
}

/// Every ack seen on mosquitto: (edge id, arrival).
fn follow_acks(port: u16) -> Arc<Mutex<Vec<(String, Instant)>>> {
    let seen: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let (client, mut conn) = Client::new(MqttOptions::new("ack-watch", "127.0.0.1", port), 1024);
    client
        .subscribe("wangge/v1/edges/+/acks", QoS::AtMostOnce)
        .expect("subscribe to the acks");
    let out = seen.clone();
    std::thread::spawn(move || {
        let _client = client;
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let edge = p.topic.split('/').nth(3).unwrap_or("").to_string();
                    out.lock().unwrap().push((edge, Instant::now()));
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    seen
}

/// Waits until every live member holds one edge (the leases settled after a restart).
fn wait_one_edge_each(c: &Cluster) -> anyhow::Result<()> {
    c.wait_every_edge_owned(Duration::from_secs(60))?;
    wangge_tests::system::wait_every(
        "one edge per member",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let s = c.status()?;
            s["members"]
                .as_array()?
                .iter()
                .filter(|m| m["live"].as_bool() == Some(true))
                .all(|m| m["edges"].as_array().map_or(0, Vec::len) == 1)
                .then_some(())
        },
    )
}

fn takeover(kills: usize) -> anyhow::Result<()> {
    let mut c = Cluster::start_open_broker(3);
    wait_one_edge_each(&c)?;
    let acks = follow_acks(c.mqtt_port);
    let mut load = start_load(&c, 30, 2, Duration::from_secs(kills as u64 * 40), "light");
    let mut gaps = Vec::new();
    let mut since_kill = Vec::new();
    for k in 0..kills {
        let edge = EDGES[k % EDGES.len()];
        let Some(owner) = c.owner_of(edge) else {
            anyhow::bail!("kill {k}: {edge} has no owner{}", c.logs());
        };
        // Acks flowing for this edge before the kill.
        let before = acks.lock().unwrap().len();
        wangge_tests::system::wait_every(
            "acks for the edge",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || {
                acks.lock().unwrap()[before..]
                    .iter()
                    .any(|(e, _)| e == edge)
                    .then_some(())
            },
        )?;
        let killed_at = Instant::now();
        c.hubs[owner].kill9();
        let boundary = killed_at + IN_FLIGHT;
        let first_after = wangge_tests::system::wait_every(
            "the successor's first ack",
            Duration::from_secs(60),
            Duration::from_millis(10),
            || {
                acks.lock()
                    .unwrap()
                    .iter()
                    .find(|(e, at)| e == edge && *at > boundary)
                    .map(|(_, at)| *at)
            },
        )?;
        let last_before = acks
            .lock()
            .unwrap()
            .iter()
            .filter(|(e, at)| e == edge && *at <= boundary)
            .map(|(_, at)| *at)
            .max()
            .unwrap_or(killed_at);
        let gap = (first_after - last_before).as_secs_f64();
        let after_kill = (first_after - killed_at).as_secs_f64();
        println!("  kill {k:>2}: hub-{owner} owned {edge}: last ack → successor's first {gap:.3} s (kill → first {after_kill:.3} s)");
        gaps.push(gap);
        since_kill.push(after_kill);
        c.hubs[owner].start()?;
        wait_one_edge_each(&c)?;
        std::thread::sleep(Duration::from_secs(1));
    }
    load.kill9();
    gaps.sort_by(f64::total_cmp);
    since_kill.sort_by(f64::total_cmp);
    println!(
        "\ntakeover over {kills} kills (lease_ttl_ms {LEASE_TTL_MS}, heartbeat_ms {HEARTBEAT_MS}): last ack of the dead hub → first of its successor p50 {:.2} s, p99 {:.2} s (min {:.2}, max {:.2}); kill → first ack p50 {:.2} s, p99 {:.2} s",
        percentile(&gaps, 50.0),
        percentile(&gaps, 99.0),
        gaps.first().copied().unwrap_or(f64::NAN),
        gaps.last().copied().unwrap_or(f64::NAN),
        percentile(&since_kill, 50.0),
        percentile(&since_kill, 99.0),
    );
    c.stop();
    Ok(())
}

/// Points the harness at the release builds when there are all three (else the debug ones).
fn use_release_builds() -> anyhow::Result<Option<tempfile::TempDir>> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let release = target.join("release");
    if !["hub", "edge", "firmware-sim"]
        .iter()
        .all(|b| release.join(b).exists())
    {
        println!("binaries: debug (no release builds of hub, edge and firmware-sim)");
        return Ok(None);
    }
    let bins = tempfile::tempdir()?;
    std::fs::create_dir_all(bins.path().join("release"))?;
    for b in ["hub", "edge", "firmware-sim"] {
        std::os::unix::fs::symlink(release.join(b), bins.path().join("release").join(b))?;
    }
    std::env::set_var("CARGO_TARGET_DIR", bins.path());
    println!("binaries: release");
    Ok(Some(bins))
}

fn main() -> anyhow::Result<()> {
    let kills = arg(1, 20) as usize;
    let sensors = arg(2, 300);
    let rate = arg(3, 5);
    let window = Duration::from_secs(arg(4, 20));
    let _bins = use_release_builds()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "hub cluster bench: {cores} cores shared by every process (PostgreSQL, mosquitto ×2, VictoriaMetrics, hubs, 3 edges, firmware-sim)"
    );
    println!(
        "ingest load: {sensors} sensors × {rate} reports/s × 4 readings = {} readings/s on the site broker, forwarded by each of 3 edges; window {} s after {} s warm-up",
        sensors * rate * 4,
        window.as_secs(),
        WARM_UP.as_secs()
    );
    if kills > 0 {
        takeover(kills)?;
    }
    for hubs in 1..=3 {
        ingest(hubs, sensors, rate, window)?;
    }
    Ok(())
}
