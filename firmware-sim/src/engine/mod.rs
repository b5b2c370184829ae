//! The discrete-event engine: every report, gateway tick and fault happens at a scenario time, in
//! a fixed order, with draws from per-sensor and per-fault ChaCha streams. The wall clock only
//! decides *when* a transmission leaves (scenario time × `--interval-scale`), never *what* it is,
//! so a seed and a start time give the same bytes on every run.//!
//! By phase: here the engine's state, its set-up and its event loop; `report.rs` makes the
//! transmissions (sensor reports, gateway ticks); `fault.rs` decides which faults hit one and
//! holds or reorders it; `send.rs` puts it on the wire (intact or damaged) and counts it.

mod fault;
mod report;
mod send;

use fault::{gateway_match, static_match};

use crate::dialect::{Decoded, MqttMessage};
use crate::model::Model;
use crate::output::mqtt::Mqtt;
use crate::output::serial::SerialLine;
use crate::scenario::{Fault, FaultKind, Incident, Scenario};
use crate::sensors::{Dialect, Sensor};
use crate::summary::{IncidentSummary, LineSummary, MqttSummary, SensorSummary, Summary};
use crate::wire;
use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How a run is timed.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub seed: u64,
    /// Sensor-clock origin, Unix ms. A timestamp is `start_ms + scenario ms (+ clock skew)`.
    pub start_ms: u64,
    /// Wall seconds per scenario second (0: as fast as the outputs allow).
    pub scale: f64,
    /// Stop before this scenario time.
    pub horizon_ms: Option<u64>,
    /// Reports per sensor; the run ends when every sensor has made them.
    pub count: Option<u64>,
    /// Reporting intervals vary by ± this fraction.
    pub jitter: f64,
    /// First report of each sensor: drawn in [0, min(interval, this)); `None` spreads the
    /// sensors' first reports evenly over one interval (load mode).
    pub first_report_within_ms: Option<u64>,
    /// A gridsense gateway forwards what its sensors reported every this many ms (at most).
    pub gateway_tick_ms: u64,
    /// Local time offset for day and night (street lights), hours east of UTC.
    pub utc_offset_h: i64,
}

/// Where transmissions go.
#[derive(Default)]
pub struct Outputs {
    pub mqtt: Option<Mqtt>,
    pub mqtt_dump: Option<(String, BufWriter<File>)>,
    pub line_a: Option<SerialLine>,
    pub line_b: Option<SerialLine>,
    pub record: Option<BufWriter<File>>,
    /// How long to wait at exit for acks and serial readers.
    pub drain_timeout: Duration,
}

/// Who stamps a transmission's time: the sensor, or for gridsense its gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Owner {
    Sensor(usize),
    Gateway(usize),
}

/// A clock that never stamps the same instant twice, in its dialect's resolution.
#[derive(Debug, Default)]
struct Clock {
    unit_ms: u64,
    last: Option<u64>,
    /// All instants used, kept only where a clock skew can send the clock backwards.
    used: Option<HashSet<u64>>,
}

impl Clock {
    fn new(unit_ms: u64, may_jump_back: bool) -> Clock {
        Clock {
            unit_ms: unit_ms.max(1),
            last: None,
            used: may_jump_back.then(HashSet::new),
        }
    }

    /// The first free instant at or after `ts_ms`, in whole units.
    fn stamp(&mut self, ts_ms: u64) -> u64 {
        let mut u = ts_ms / self.unit_ms;
        match &mut self.used {
            Some(set) => {
                while !set.insert(u) {
                    u += 1;
                }
            }
            None => {
                if let Some(l) = self.last {
                    u = u.max(l + 1);
                }
                self.last = Some(u);
            }
        }
        u * self.unit_ms
    }
}

struct SimSensor {
    s: Sensor,
    model: Model,
    rng: ChaCha8Rng,
    incidents: Vec<Incident>,
    next_seq: u32,
    reports: u64,
    done: bool,
    clock: Clock,
    gateway: Option<usize>,
    stats: SensorSummary,
}

struct Gateway {
    id: String,
    members: Vec<usize>,
    pending: Vec<usize>,
    tick_scheduled: bool,
    tick_ms: u64,
    clock: Clock,
}

struct FaultState {
    f: Fault,
    rng: ChaCha8Rng,
    /// Index of the next unused one-shot time.
    next_at: usize,
    /// `burst`: transmissions held until the window ends.
    held: Vec<Tx>,
}

