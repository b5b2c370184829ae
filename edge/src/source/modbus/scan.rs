//! The technician's tools on a Modbus line: which unit ids answer (`edge modbus scan`), and
//! whether every configured slave answers every block of its read plan (`edge check`).

use super::client::Client;
use super::line::Line;
use super::metrics::Failure;
use super::point::Table;

/// What one unit id did when asked for holding register 0.
#[derive(Debug, Clone, PartialEq)]
pub enum Presence {
    /// It answered with data.
    Answers,
    /// It answered with an exception: a device is there (register 0 is not in its map).
    Exception(u8),
    /// It did not answer usably.
    Absent(Failure),
}

impl Presence {
    pub fn is_present(&self) -> bool {
        !matches!(self, Presence::Absent(_))
    }
}

/// Asks each unit id in `units` for one holding register; a present device answers with data or
/// an exception. Calls `progress` after each unit so a long scan shows it is alive.
pub async fn scan_units(
    line: &Line,
    units: std::ops::RangeInclusive<u8>,
    mut progress: impl FnMut(u8, &Presence),
) -> std::io::Result<Vec<(u8, Presence)>> {
    let mut client = Client::open(line).await?;
    let mut out = Vec::new();
    for unit in units {
        let p = match client.read(unit, Table::Holding, 0, 1).await {
            Ok(_) => Presence::Answers,
            Err(Failure::Exception(c)) => Presence::Exception(c),
            Err(Failure::Io) => return Err(std::io::Error::other("line failed during the scan")),
            Err(f) => Presence::Absent(f),
        };
        progress(unit, &p);
        out.push((unit, p));
    }
    Ok(out)
}

/// One block of a slave's read plan, probed once.
#[derive(Debug, Clone)]
pub struct BlockProbe {
    pub unit: u8,
    pub sensor: String,
    pub table: Table,
    pub address: u16,
    pub count: u16,
    pub result: Result<(), Failure>,
}

impl BlockProbe {
    /// What the technician should do about a failed block.
    pub fn fix(&self) -> &'static str {
        match self.result {
            Ok(()) => "",
            Err(Failure::Timeout) => {
                "check the unit id (edge modbus scan), wiring (A/B), baud, parity and power"
            }
            Err(Failure::Garbled) => {
                "check baud/parity/stop bits, termination and that one master drives the bus"
            }
            Err(Failure::Exception(_)) => {
                "the device rejects this block: check the profile's addresses against its manual"
            }
            Err(Failure::Mismatch) => "another device answered: check for duplicate unit ids",
            Err(Failure::Io) => "the port or connection failed: check the adapter / host:port",
        }
    }
}

/// Reads every block of every slave's plan once.
pub async fn probe_line(line: &Line) -> std::io::Result<Vec<BlockProbe>> {
    let mut client = Client::open(line).await?;
    let mut out = Vec::new();
    for s in &line.slaves {
        for r in &s.plan {
            let result = client.read(s.unit, r.table, r.address, r.count).await;
            out.push(BlockProbe {
                unit: s.unit,
                sensor: s.sensor.clone(),
                table: r.table,
                address: r.address,
                count: r.count,
                result: result.map(|_| ()),
            });
        }
    }
    Ok(out)
}
