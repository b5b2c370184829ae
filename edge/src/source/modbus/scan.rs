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

/// `1-247`, `5` or `10-20`: the unit ids a scan tries.
pub fn parse_units(s: &str) -> Result<std::ops::RangeInclusive<u8>, String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let parse = |x: &str| {
        x.trim()
            .parse::<u8>()
            .ok()
            .filter(|u| (1..=247).contains(u))
            .ok_or_else(|| format!("`{x}` is not a unit id 1..=247"))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a > b {
        return Err(format!("`{s}`: the range is empty"));
    }
    Ok(a..=b)
}

/// `edge modbus scan`: prints one line per unit id that answers and a summary; returns how
/// many answered.
pub async fn scan_command(
    cfg: &crate::config::Config,
    line: &str,
    units: std::ops::RangeInclusive<u8>,
    timeout: Option<std::time::Duration>,
) -> anyhow::Result<usize> {
    let lines = cfg.modbus_lines();
    let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    let mut l = lines
        .iter()
        .find(|l| l.name == line)
        .cloned()
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no [[modbus]] line named {line:?} in {} (fix: one of {names:?})",
                cfg.source_path.display()
            )
        })?;
    if let Some(t) = timeout {
        l.timeout = t;
    }
    let (first, last) = (*units.start(), *units.end());
    println!(
        "scanning line {} units {first}-{last}, {:?} each",
        l.name, l.timeout
    );
    let found = scan_units(&l, units, |unit, p| match p {
        Presence::Answers => println!("unit {unit:>3}: answers"),
        Presence::Exception(c) => println!(
            "unit {unit:>3}: answers with exception {c:#04x} ({}): a device is there",
            super::metrics::exception_name(*c)
        ),
        Presence::Absent(Failure::Garbled) => {
            println!("unit {unit:>3}: garbled answer (check baud, parity, termination)")
        }
        Presence::Absent(_) => {}
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "line {}: {e} (fix: check the adapter path or host:port)",
            l.name
        )
    })?;
    let present: Vec<u8> = found
        .iter()
        .filter(|(_, p)| p.is_present())
        .map(|(u, _)| *u)
        .collect();
    println!(
        "{} of {} unit ids answer: {present:?}",
        present.len(),
        found.len()
    );
    Ok(present.len())
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
