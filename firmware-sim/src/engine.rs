//! The discrete-event engine: every report, gateway tick and fault happens at a scenario time, in
//! a fixed order, with draws from per-sensor and per-fault ChaCha streams. The wall clock only
//! decides *when* a transmission leaves (scenario time × `--interval-scale`), never *what* it is,
//! so a seed and a start time give the same bytes on every run.

use crate::dialect::{self, Decoded, MqttMessage, Report};
use crate::model::Model;
use crate::output::mqtt::Mqtt;
use crate::output::serial::SerialLine;
use crate::scenario::{Fault, FaultKind, Incident, IncidentKind, Scenario, Target};
use crate::sensors::{Dialect, Sensor};
use crate::summary::{
    IncidentSummary, LineSummary, MqttSummary, RecordLine, SensorSummary, Summary,
};
use crate::wire;
use anyhow::Result;
use protocol::{Quantity, Value};
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

/// Whether `target` can ever match transmissions of sensor `s` (used to set clocks up).
fn static_match(target: &Target, s: &Sensor) -> bool {
    target.sensor.as_deref().is_none_or(|id| id == s.id)
        && target.profile.is_none_or(|p| p == s.dialect)
        && target
            .line
            .as_deref()
            .is_none_or(|l| l == s.address && !s.dialect.is_mqtt())
        && target
            .gateway
            .as_deref()
            .is_none_or(|g| s.dialect == Dialect::Gridsense && g == s.address)
}

/// Whether `target` selects the messages of gridsense gateway `gw` as a whole (its clock).
fn gateway_match(target: &Target, gw: &str) -> bool {
    target.sensor.is_none()
        && target.line.is_none()
        && target.profile.is_none_or(|p| p == Dialect::Gridsense)
        && target.gateway.as_deref().is_none_or(|id| id == gw)
}

impl Engine {
    /// Whether `target` selects transmission `tx`.
    fn matches(&self, target: &Target, tx: &Tx) -> bool {
        let line = match tx.out {
            Out::LineA(_) => Some("A"),
            Out::LineB(_) => Some("B"),
            Out::Mqtt(_) => None,
        };
        let gateway = match tx.owner {
            Owner::Gateway(g) => Some(self.gateways[g].id.as_str()),
            Owner::Sensor(_) => None,
        };
        target
            .sensor
            .as_deref()
            .is_none_or(|id| tx.items.iter().any(|i| self.sensors[i.sensor].s.id == id))
            && target.profile.is_none_or(|p| p == tx.dialect)
            && target.line.as_deref().is_none_or(|l| Some(l) == line)
            && target.gateway.as_deref().is_none_or(|g| Some(g) == gateway)
    }

    /// Whether fault `f` hits transmission `tx` at `t`: a pending one-shot time, or a draw under
    /// its rate. Draws happen only for matching transmissions, in event order: reproducible.
    fn triggers(&mut self, f: usize, tx: &Tx, t: u64) -> bool {
        if !self.matches(&self.faults[f].f.target, tx) {
            return false;
        }
        let fs = &mut self.faults[f];
        if fs.f.kind != FaultKind::Noise
            && fs.next_at < fs.f.at_ms.len()
            && fs.f.at_ms[fs.next_at] <= t
        {
            fs.next_at += 1;
            return true;
        }
        let in_window = t >= fs.f.from_ms && fs.f.until_ms.is_none_or(|u| t < u);
        fs.f.rate > 0.0 && in_window && fs.rng.gen_bool(fs.f.rate)
    }

    /// The clock offset of a sender at `t`, from active `clock_skew` faults.
    fn skew_ms(&self, owner: Owner, t: u64) -> i64 {
        let mut off = 0;
        for fs in &self.faults {
            if fs.f.kind != FaultKind::ClockSkew {
                continue;
            }
            let (at, end) = fs.f.window();
            if t < at || end.is_some_and(|e| t >= e) {
                continue;
            }
            let hit = match owner {
                Owner::Sensor(i) => static_match(&fs.f.target, &self.sensors[i].s),
                Owner::Gateway(g) => gateway_match(&fs.f.target, &self.gateways[g].id),
            };
            if hit {
                off += fs.f.offset_ms;
            }
        }
        off
    }

