//! Modbus polling: requests answered per second on one RTU line at 9600 and 115200 baud (the
//! simulator's slaves on a pty paced at the baud rate, the edge's master `Client`) against the
//! line's theoretical frame budget, and CPU per poll; the same over Modbus TCP on loopback.
//! Prints figures; asserts nothing about time. `MODBUS_BENCH_SECS` sets each run's length.

use edge::source::modbus::client::Client;
use edge::source::modbus::line::{t35, Line, ModbusLineConfig};
use firmware_sim::output::modbus::device::{Device, Faults};
use firmware_sim::output::modbus::{rtu::RtuLine, tcp, Bus};
use std::path::{Path, PathBuf};
use std::time::Instant;

const PROFILE: &str = "modbus-electrical-fire";
const SLAVES: u8 = 3;

fn profiles() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles")
}

fn bus() -> Bus {
    let p = edge::source::modbus::profile::DeviceProfile::load(
        &profiles().join(format!("{PROFILE}.toml")),
    )
    .unwrap();
    Bus::new(
        (1..=SLAVES)
            .map(|u| Device::new(u, PROFILE, p.clone(), Faults::default(), 7))
            .collect(),
    )
}

fn line(transport: &str) -> Line {
    let slaves: String = (1..=SLAVES)
        .map(|u| format!("[[slave]]\nunit = {u}\nprofile = \"{PROFILE}\"\nsensor = \"B-{u}\"\n"))
        .collect();
    let text = format!("name = \"bench\"\ntimeout = \"1s\"\n{transport}\n{slaves}");
    let cfg: ModbusLineConfig = toml::from_str(&text).unwrap();
    cfg.compile(Path::new("bench.toml"), 0, &profiles())
        .unwrap()
}

/// CPU time (user + system) of this thread and of the whole process, in seconds.
fn cpu() -> (f64, f64) {
    let of = |who| {
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut r) };
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
        t(r.ru_utime) + t(r.ru_stime)
    };
    (of(libc::RUSAGE_THREAD), of(libc::RUSAGE_SELF))
}

struct Run {
    ok: u64,
    failed: u64,
    secs: f64,
    master_cpu: f64,
    process_cpu: f64,
}

/// Polls every slave's plan round-robin, back to back, for `secs` (master on this thread).
fn poll(line: &Line, secs: f64) -> Run {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = Client::open(line).await.unwrap();
        let (t0, p0) = cpu();
        let start = Instant::now();
        let (mut ok, mut failed) = (0, 0);
        while start.elapsed().as_secs_f64() < secs {
            for s in &line.slaves {
                for r in &s.plan {
                    match client.read(s.unit, r.table, r.address, r.count).await {
                        Ok(_) => ok += 1,
                        Err(_) => failed += 1,
                    }
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let (t1, p1) = cpu();
        Run {
            ok,
            failed,
            secs,
            master_cpu: t1 - t0,
            process_cpu: p1 - p0,
        }
    })
}

/// Requests per second a line can carry: each request's 8 bytes and its answer at 11 bits a
/// character, plus the t3.5 silence after each of the two frames, averaged over the plan.
fn budget(line: &Line, baud: u32) -> f64 {
    let gap = t35(baud).as_secs_f64();
    let times: Vec<f64> = line
        .slaves
        .iter()
        .flat_map(|s| &s.plan)
        .map(|r| {
            // unit, function, byte count, 2 bytes a register, CRC (registers only in this profile)
            let answer = 5 + 2 * usize::from(r.count);
            11.0 * (8 + answer) as f64 / f64::from(baud) + 2.0 * gap
        })
        .collect();
    times.len() as f64 / times.iter().sum::<f64>()
}

fn report(name: &str, run: &Run, budget: Option<f64>) {
    let rate = run.ok as f64 / run.secs;
    let polls = (run.ok + run.failed).max(1) as f64;
    print!(
        "{name}: {} answered, {} failed in {:.1} s = {rate:.1} polls/s",
        run.ok, run.failed, run.secs
    );
    if let Some(b) = budget {
        print!(" | budget {b:.1} polls/s | ratio {:.2}", rate / b);
    }
    println!(
        " | CPU/poll: master {:.1} µs, process (master + simulator) {:.1} µs",
        run.master_cpu / polls * 1e6,
        run.process_cpu / polls * 1e6
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let secs: f64 = std::env::var("MODBUS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let dir = tempfile::tempdir().unwrap();
    let plan = line("tcp = \"127.0.0.1:1\"").slaves[0].plan.clone();
    println!(
        "{SLAVES} slaves ({PROFILE}, plan {} requests: {:?} registers), {secs} s a run",
        plan.len(),
        plan.iter().map(|r| r.count).collect::<Vec<_>>()
    );
    for baud in [9600u32, 115_200] {
        let link = dir.path().join(format!("rtu-{baud}"));
        let _rtu = RtuLine::start(&link, baud, bus()).unwrap();
        let transport = format!("[rtu]\npath = \"{}\"\nbaud = {baud}\n", link.display());
        let l = line(&transport);
        let run = poll(&l, secs);
        report(&format!("RTU {baud} baud"), &run, Some(budget(&l, baud)));
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let b = bus();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            tcp::serve(l, b).await
        });
    });
    let run = poll(&line(&format!("tcp = \"{addr}\"")), secs);
    report("TCP loopback", &run, None);
}
