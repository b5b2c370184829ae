//! A Modbus device profile (`config/profiles/*.toml` with `kind = "modbus"`): the points one
//! device type exposes and how often each is polled, plus the device's request limits.

use super::point::{Order, PointType, Scaling, Table};
use crate::config::{toml_error, ConfigError};
use crate::normalize::profile::{mask_of, QuantityMask};
use protocol::Quantity;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// The profile file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    kind: String,
    #[serde(default)]
    description: Option<String>,
    /// The most registers (or bits) this device answers in one request; default and cap: the
    /// protocol's 125 registers / 2000 bits.
    #[serde(default)]
    registers_per_request_max: Option<u16>,
    /// Unused addresses a merged request may span to save a round trip.
    #[serde(default = "default_gap_max")]
    gap_max: u16,
    /// Poll interval of points that name none.
    #[serde(default = "default_poll", with = "humantime_serde")]
    poll: Duration,
    #[serde(default)]
    urgent: Vec<String>,
    #[serde(rename = "point")]
    points: Vec<PointFile>,
}

fn default_gap_max() -> u16 {
    8
}
fn default_poll() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointFile {
    quantity: String,
    table: Table,
    /// Zero-based protocol address (register 40001 is holding address 0).
    address: u16,
    #[serde(rename = "type")]
    ty: PointType,
    #[serde(default)]
    order: Order,
    /// For a `bool` point in a register table: which bit (0 = least significant).
    #[serde(default)]
    bit: Option<u8>,
    #[serde(default = "one")]
    scale: f64,
    #[serde(default)]
    offset: f64,
    #[serde(default, with = "humantime_serde")]
    poll: Option<Duration>,
}

fn one() -> f64 {
    1.0
}

/// One compiled point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub quantity: Quantity,
    pub table: Table,
    pub address: u16,
    pub ty: PointType,
    pub order: Order,
    pub bit: Option<u8>,
    pub scaling: Scaling,
    pub poll: Duration,
}

impl Point {
    /// The last address the point occupies.
    pub fn end(&self) -> u32 {
        u32::from(self.address) + u32::from(self.ty.width()) - 1
    }
}

/// A compiled device profile.
#[derive(Debug, Clone)]
pub struct DeviceProfile {
    pub name: String,
    pub description: Option<String>,
    pub registers_per_request_max: u16,
    pub gap_max: u16,
    pub points: Vec<Point>,
    /// Quantities sent on the urgent lane.
    pub urgent: QuantityMask,
}

/// True if the TOML text declares `kind = "modbus"` (the MQTT profile loader skips those).
pub fn is_modbus_profile(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Kind {
        #[serde(default)]
        kind: Option<String>,
    }
    toml::from_str::<Kind>(text).is_ok_and(|k| k.kind.as_deref() == Some("modbus"))
}

impl DeviceProfile {
    /// Loads and validates one profile file; errors name the file and the point.
    pub fn load(path: &Path) -> Result<DeviceProfile, ConfigError> {
        let text =
            crate::config::read_text(path, "check the slave's `profile` and edge.profiles_dir")?;
        DeviceProfile::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<DeviceProfile, ConfigError> {
        let f: ProfileFile = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        if f.kind != "modbus" {
            return Err(ConfigError::invalid(
                path,
                "kind".into(),
                format!("`{}` is not a Modbus profile", f.kind),
                "set kind = \"modbus\"",
            ));
        }
        let max = f.registers_per_request_max.unwrap_or(125);
        if !(1..=125).contains(&max) {
            return Err(ConfigError::invalid(
                path,
                "registers_per_request_max".into(),
                format!("{max} is outside 1..=125"),
                "use the device manual's limit, at most 125",
            ));
        }
        if f.points.is_empty() {
            return Err(ConfigError::invalid(
                path,
                "point".into(),
                "no points".into(),
                "add at least one [[point]]",
            ));
        }
        let points = f
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| compile_point(path, i, p, f.poll, max))
            .collect::<Result<Vec<_>, _>>()?;
        let urgent = f
            .urgent
            .iter()
            .map(|q| {
                Quantity::from_name(q).map_err(|_| {
                    ConfigError::invalid(
                        path,
                        "urgent".into(),
                        format!("unknown quantity `{q}`"),
                        "use a canonical quantity name (edge/README.md)",
                    )
                })
            })
            .try_fold(0, |m, q| q.map(|q| m | mask_of(q)))?;
        Ok(DeviceProfile {
            name: f.name,
            description: f.description,
            registers_per_request_max: max,
            gap_max: f.gap_max,
            points,
            urgent,
        })
    }
}

fn compile_point(
    path: &Path,
    i: usize,
    p: &PointFile,
    poll: Duration,
    max: u16,
) -> Result<Point, ConfigError> {
    let field = |name: &str| format!("point[{i}].{name}");
    let quantity = Quantity::from_name(&p.quantity).map_err(|_| {
        ConfigError::invalid(
            path,
            field("quantity"),
            format!("unknown quantity `{}`", p.quantity),
            "use a canonical quantity name (edge/README.md)",
        )
    })?;
    if p.table.is_bits() && p.ty != PointType::Bool {
        return Err(ConfigError::invalid(
            path,
            field("type"),
            format!("a {} point holds one bit, not {:?}", p.table.name(), p.ty),
            "use type = \"bool\" for coils and discrete inputs",
        ));
    }
    if p.bit.is_some_and(|b| b > 15) || (p.bit.is_some() && p.ty != PointType::Bool) {
        return Err(ConfigError::invalid(
            path,
            field("bit"),
            "`bit` is 0..=15 and only for bool points in register tables".into(),
            "remove `bit` or set type = \"bool\"",
        ));
    }
    if u32::from(p.address) + u32::from(p.ty.width()) > 65536 || p.ty.width() > max {
        return Err(ConfigError::invalid(
            path,
            field("address"),
            format!(
                "{:?} at {} runs past the address space or the request limit",
                p.ty, p.address
            ),
            "check the register map",
        ));
    }
    if !p.scale.is_finite() || p.scale == 0.0 || !p.offset.is_finite() {
        return Err(ConfigError::invalid(
            path,
            field("scale"),
            "scale must be finite and non-zero, offset finite".into(),
            "see the device manual's unit",
        ));
    }
    let poll = p.poll.unwrap_or(poll);
    if poll < Duration::from_millis(100) {
        return Err(ConfigError::invalid(
            path,
            field("poll"),
            format!("{poll:?} is shorter than 100ms"),
            "poll at most ten times a second",
        ));
    }
    Ok(Point {
        quantity,
        table: p.table,
        address: p.address,
        ty: p.ty,
        order: p.order,
        bit: p.bit,
        scaling: Scaling {
            scale: p.scale,
            offset: p.offset,
        },
        poll,
    })
}