    fn sensor_time(&self, owner: Owner, t: u64) -> u64 {
        (self.cfg.start_ms as i64 + t as i64 + self.skew_ms(owner, t)).max(0) as u64
    }

    fn local_hour(&self, ts_ms: u64) -> u32 {
        ((ts_ms as i64 / 1000 + self.cfg.utc_offset_h * 3600).rem_euclid(86_400) / 3600) as u32
    }

    /// A report is due (periodic) or the sensor's state changed (incident edge).
    async fn on_report(&mut self, i: usize, t: u64, periodic: bool) -> Result<()> {
        if self.sensors[i].done {
            return Ok(());
        }
        if periodic {
            let s = &mut self.sensors[i];
            let j = if self.cfg.jitter > 0.0 {
                s.rng.gen_range(-self.cfg.jitter..self.cfg.jitter)
            } else {
                0.0
            };
            let next = t + ((s.s.interval_ms as f64 * (1.0 + j)).round() as u64).max(1);
            self.push(next, Ev::Report(i));
        }
        let silent = self.sensors[i]
            .incidents
            .iter()
            .find(|x| x.kind == IncidentKind::SensorSilent && x.active_at(t))
            .map(|x| x.until_ms);
        match silent {
            Some(None) if self.cfg.count.is_some() => {
                // Silent for good: it will never make its count.
                self.sensors[i].done = true;
                self.done_sensors += 1;
                return Ok(());
            }
            Some(_) => return Ok(()),
            None => {}
        }
        if let Some(g) = self.sensors[i].gateway {
            let gw = &mut self.gateways[g];
            if !gw.pending.contains(&i) {
                gw.pending.push(i);
            }
            if !gw.tick_scheduled {
                gw.tick_scheduled = true;
                let at = t.div_ceil(gw.tick_ms) * gw.tick_ms;
                self.push(at, Ev::Tick(g));
            }
            return Ok(());
        }
        let owner = Owner::Sensor(i);
        let ts = self.sensor_time(owner, t);
        let ts = self.sensors[i].clock.stamp(ts);
        let hour = self.local_hour(ts);
        let (seq, values) = self.sample(i, t, hour);
        let s = &self.sensors[i];
        let r = Report {
            sensor_id: &s.s.id,
            kind: s.s.kind,
            seq,
            ts_ms: ts,
            values: &values,
        };
        let (out, decoded) = match s.s.dialect {
            Dialect::Canonical => {
                let (m, d) = dialect::canonical(&r);
                (Out::Mqtt(m), d)
            }
            Dialect::Acme => {
                let (m, d) = dialect::acme(&r);
                (Out::Mqtt(m), d)
            }
            Dialect::Lumen => {
                let (m, d) = dialect::lumen(&r);
                (Out::Mqtt(m), d)
            }
            Dialect::SerialBinary => {
                let (b, d) = dialect::serial_binary(&r);
                (Out::LineA(b), d)
            }
            Dialect::SerialText => {
                let (b, d) = dialect::serial_text(&r);
                (Out::LineB(b), d)
            }
            Dialect::Gridsense => unreachable!("gridsense sensors report through their gateway"),
        };
        let tx = Tx {
            owner,
            dialect: s.s.dialect,
            out,
            items: vec![Item {
                sensor: i,
                seq,
                decoded,
            }],
            delivered: false,
        };
        self.dispatch(tx, t).await
    }

    /// Draws one report's values and assigns its sequence number.
    fn sample(&mut self, i: usize, t: u64, hour: u32) -> (u32, Vec<(Quantity, Value)>) {
        let count = self.cfg.count;
        let s = &mut self.sensors[i];
        let values = s.model.sample(t, hour, &s.incidents, &mut s.rng);
        let seq = s.next_seq;
        s.next_seq = s.next_seq.wrapping_add(1);
        s.reports += 1;
        if count.is_some_and(|c| s.reports >= c) && !s.done {
            s.done = true;
            self.done_sensors += 1;
        }
        (seq, values)
    }

