//! The canonical quantities of the sensor catalogue (`docs/catalogue.md`).
//!
//! On the wire a quantity is its index in [`Quantity::ALL`] (a postcard varint, one byte):
//! the order is part of the protocol, so new quantities are only ever appended.

use core::fmt;
use serde::{Deserialize, Serialize};

macro_rules! quantities {
    ($( $variant:ident = $code:literal, $name:literal, $unit:literal; )*) => {
        /// A canonical measured quantity. Its wire code, name and unit are fixed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[repr(u8)]
        pub enum Quantity {
            $( #[doc = concat!("`", $name, "` in ", $unit)] $variant = $code, )*
        }

        impl Quantity {
            /// Every quantity, in wire-code order.
            pub const ALL: &'static [Quantity] = &[$(Quantity::$variant),*];

            /// How many quantities the catalogue has (the next free wire code).
            pub const COUNT: usize = Quantity::ALL.len();

            /// The canonical name used in JSON, profiles and the API.
            pub const fn name(self) -> &'static str {
                match self { $(Quantity::$variant => $name,)* }
            }

            /// The canonical unit ("bool" and "code" for non-numeric quantities).
            pub const fn unit(self) -> &'static str {
                match self { $(Quantity::$variant => $unit,)* }
            }

            /// The wire code (index in [`Quantity::ALL`]).
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// Looks a quantity up by its wire code.
            pub fn from_code(code: u8) -> Option<Quantity> {
                Quantity::ALL.get(code as usize).copied()
            }

            /// Looks a quantity up by its canonical name.
            pub fn from_name(name: &str) -> Result<Quantity, UnknownQuantity> {
                match name {
                    $($name => Ok(Quantity::$variant),)*
                    _ => Err(UnknownQuantity),
                }
            }
        }
    };
}

quantities! {
    Tilt = 0, "tilt", "deg";
    Opened = 1, "opened", "bool";
    WaterLevel = 2, "water_level", "cm";
    Battery = 3, "battery", "%";
    Voltage = 4, "voltage", "V";
    Current = 5, "current", "A";
    Power = 6, "power", "W";
    LampOn = 7, "lamp_on", "bool";
    Pressure = 8, "pressure", "MPa";
    Leak = 9, "leak", "bool";
    Smoke = 10, "smoke", "%obs/m";
    Alarm = 11, "alarm", "bool";
    Gas = 12, "gas", "%LEL";
    DoorOpen = 13, "door_open", "bool";
    Motion = 14, "motion", "bool";
    Trapped = 15, "trapped", "bool";
    FaultCode = 16, "fault_code", "code";
    ResidualCurrent = 17, "residual_current", "mA";
    CableTemp = 18, "cable_temp", "°C";
    FillLevel = 19, "fill_level", "%";
    Pm25 = 20, "pm25", "µg/m³";
    Noise = 21, "noise", "dB(A)";
    Temperature = 22, "temperature", "°C";
    Humidity = 23, "humidity", "%";
}

// Compile-time checks of the wire codes: dense from 0 in declaration order (so `from_code` is an
// index into `ALL`, and a removed quantity leaves a gap that fails the build), and one byte each.
// Duplicate codes are already a compile error of the enum. `tests/quantity_codes.rs` pins every
// code to its name: codes are append-only.
const _: () = {
    assert!(Quantity::COUNT == Quantity::ALL.len());
    assert!(Quantity::COUNT <= u8::MAX as usize + 1);
    let mut i = 0;
    while i < Quantity::COUNT {
        assert!(
            Quantity::ALL[i] as usize == i,
            "wire codes must be 0, 1, 2, … in order"
        );
        i += 1;
    }
};

impl Quantity {
    /// True for quantities whose value is a boolean state (alarms, contacts).
    pub const fn is_bool(self) -> bool {
        matches!(
            self,
            Quantity::Opened
                | Quantity::LampOn
                | Quantity::Leak
                | Quantity::Alarm
                | Quantity::DoorOpen
                | Quantity::Motion
                | Quantity::Trapped
        )
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Quantity {
    type Err = UnknownQuantity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::from_name(s)
    }
}

/// A quantity name that is not in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownQuantity;

impl fmt::Display for UnknownQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown quantity (not in the sensor catalogue)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes_are_indices_and_names_round_trip() {
        for (i, q) in Quantity::ALL.iter().enumerate() {
            assert_eq!(q.code() as usize, i);
            assert_eq!(Quantity::from_code(q.code()), Some(*q));
            assert_eq!(Quantity::from_name(q.name()), Ok(*q));
        }
        assert_eq!(Quantity::from_code(Quantity::COUNT as u8), None);
        assert_eq!(Quantity::from_name("tilt_deg"), Err(UnknownQuantity));
    }
}
