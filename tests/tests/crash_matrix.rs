//! Issue 7, step 6: the seeded crash matrix. firmware-sim streams the demo scenario (MQTT sensors
//! with their own clocks: canonical, acme, gridsense) through mosquitto → edge → hub for ~60 s
//! while the test, on a schedule drawn from one seed:
//!
//! * `kill -9`s the edge, the hub, or both, once per round, at a random time, and restarts them
//!   after a random 0–8 s (rounds cycle through the three victims, so three rounds cover each);
//! * emulates a power cut on the edge's disk buffer whenever the edge dies: a torn record or
//!   random garbage appended to the newest segment of each lane (a write in flight);
//! * stops VictoriaMetrics (the hub's InfluxDB-API sink) for ~10 s and restarts it on the same
//!   port and data: `kill -9` by default, SIGTERM with `WANGGE_CRASH_VM_STOP=sigterm`.
//!   VictoriaMetrics answers 204 seconds before the data is on its disk
//!   (`-inmemoryDataFlushInterval`, 5 s), so a `kill -9` loses what it acknowledged just before;
//!   the hub's spill keeps acknowledged lines for its replay window and sends them again once the
//!   server answers (before that window existed, seed 40 lost 765 of 4 799 readings). The server
//!   runs with `-dedup.minScrapeInterval=1ms`, so a resent point is one sample: any repeat fails;
//! * has the webhook receiver answer 503, then refuse connections, for ~10 s.
//!
//! Then, after the drain: the embedded store and VictoriaMetrics hold exactly the recorded
//! readings; every demo incident raised exactly one event of its type on its component; every
//! event reached the webhook receiver (signature verified) at least once, in its latest version,
//! and every duplicate delivery carries its event's id.
//!
//! Reproduce a run: `WANGGE_CRASH_SEED=<seed> WANGGE_CRASH_ROUNDS=<n> cargo nextest run -p
//! wangge-tests --test crash_matrix` (the failure message prints the exact command).
//!
//! Not emulated: truncating the newest segment back to what was fsynced. From outside the edge
//! nothing tells where its last fsync ended (the page cache survives `kill -9`), and cutting a
//! record that was fsynced and acknowledged to the site broker would lose it for real.

mod common;

use common::checks::{
    assert_demo_events_once, assert_webhooks_delivered, demo_stream_args, list_events, vm_compare,
    VmDiff,
};
use common::webhook::{id_string, Mode, Receiver};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wangge_testkit::record::Recorded;
use wangge_testkit::SplitMix64 as Rng;
use wangge_testkit::{free_port, metric_sum, wait_for, Mosquitto, VictoriaMetrics};
use wangge_tests::system::{
    self, assert_stream_recorded, night_start_ms, simulate, wait_observing, Edge, Hub,
};

/// The seed when `WANGGE_CRASH_SEED` is not set (printed at start). Chosen because its first hub
/// kill falls while the demo's events are being raised (t = 3.4 s) and the webhook outage while
/// they change (t = 7.5–16.7 s), with the hub up to meet it.
const DEFAULT_SEED: u64 = 40;
const DEFAULT_ROUNDS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Victim {
    Edge,
    Hub,
    Both,
}

/// What a power cut leaves at the end of the newest buffer segment.
#[derive(Clone, PartialEq)]
enum PowerCut {
    /// A record header promising more payload than was written.
    TornRecord { payload_written: usize },
    /// Random bytes (a sector of garbage).
    Garbage(Vec<u8>),
}

impl std::fmt::Debug for PowerCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PowerCut::TornRecord { payload_written } => {
                write!(
                    f,
                    "TornRecord(header + {payload_written} of 40 payload bytes)"
                )
            }
            PowerCut::Garbage(g) => write!(f, "Garbage({} random bytes)", g.len()),
        }
    }
}

impl PowerCut {
    fn bytes(&self) -> Vec<u8> {
        match self {
            PowerCut::TornRecord { payload_written } => {
                let mut b = Vec::new();
                b.extend_from_slice(&40u32.to_le_bytes()); // len: a typical reading
                b.extend_from_slice(&0xDEAD_BEEFu32.to_le_bytes()); // crc
                b.extend(std::iter::repeat_n(0xA5u8, *payload_written));
                b
            }
            PowerCut::Garbage(g) => g.clone(),
        }
    }
}

#[derive(Debug)]
struct Round {
    victim: Victim,
    /// From the stream's start.
    kill_at: Duration,
    down: Duration,
    /// For `Both`: the hub dies first.
    hub_first: bool,
    power_cut: Option<PowerCut>,
}

