//! One simulated Modbus slave: a device profile's register map filled from drifting signals (or,
//! played from the registry, from its sensor's physics and incidents: [`super::played`]), and
//! the faults it plays (mute, slow, CRC-corrupted answers, exception codes).

use super::frame::{bits_pdu, exception_pdu, registers_pdu, ReadRequest};
use super::played::Played;
use edge::source::modbus::point::{encode_words, PointType, Table};
use edge::source::modbus::profile::DeviceProfile;
use protocol::{Quantity, Value};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::time::Duration;

/// What a slave does wrong.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Never answers (a dead or unpowered device, a wrong unit id).
    pub mute: bool,
    /// Answers after this delay (a slow device; past the master's timeout it looks mute).
    pub slow: Option<Duration>,
    /// Fraction of answers sent with a corrupted CRC.
    pub crc_rate: f64,
    /// Answers every read with this exception code.
    pub exception: Option<u8>,
}

/// `UNIT:PROFILE[:FAULT...]`, FAULT one of `mute`, `slow=DUR`, `crc=FRACTION`, `exception=CODE`.
#[derive(Debug, Clone)]
pub struct DeviceArg {
    pub unit: u8,
    pub profile: String,
    pub faults: Faults,
}

impl std::str::FromStr for DeviceArg {
    type Err = String;
    fn from_str(s: &str) -> Result<DeviceArg, String> {
        let mut parts = s.split(':');
        let unit = parts
            .next()
            .and_then(|u| u.parse::<u8>().ok())
            .filter(|u| (1..=247).contains(u))
            .ok_or_else(|| format!("`{s}`: the unit id (1..=247) comes first"))?;
        let profile = parts
            .next()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("`{s}`: UNIT:PROFILE expected"))?
            .to_string();
        let mut faults = Faults::default();
        for f in parts {
            let (k, v) = f.split_once('=').unwrap_or((f, ""));
            match k {
                "mute" => faults.mute = true,
                "slow" => {
                    faults.slow = Some(
                        humantime::parse_duration(v)
                            .map_err(|e| format!("`{f}`: {e} (e.g. slow=300ms)"))?,
                    )
                }
                "crc" => {
                    faults.crc_rate = v
                        .parse::<f64>()
                        .ok()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or_else(|| format!("`{f}`: a fraction 0..=1 (e.g. crc=0.2)"))?
                }
                "exception" => {
                    faults.exception = Some(
                        v.parse()
                            .map_err(|_| format!("`{f}`: a code, e.g. exception=6"))?,
                    )
                }
                _ => {
                    return Err(format!(
                        "`{f}`: unknown fault (mute, slow=, crc=, exception=)"
                    ))
                }
            }
        }
        Ok(DeviceArg {
            unit,
            profile,
            faults,
        })
    }
}

/// What one slave did, for the summary: the ground truth a test compares the hub with.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeviceStats {
    pub unit: u8,
    pub profile: String,
    /// The registry sensor this slave plays (`--registry`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// Read requests addressed to this unit (valid frames).
    pub requests: u64,
    /// Answers with data written intact to the line or connection.
    pub answers: u64,
    /// Values carried by the intact data answers (one reading each at the edge).
    pub values: u64,
    pub exceptions: u64,
    pub muted: u64,
    pub corrupted: u64,
    pub delayed: u64,
}

/// The answer a slave gives to one request (a mute slave gives none).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub pdu: Vec<u8>,
    pub delay: Duration,
    pub corrupt: bool,
    /// Readings this answer carries if it arrives intact (0 for exceptions, corrupt ones).
    pub values: u64,
    /// Those readings as the master decodes them (quantity, canonical value), for the record.
    pub readings: Vec<(Quantity, Value)>,
}

pub struct Device {
    pub profile: DeviceProfile,
    pub faults: Faults,
    rng: ChaCha8Rng,
    /// The canonical value of each point now.
    values: Vec<f64>,
    pub stats: DeviceStats,
    /// Set when the slave plays a registry sensor and its scenario.
    pub played: Option<Played>,
}

/// A plausible resting value of a quantity (its canonical unit).
fn base(q: Quantity) -> f64 {
    match q {
        Quantity::WaterLevel => 12.0,
        Quantity::Voltage => 230.0,
        Quantity::ResidualCurrent => 35.0,
        Quantity::CableTemp => 38.0,
        Quantity::Pressure => 0.35,
        Quantity::Tilt => 0.8,
        Quantity::Battery => 90.0,
        Quantity::Temperature => 20.0,
        _ => 0.0,
    }
}

impl Device {
    pub fn new(unit: u8, name: &str, profile: DeviceProfile, faults: Faults, seed: u64) -> Device {
        let values = profile.points.iter().map(|p| base(p.quantity)).collect();
        Device {
            rng: ChaCha8Rng::seed_from_u64(seed ^ u64::from(unit).wrapping_mul(0x9E37_79B9)),
            stats: DeviceStats {
                unit,
                profile: name.into(),
                ..Default::default()
            },
            profile,
            faults,
            values,
            played: None,
        }
    }

    /// This slave plays `played`'s sensor: its values and scenario faults come from there.
    pub fn playing(mut self, played: Played) -> Device {
        self.stats.sensor = Some(played.sensor.id.clone());
        self.played = Some(played);
        self
    }

    /// New values: the played sensor's physics where it models the point's quantity, a small
    /// drift elsewhere.
    fn refresh(&mut self) {
        self.drift();
        let Some(p) = &mut self.played else { return };
        let sample = p.sample();
        for (v, point) in self.values.iter_mut().zip(&self.profile.points) {
            if let Some((_, x)) = sample.iter().find(|(q, _)| *q == point.quantity) {
                *v = *x;
            }
        }
    }

