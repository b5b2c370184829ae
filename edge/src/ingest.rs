//! The path every reading takes from a source into the buffer: normalize → validate →
//! append. The group-commit thread that makes appended readings durable is `buffer::sync`.

use crate::buffer::Buffer;
use crate::metrics::{Metrics, SourceMetrics};
use crate::normalize::profile::Report;
use crate::normalize::validate::Validator;
use crate::normalize::Normalizer;
use protocol::uplink::Reading;
use protocol::SensorFrame;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// Live readings for `edge tail`: bounded; a slow tail loses readings, never the agent.
pub const TAIL_CAPACITY: usize = 4096;

pub struct Ingest {
    pub normalizer: Normalizer,
    pub validator: Mutex<Validator>,
    pub buffer: Arc<Mutex<Buffer>>,
    pub metrics: Arc<Metrics>,
    pub tail: broadcast::Sender<Arc<Reading>>,
    /// Wakes the sync thread early when `flush_records` are pending.
    sync_kick: SyncSender<()>,
    flush_records: u64,
    /// The buffer's `appended_total` after the last append (a source's durability mark).
    last_appended: AtomicU64,
    /// The buffer's `durable_total`, published by the sync thread.
    durable_rx: watch::Receiver<u64>,
    /// Site-broker messages before a restart ([`Drain`]).
    pub drain: Drain,
}

pub use protocol::time::now_ns;

impl Ingest {
    pub fn new(
        normalizer: Normalizer,
        validator: Validator,
        buffer: Arc<Mutex<Buffer>>,
        metrics: Arc<Metrics>,
        flush_records: u64,
    ) -> (Arc<Ingest>, Receiver<()>, watch::Sender<u64>) {
        let (sync_kick, kicks) = std::sync::mpsc::sync_channel(1);
        let (tail, _) = broadcast::channel(TAIL_CAPACITY);
        let (durable_tx, durable_rx) = watch::channel(0);
        (
            Arc::new(Ingest {
                normalizer,
                validator: Mutex::new(validator),
                buffer,
                metrics,
                tail,
                sync_kick,
                flush_records,
                last_appended: AtomicU64::new(0),
                durable_rx,
                drain: Drain::default(),
            }),
            kicks,
            durable_tx,
        )
    }

    /// The mark every reading ingested so far is covered by: once `durable()` reaches it,
    /// they are all on disk.
    pub fn mark(&self) -> u64 {
        self.last_appended.load(Relaxed)
    }

