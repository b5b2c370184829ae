//! Faults: which ones select a transmission, clock skew, and the holding faults (burst, out of
//! order) before a transmission is emitted.

use super::{Damage, Engine, Out, Owner, Tx};
use crate::scenario::{FaultKind, Target};
use crate::sensors::{Dialect, Sensor};
use crate::wire;
use anyhow::Result;
use rand::Rng;

/// Whether `target` can ever match transmissions of sensor `s` (used to set clocks up).
pub(super) fn static_match(target: &Target, s: &Sensor) -> bool {
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
pub(super) fn gateway_match(target: &Target, gw: &str) -> bool {
    target.sensor.is_none()
        && target.line.is_none()
        && target.profile.is_none_or(|p| p == Dialect::Gridsense)
        && target.gateway.as_deref().is_none_or(|id| id == gw)
}

impl Engine {
    /// Whether `target` selects transmission `tx`.
    pub(super) fn matches(&self, target: &Target, tx: &Tx) -> bool {
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
    pub(super) fn triggers(&mut self, f: usize, tx: &Tx, t: u64) -> bool {
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
    pub(super) fn skew_ms(&self, owner: Owner, t: u64) -> i64 {
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

    pub(super) fn sensor_time(&self, owner: Owner, t: u64) -> u64 {
        (self.cfg.start_ms as i64 + t as i64 + self.skew_ms(owner, t)).max(0) as u64
    }

    /// Applies the holding faults (burst, out of order), then emits.
    pub(super) async fn dispatch(&mut self, tx: Tx, t: u64) -> Result<()> {
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
    pub(super) async fn emit_and_release(&mut self, tx: Tx, t: u64) -> Result<()> {
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
    pub(super) async fn emit(&mut self, mut tx: Tx, t: u64) -> Result<()> {
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
}
