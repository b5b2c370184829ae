//! Where transmissions go: an MQTT broker, a dump file standing in for one, serial lines A and B;
//! and Modbus slaves that answer a master's polls.

pub mod modbus;
pub mod mqtt;
pub mod serial;
