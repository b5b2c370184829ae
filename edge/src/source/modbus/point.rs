//! One Modbus point: where it sits (table, address), how its registers encode a number
//! (type, byte and word order) and how that number becomes a canonical value (scale, offset).

use serde::Deserialize;

/// The four Modbus data tables a point can live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Holding registers (function 3), 16-bit words.
    Holding,
    /// Input registers (function 4), 16-bit words.
    Input,
    /// Coils (function 1), single bits.
    Coil,
    /// Discrete inputs (function 2), single bits.
    Discrete,
}

impl Table {
    /// True for the bit tables (coils, discrete inputs).
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::Discrete)
    }
    /// The most items one read of this table may ask for (Modbus application protocol 1.1b3:
    /// 125 registers, 2000 bits).
    pub fn items_per_request_max(self) -> u16 {
        if self.is_bits() {
            2000
        } else {
            125
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Table::Holding => "holding",
            Table::Input => "input",
            Table::Coil => "coil",
            Table::Discrete => "discrete",
        }
    }
}

/// How the registers of a point encode its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointType {
    U16,
    I16,
    U32,
    I32,
    F32,
    U64,
    I64,
    F64,
    /// One bit: a coil / discrete input, or bit `bit` of a register.
    Bool,
}

impl PointType {
    /// Registers (or bits, in a bit table) the point occupies.
    pub fn width(self) -> u16 {
        match self {
            PointType::U16 | PointType::I16 | PointType::Bool => 1,
            PointType::U32 | PointType::I32 | PointType::F32 => 2,
            PointType::U64 | PointType::I64 | PointType::F64 => 4,
        }
    }
}

/// Byte and word order of a multi-register value, named by where the bytes of the big-endian
/// value `A B C D` land: `ABCD` is the Modbus standard (big-endian words, high word first),
/// `CDAB` swaps the words, `BADC` the bytes in each word, `DCBA` both (little-endian). For
/// 64-bit values the same two swaps apply to four words; for 16-bit values only the byte swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Order {
    #[default]
    #[serde(rename = "ABCD")]
    Abcd,
    #[serde(rename = "CDAB")]
    Cdab,
    #[serde(rename = "BADC")]
    Badc,
    #[serde(rename = "DCBA")]
    Dcba,
}

impl Order {
    fn swaps_words(self) -> bool {
        matches!(self, Order::Cdab | Order::Dcba)
    }
    fn swaps_bytes(self) -> bool {
        matches!(self, Order::Badc | Order::Dcba)
    }
}

/// The big-endian bytes of a value read as `words` in `order` (at most four words).
fn value_bytes(words: &[u16], order: Order) -> ([u8; 8], usize) {
    let mut out = [0u8; 8];
    let n = words.len().min(4);
    for i in 0..n {
        let w = if order.swaps_words() {
            words[n - 1 - i]
        } else {
            words[i]
        };
        let [hi, lo] = w.to_be_bytes();
        let (a, b) = if order.swaps_bytes() {
            (lo, hi)
        } else {
            (hi, lo)
        };
        out[2 * i] = a;
        out[2 * i + 1] = b;
    }
    (out, 2 * n)
}

/// The raw number `words` encode as `ty` in `order`, before scale and offset. `bit` picks one
/// bit of a register for a [`PointType::Bool`] point in a register table. `None` when `words`
/// is shorter than the type, or a float is not finite.
pub fn decode_words(words: &[u16], ty: PointType, order: Order, bit: Option<u8>) -> Option<f64> {
    let width = usize::from(ty.width());
    let words = words.get(..width)?;
    let (b, _) = value_bytes(words, order);
    let v = match ty {
        PointType::U16 => f64::from(u16::from_be_bytes([b[0], b[1]])),
        PointType::I16 => f64::from(i16::from_be_bytes([b[0], b[1]])),
        PointType::U32 => f64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        PointType::I32 => f64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        PointType::F32 => f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        PointType::U64 => u64::from_be_bytes(b) as f64,
        PointType::I64 => i64::from_be_bytes(b) as f64,
        PointType::F64 => f64::from_be_bytes(b),
        PointType::Bool => {
            let w = u16::from_be_bytes([b[0], b[1]]);
            f64::from(u8::from(w >> bit.unwrap_or(0) & 1 == 1))
        }
    };
    v.is_finite().then_some(v)
}

/// The registers that encode `raw` as `ty` in `order`: the inverse of [`decode_words`], used by
/// the simulator's slaves and by the table tests. Integers saturate at the type's range.
pub fn encode_words(raw: f64, ty: PointType, order: Order) -> Vec<u16> {
    let be: Vec<u8> = match ty {
        PointType::U16 => (raw as u16).to_be_bytes().to_vec(),
        PointType::I16 => (raw as i16).to_be_bytes().to_vec(),
        PointType::U32 => (raw as u32).to_be_bytes().to_vec(),
        PointType::I32 => (raw as i32).to_be_bytes().to_vec(),
        PointType::F32 => (raw as f32).to_be_bytes().to_vec(),
        PointType::U64 => (raw as u64).to_be_bytes().to_vec(),
        PointType::I64 => (raw as i64).to_be_bytes().to_vec(),
        PointType::F64 => raw.to_be_bytes().to_vec(),
        PointType::Bool => u16::from(raw != 0.0).to_be_bytes().to_vec(),
    };
    let mut words: Vec<u16> = be
        .chunks(2)
        .map(|c| {
            if order.swaps_bytes() {
                u16::from_be_bytes([c[1], c[0]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        })
        .collect();
    if order.swaps_words() {
        words.reverse();
    }
    words
}

/// canonical = raw × scale + offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    pub scale: f64,
    pub offset: f64,
}

impl Scaling {
    pub const IDENTITY: Scaling = Scaling {
        scale: 1.0,
        offset: 0.0,
    };
    pub fn apply(self, raw: f64) -> f64 {
        raw * self.scale + self.offset
    }
    /// The raw number that scales to `canonical` (the simulator's direction).
    pub fn invert(self, canonical: f64) -> f64 {
        (canonical - self.offset) / self.scale
    }
}