    /// A gridsense gateway forwards one message with an item per pending sensor.
    async fn on_tick(&mut self, g: usize, t: u64) -> Result<()> {
        self.gateways[g].tick_scheduled = false;
        let mut pending = std::mem::take(&mut self.gateways[g].pending);
        pending.retain(|&i| !self.sensors[i].done);
        if pending.is_empty() {
            return Ok(());
        }
        let owner = Owner::Gateway(g);
        let ts = self.sensor_time(owner, t);
        let ts = self.gateways[g].clock.stamp(ts);
        let hour = self.local_hour(ts);
        let mut drawn = Vec::with_capacity(pending.len());
        for &i in &pending {
            drawn.push((i, self.sample(i, t, hour)));
        }
        let reports: Vec<Report<'_>> = drawn
            .iter()
            .map(|(i, (seq, values))| {
                let s = &self.sensors[*i];
                Report {
                    sensor_id: &s.s.id,
                    kind: s.s.kind,
                    seq: *seq,
                    ts_ms: ts,
                    values,
                }
            })
            .collect();
        let (msg, decoded) = dialect::gridsense(&self.gateways[g].id, ts, &reports);
        let items = drawn
            .iter()
            .zip(decoded)
            .map(|((i, (seq, _)), decoded)| Item {
                sensor: *i,
                seq: *seq,
                decoded,
            })
            .collect();
        let tx = Tx {
            owner,
            dialect: Dialect::Gridsense,
            out: Out::Mqtt(msg),
            items,
            delivered: false,
        };
        self.dispatch(tx, t).await
    }

    /// Applies the holding faults (burst, out of order), then emits.
    async fn dispatch(&mut self, tx: Tx, t: u64) -> Result<()> {
        for f in 0..self.faults.len() {
            let fs = &self.faults[f].f;
            if fs.kind != FaultKind::Burst {
                continue;
            }
            let (at, end) = fs.window();
            if t >= at && end.is_some_and(|e| t < e) && self.matches(&fs.target, &tx) {
                self.faults[f].held.push(tx);
                return Ok(());
            }
        }
        if !self.held.contains_key(&tx.owner) {
            for f in 0..self.faults.len() {
                if self.faults[f].f.kind == FaultKind::OutOfOrder && self.triggers(f, &tx, t) {
                    self.held.insert(tx.owner, tx);
                    return Ok(());
                }
            }
        }
        self.emit_and_release(tx, t).await
    }

    /// Emits `tx`, then the transmission of the same sender held back for out-of-order, if any.
    async fn emit_and_release(&mut self, tx: Tx, t: u64) -> Result<()> {
        let owner = tx.owner;
        self.emit(tx, t).await?;
        if let Some(held) = self.held.remove(&owner) {
            for item in &held.items {
                self.sensors[item.sensor].stats.reordered += 1;
            }
            self.emit(held, t).await?;
        }
        Ok(())
    }

    /// Puts `tx` on the wire with the per-transmission faults: noise before it, corruption or
    /// truncation of it (line A), a duplicate after it.
    async fn emit(&mut self, mut tx: Tx, t: u64) -> Result<()> {
        let faults = self.faults.len();
        if let Out::LineA(frame) = &tx.out {
            let frame = frame.clone();
            for f in 0..faults {
                if self.faults[f].f.kind == FaultKind::Noise && self.triggers(f, &tx, t) {
                    let (lo, hi) = self.faults[f].f.bytes;
                    let bytes = wire::noise(lo, hi, &mut self.faults[f].rng);
                    self.send_noise(bytes);
                }
            }
            let mut damage = None;
            for f in 0..faults {
                let kind = self.faults[f].f.kind;
                if matches!(kind, FaultKind::Corrupt | FaultKind::Truncate)
                    && self.triggers(f, &tx, t)
                {
                    let rng = &mut self.faults[f].rng;
                    damage = Some(if kind == FaultKind::Corrupt {
                        (Damage::Corrupt, wire::corrupt(&frame, rng))
                    } else {
                        (Damage::Truncate, wire::truncate(&frame, rng))
                    });
                    break;
                }
            }
            match damage {
                Some((kind, bytes)) => self.send_damaged(&tx, kind, bytes),
                None => self.send_intact(&mut tx, false).await?,
            }
        } else {
            self.send_intact(&mut tx, false).await?;
        }
        for f in 0..faults {
            if self.faults[f].f.kind == FaultKind::Duplicate && self.triggers(f, &tx, t) {
                self.send_intact(&mut tx, true).await?;
                break;
            }
        }
        Ok(())
    }

