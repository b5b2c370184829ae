//! Which of this edge's sources are down now, for its status ([`protocol::uplink::SourceDown`]):
//! a Modbus line that cannot be opened (`modbus:<line>`) or a slave that stopped answering
//! (`modbus:<line>/<unit>`), each with the sensors behind it. The pollers set and clear
//! entries; the uplink publishes a status as soon as the set changes ([`SourcesDown::changed`]),
//! so the hub can hold back those sensors' `device.offline` behind one event per source.

use protocol::sources_down::{bounded, SourceDown};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use tokio::sync::Notify;

/// The down sources and their sensors; bounded by the configured sources (one entry per line
/// and per slave at most), and cut to the protocol's bounds when a status is made.
#[derive(Debug, Default)]
pub struct SourcesDown {
    down: Mutex<BTreeMap<String, Vec<String>>>,
    /// Woken on every change of the set (a permit is kept if nobody waits yet).
    pub changed: Notify,
    /// Entries (sources and sensors) the last status left out to stay within the bounds.
    pub dropped_last: AtomicU64,
}

impl SourcesDown {
    /// `source` is down with `sensors` behind it.
    pub fn set_down(&self, source: &str, sensors: Vec<String>) {
        let Ok(mut m) = self.down.lock() else { return };
        if m.get(source) != Some(&sensors) {
            m.insert(source.to_string(), sensors);
            drop(m);
            self.changed.notify_one();
        }
    }

    /// `source` is up again (nothing if it was not down).
    pub fn set_up(&self, source: &str) {
        let Ok(mut m) = self.down.lock() else { return };
        if m.remove(source).is_some() {
            drop(m);
            self.changed.notify_one();
        }
    }

    /// Forgets `source` and every source under it (`<source>/…`): a line that stopped running.
    pub fn forget(&self, source: &str) {
        let Ok(mut m) = self.down.lock() else { return };
        let before = m.len();
        let under = format!("{source}/");
        m.retain(|k, _| k != source && !k.starts_with(&under));
        if m.len() != before {
            drop(m);
            self.changed.notify_one();
        }
    }

    /// How many sources are down now.
    pub fn count(&self) -> usize {
        self.down.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// The list for the next status, within the protocol's bounds (what is left out is in
    /// `dropped_last`).
    pub fn snapshot(&self) -> Vec<SourceDown> {
        let list: Vec<SourceDown> = match self.down.lock() {
            Ok(m) => m
                .iter()
                .map(|(source, sensors)| SourceDown {
                    source: source.clone(),
                    sensors: sensors.clone(),
                })
                .collect(),
            Err(_) => return Vec::new(),
        };
        let (kept, dropped) = bounded(list);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "more sources down than a status carries; the rest are left out"
            );
        }
        self.dropped_last.store(dropped, Relaxed);
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_forgotten_takes_its_slaves_with_it_and_changes_wake_the_uplink() {
        let d = SourcesDown::default();
        d.set_down("modbus:a", vec!["S-1".into(), "S-2".into()]);
        d.set_down("modbus:a/3", vec!["S-2".into()]);
        d.set_down("modbus:ab/1", vec!["S-9".into()]);
        assert_eq!(d.count(), 3);
        d.forget("modbus:a");
        let left: Vec<String> = d.snapshot().into_iter().map(|s| s.source).collect();
        assert_eq!(left, vec!["modbus:ab/1".to_string()]);
        d.set_up("modbus:ab/1");
        assert!(d.snapshot().is_empty());
        assert_eq!(d.dropped_last.load(Relaxed), 0);
    }
}