/// Everything the seed decides.
#[derive(Debug)]
struct Schedule {
    seed: u64,
    stream: Duration,
    rounds: Vec<Round>,
    vm_down_at: Duration,
    vm_down_for: Duration,
    webhook_503_at: Duration,
    webhook_503_for: Duration,
    webhook_refuse_for: Duration,
}

impl Schedule {
    fn from_seed(seed: u64, rounds: u32) -> Schedule {
        let mut rng = Rng(seed);
        // ~60 s in all; more rounds, a longer stream (20 s per round).
        let stream = Duration::from_secs(60.max(20 * u64::from(rounds)));
        let slot = stream.as_millis() as u64 / u64::from(rounds);
        let victims = [Victim::Edge, Victim::Hub, Victim::Both];
        let first = (rng.next_u64() % 3) as usize;
        let mut power_cuts = 0;
        let rounds = (0..rounds)
            .map(|i| {
                let victim = victims[(first + i as usize) % 3];
                // Restart (≤ 8 s later) inside the round's slot, with room for the start-up.
                let kill_at =
                    Duration::from_millis(slot * u64::from(i)) + rng.ms(1_000, slot - 10_000);
                let down = rng.ms(0, 8_000);
                let hub_first = rng.next_u64().is_multiple_of(2);
                let power_cut = (victim != Victim::Hub).then(|| {
                    power_cuts += 1;
                    if power_cuts % 2 == 1 {
                        PowerCut::TornRecord {
                            payload_written: (rng.next_u64() % 39) as usize,
                        }
                    } else {
                        let n = 1 + (rng.next_u64() % 512) as usize;
                        PowerCut::Garbage((0..n).map(|_| rng.next_u64() as u8).collect())
                    }
                });
                Round {
                    victim,
                    kill_at,
                    down,
                    hub_first,
                    power_cut,
                }
            })
            .collect();
        let stream_ms = stream.as_millis() as u64;
        Schedule {
            seed,
            stream,
            rounds,
            vm_down_at: rng.ms(5_000, stream_ms - 20_000),
            vm_down_for: rng.ms(8_000, 12_000),
            // Events are raised in the stream's first ~20 s: the outage must meet them.
            webhook_503_at: rng.ms(2_000, 8_000),
            webhook_503_for: rng.ms(4_000, 6_000),
            webhook_refuse_for: rng.ms(4_000, 6_000),
        }
    }

    /// The schedule as timed steps, in order.
    fn steps(&self) -> Vec<(Duration, Step)> {
        let mut s = Vec::new();
        for (i, r) in self.rounds.iter().enumerate() {
            let back = r.kill_at + r.down;
            match r.victim {
                Victim::Edge => {
                    s.push((r.kill_at, Step::KillEdge(i)));
                    s.push((back, Step::StartEdge(i)));
                }
                Victim::Hub => {
                    s.push((r.kill_at, Step::KillHub(i)));
                    s.push((back, Step::StartHub(i)));
                }
                Victim::Both => {
                    let (a, b) = if r.hub_first {
                        (Step::KillHub(i), Step::KillEdge(i))
                    } else {
                        (Step::KillEdge(i), Step::KillHub(i))
                    };
                    s.push((r.kill_at, a));
                    s.push((r.kill_at, b));
                    s.push((back, Step::StartHub(i)));
                    s.push((back, Step::StartEdge(i)));
                }
            }
        }
        s.push((self.vm_down_at, Step::StopVm));
        s.push((self.vm_down_at + self.vm_down_for, Step::StartVm));
        s.push((self.webhook_503_at, Step::Webhook(Mode::Unavailable)));
        let refuse_at = self.webhook_503_at + self.webhook_503_for;
        s.push((refuse_at, Step::Webhook(Mode::Refusing)));
        s.push((refuse_at + self.webhook_refuse_for, Step::Webhook(Mode::Up)));
        s.sort_by_key(|(at, _)| *at); // stable: a round's steps keep their order
        s
    }

    fn reproduce(&self) -> String {
        format!(
            "WANGGE_CRASH_SEED={} WANGGE_CRASH_ROUNDS={} cargo nextest run -p wangge-tests --test crash_matrix",
            self.seed,
            self.rounds.len()
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    KillEdge(usize),
    StartEdge(usize),
    KillHub(usize),
    StartHub(usize),
    StopVm,
    StartVm,
    Webhook(Mode),
}

impl Step {
    /// The round a kill or restart belongs to.
    fn round(&self) -> Option<usize> {
        match *self {
            Step::KillEdge(i) | Step::StartEdge(i) | Step::KillHub(i) | Step::StartHub(i) => {
                Some(i)
            }
            Step::StopVm | Step::StartVm | Step::Webhook(_) => None,
        }
    }
}

/// The edge's last `recovery: …` line after `from_line` of its log: (records_dropped, bytes_dropped).
fn edge_recovery(log: &Path, from_line: usize) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .skip(from_line)
        .filter(|l| l.starts_with("recovery:"))
        .last()?;
    let field = |k: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
    };
    Some((field("records_dropped")?, field("bytes_dropped")?))
}

