//! Test support for every crate of the workspace, written once: process guards that kill by
//! PID, free loopback ports, bounded waits, launchers for mosquitto, VictoriaMetrics, PostgreSQL, `hub serve`
//! and `edge run`, TLS test certificates, the firmware-sim `--record` file, a seeded RNG and the
//! wall clock. Used as a dev-dependency only (and by the test-only `tests` crate).
//!
//! Everything a launcher starts binds a free loopback port, keeps its files in a temp dir and is
//! killed by its PID when its guard drops — never by name.

pub mod bench;
pub mod browser;
pub mod certs;
pub mod clock;
pub mod edge;
pub mod http;
pub mod hub;
pub mod mosquitto;
pub mod paths;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod record;
pub mod rng;
pub mod victoria;
pub mod wait;

pub use certs::TestCerts;
pub use clock::{now_ms, now_ns};
pub use http::{http_get, metric_sum};
pub use mosquitto::{Mosquitto, MosquittoSub};
pub use paths::{bin, workspace_root};
pub use ports::{free_port, port_open};
pub use postgres::Postgres;
pub use process::Proc;
pub use rng::SplitMix64;
pub use victoria::VictoriaMetrics;
pub use wait::{eventually, eventually_some, wait_for, wait_until};