    /// Moves every analogue value a small step (bools and codes stay at rest).
    fn drift(&mut self) {
        for (v, p) in self.values.iter_mut().zip(&self.profile.points) {
            if p.ty != PointType::Bool && p.quantity != Quantity::FaultCode {
                let b = base(p.quantity);
                let step = (b.abs() * 0.01).max(0.01) * self.rng.gen_range(-1.0..1.0);
                *v = (*v + step).clamp(b * 0.5, b * 1.5 + 1.0);
            }
        }
    }

    /// The items of `table` from `address` for `count`, or None if no point lies there.
    fn image(&self, table: Table, address: u16, count: u16) -> Option<Vec<u16>> {
        let (lo, hi) = (u32::from(address), u32::from(address) + u32::from(count));
        let mut words = vec![0u16; usize::from(count)];
        let mut any = false;
        for (p, v) in self.profile.points.iter().zip(&self.values) {
            if p.table != table || p.end() < lo || u32::from(p.address) >= hi {
                continue;
            }
            any = true;
            let raw = p.scaling.invert(*v).round_ties_even();
            let enc = match (p.ty, p.bit) {
                (PointType::Bool, Some(bit)) => vec![u16::from(*v != 0.0) << bit],
                (PointType::F32 | PointType::F64, _) => {
                    encode_words(p.scaling.invert(*v), p.ty, p.order)
                }
                _ => encode_words(raw, p.ty, p.order),
            };
            for (k, w) in enc.iter().enumerate() {
                let a = u32::from(p.address) + k as u32;
                if (lo..hi).contains(&a) {
                    words[(a - lo) as usize] |= w;
                }
            }
        }
        any.then_some(words)
    }

    /// The faults in force now (the command line's and the scenario's).
    pub fn faults_now(&self) -> Faults {
        match &self.played {
            Some(p) => p.faults_now(&self.faults),
            None => self.faults.clone(),
        }
    }

    /// How this slave answers `req` (already addressed to it).
    pub fn answer(&mut self, req: ReadRequest) -> Option<Reply> {
        self.stats.requests += 1;
        let faults = self.faults_now();
        if faults.mute {
            self.stats.muted += 1;
            return None;
        }
        let delay = faults.slow.unwrap_or_default();
        if !delay.is_zero() {
            self.stats.delayed += 1;
        }
        let corrupt = faults.crc_rate > 0.0 && self.rng.gen_bool(faults.crc_rate.min(1.0));
        let table = match req.function {
            1 => Table::Coil,
            2 => Table::Discrete,
            3 => Table::Holding,
            _ => Table::Input,
        };
        let limit = if table.is_bits() {
            table.items_per_request_max()
        } else {
            self.profile.registers_per_request_max
        };
        let pdu = match faults.exception {
            Some(code) => Err(code),
            None if req.count == 0 || req.count > limit => Err(3),
            None => {
                self.refresh();
                self.image(table, req.address, req.count).ok_or(2)
            }
        };
        let mut values = 0;
        let mut readings = Vec::new();
        let pdu = match pdu {
            Ok(words) => {
                if corrupt {
                    self.stats.corrupted += 1;
                } else {
                    readings = self.readings_in(table, req.address, req.count);
                    values = readings.len() as u64;
                }
                if table.is_bits() {
                    let bits: Vec<bool> = words.iter().map(|w| *w != 0).collect();
                    bits_pdu(req.function, &bits)
                } else {
                    registers_pdu(req.function, &words)
                }
            }
            Err(code) => {
                self.stats.exceptions += 1;
                exception_pdu(req.function, code)
            }
        };
        Some(Reply {
            pdu,
            delay,
            corrupt,
            values,
            readings,
        })
    }

    /// Counts an intact data answer once it has been written.
    pub fn delivered(&mut self, values: u64) {
        self.stats.answers += 1;
        self.stats.values += values;
    }

    /// Points wholly inside a request: the readings one intact answer makes at the edge, each
    /// with the value the master decodes (the number on the wire, scaled back).
    fn readings_in(&self, table: Table, address: u16, count: u16) -> Vec<(Quantity, Value)> {
        let (lo, hi) = (u32::from(address), u32::from(address) + u32::from(count));
        self.profile
            .points
            .iter()
            .zip(&self.values)
            .filter(|(p, _)| p.table == table && u32::from(p.address) >= lo && p.end() < hi)
            .map(|(p, v)| {
                let raw = match p.ty {
                    PointType::Bool => f64::from(u8::from(*v != 0.0)),
                    ty => wire_number(p.scaling.invert(*v), ty),
                };
                let value = if p.quantity.is_bool() {
                    Value::Bool(raw != 0.0)
                } else if p.quantity == Quantity::FaultCode {
                    Value::Int(p.scaling.apply(raw) as i64)
                } else {
                    Value::Float(p.scaling.apply(raw))
                };
                (p.quantity, value)
            })
            .collect()
    }
}

/// The number a register image of type `ty` holds for `raw`: integers rounded half to even and
/// saturated at the type's range (as `encode_words` writes them), floats at their precision.
fn wire_number(raw: f64, ty: PointType) -> f64 {
    let r = raw.round_ties_even();
    match ty {
        PointType::U16 => f64::from(r as u16),
        PointType::I16 => f64::from(r as i16),
        PointType::U32 => f64::from(r as u32),
        PointType::I32 => f64::from(r as i32),
        PointType::U64 => (r as u64) as f64,
        PointType::I64 => (r as i64) as f64,
        PointType::F32 => f64::from(raw as f32),
        PointType::F64 | PointType::Bool => raw,
    }
}
