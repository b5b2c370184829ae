//! Ingest sources: site MQTT brokers, serial lines and Modbus lines. Each runs as its own task, survives
//! its peer going away (reconnect / reopen with backoff) and feeds [`crate::ingest::Ingest`].

pub mod down;
pub mod embedded_broker;
pub mod modbus;
pub mod mqtt;
pub mod running;
pub mod serial;
pub mod site_front;
pub mod text;

use std::time::Duration;

/// Exponential backoff between `min` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            next: min,
            min,
            max: max.max(min),
        }
    }
    pub fn reset(&mut self) {
        self.next = self.min;
    }
    /// The delay to wait now; doubles the next one.
    pub fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}
