//! The simulated sensors: their catalogue type, the dialect they speak and where they are wired.
//!
//! Loaded from `config/registry/sensors.csv` (columns `id,component_id,type,profile,address,interval_s,edge`;
//! only `id`, `type`, `profile`, `address` and `interval_s` matter here), read with the shared
//! `protocol::seed_csv` parser and validated here.

use protocol::seed_csv::SeedTable;
use protocol::Quantity;
use std::fmt;
use std::path::Path;

/// A sensor type from the catalogue (`docs/catalogue.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SensorType {
    ManholeCover,
    StreetLight,
    FireHydrant,
    FloodGauge,
    SmokeDetector,
    GasDetector,
    DoorContact,
    Intrusion,
    Elevator,
    ElectricalFire,
    WasteBin,
    Environment,
}

impl SensorType {
    pub const ALL: [SensorType; 12] = [
        SensorType::ManholeCover,
        SensorType::StreetLight,
        SensorType::FireHydrant,
        SensorType::FloodGauge,
        SensorType::SmokeDetector,
        SensorType::GasDetector,
        SensorType::DoorContact,
        SensorType::Intrusion,
        SensorType::Elevator,
        SensorType::ElectricalFire,
        SensorType::WasteBin,
        SensorType::Environment,
    ];

    /// The catalogue name, as in `sensors.csv`.
    pub const fn name(self) -> &'static str {
        match self {
            SensorType::ManholeCover => "manhole_cover",
            SensorType::StreetLight => "street_light",
            SensorType::FireHydrant => "fire_hydrant",
            SensorType::FloodGauge => "flood_gauge",
            SensorType::SmokeDetector => "smoke_detector",
            SensorType::GasDetector => "gas_detector",
            SensorType::DoorContact => "door_contact",
            SensorType::Intrusion => "intrusion",
            SensorType::Elevator => "elevator",
            SensorType::ElectricalFire => "electrical_fire",
            SensorType::WasteBin => "waste_bin",
            SensorType::Environment => "environment",
        }
    }

    pub fn from_name(name: &str) -> Option<SensorType> {
        SensorType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What a sensor of this type reports, in the order every dialect writes it (`DIALECTS.md`).
    pub const fn quantities(self) -> &'static [Quantity] {
        use Quantity::*;
        match self {
            SensorType::ManholeCover => &[Tilt, Opened, WaterLevel, Battery],
            SensorType::StreetLight => &[Voltage, Current, Power, LampOn],
            SensorType::FireHydrant => &[Pressure, Tilt, Leak],
            SensorType::FloodGauge => &[WaterLevel],
            SensorType::SmokeDetector => &[Smoke, Alarm, Battery],
            SensorType::GasDetector => &[Gas],
            SensorType::DoorContact => &[DoorOpen],
            SensorType::Intrusion => &[Motion],
            SensorType::Elevator => &[Trapped, FaultCode, DoorOpen],
            SensorType::ElectricalFire => &[ResidualCurrent, CableTemp],
            SensorType::WasteBin => &[FillLevel],
            SensorType::Environment => &[Pm25, Noise, Temperature, Humidity],
        }
    }
}

