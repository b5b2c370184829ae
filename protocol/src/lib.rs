//! Wangge wire formats, shared by the edge, the hub and sensor firmware.
//!
//! Two families of messages live here, and the time and CSV codecs the binaries share:
//!
//! * **Serial sensor frames** ([`SensorFrame`]): what a smart sensor writes on a UART.
//!   One frame is `COBS( version | postcard(frame) | CRC-32 ) 0x00`. [`encode_frame`]
//!   writes one, [`FrameDecoder`] pulls frames out of an arbitrary byte stream,
//!   resynchronising after garbage and counting every bad frame by reason.
//!   This part is `no_std` and allocation-free so firmware can link it.
//! * **Edge ↔ hub messages** ([`uplink`], needs the `alloc` feature): canonical
//!   [`uplink::Reading`]s, the [`uplink::UplinkBatch`] an edge publishes, the hub's
//!   [`uplink::Ack`] and the edge's [`uplink::EdgeStatus`]; and configuration from the hub
//!   ([`edge_config`]): the sealed desired configuration and the edge's report on it.
//! * **Time** ([`time`], needs `std`): the clock (`now_ns`) and the RFC 3339 codec every
//!   crate of the workspace uses.
//! * **MQTT remaining length** ([`mqtt_length`]): the variable byte integer of MQTT's fixed
//!   header, for the code that reads MQTT frames itself (the hub's gate, the edge's front door).
//! * **Seed CSV** ([`seed_csv`], needs `std`): the one parser of the registry's
//!   `config/registry/*.csv` (`sensors.csv` is read by the hub, the edge and the simulator).
//!
//! The byte layout is specified in `protocol/README.md`; a test pins its worked example.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod cobs;
mod decoder;
mod frame;
pub mod mqtt_length;
mod quantity;
mod value;

#[cfg(feature = "alloc")]
pub mod edge_config;
#[cfg(feature = "std")]
pub mod seed_csv;
#[cfg(feature = "alloc")]
pub mod sources_down;
#[cfg(feature = "alloc")]
mod status_mark;
#[cfg(feature = "std")]
pub mod time;
#[cfg(feature = "alloc")]
pub mod uplink;

pub use decoder::{DecodeStats, FrameDecoder, FrameError};
pub use frame::{
    encode_frame, measurements, EncodeError, Measurement, SensorFrame, FRAME_VERSION,
    MAX_ENCODED_FRAME_BYTES, MAX_FRAME_BYTES, MAX_SENSOR_ID_BYTES, MAX_VALUES,
};
pub use quantity::{Quantity, UnknownQuantity};
pub use value::Value;

/// CRC-32/ISO-HDLC (the zlib / Ethernet CRC): poly 0x04C11DB7 reflected, init and xorout 0xFFFFFFFF.
pub const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
