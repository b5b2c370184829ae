//! Wangge edge agent: reads sensors over MQTT and serial lines, normalizes their dialects
//! into canonical readings, keeps them in a durable on-disk buffer, and forwards them to the
//! hub in MAC-sealed batches, dropping a reading only once the hub acknowledges it stored.
//!
//! Data flow (one module per step):
//! `source` (mqtt, serial) → `normalize` (profile, validate, dedup) → `buffer` (segmented
//! log, group commit) → `uplink` (batcher, link) → hub. `local_api` serves health, metrics,
//! a live tail and buffer stats; `check` is the technician's pre-flight.

pub mod buffer;
pub mod check;
pub mod config;
pub mod fleet;
pub mod ingest;
pub mod local_api;
pub mod log;
pub mod metrics;
pub mod normalize;
pub mod registry;
pub mod run;
pub mod source;
pub mod uplink;
