//! Where transmissions go: an MQTT broker, a dump file standing in for one, serial lines A and B.

pub mod mqtt;
pub mod serial;
