//! Transmissions: a sensor's periodic or state-change report, a gridsense gateway's tick.

use super::{Engine, Ev, Item, Out, Owner, Tx};
use crate::dialect::{self, Report};
use crate::scenario::IncidentKind;
use crate::sensors::Dialect;
use anyhow::Result;
use protocol::{Quantity, Value};
use rand::Rng;

impl Engine {
    pub(super) fn local_hour(&self, ts_ms: u64) -> u32 {
        ((ts_ms as i64 / 1000 + self.cfg.utc_offset_h * 3600).rem_euclid(86_400) / 3600) as u32
    }

    /// A report is due (periodic) or the sensor's state changed (incident edge).
    pub(super) async fn on_report(&mut self, i: usize, t: u64, periodic: bool) -> Result<()> {
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
        let mqtt = |(m, d)| (Out::Mqtt(m), d);
        let (out, decoded) = match s.s.dialect {
            Dialect::Canonical => mqtt(dialect::canonical(&r)),
            Dialect::Acme => mqtt(dialect::acme(&r)),
            Dialect::Lumen => mqtt(dialect::lumen(&r)),
            Dialect::SerialBinary => {
                let (b, d) = dialect::serial_binary(&r);
                (Out::LineA(b), d)
            }
            Dialect::SerialText => {
                let (b, d) = dialect::serial_text(&r);
                (Out::LineB(b), d)
            }
            Dialect::Gridsense => unreachable!("gridsense sensors report through their gateway"),
            // A Modbus slave speaks when polled (output::modbus); the engine never runs one.
            Dialect::Modbus => return Ok(()),
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
    pub(super) fn sample(&mut self, i: usize, t: u64, hour: u32) -> (u32, Vec<(Quantity, Value)>) {
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
    pub(super) async fn on_tick(&mut self, g: usize, t: u64) -> Result<()> {
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
}
