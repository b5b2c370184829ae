//! Modbus RTU (RS-485) and TCP lines: device profiles, read plans, one owner task per line.
//!
//! `line` (edge.toml `[[modbus]]`) → `profile` (a device type's points) → `plan` (points merged
//! into requests) → `poller` (the schedule, backoff of mute slaves) → `client` (one request on
//! the wire, timeout, t3.5) → [`crate::ingest::Ingest`]. `point` decodes registers; `scan` is
//! the technician's unit-id search and `edge check`'s probe.

pub mod client;
pub mod line;
pub mod metrics;
pub mod plan;
pub mod point;
pub mod poller;
pub mod profile;
pub mod scan;
pub mod tap;