#[derive(Debug, Clone)]
enum Out {
    Mqtt(MqttMessage),
    LineA(Vec<u8>),
    LineB(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Item {
    sensor: usize,
    seq: u32,
    decoded: Decoded,
}

/// One message or frame, with the reports it carries.
#[derive(Debug, Clone)]
struct Tx {
    owner: Owner,
    dialect: Dialect,
    out: Out,
    items: Vec<Item>,
    /// Whether an intact copy has reached the wire (its readings are counted once).
    delivered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// A sensor's periodic report (reschedules itself).
    Report(usize),
    /// An extra report because an incident changed the sensor's state.
    Change(usize),
    /// A gridsense gateway forwards its pending reports.
    Tick(usize),
    /// A one-shot noise burst of a fault.
    Noise(usize),
    /// A burst fault's window ends: send what it held.
    BurstEnd(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    Corrupt,
    Truncate,
}

/// The simulation of one run.
pub struct Engine {
    cfg: RunConfig,
    sensors: Vec<SimSensor>,
    gateways: Vec<Gateway>,
    faults: Vec<FaultState>,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    order: u64,
    /// Out-of-order: the transmission held back per sender.
    held: BTreeMap<Owner, Tx>,
    done_sensors: usize,
    lines: BTreeMap<&'static str, LineSummary>,
    out: Outputs,
    scenario_name: Option<String>,
    sim_ms: u64,
    /// MQTT messages written to `--mqtt-dump` (when no broker is given), per topic.
    dump_count: u64,
    dump_topics: BTreeMap<String, u64>,
}

/// FNV-1a, to give each sensor and fault its own RNG stream.
fn stream_of(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn rng_for(seed: u64, name: &str) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream_of(name));
    r
}

impl Engine {
    /// Sets up `sensors` (in this order) with the scenario's incidents and faults.
    pub fn new(cfg: RunConfig, sensors: Vec<Sensor>, scenario: Scenario, out: Outputs) -> Engine {
        let mut gateways: Vec<Gateway> = Vec::new();
        let faults: Vec<FaultState> = scenario
            .faults
            .iter()
            .enumerate()
            .map(|(i, f)| FaultState {
                f: f.clone(),
                rng: rng_for(cfg.seed, &format!("fault#{i}")),
                next_at: 0,
                held: Vec::new(),
            })
            .collect();
        let skews: Vec<&Fault> = scenario
            .faults
            .iter()
            .filter(|f| f.kind == FaultKind::ClockSkew)
            .collect();
        let mut sims = Vec::with_capacity(sensors.len());
        for (i, s) in sensors.into_iter().enumerate() {
            let mut rng = rng_for(cfg.seed, &s.id);
            let model = Model::new(s.kind, &mut rng);
            let gateway = (s.dialect == Dialect::Gridsense).then(|| {
                let g = match gateways.iter().position(|g| g.id == s.address) {
                    Some(g) => g,
                    None => {
                        gateways.push(Gateway {
                            id: s.address.clone(),
                            members: Vec::new(),
                            pending: Vec::new(),
                            tick_scheduled: false,
                            tick_ms: cfg.gateway_tick_ms,
                            clock: Clock::default(),
                        });
                        gateways.len() - 1
                    }
                };
                gateways[g].members.push(i);
                gateways[g].tick_ms = gateways[g].tick_ms.min(s.interval_ms).max(1);
                g
            });
            let may_jump = skews.iter().any(|f| static_match(&f.target, &s));
            let incidents: Vec<Incident> = scenario
                .incidents
                .iter()
                .filter(|x| x.sensor == i)
                .cloned()
                .collect();
            let stats = SensorSummary {
                profile: s.dialect.name().into(),
                transport: s.dialect.transport().into(),
                address: s.address.clone(),
                incidents: incidents
                    .iter()
                    .map(|x| IncidentSummary {
                        kind: x.kind.name().into(),
                        at_ms: x.at_ms,
                        until_ms: x.until_ms,
                    })
                    .collect(),
                ..SensorSummary::default()
            };
            sims.push(SimSensor {
                clock: Clock::new(s.dialect.ts_unit_ms().unwrap_or(1), may_jump),
                s,
                model,
                rng,
                incidents,
                next_seq: 0,
                reports: 0,
                done: false,
                gateway,
                stats,
            });
        }
        for g in &mut gateways {
            let may_jump = skews.iter().any(|f| gateway_match(&f.target, &g.id));
            g.clock = Clock::new(1, may_jump);
        }
        let mut lines = BTreeMap::new();
        for l in [&out.line_a, &out.line_b].into_iter().flatten() {
            lines.insert(
                l.name,
                LineSummary {
                    path: l.path.clone(),
                    link: l.link.as_ref().map(|p| p.display().to_string()),
                    baud: l.baud,
                    ..LineSummary::default()
                },
            );
        }
        let mut e = Engine {
            cfg,
            sensors: sims,
            gateways,
            faults,
            queue: BinaryHeap::new(),
            order: 0,
            held: BTreeMap::new(),
            done_sensors: 0,
            lines,
            out,
            scenario_name: scenario.name.clone(),
            sim_ms: 0,
            dump_count: 0,
            dump_topics: BTreeMap::new(),
        };
        e.schedule_start();
        e
    }

    fn push(&mut self, t: u64, ev: Ev) {
        self.order += 1;
        self.queue.push(Reverse((t, self.order, ev)));
    }

    fn schedule_start(&mut self) {
        let n = self.sensors.len().max(1) as u64;
        for i in 0..self.sensors.len() {
            let interval = self.sensors[i].s.interval_ms;
            let first = match self.cfg.first_report_within_ms {
                Some(w) => {
                    let w = w.min(interval).max(1);
                    self.sensors[i].rng.gen_range(0..w)
                }
                None => interval * i as u64 / n,
            };
            self.push(first, Ev::Report(i));
            let edges: Vec<u64> = self.sensors[i]
                .incidents
                .iter()
                .flat_map(|x| x.edges_ms())
                .collect();
            for t in edges {
                self.push(t, Ev::Change(i));
            }
        }
        for f in 0..self.faults.len() {
            let fs = &self.faults[f].f;
            match fs.kind {
                FaultKind::Noise => {
                    for t in fs.at_ms.clone() {
                        self.push(t, Ev::Noise(f));
                    }
                }
                FaultKind::Burst => {
                    let (_, end) = fs.window();
                    if let Some(end) = end {
                        self.push(end, Ev::BurstEnd(f));
                    }
                }
                _ => {}
            }
        }
    }

    /// Runs until the horizon, the count, or `stop` turns true; then drains the outputs and
    /// returns the summary.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<Summary> {
        let wall_start = Instant::now();
        let t0 = tokio::time::Instant::now();
        let n = self.sensors.len();
        while let Some(Reverse((t, _, ev))) = self.queue.pop() {
            if self.cfg.horizon_ms.is_some_and(|h| t >= h) {
                break;
            }
            if self.cfg.count.is_some() && self.done_sensors == n {
                break;
            }
            if self.cfg.scale > 0.0 {
                let target = t0 + Duration::from_secs_f64(t as f64 / 1000.0 * self.cfg.scale);
                if target > tokio::time::Instant::now() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(target) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
            if *stop.borrow() {
                break;
            }
            self.sim_ms = t;
            match ev {
                Ev::Report(i) => self.on_report(i, t, true).await?,
                Ev::Change(i) => self.on_report(i, t, false).await?,
                Ev::Tick(g) => self.on_tick(g, t).await?,
                Ev::Noise(f) => {
                    let (lo, hi) = self.faults[f].f.bytes;
                    let bytes = wire::noise(lo, hi, &mut self.faults[f].rng);
                    self.send_noise(bytes);
                }
                Ev::BurstEnd(f) => {
                    let held = std::mem::take(&mut self.faults[f].held);
                    for tx in held {
                        self.emit_and_release(tx, t).await?;
                    }
                }
            }
        }
        if let Some(h) = self.cfg.horizon_ms {
            if self.queue.peek().is_some_and(|Reverse((t, _, _))| *t >= h) {
                self.sim_ms = h;
            }
        }
        // Whatever a fault still holds goes out now, so the summary covers it.
        let t = self.sim_ms;
        for f in 0..self.faults.len() {
            for tx in std::mem::take(&mut self.faults[f].held) {
                self.emit_and_release(tx, t).await?;
            }
        }
        for (_, tx) in std::mem::take(&mut self.held) {
            self.emit(tx, t).await?;
        }
        self.finish(wall_start).await
    }

    async fn finish(mut self, wall_start: Instant) -> Result<Summary> {
        let timeout = self.out.drain_timeout;
        if let Some(mut rec) = self.out.record.take() {
            rec.flush()?;
        }
        let mut summary = Summary {
            seed: self.cfg.seed,
            sim_ms: self.sim_ms,
            start_ms: self.cfg.start_ms,
            interval_scale: self.cfg.scale,
            scenario: self.scenario_name.clone(),
            ..Summary::default()
        };
        let dump_name = match self.out.mqtt_dump.take() {
            Some((name, mut w)) => {
                w.flush()?;
                Some(name)
            }
            None => None,
        };
        if let Some(m) = self.out.mqtt.take() {
            let broker = m.broker.clone();
            let published = m.published;
            let topics = m.topics.clone();
            let (acked, _) = m.finish(timeout).await;
            summary.mqtt = Some(MqttSummary {
                broker,
                published,
                acked,
                topics,
            });
        } else if let Some(name) = dump_name {
            summary.mqtt = Some(MqttSummary {
                broker: format!("dump:{name}"),
                published: self.dump_count,
                acked: self.dump_count,
                topics: std::mem::take(&mut self.dump_topics),
            });
        }
        for line in [self.out.line_a.take(), self.out.line_b.take()]
            .into_iter()
            .flatten()
        {
            let name = line.name;
            let end = tokio::task::spawn_blocking(move || line.finish(timeout)).await?;
            if let Some(l) = self.lines.get_mut(name) {
                l.unsent_bytes = end.unsent_bytes;
            }
        }
        summary.serial = self
            .lines
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        summary.sensors = self
            .sensors
            .iter()
            .map(|s| (s.s.id.clone(), s.stats.clone()))
            .collect();
        summary.total();
        summary.duration_ms = wall_start.elapsed().as_millis() as u64;
        Ok(summary)
    }
}