/// The newest segment of one lane (`urgent`, `normal`) of the edge buffer, if it has any.
fn newest_segment(edge_data: &Path, lane: &str) -> Option<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(edge_data.join("buffer").join(lane))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop()
}

/// What one power cut did, for the checks after the restart.
struct CutDone {
    round: usize,
    /// The segments cut (the newest of each lane that has one).
    segments: Vec<PathBuf>,
    /// Bytes appended, over all of them.
    appended: usize,
    log_line: usize,
    /// (records_dropped, bytes_dropped) from the restarted edge's `recovery:` line.
    recovered: Option<(u64, u64)>,
}

fn line_count(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn seeded_kill_9_of_edge_hub_and_both_with_power_cuts_and_sink_outages_lose_and_duplicate_nothing()
{
    let seed = std::env::var("WANGGE_CRASH_SEED")
        .ok()
        .map(|s| {
            s.parse::<u64>()
                .expect("WANGGE_CRASH_SEED: an unsigned integer")
        })
        .unwrap_or(DEFAULT_SEED);
    let rounds = std::env::var("WANGGE_CRASH_ROUNDS")
        .ok()
        .map(|s| {
            s.parse::<u32>()
                .expect("WANGGE_CRASH_ROUNDS: a positive integer")
        })
        .unwrap_or(DEFAULT_ROUNDS)
        .max(1);
    let schedule = Schedule::from_seed(seed, rounds);
    println!(
        "crash matrix seed {seed}, {rounds} rounds; reproduce: {}",
        schedule.reproduce()
    );
    println!("{schedule:#?}");
    let started = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&schedule)));
    println!(
        "crash matrix wall time {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!(
            "crash matrix seed {seed} failed: {msg}\nreproduce: {}",
            schedule.reproduce()
        );
    }
}

