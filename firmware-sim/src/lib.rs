//! `firmware-sim`: simulated smart sensors, the project's stand-in for real hardware.
//!
//! Data flow: `sensors` (registry rows) → `model` (values, incidents) → `engine` (timeline,
//! wire faults) → `dialect` (bytes as each vendor writes them) → `output` (MQTT, serial lines).
//! The engine also writes the exact `summary` and `--record` of what a receiver must see.

pub mod dialect;
pub mod engine;
pub mod model;
pub mod output;
pub mod scenario;
pub mod sensors;
pub mod summary;
pub mod wire;
