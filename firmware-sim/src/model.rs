//! Plausible values per sensor type: a base level, slow drift, noise, and the incidents' overrides.
//!
//! Every draw comes from the sensor's own ChaCha stream, so a sensor's values depend only on the
//! seed, its id and the scenario, never on the wall clock or on which other sensors run.

use crate::scenario::{Incident, IncidentKind};
use crate::sensors::SensorType;
use protocol::{Quantity, Value};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// One slowly drifting, noisy analogue signal.
#[derive(Debug, Clone)]
struct Signal {
    base: f64,
    noise: f64,
    /// Standard deviation of one drift step; the drift is pulled back toward 0 (mean-reverting).
    drift_step: f64,
    drift: f64,
    min: f64,
    max: f64,
    decimals: i32,
}

impl Signal {
    fn new(
        base: f64,
        noise: f64,
        drift_step: f64,
        (min, max): (f64, f64),
        decimals: i32,
    ) -> Signal {
        Signal {
            base,
            noise,
            drift_step,
            drift: 0.0,
            min,
            max,
            decimals,
        }
    }

    fn sample(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        let step: f64 = rng.sample(StandardNormal);
        let noise: f64 = rng.sample(StandardNormal);
        self.drift = self.drift * 0.95 + step * self.drift_step;
        round(
            (self.base + self.drift + noise * self.noise).clamp(self.min, self.max),
            self.decimals,
        )
    }
}

/// Rounds to `decimals` places, so every dialect can carry the value exactly in its own unit.
pub fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// A value drawn uniformly from `range`, rounded to `decimals`.
fn uniform(rng: &mut ChaCha8Rng, range: std::ops::Range<f64>, decimals: i32) -> Value {
    Value::Float(round(rng.gen_range(range), decimals))
}

/// The incident's `level` if the scenario sets one, else drawn from `range`; rounded to
/// `decimals`.
fn level_or_uniform(
    inc: &Incident,
    rng: &mut ChaCha8Rng,
    range: std::ops::Range<f64>,
    decimals: i32,
) -> Value {
    Value::Float(round(
        inc.level.unwrap_or_else(|| rng.gen_range(range)),
        decimals,
    ))
}

/// The state of one simulated sensor's physics.
#[derive(Debug, Clone)]
pub struct Model {
    kind: SensorType,
    /// One signal per numeric quantity of the type, in [`SensorType::quantities`] order.
    signals: Vec<(Quantity, Signal)>,
    /// Battery charge, %; falls a little with every report.
    battery: f64,
    /// Where a `battery_drain` started, once it has.
    drain_from: Option<f64>,
    /// Waste bin fill, %; grows and is emptied.
    fill: f64,
}

/// One analog signal of a sensor type: (type, quantity, range of its base level, noise, drift
/// step, (min, max), decimals).
type SignalRow = (SensorType, Quantity, (f64, f64), f64, f64, (f64, f64), i32);

/// The analog signals of each sensor type. Base levels are drawn in this order, so a seed gives
/// the same sensors.
#[rustfmt::skip]
const SIGNALS: &[SignalRow] = {
    use Quantity as Q;
    use SensorType as T;
    &[
        (T::ManholeCover, Q::Tilt, (0.2, 2.0), 0.15, 0.05, (0.0, 90.0), 1),
        (T::ManholeCover, Q::WaterLevel, (0.0, 5.0), 0.3, 0.2, (0.0, 200.0), 1),
        (T::StreetLight, Q::Voltage, (222.0, 232.0), 1.5, 0.5, (180.0, 260.0), 1),
        (T::StreetLight, Q::Current, (0.30, 0.45), 0.01, 0.003, (0.05, 1.0), 3),
        (T::FireHydrant, Q::Pressure, (0.25, 0.45), 0.005, 0.002, (0.14, 1.6), 4),
        (T::FireHydrant, Q::Tilt, (0.1, 1.0), 0.1, 0.03, (0.0, 90.0), 1),
        (T::FloodGauge, Q::WaterLevel, (0.0, 3.0), 0.3, 0.2, (0.0, 14.0), 1),
        (T::SmokeDetector, Q::Smoke, (0.0, 0.3), 0.05, 0.01, (0.0, 2.0), 2),
        (T::GasDetector, Q::Gas, (0.0, 3.0), 0.3, 0.1, (0.0, 10.0), 1),
        (T::ElectricalFire, Q::ResidualCurrent, (15.0, 80.0), 2.0, 1.0, (0.0, 250.0), 1),
        (T::ElectricalFire, Q::CableTemp, (25.0, 45.0), 0.3, 0.2, (-20.0, 90.0), 1),
        (T::Environment, Q::Pm25, (20.0, 80.0), 5.0, 2.0, (0.0, 140.0), 1),
        (T::Environment, Q::Noise, (45.0, 65.0), 2.0, 0.5, (20.0, 120.0), 1),
        (T::Environment, Q::Temperature, (5.0, 25.0), 0.2, 0.1, (-40.0, 60.0), 1),
        (T::Environment, Q::Humidity, (30.0, 80.0), 1.0, 0.5, (0.0, 100.0), 1),
    ]
};