    /// Writes `bytes` (already ending in 0x00) on line A after a 0x00; false if refused.
    fn put_line(&mut self, name: &'static str, bytes: &[u8], lead_zero: bool) -> bool {
        let line = if name == "A" {
            &self.out.line_a
        } else {
            &self.out.line_b
        };
        let Some(line) = line else { return false };
        let mut buf = Vec::with_capacity(bytes.len() + 1);
        if lead_zero {
            buf.push(0);
        }
        buf.extend_from_slice(bytes);
        let n = buf.len() as u64;
        let ok = line.try_send(buf);
        if let Some(l) = self.lines.get_mut(name) {
            if ok {
                l.bytes += n;
            } else {
                l.dropped += 1;
            }
        }
        ok
    }

    fn send_noise(&mut self, bytes: Vec<u8>) {
        if self.put_line("A", &bytes, true) {
            if let Some(l) = self.lines.get_mut("A") {
                l.noise_bursts += 1;
            }
        }
    }

    fn send_damaged(&mut self, tx: &Tx, kind: Damage, bytes: Vec<u8>) {
        if !self.put_line("A", &bytes, true) {
            self.count_dropped(tx);
            return;
        }
        let l = self
            .lines
            .get_mut("A")
            .expect("line A is open when it has sensors");
        match kind {
            Damage::Corrupt => l.frames_corrupted += 1,
            Damage::Truncate => l.frames_truncated += 1,
        }
        for item in &tx.items {
            let st = &mut self.sensors[item.sensor].stats;
            note_seq(st, item.seq);
            st.messages += 1;
            match kind {
                Damage::Corrupt => st.frames_corrupted += 1,
                Damage::Truncate => st.frames_truncated += 1,
            }
        }
    }

    fn count_dropped(&mut self, tx: &Tx) {
        for item in &tx.items {
            self.sensors[item.sensor].stats.dropped += 1;
        }
    }

    /// Sends an intact copy and counts it; the first intact copy counts the readings.
    async fn send_intact(&mut self, tx: &mut Tx, duplicate: bool) -> Result<()> {
        let sent = match &tx.out {
            Out::LineA(frame) => {
                let ok = self.put_line("A", frame, true);
                if ok {
                    self.lines.get_mut("A").expect("line A").frames_sent += 1;
                }
                ok
            }
            Out::LineB(text) => {
                let ok = self.put_line("B", text, false);
                if ok {
                    self.lines.get_mut("B").expect("line B").frames_sent += 1;
                }
                ok
            }
            Out::Mqtt(m) => {
                if let Some(mqtt) = &mut self.out.mqtt {
                    mqtt.publish(&m.topic, m.payload.clone()).await?;
                }
                if let Some((_, w)) = &mut self.out.mqtt_dump {
                    w.write_all(m.topic.as_bytes())?;
                    w.write_all(b"\t")?;
                    w.write_all(&m.payload)?;
                    w.write_all(b"\n")?;
                    if self.out.mqtt.is_none() {
                        self.dump_count += 1;
                        *self.dump_topics.entry(m.topic.clone()).or_default() += 1;
                    }
                }
                true
            }
        };
        if !sent {
            self.count_dropped(tx);
            return Ok(());
        }
        let first = !tx.delivered;
        tx.delivered = true;
        for item in &tx.items {
            let sensor = &mut self.sensors[item.sensor];
            let st = &mut sensor.stats;
            note_seq(st, item.seq);
            st.messages += 1;
            if duplicate {
                st.duplicates_sent += 1;
            }
            if first {
                st.readings += item.decoded.values.len() as u64;
                if let Some(rec) = &mut self.out.record {
                    for &(quantity, value) in &item.decoded.values {
                        let line = RecordLine {
                            sensor: sensor.s.id.clone(),
                            quantity,
                            value,
                            ts_ms: item.decoded.ts_ms,
                            seq: item.seq,
                        };
                        serde_json::to_writer(&mut *rec, &line)?;
                        rec.write_all(b"\n")?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn note_seq(st: &mut SensorSummary, seq: u32) {
    st.seq_first = Some(st.seq_first.map_or(seq, |f| f.min(seq)));
    st.seq_last = Some(st.seq_last.map_or(seq, |l| l.max(seq)));
}