impl fmt::Display for SensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a sensor talks: the `profile` column of `sensors.csv`, specified in `DIALECTS.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dialect {
    Canonical,
    Acme,
    Lumen,
    Gridsense,
    SerialBinary,
    SerialText,
    /// A Modbus slave (`profile` = a device profile `modbus-*`, `address` = `LINE:UNIT`): it
    /// answers its master's polls (`firmware-sim modbus --registry`), it never transmits itself.
    Modbus,
}

impl Dialect {
    /// The dialects the report engine speaks (Modbus devices are served by `output::modbus`).
    pub const ALL: [Dialect; 6] = [
        Dialect::Canonical,
        Dialect::Acme,
        Dialect::Lumen,
        Dialect::Gridsense,
        Dialect::SerialBinary,
        Dialect::SerialText,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Dialect::Canonical => "canonical",
            Dialect::Acme => "acme",
            Dialect::Lumen => "lumen",
            Dialect::Gridsense => "gridsense",
            Dialect::SerialBinary => "serial-binary",
            Dialect::SerialText => "serial-text",
            Dialect::Modbus => "modbus",
        }
    }

    pub fn from_name(name: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.name() == name)
    }

    /// `"mqtt"` or `"serial"`, as in the summary.
    pub const fn transport(self) -> &'static str {
        match self {
            Dialect::SerialBinary | Dialect::SerialText => "serial",
            Dialect::Modbus => "modbus",
            _ => "mqtt",
        }
    }

    pub const fn is_mqtt(self) -> bool {
        !matches!(
            self,
            Dialect::SerialBinary | Dialect::SerialText | Dialect::Modbus
        )
    }

    /// Resolution of the timestamps this dialect carries, in ms; `None` when it sends none.
    pub const fn ts_unit_ms(self) -> Option<u64> {
        match self {
            Dialect::Lumen | Dialect::Modbus => None,
            Dialect::Acme => Some(1000),
            _ => Some(1),
        }
    }

    /// Whether a sensor of type `t` can speak this dialect (the vendor dialects cover a few types).
    pub fn supports(self, t: SensorType) -> bool {
        use SensorType::*;
        match self {
            Dialect::Canonical | Dialect::SerialBinary | Dialect::SerialText => true,
            // The device profile says what it measures; the type names the component's kind.
            Dialect::Modbus => true,
            Dialect::Acme => matches!(t, FireHydrant | FloodGauge),
            Dialect::Lumen => matches!(t, StreetLight | ElectricalFire),
            Dialect::Gridsense => matches!(
                t,
                ManholeCover
                    | SmokeDetector
                    | GasDetector
                    | DoorContact
                    | Intrusion
                    | Elevator
                    | WasteBin
                    | Environment
            ),
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One simulated sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// The id registered at the hub, e.g. `MH-0001`.
    pub id: String,
    pub kind: SensorType,
    pub dialect: Dialect,
    /// gridsense: the gateway id (`GW-01`); serial: the line (`A` binary, `B` text); Modbus:
    /// `LINE:UNIT` (the edge's `[[modbus]]` line name and the unit id); else empty.
    pub address: String,
    /// The `profile` column as written: the dialect's name, or a Modbus device profile's.
    pub profile: String,
    /// Nominal reporting interval, in scenario (unscaled) milliseconds.
    pub interval_ms: u64,
}

/// Why `sensors.csv` could not be read. Names the file, the line and the field.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Invalid {
        path: String,
        line: usize,
        msg: String,
    },
}

/// Reads `sensors.csv`. Every row is validated: known type and profile, a profile that fits the type,
/// the address the dialect needs, an interval of at least one second, no repeated id.
pub fn load_sensors(path: &Path) -> Result<Vec<Sensor>, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_sensors(&text, &path.display().to_string())
}

/// Parses the text of a `sensors.csv`; `path` only names the file in errors.
pub fn parse_sensors(text: &str, path: &str) -> Result<Vec<Sensor>, RegistryError> {
    let bad = |line: usize, msg: String| RegistryError::Invalid {
        path: path.to_string(),
        line,
        msg,
    };
    let table = SeedTable::parse(text).map_err(|e| bad(e.line as usize, e.reason))?;
    if table.columns().is_empty() {
        return Err(bad(1, "empty file, expected a header line".into()));
    }
    let col = |name: &str| {
        table
            .column(name)
            .ok_or_else(|| bad(1, format!("header has no `{name}` column")))
    };
    let (c_id, c_type, c_profile, c_addr, c_interval) = (
        col("id")?,
        col("type")?,
        col("profile")?,
        col("address")?,
        col("interval_s")?,
    );
    let mut out: Vec<Sensor> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for row in table.rows() {
        let n = row.line as usize;
        let get = |c: usize, name: &str| {
            row.get(c)
                .ok_or_else(|| bad(n, format!("missing field `{name}`")))
        };
        let id = get(c_id, "id")?;
        if id.is_empty() || id.len() > protocol::MAX_SENSOR_ID_BYTES {
            return Err(bad(n, format!("field `id`: {id:?} must be 1..=32 bytes")));
        }
        if !seen.insert(id.to_string()) {
            return Err(bad(n, format!("field `id`: {id} appears twice")));
        }
        let ty = get(c_type, "type")?;
        let kind = SensorType::from_name(ty)
            .ok_or_else(|| bad(n, format!("field `type`: unknown sensor type {ty:?}")))?;
        let pr = get(c_profile, "profile")?;
        let dialect = if pr.starts_with("modbus-") {
            Dialect::Modbus
        } else {
            Dialect::from_name(pr).ok_or_else(|| {
                bad(
                    n,
                    format!(
                        "field `profile`: unknown profile {pr:?} (one of canonical, acme, lumen, gridsense, serial-binary, serial-text, or a Modbus device profile modbus-*)"
                    ),
                )
            })?
        };
        if !dialect.supports(kind) {
            return Err(bad(
                n,
                format!("field `profile`: {dialect} has no {kind} sensors (see DIALECTS.md)"),
            ));
        }
        let address = get(c_addr, "address")?.to_string();
        match dialect {
            Dialect::Gridsense if address.is_empty() => {
                return Err(bad(
                    n,
                    "field `address`: a gridsense sensor needs its gateway id".into(),
                ))
            }
            Dialect::SerialBinary if address != "A" => {
                return Err(bad(
                    n,
                    format!(
                        "field `address`: serial-binary sensors are on line A, not {address:?}"
                    ),
                ))
            }
            Dialect::SerialText if address != "B" => {
                return Err(bad(
                    n,
                    format!("field `address`: serial-text sensors are on line B, not {address:?}"),
                ))
            }
            Dialect::Modbus if modbus_address(&address).is_none() => {
                return Err(bad(
                    n,
                    format!(
                    "field `address`: a Modbus sensor is LINE:UNIT (unit 1..=247), not {address:?}"
                ),
                ))
            }
            _ => {}
        }
        let iv = get(c_interval, "interval_s")?;
        let interval_s: f64 = iv
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 1.0 && *v <= 86_400.0)
            .ok_or_else(|| {
                bad(
                    n,
                    format!("field `interval_s`: {iv:?} is not a number of seconds in 1..=86400"),
                )
            })?;
        out.push(Sensor {
            id: id.to_string(),
            kind,
            dialect,
            address,
            profile: pr.to_string(),
            interval_ms: (interval_s * 1000.0).round() as u64,
        });
    }
    Ok(out)
}

/// A Modbus sensor's `LINE:UNIT` address: the line's name and the unit id (1..=247).
pub fn modbus_address(address: &str) -> Option<(&str, u8)> {
    let (line, unit) = address.rsplit_once(':')?;
    let unit = unit.parse::<u8>().ok().filter(|u| (1..=247).contains(u))?;
    (!line.is_empty()).then_some((line, unit))
}

/// Keeps the sensors whose id starts with one of `prefixes` (all when empty) and whose dialect is
/// one of `dialects` (all when empty).
pub fn select(sensors: Vec<Sensor>, prefixes: &[String], dialects: &[Dialect]) -> Vec<Sensor> {
    sensors
        .into_iter()
        .filter(|s| prefixes.is_empty() || prefixes.iter().any(|p| s.id.starts_with(p.as_str())))
        .filter(|s| dialects.is_empty() || dialects.contains(&s.dialect))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_registry_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry/sensors.csv");
        let s = load_sensors(&path).unwrap();
        assert_eq!(s.len(), 200);
        assert!(s.iter().any(|s| s.dialect == Dialect::SerialText));
        for t in SensorType::ALL {
            assert!(s.iter().any(|s| s.kind == t), "no {t} in the seed");
        }
    }

    #[test]
    fn a_profile_that_does_not_fit_the_type_names_line_and_field() {
        let csv = "id,component_id,type,profile,address,interval_s,edge\nX-1,1,manhole_cover,acme,,60,e\n";
        let e = parse_sensors(csv, "s.csv").unwrap_err().to_string();
        assert!(e.starts_with("s.csv:2: field `profile`"), "{e}");
    }

    #[test]
    fn modbus_sensors_load_with_their_device_profile_and_line_address() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/modbus-demo/sensors.csv");
        let s = load_sensors(&path).unwrap();
        assert!(!s.is_empty());
        for x in &s {
            assert_eq!(x.dialect, Dialect::Modbus, "{x:?}");
            assert!(x.profile.starts_with("modbus-"), "{x:?}");
            assert!(modbus_address(&x.address).is_some(), "{x:?}");
        }
        let csv =
            "id,type,profile,address,interval_s\nFL-1,flood_gauge,modbus-flood-level,rs485-1:0,5\n";
        let e = parse_sensors(csv, "s.csv").unwrap_err().to_string();
        assert!(e.starts_with("s.csv:2: field `address`"), "{e}");
    }

    #[test]
    fn select_by_prefix_and_profile() {
        let csv = "id,type,profile,address,interval_s\nMH-1,manhole_cover,canonical,,60\nHY-1,fire_hydrant,acme,,30\nHY-2,fire_hydrant,serial-text,B,30\n";
        let all = parse_sensors(csv, "s.csv").unwrap();
        let hy = select(all.clone(), &["HY-".into()], &[]);
        assert_eq!(hy.len(), 2);
        let acme = select(all, &[], &[Dialect::Acme]);
        assert_eq!(acme.len(), 1);
        assert_eq!(acme[0].id, "HY-1");
    }
}
