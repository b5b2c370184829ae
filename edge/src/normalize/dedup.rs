//! Duplicate (sensor, seq) detection with a fixed 64-report window per sensor.
//!
//! A sensor that resends (QoS 1 redelivery, a gateway retry) repeats a sequence number; the
//! window remembers the last 64 seqs in one u64 so state stays ~40 bytes per sensor (10k
//! sensors ≈ 0.5 MB). A seq far below the window means the sensor restarted its counter:
//! accepted, and the window resets.

use std::collections::HashMap;

const WINDOW: u64 = 64;

#[derive(Debug, Clone, Copy)]
struct SeqWindow {
    max: u64,
    /// Bit i set: seq `max - i` was seen.
    seen: u64,
}

#[derive(Debug, Default)]
pub struct Dedup {
    sensors: HashMap<Box<str>, SeqWindow>,
}

impl Dedup {
    /// Returns false if (sensor, seq) was seen recently.
    pub fn first_time(&mut self, sensor: &str, seq: u64) -> bool {
        let Some(w) = self.sensors.get_mut(sensor) else {
            self.sensors
                .insert(sensor.into(), SeqWindow { max: seq, seen: 1 });
            return true;
        };
        if seq > w.max {
            let shift = seq - w.max;
            w.seen = if shift >= WINDOW { 0 } else { w.seen << shift };
            w.seen |= 1;
            w.max = seq;
            true
        } else if w.max - seq < WINDOW {
            let bit = 1u64 << (w.max - seq);
            let fresh = w.seen & bit == 0;
            w.seen |= bit;
            fresh
        } else {
            // Far behind: a counter reset (sensor reboot), not a duplicate.
            *w = SeqWindow { max: seq, seen: 1 };
            true
        }
    }

    pub fn sensors(&self) -> usize {
        self.sensors.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_seq_is_a_duplicate_even_out_of_order() {
        let mut d = Dedup::default();
        assert!(d.first_time("S", 10));
        assert!(d.first_time("S", 12));
        assert!(d.first_time("S", 11));
        assert!(!d.first_time("S", 11));
        assert!(!d.first_time("S", 10));
        assert!(!d.first_time("S", 12));
        assert!(d.first_time("T", 10), "per sensor");
    }

    #[test]
    fn a_counter_reset_is_accepted() {
        let mut d = Dedup::default();
        assert!(d.first_time("S", 1000));
        assert!(d.first_time("S", 0));
        assert!(d.first_time("S", 1));
        assert!(!d.first_time("S", 0));
    }
}