    /// Before the agent restarts itself (a config from the hub) or stops (SIGTERM): stops
    /// taking site-broker messages, waits until every reading ingested is durable and every
    /// message behind them PUBACKed, at most `within`. A message PUBACKed is never redelivered,
    /// so a reading the edge stamps itself (no sensor clock) is not stored a second time under
    /// a new timestamp after the restart; one not taken is redelivered to the next process.
    pub async fn drain(&self, within: std::time::Duration) -> bool {
        self.drain.stopping.store(true, Relaxed);
        let deadline = tokio::time::Instant::now() + within;
        let settled = || *self.durable_rx.borrow() >= self.mark() && self.drain.acks_pending() == 0;
        loop {
            if settled() {
                // A message between the source and its ack task is counted once received.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                if settled() {
                    // The PUBACKs are queued to each source's connection: let them go out.
                    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                    return true;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    acks_pending = self.drain.acks_pending(),
                    "drain: not every site message acknowledged in time (redelivered after the restart)"
                );
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Watches how many appended readings are durable.
    pub fn durable(&self) -> watch::Receiver<u64> {
        self.durable_rx.clone()
    }

    /// One MQTT message from a site broker.
    pub fn mqtt_message(&self, src: &SourceMetrics, topic: &str, payload: &[u8]) {
        src.messages.fetch_add(1, Relaxed);
        let mut reports = Vec::new();
        match self.normalizer.mqtt(topic, payload, &mut reports) {
            Ok(skipped) => {
                if skipped > 0 {
                    self.metrics
                        .values_skipped
                        .fetch_add(skipped as u64, Relaxed);
                    self.metrics.reject("bad_value", topic);
                }
                self.accept(src, &reports);
            }
            Err(e) => self.metrics.reject(e.reason(), topic),
        }
    }

    /// One text line from a serial port.
    pub fn text_line(&self, src: &SourceMetrics, line: &str) {
        src.messages.fetch_add(1, Relaxed);
        match self.normalizer.text_line(line) {
            Ok((report, skipped)) => {
                if skipped > 0 {
                    self.metrics
                        .values_skipped
                        .fetch_add(skipped as u64, Relaxed);
                    self.metrics.reject("bad_value", &src.name);
                }
                self.accept(src, std::slice::from_ref(&report));
            }
            Err(e) => self.metrics.reject(e.reason(), &src.name),
        }
    }

    /// One decoded binary frame from a serial port.
    pub fn frame(&self, src: &SourceMetrics, frame: &SensorFrame<'_>) {
        src.messages.fetch_add(1, Relaxed);
        let report = self.normalizer.frame(frame);
        self.accept(src, std::slice::from_ref(&report));
    }

    /// One report a source decoded itself (a Modbus answer).
    pub fn report(&self, src: &SourceMetrics, report: Report) {
        src.messages.fetch_add(1, Relaxed);
        self.accept(src, std::slice::from_ref(&report));
    }

    fn accept(&self, src: &SourceMetrics, reports: &[Report]) {
        let recv = now_ns();
        let mut readings = Vec::new();
        if let Ok(mut v) = self.validator.lock() {
            for r in reports {
                let o = v.validate(r, recv, &mut readings);
                let m = &self.metrics;
                if o.rate_limited {
                    m.reject("rate_limited", &r.sensor);
                }
                if o.duplicate {
                    m.duplicates.fetch_add(1, Relaxed);
                }
                if o.ts_from_edge {
                    m.ts_from_edge.fetch_add(1, Relaxed);
                }
                if o.unregistered {
                    m.unregistered.fetch_add(r.values.len() as u64, Relaxed);
                }
                m.quality_bad.fetch_add(u64::from(o.bad), Relaxed);
                m.quality_suspect.fetch_add(u64::from(o.suspect), Relaxed);
            }
        }
        if readings.is_empty() {
            return;
        }
        src.readings_in.fetch_add(readings.len() as u64, Relaxed);
        let pending = match self.buffer.lock() {
            Ok(mut b) => {
                for r in &readings {
                    if let Err(e) = b.append(r) {
                        self.metrics.buffer_errors.fetch_add(1, Relaxed);
                        tracing::error!(error = %e, "buffer append failed");
                    }
                }
                self.last_appended.store(b.appended_total(), Relaxed);
                b.pending_sync()
            }
            Err(_) => 0,
        };
        if pending >= self.flush_records {
            let _ = self.sync_kick.try_send(());
        }
        if self.tail.receiver_count() > 0 {
            for r in readings {
                let _ = self.tail.send(Arc::new(r));
            }
        }
    }
}

/// What [`Ingest::drain`] waits for: site-broker messages received and not yet PUBACKed.
#[derive(Debug, Default)]
pub struct Drain {
    stopping: std::sync::atomic::AtomicBool,
    acks_pending: AtomicU64,
}

impl Drain {
    /// True once a drain began: sources take no more messages (the broker keeps them).
    pub fn stopping(&self) -> bool {
        self.stopping.load(Relaxed)
    }

    /// `n` messages wait for their readings to be durable.
    pub fn waiting(&self, n: u64) {
        self.acks_pending.fetch_add(n, Relaxed);
    }

    /// `n` waiting messages were PUBACKed (or will never be: their source stopped).
    pub fn done(&self, n: u64) {
        self.acks_pending.fetch_sub(n, Relaxed);
    }

    pub fn acks_pending(&self) -> u64 {
        self.acks_pending.load(Relaxed)
    }
}
