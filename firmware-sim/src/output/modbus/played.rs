//! Modbus slaves played from the sensor registry and a scenario (`firmware-sim modbus
//! --registry`): each Modbus sensor of `sensors.csv` is a slave at its `LINE:UNIT`; its values
//! come from the same physics as the report engine's ([`Model`] with the sensor's incidents, at
//! scenario time), its faults from the scenario's `mute`/`slow`/`crc`/`exception` entries, and
//! the readings of every intact answer go to the `--record` file — the ground truth a test
//! compares the hub with.
//!
//! Scenario time runs from the start of the run: wall time ÷ `--interval-scale`. Values are
//! drawn when a request arrives, so what they are depends on when the master polls; which
//! readings a correct receiver ends up with is what the record says.

use super::device::Faults;
use crate::model::Model;
use crate::scenario::{Fault, FaultKind, Incident, IncidentKind};
use crate::sensors::Sensor;
use crate::summary::RecordLine;
use protocol::{Quantity, Value};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Local time for day and night, hours east of UTC (as the report engine).
const UTC_OFFSET_H: i64 = 8;

/// Scenario time of a run.
#[derive(Debug, Clone)]
pub struct ScenarioClock {
    started: Instant,
    /// Wall seconds per scenario second (> 0).
    scale: f64,
    /// Sensor-clock origin, Unix ms (day and night).
    pub start_ms: u64,
}

impl ScenarioClock {
    pub fn new(scale: f64, start_ms: u64) -> ScenarioClock {
        ScenarioClock {
            started: Instant::now(),
            scale: if scale > 0.0 { scale } else { 1.0 },
            start_ms,
        }
    }

    /// Scenario ms now.
    pub fn now_ms(&self) -> u64 {
        (self.started.elapsed().as_secs_f64() * 1000.0 / self.scale) as u64
    }

    fn local_hour(&self, t_ms: u64) -> u32 {
        let ts_s = (self.start_ms + t_ms) as i64 / 1000;
        ((ts_s + UTC_OFFSET_H * 3600).rem_euclid(86_400) / 3600) as u32
    }
}

/// The registry side of one slave: its sensor, physics, incidents and scenario faults.
pub struct Played {
    pub sensor: Sensor,
    model: Model,
    rng: ChaCha8Rng,
    incidents: Vec<Incident>,
    faults: Vec<Fault>,
    clock: Arc<ScenarioClock>,
    /// The next answer's sequence number (one per intact answer, as one report).
    next_seq: u32,
}

impl Played {
    /// `incidents` and `faults` are the scenario's (only this sensor's are kept; `index` is its
    /// place in the run's sensor list, as incidents name it).
    pub fn new(
        sensor: Sensor,
        index: usize,
        incidents: &[Incident],
        faults: &[Fault],
        seed: u64,
        clock: Arc<ScenarioClock>,
    ) -> Played {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(sensor.id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }));
        let model = Model::new(sensor.kind, &mut rng);
        Played {
            incidents: incidents
                .iter()
                .filter(|x| x.sensor == index)
                .cloned()
                .collect(),
            faults: faults
                .iter()
                .filter(|f| f.kind.modbus_only() && f.target.sensor.as_deref() == Some(&sensor.id))
                .cloned()
                .collect(),
            sensor,
            model,
            rng,
            clock,
            next_seq: 0,
        }
    }

    /// The faults in force now: the command line's, and the scenario's whose window is open;
    /// a `sensor_silent` incident mutes the slave.
    pub fn faults_now(&self, base: &Faults) -> Faults {
        let t = self.clock.now_ms();
        let mut f = base.clone();
        let open = |x: &&Fault| t >= x.from_ms && x.until_ms.is_none_or(|u| t < u);
        for x in self.faults.iter().filter(open) {
            match x.kind {
                FaultKind::Mute => f.mute = true,
                FaultKind::Slow => f.slow = Some(Duration::from_millis(x.delay_ms)),
                FaultKind::Crc => f.crc_rate = f.crc_rate.max(x.rate),
                FaultKind::Exception => f.exception = Some(x.code),
                _ => {}
            }
        }
        if self
            .incidents
            .iter()
            .any(|x| x.kind == IncidentKind::SensorSilent && x.active_at(t))
        {
            f.mute = true;
        }
        f
    }

    /// The sensor's values now, as numbers (bools 0/1), per quantity it models.
    pub fn sample(&mut self) -> Vec<(Quantity, f64)> {
        let t = self.clock.now_ms();
        let hour = self.clock.local_hour(t);
        self.model
            .sample(t, hour, &self.incidents, &mut self.rng)
            .into_iter()
            .map(|(q, v)| {
                let n = match v {
                    Value::Float(f) => f,
                    Value::Int(i) => i as f64,
                    Value::Bool(b) => f64::from(u8::from(b)),
                };
                (q, n)
            })
            .collect()
    }

    /// Takes the sequence number of one intact answer.
    pub fn take_seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        s
    }
}

