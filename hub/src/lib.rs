//! The Wangge hub: one process a district runs.
//!
//! Data flow, one module per stage:
//! `broker` (embedded rumqttd or an external broker) → `ingest` (verify edge, dedup batch,
//! store, ack) → `timeseries` (embedded store and/or InfluxDB sink) and `registry` (components,
//! sensors, edges, departments, tokens) → `api` (REST, OpenAPI, metrics); `events_bridge` joins
//! the events engine (`wangge-events`) to them. `serve` wires them.
//!
//! Seams kept behind small traits so a district can grow past one machine:
//! [`registry::RegistryStore`] (SQLite now, PostgreSQL later), [`timeseries::TimeSeriesSink`]
//! (embedded store, InfluxDB v2 API) and the broker (`broker`).

pub mod admin_token;
pub mod api;
pub mod broker;
pub mod cluster;
pub mod config;
mod events_bridge;
pub mod fleet;
pub mod http_server;
pub mod ingest;
pub mod migrate_to_pg;
pub mod private_files;
mod prometheus;
pub mod registry;
pub mod serve;
pub mod supervise;
pub mod timeseries;
pub mod tls;
