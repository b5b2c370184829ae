//! The whole system for the end-to-end tests (`system`: hub, edge and firmware-sim as real
//! processes) and a fault-injecting TCP proxy (`proxy`). Processes, ports, waits, brokers and
//! VictoriaMetrics come from `wangge-testkit`.

pub mod cluster;
pub mod proxy;
pub mod seeded_hub;
pub mod system;