impl Model {
    /// A fresh sensor of type `kind`, its base levels drawn from `rng`.
    pub fn new(kind: SensorType, rng: &mut ChaCha8Rng) -> Model {
        let signals = SIGNALS
            .iter()
            .filter(|row| row.0 == kind)
            .map(|&(_, q, (lo, hi), noise, drift, bounds, decimals)| {
                (
                    q,
                    Signal::new(rng.gen_range(lo..hi), noise, drift, bounds, decimals),
                )
            })
            .collect();
        Model {
            kind,
            signals,
            battery: rng.gen_range(60.0..100.0),
            drain_from: None,
            fill: rng.gen_range(10.0..60.0),
        }
    }

    /// The values of one report at scenario time `t_ms`. `local_hour` is the hour of day on the
    /// sensor's clock (street lights are on from 18:00 to 06:00); `incidents` are this sensor's.
    pub fn sample(
        &mut self,
        t_ms: u64,
        local_hour: u32,
        incidents: &[Incident],
        rng: &mut ChaCha8Rng,
    ) -> Vec<(Quantity, Value)> {
        use Quantity as Q;
        let mut floats: Vec<(Quantity, f64)> = self
            .signals
            .iter_mut()
            .map(|(q, s)| (*q, s.sample(rng)))
            .collect();
        let get =
            |floats: &[(Quantity, f64)], q| floats.iter().find(|(k, _)| *k == q).map(|(_, v)| *v);
        self.battery = (self.battery - 0.02).max(0.0);
        let mut out: Vec<(Quantity, Value)> = Vec::with_capacity(4);
        let night = !(6..18).contains(&local_hour);
        match self.kind {
            SensorType::StreetLight => {
                let v = get(&floats, Q::Voltage).unwrap_or(230.0);
                if !night {
                    // Off by day: only the controller's standby draw.
                    let standby = round(rng.gen_range(0.010..0.020), 3);
                    floats.retain(|(q, _)| *q != Q::Current);
                    floats.push((Q::Current, standby));
                }
                let i = get(&floats, Q::Current).unwrap_or(0.0);
                out.push((Q::Voltage, Value::Float(v)));
                out.push((Q::Current, Value::Float(i)));
                out.push((Q::Power, Value::Float(round(v * i * 0.95, 1))));
                out.push((Q::LampOn, Value::Bool(night)));
            }
            SensorType::WasteBin => {
                self.fill += rng.gen_range(0.0..0.5);
                if self.fill > 85.0 {
                    self.fill = rng.gen_range(3.0..8.0);
                }
                out.push((Q::FillLevel, Value::Float(round(self.fill, 1))));
            }
            _ => {
                for &q in self.kind.quantities() {
                    let v = if let Some(f) = get(&floats, q) {
                        Value::Float(f)
                    } else if q == Q::Battery {
                        Value::Int(self.battery.round() as i64)
                    } else if q == Q::FaultCode {
                        Value::Int(0)
                    } else if q == Q::DoorOpen && self.kind == SensorType::Elevator {
                        // Elevator doors open at floors now and then.
                        Value::Bool(rng.gen_bool(0.2))
                    } else {
                        Value::Bool(false)
                    };
                    out.push((q, v));
                }
            }
        }
        for inc in incidents.iter().filter(|i| i.active_at(t_ms)) {
            self.apply(inc, t_ms, &mut out, rng);
        }
        out
    }