fn run(schedule: &Schedule) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The data dir outlives each VictoriaMetrics process: a restart finds what it stored.
    let vm_data = tempfile::tempdir().unwrap();
    let vm_port = free_port();
    let vm = VictoriaMetrics::start_on(vm_data.path(), vm_port);
    let influx = format!(
        "[influx]\nurl = \"http://127.0.0.1:{vm_port}\"\norg = \"wangge\"\nbucket = \"readings\"\ntoken = \"t\"\n\
         # The webhook receiver listens on 127.0.0.1, the only address these tests may use;\n\
         # the SSRF guard refuses loopback unless the operator switch says otherwise.\n\
         [events.webhooks]\ninsecure_allow_loopback = true\n"
    );
    let mut hub = Hub::prepare(d, &influx).unwrap();
    hub.start().unwrap();
    let site = Mosquitto::start();
    let mut edge = Edge::prepare(d, &hub, &site).unwrap();
    edge.start().unwrap();
    let edge_data = d.join("edge-data");
    let receiver = Receiver::start();
    receiver.subscribe_to(hub.http);

    let sim_start_ms = night_start_ms();
    // The stream: demo incidents at 10× speed, MQTT sensors with their own clocks.
    let args = demo_stream_args(sim_start_ms, schedule.stream, site.port, &[]);
    let sim_dir = d.to_path_buf();
    let t0 = Instant::now();
    let sim = std::thread::spawn(move || simulate(&sim_dir, "stream", &args));

    let vm_kill9 = match std::env::var("WANGGE_CRASH_VM_STOP").as_deref() {
        Err(_) | Ok("kill9") => true,
        Ok("sigterm") => false,
        Ok(other) => panic!("WANGGE_CRASH_VM_STOP: `kill9` (default) or `sigterm`, not `{other}`"),
    };
    let mut vm_slot: Option<VictoriaMetrics> = Some(vm);
    let mut cuts: Vec<CutDone> = Vec::new();
    let mut pending_cut: Option<CutDone> = None;
    for (at, step) in schedule.steps() {
        if let Some(wait) = at.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
        let round = step
            .round()
            .map(|i| format!(" (round {i})"))
            .unwrap_or_default();
        println!("t={:>5.1} s  {step:?}{round}", t0.elapsed().as_secs_f64());
        match step {
            Step::KillEdge(i) => {
                edge.kill9();
                if let Some(cut) = &schedule.rounds[i].power_cut {
                    // Both lanes were being written: each newest segment gets a torn tail.
                    let segs: Vec<PathBuf> = ["urgent", "normal"]
                        .iter()
                        .filter_map(|lane| newest_segment(&edge_data, lane))
                        .collect();
                    assert!(!segs.is_empty(), "round {i}: no buffer segment to cut");
                    let bytes = cut.bytes();
                    for seg in &segs {
                        std::fs::OpenOptions::new()
                            .append(true)
                            .open(seg)
                            .and_then(|mut f| f.write_all(&bytes))
                            .unwrap();
                        println!(
                            "          power cut: {} bytes appended to {}",
                            bytes.len(),
                            seg.display()
                        );
                    }
                    pending_cut = Some(CutDone {
                        round: i,
                        appended: bytes.len() * segs.len(),
                        segments: segs,
                        log_line: line_count(edge.log_path()),
                        recovered: None,
                    });
                }
            }
            Step::StartEdge(_) => {
                edge.start().unwrap();
                if let Some(mut c) = pending_cut.take() {
                    c.recovered = wait_for(
                        "the restarted edge's recovery line",
                        Duration::from_secs(10),
                        || edge_recovery(edge.log_path(), c.log_line),
                    )
                    .ok();
                    cuts.push(c);
                }
            }
            Step::KillHub(_) => hub.kill9(),
            Step::StartHub(_) => hub.start().unwrap(),
            Step::StopVm => {
                let vm = vm_slot.take().expect("VictoriaMetrics running");
                if vm_kill9 {
                    vm.kill9();
                } else {
                    vm.stop();
                }
            }
            Step::StartVm => {
                vm_slot = Some(VictoriaMetrics::start_on(vm_data.path(), vm_port));
            }
            Step::Webhook(m) => receiver.set(m),
        }
    }
    let (record, summary) = sim.join().unwrap().unwrap();
    println!(
        "stream done at t={:.1} s: {} readings recorded",
        t0.elapsed().as_secs_f64(),
        record.len()
    );
    assert_stream_recorded(&record, &summary, 500, "a real stream");

    // 1. Power cuts: the edge came back, cut the torn tail and said so.
    for c in &cuts {
        let (records, bytes) = c.recovered.unwrap_or_else(|| {
            panic!(
                "round {}: no `recovery:` line from the restarted edge\n{}",
                c.round,
                edge.log_tail()
            )
        });
        println!(
            "round {}: edge recovery after the power cut on {:?}: records_dropped={records} bytes_dropped={bytes} (appended {})",
            c.round,
            c.segments,
            c.appended
        );
        assert!(
            records >= c.segments.len() as u64 && bytes >= c.appended as u64,
            "round {}: the restarted edge reports the torn tail ({} bytes appended): records_dropped={records} bytes_dropped={bytes}",
            c.round,
            c.appended
        );
    }
    if !cuts.is_empty() {
        let m = edge.metrics().unwrap();
        assert!(
            metric_sum(&m, "edge_buffer_recovery_dropped_total", &[]) >= 1.0,
            "edge_buffer_recovery_dropped_total counts the torn tail"
        );
    }

    // 2. Readings: the embedded store holds exactly what was sent.
    assert_hub_has_exactly(&hub, &record, Duration::from_secs(180));

    // 3. VictoriaMetrics too: a sample for every reading, nothing else. The same point written
    //    twice (a batch resent after a hub kill -9, the sink's replay window after the server's)
    //    is one point in InfluxDB's model (same series and time: overwritten); VictoriaMetrics
    //    runs with `-dedup.minScrapeInterval=1ms`, which it applies to exports as to queries
    //    (checked: the same 100 points POSTed twice export as 100 at once), so a repeat fails.
    let vm_port = vm_slot.as_ref().expect("VictoriaMetrics running").port;
    let (vm_ok, last) = wait_observing(
        "VictoriaMetrics to hold every reading",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || vm_compare(vm_port, &record),
        VmDiff::is_exact,
    );
    let sink = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", hub.http))
        .and_then(|r| r.text())
        .unwrap_or_default();
    let replays = format!(
        "hub's sink: {} replays of {} acknowledged lines, {} server restarts seen by start time, {} failed POSTs (counted since the hub's last start)",
        metric_sum(&sink, "wangge_influx_replays_total", &[]),
        metric_sum(&sink, "wangge_influx_replayed_lines_total", &[]),
        metric_sum(&sink, "wangge_influx_server_restarts_detected_total", &[]),
        metric_sum(&sink, "wangge_influx_posts_failed_total", &[]),
    );
    println!(
        "VictoriaMetrics: {} samples for {} readings: {} missing, {} never sent, {} repeats of the same point; {replays}",
        last.samples,
        record.len(),
        last.missing.len(),
        last.invented,
        last.repeats
    );
    if vm_ok.is_err() {
        // Where the missing readings were in the stream (sensor clocks run 10× the wall clock).
        let wall_s = |ts_ms: i64| (ts_ms - sim_start_ms) as f64 / 10_000.0;
        let (lo, hi) = last
            .missing
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), m| {
                (lo.min(wall_s(m.2)), hi.max(wall_s(m.2)))
            });
        panic!(
            "VictoriaMetrics misses {} of {} readings (sent between t={lo:.1} s and t={hi:.1} s of the stream; \
             VictoriaMetrics stopped ({}) at t={:.1} s for {:.1} s), holds {} samples of readings never sent \
             and {} repeats of the same point; first missing: {:?}{}\n{replays}\nhub log: {}",
            last.missing.len(),
            record.len(),
            if vm_kill9 { "kill -9" } else { "SIGTERM" },
            schedule.vm_down_at.as_secs_f64(),
            schedule.vm_down_for.as_secs_f64(),
            last.invented,
            last.repeats,
            &last.missing[..last.missing.len().min(10)],
            if vm_kill9 && !last.missing.is_empty() {
                "\nVictoriaMetrics answers 204 before its data is on disk (in-memory parts are flushed \
                 every -inmemoryDataFlushInterval, 5 s): a kill -9 loses what it accepted in the seconds \
                 before, which the hub's sink must send again from its replay window"
            } else if last.repeats > 0 {
                "\nrepeats: VictoriaMetrics runs with -dedup.minScrapeInterval=1ms (testkit/src/victoria.rs), \
                 so the same point written twice must export once"
            } else {
                ""
            },
            hub.log_tail()
        );
    }

    // 4. Events: each demo incident raised exactly one event of its type on its component.
    let hub_kills: Vec<String> = schedule
        .rounds
        .iter()
        .filter(|r| r.victim != Victim::Edge)
        .map(|r| format!("{:.1} s", r.kill_at.as_secs_f64()))
        .collect();
    let known_gap = format!(
        "if the hub was killed (at {hub_kills:?}) just after storing the triggering readings, this is \
         the known gap: readings stored and acked before the rules thread evaluated them are not \
         re-evaluated after a hub kill -9 (helper rules-replay is fixing hub/src/ingest)"
    );
    let events = assert_demo_events_once(
        || list_events(&hub).ok(),
        || format!("{known_gap}\nhub log: {}", hub.log_tail()),
    );

    // 5. Webhooks: every event reached the receiver, signed, in its latest version; duplicates
    //    carry the event's id.
    let got = assert_webhooks_delivered(&receiver, &events, String::new);
    // Listed again: device.offline events may have been raised since (the sensors are silent).
    let known: BTreeSet<String> = list_events(&hub)
        .unwrap()
        .iter()
        .map(|e| id_string(&e["id"]))
        .collect();
    let strangers: Vec<_> = got
        .iter()
        .filter(|d| !known.contains(&d.header_event_id))
        .collect();
    assert!(
        strangers.is_empty(),
        "deliveries of unknown events: {strangers:#?}"
    );

    edge.kill9();
    hub.kill9();
}

/// Waits until the hub holds exactly what was recorded (or fails listing the differences). Every
/// streamed reading carries its sensor's time, so the comparison covers exactly this run's range.
fn assert_hub_has_exactly(hub: &Hub, record: &[Recorded], timeout: Duration) {
    assert!(
        record.iter().all(|r| r.ts_ms.is_some()),
        "every streamed reading carries its sensor's time"
    );
    system::assert_hub_has_exactly(hub, record, 0, timeout);
}

#[test]
fn every_seed_gives_each_victim_a_round_and_every_edge_kill_a_power_cut() {
    for seed in 0..1000 {
        let s = Schedule::from_seed(seed, DEFAULT_ROUNDS);
        for v in [Victim::Edge, Victim::Hub, Victim::Both] {
            assert!(s.rounds.iter().any(|r| r.victim == v), "seed {seed}: {v:?}");
        }
        for r in &s.rounds {
            assert_eq!(
                r.power_cut.is_some(),
                r.victim != Victim::Hub,
                "seed {seed}"
            );
            assert!(r.down <= Duration::from_secs(8), "seed {seed}");
        }
        assert!(s.vm_down_at + s.vm_down_for < s.stream, "seed {seed}");
    }
}