/// The `--record` file, shared by the RTU line and the TCP server.
#[derive(Clone, Default)]
pub struct Record(Option<Arc<Mutex<BufWriter<File>>>>);

impl Record {
    pub fn create(path: Option<&std::path::Path>) -> anyhow::Result<Record> {
        use anyhow::Context as _;
        Ok(Record(match path {
            Some(p) => Some(Arc::new(Mutex::new(BufWriter::new(
                File::create(p).with_context(|| format!("creating --record {}", p.display()))?,
            )))),
            None => None,
        }))
    }

    /// One line per reading of an intact answer of `sensor`.
    pub fn write(&self, sensor: &str, seq: u32, readings: &[(Quantity, Value)]) {
        let Some(w) = &self.0 else { return };
        let Ok(mut w) = w.lock() else { return };
        for &(quantity, value) in readings {
            let line = RecordLine {
                sensor: sensor.to_string(),
                quantity,
                value,
                ts_ms: None,
                seq,
            };
            if serde_json::to_writer(&mut *w, &line).is_err() || w.write_all(b"\n").is_err() {
                tracing::warn!(sensor, "--record: write failed");
                return;
            }
        }
    }

    pub fn flush(&self) -> anyhow::Result<()> {
        if let Some(w) = &self.0 {
            if let Ok(mut w) = w.lock() {
                w.flush()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Played, ScenarioClock};
    use crate::output::modbus::device::{Device, Faults};
    use crate::output::modbus::frame::ReadRequest;
    use crate::scenario;
    use crate::sensors::load_sensors;
    use edge::source::modbus::point::decode_words;
    use edge::source::modbus::profile::DeviceProfile;
    use protocol::{Quantity, Value};
    use std::path::Path;
    use std::sync::Arc;

    fn repo(p: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
    }

    /// The demo's flood gauge, played with `scenario` from scenario time 0.
    fn flood_gauge(scenario: &str) -> Device {
        let sensors = load_sensors(&repo("config/modbus-demo/sensors.csv")).unwrap();
        let sc = scenario::parse(scenario, "t.toml", &sensors, &sensors).unwrap();
        let i = sensors.iter().position(|s| s.id == "FL-M001").unwrap();
        let clock = Arc::new(ScenarioClock::new(1.0, 1_732_500_000_000));
        let played = Played::new(sensors[i].clone(), i, &sc.incidents, &sc.faults, 3, clock);
        let profile =
            DeviceProfile::load(&repo("config/profiles/modbus-flood-level.toml")).unwrap();
        Device::new(1, "modbus-flood-level", profile, Faults::default(), 3).playing(played)
    }

    #[test]
    fn an_incident_shapes_the_answer_and_the_record_holds_what_the_master_decodes() {
        let mut d = flood_gauge(
            "[[incident]]\nsensor = \"FL-M001\"\nkind = \"flood_rise\"\nat = 0\nrise = 600\n",
        );
        let req = ReadRequest {
            unit: 1,
            function: 4,
            address: 0,
            count: 5,
        };
        let reply = d.answer(req).expect("an answer");
        assert_eq!(reply.values, 3);
        // Decode the answer as the edge does (its own decoder), point by point.
        let words: Vec<u16> = reply.pdu[2..]
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        for (p, (q, v)) in d.profile.points.iter().zip(&reply.readings) {
            assert_eq!(p.quantity, *q);
            let at = usize::from(p.address);
            let raw = decode_words(
                &words[at..at + usize::from(p.ty.width())],
                p.ty,
                p.order,
                p.bit,
            )
            .unwrap();
            let decoded = if q.is_bool() {
                Value::Bool(raw != 0.0)
            } else {
                Value::Float(p.scaling.apply(raw))
            };
            assert_eq!(decoded, *v, "{q:?}");
        }
        let level = reply
            .readings
            .iter()
            .find(|(q, _)| *q == Quantity::WaterLevel)
            .map(|(_, v)| v.as_f64())
            .unwrap();
        assert!(
            (15.0..30.0).contains(&level),
            "flood_rise warning stage: {level} cm"
        );
    }

    #[test]
    fn scenario_faults_act_in_their_window() {
        let mut d = flood_gauge(
            "[[fault]]\nkind = \"mute\"\nsensor = \"FL-M001\"\nfrom = 0\nuntil = 3600\n[[fault]]\nkind = \"slow\"\nsensor = \"FL-M001\"\nfrom = 3600\ndelay = 0.2\n",
        );
        let f = d.faults_now();
        assert!(f.mute && f.slow.is_none(), "{f:?}");
        let req = ReadRequest {
            unit: 1,
            function: 4,
            address: 0,
            count: 5,
        };
        assert!(d.answer(req).is_none(), "a mute slave answers nothing");
        assert_eq!((d.stats.requests, d.stats.muted), (1, 1));
    }
}