    fn apply(
        &mut self,
        inc: &Incident,
        t_ms: u64,
        out: &mut [(Quantity, Value)],
        rng: &mut ChaCha8Rng,
    ) {
        use Quantity as Q;
        let voltage = out
            .iter()
            .find(|(q, _)| *q == Q::Voltage)
            .map_or(230.0, |(_, v)| v.as_f64());
        let mut set = |q: Quantity, v: Value| {
            if let Some(slot) = out.iter_mut().find(|(k, _)| *k == q) {
                slot.1 = v;
            }
        };
        match inc.kind {
            IncidentKind::ManholeLifted => {
                set(Q::Tilt, uniform(rng, 20.0..35.0, 1));
                set(Q::Opened, Value::Bool(true));
            }
            IncidentKind::HydrantLowPressure => {
                set(Q::Pressure, level_or_uniform(inc, rng, 0.06..0.12, 4));
            }
            IncidentKind::StreetLightFailure => {
                let i = round(rng.gen_range(0.0..0.02), 3);
                set(Q::Current, Value::Float(i));
                set(Q::Power, Value::Float(round(voltage * i * 0.95, 1)));
                set(Q::LampOn, Value::Bool(true));
            }
            IncidentKind::FloodRise => {
                let level = if t_ms < inc.at_ms + inc.ramp_ms {
                    rng.gen_range(16.0..22.0)
                } else {
                    rng.gen_range(31.0..40.0)
                };
                set(Q::WaterLevel, Value::Float(round(level, 1)));
            }
            IncidentKind::SmokeAlarm => {
                set(Q::Smoke, uniform(rng, 8.0..15.0, 2));
                set(Q::Alarm, Value::Bool(true));
            }
            IncidentKind::GasLeak => set(Q::Gas, level_or_uniform(inc, rng, 22.0..45.0, 1)),
            IncidentKind::DoorForced => set(Q::DoorOpen, Value::Bool(true)),
            IncidentKind::Intrusion => set(Q::Motion, Value::Bool(true)),
            IncidentKind::ElevatorEntrapment => {
                set(Q::Trapped, Value::Bool(true));
                set(Q::DoorOpen, Value::Bool(false));
                if let Some(c) = inc.fault_code {
                    set(Q::FaultCode, Value::Int(c));
                }
            }
            IncidentKind::BatteryDrain => {
                let from = *self.drain_from.get_or_insert(self.battery);
                let to = inc.level.unwrap_or(5.0);
                let progress = if inc.ramp_ms == 0 {
                    1.0
                } else {
                    ((t_ms - inc.at_ms) as f64 / inc.ramp_ms as f64).min(1.0)
                };
                self.battery = from + (to - from) * progress;
                set(Q::Battery, Value::Int(self.battery.round() as i64));
            }
            IncidentKind::Set => {
                for (q, v) in &inc.values {
                    set(*q, *v);
                }
            }
            IncidentKind::SensorSilent => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn incident(kind: IncidentKind) -> Incident {
        Incident {
            sensor: 0,
            kind,
            at_ms: 1000,
            until_ms: None,
            ramp_ms: 10_000,
            level: None,
            fault_code: None,
            values: vec![],
        }
    }

    /// A new model of `t`, sampled at noon 1 s into one incident of `kind`.
    fn during(t: SensorType, kind: IncidentKind, rng: &mut ChaCha8Rng) -> Vec<(Quantity, Value)> {
        let mut m = Model::new(t, rng);
        m.sample(2000, 12, &[incident(kind)], rng)
    }

    #[test]
    fn every_type_reports_its_quantities_in_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for t in SensorType::ALL {
            let mut m = Model::new(t, &mut rng);
            let v = m.sample(0, 12, &[], &mut rng);
            let qs: Vec<_> = v.iter().map(|(q, _)| *q).collect();
            assert_eq!(qs, t.quantities(), "{t}");
        }
    }

    #[test]
    fn incidents_cross_the_catalogue_thresholds() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let val = |v: &[(Quantity, Value)], q| v.iter().find(|(k, _)| *k == q).unwrap().1;
        let v = during(
            SensorType::ManholeCover,
            IncidentKind::ManholeLifted,
            &mut rng,
        );
        assert!(val(&v, Quantity::Tilt).as_f64() > 15.0);
        assert!(val(&v, Quantity::Opened).as_bool());
        let v = during(
            SensorType::FireHydrant,
            IncidentKind::HydrantLowPressure,
            &mut rng,
        );
        assert!(val(&v, Quantity::Pressure).as_f64() < 0.14);
        let mut fg = Model::new(SensorType::FloodGauge, &mut rng);
        let flood = [incident(IncidentKind::FloodRise)];
        let early = val(&fg.sample(2000, 12, &flood, &mut rng), Quantity::WaterLevel).as_f64();
        let late = val(
            &fg.sample(12_000, 12, &flood, &mut rng),
            Quantity::WaterLevel,
        )
        .as_f64();
        assert!(
            (15.0..30.0).contains(&early) && late >= 30.0,
            "{early} {late}"
        );
        let v = during(
            SensorType::StreetLight,
            IncidentKind::StreetLightFailure,
            &mut rng,
        );
        assert!(val(&v, Quantity::LampOn).as_bool() && val(&v, Quantity::Current).as_f64() < 0.05);
        let v = during(SensorType::GasDetector, IncidentKind::GasLeak, &mut rng);
        assert!(val(&v, Quantity::Gas).as_f64() >= 20.0);
        let mut sm = Model::new(SensorType::SmokeDetector, &mut rng);
        let drain = [incident(IncidentKind::BatteryDrain)];
        let b = val(&sm.sample(11_000, 12, &drain, &mut rng), Quantity::Battery);
        assert_eq!(b, Value::Int(5));
        // The battery stays down after the drain.
        assert!(val(&sm.sample(50_000, 12, &[], &mut rng), Quantity::Battery).as_f64() <= 5.0);
    }

    #[test]
    fn street_lights_are_on_at_night_only() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut sl = Model::new(SensorType::StreetLight, &mut rng);
        let day = sl.sample(0, 12, &[], &mut rng);
        let night = sl.sample(0, 22, &[], &mut rng);
        assert_eq!(day[3].1, Value::Bool(false));
        assert!(day[1].1.as_f64() < 0.05);
        assert_eq!(night[3].1, Value::Bool(true));
        assert!(night[1].1.as_f64() > 0.05);
    }
}
