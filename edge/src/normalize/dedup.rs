//! Duplicate (sensor, seq) detection with a fixed 64-report window per sensor.
//!
//! A sensor that resends (QoS 1 redelivery, a gateway retry) repeats a sequence number; the
//! window remembers the last 64 seqs in one u64 so state stays ~60 bytes per sensor (10k
//! sensors ≈ 0.6 MB). A sensor that restarts its counter (a reboot, a battery swap) is told
//! apart from a resend by its clock: a seen seq whose sensor timestamp is newer than that of
//! the newest report so far is a fresh report after a reset (accepted; the window restarts),
//! while a resend repeats its original timestamp. A seq far below the window is a reset too.

use std::collections::HashMap;

const WINDOW: u64 = 64;

#[derive(Debug, Clone, Copy)]
struct SeqWindow {
    max: u64,
    /// Bit i set: seq `max - i` was seen.
    seen: u64,
    /// Sensor timestamp of the report with seq `max`, if it had one.
    max_ts_ns: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Dedup {
    sensors: HashMap<Box<str>, SeqWindow>,
}

impl Dedup {
    /// Returns false if (sensor, seq) was seen recently and this is not a newer report after a
    /// counter reset. `ts_ns` is the sensor's own timestamp, if the report carries one.
    pub fn first_time(&mut self, sensor: &str, seq: u64, ts_ns: Option<i64>) -> bool {
        let reset = SeqWindow {
            max: seq,
            seen: 1,
            max_ts_ns: ts_ns,
        };
        let Some(w) = self.sensors.get_mut(sensor) else {
            self.sensors.insert(sensor.into(), reset);
            return true;
        };
        if seq > w.max {
            let shift = seq - w.max;
            w.seen = if shift >= WINDOW { 0 } else { w.seen << shift };
            w.seen |= 1;
            w.max = seq;
            w.max_ts_ns = ts_ns;
            true
        } else if w.max - seq < WINDOW {
            let bit = 1u64 << (w.max - seq);
            if w.seen & bit == 0 {
                w.seen |= bit; // late, out of order, first time
                return true;
            }
            let newer_than_newest = matches!((ts_ns, w.max_ts_ns), (Some(t), Some(m)) if t > m);
            if newer_than_newest {
                *w = reset; // the sensor restarted its counter
            }
            newer_than_newest
        } else {
            // Far behind: a counter reset (sensor reboot), not a duplicate.
            *w = reset;
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
        assert!(d.first_time("S", 10, Some(100)));
        assert!(d.first_time("S", 12, Some(120)));
        assert!(d.first_time("S", 11, Some(110)));
        assert!(!d.first_time("S", 11, Some(110)));
        assert!(!d.first_time("S", 10, Some(100)));
        assert!(!d.first_time("S", 12, Some(120)));
        assert!(
            !d.first_time("S", 12, None),
            "no clock: a repeat is a duplicate"
        );
        assert!(d.first_time("T", 10, None), "per sensor");
        assert!(!d.first_time("T", 10, None));
    }

    #[test]
    fn a_counter_reset_is_accepted() {
        let mut d = Dedup::default();
        assert!(d.first_time("S", 1000, None));
        assert!(d.first_time("S", 0, None));
        assert!(d.first_time("S", 1, None));
        assert!(!d.first_time("S", 0, None));
    }

    #[test]
    fn a_sensor_that_reboots_within_the_window_keeps_its_new_reports() {
        let mut d = Dedup::default();
        for seq in 0..6 {
            assert!(d.first_time("S", seq, Some(1_000 + seq as i64)));
        }
        // Rebooted: counts from 0 again, with a newer clock.
        for seq in 0..3 {
            assert!(
                d.first_time("S", seq, Some(2_000 + seq as i64)),
                "seq {seq}"
            );
        }
        // A resend of a report from before the reboot is still a duplicate… of nothing newer:
        // its timestamp is older than the newest, so it is dropped.
        assert!(!d.first_time("S", 1, Some(1_001)));
        // And a resend of a new one too.
        assert!(!d.first_time("S", 2, Some(2_002)));
    }
}
