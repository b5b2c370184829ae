//! Group commit: appended records become durable (readable by the uplink, acknowledgeable to
//! sources) when one fdatasync per lane, run outside the buffer lock, covers them.

use super::{write_cursor, Buffer, Lane};
use crate::metrics::Metrics;
use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Handles to fdatasync outside the lock, with the index each makes durable.
pub struct SyncTicket {
    files: Vec<(Lane, Arc<File>, u64)>,
    appended_total: u64,
}

impl SyncTicket {
    pub fn run(&self) -> io::Result<()> {
        for (_, f, _) in &self.files {
            f.sync_data()?;
        }
        Ok(())
    }
}

impl Buffer {
    /// Flushes the append buffers and returns what to fdatasync, if anything is pending.
    pub fn prepare_sync(&mut self) -> io::Result<Option<SyncTicket>> {
        let mut files = Vec::new();
        for log in &mut self.logs {
            if log.next_index > log.durable {
                if let Some(w) = log.writer.as_mut() {
                    w.flush()?;
                }
                if let Some(h) = &log.sync_handle {
                    files.push((log.lane, h.clone(), log.next_index));
                }
            }
        }
        if files.is_empty() {
            self.durable_total = self.appended_total;
            return Ok(None);
        }
        Ok(Some(SyncTicket {
            files,
            appended_total: self.appended_total,
        }))
    }

    /// Marks what a ticket synced as durable (readable by the uplink).
    pub fn complete_sync(&mut self, t: SyncTicket) {
        self.durable_total = self.durable_total.max(t.appended_total);
        for (lane, _, upto) in t.files {
            let log = &mut self.logs[lane as usize];
            log.durable = log.durable.max(upto.min(log.next_index));
        }
    }

    /// Appends pending records and syncs them now (tests, shutdown).
    pub fn sync_now(&mut self) -> io::Result<()> {
        if let Some(t) = self.prepare_sync()? {
            t.run()?;
            self.complete_sync(t);
        }
        Ok(())
    }

    /// Records appended but not yet durable.
    pub fn pending_sync(&self) -> u64 {
        self.logs.iter().map(|l| l.next_index - l.durable).sum()
    }
}

/// Group commit: every `flush_interval` (or sooner when kicked) fdatasync what is pending,
/// outside the buffer lock, then persist the acked cursor if it moved. Runs on its own
/// thread so an fsync never stalls the async runtime.
pub fn spawn_sync_thread(
    buffer: Arc<Mutex<Buffer>>,
    metrics: Arc<Metrics>,
    kicks: Receiver<()>,
    flush_interval: Duration,
    durable: Arc<Notify>,
    durable_total: watch::Sender<u64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("buffer-sync".into())
        .spawn(move || loop {
            let last = stop.load(Relaxed);
            match kicks.recv_timeout(flush_interval) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                // Ingest is gone (shutdown): keep the interval without a busy loop.
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(flush_interval),
            }
            let ticket = match buffer.lock() {
                Ok(mut b) => b.prepare_sync(),
                Err(_) => return,
            };
            match ticket {
                Ok(Some(t)) => match t.run() {
                    Ok(()) => {
                        if let Ok(mut b) = buffer.lock() {
                            b.complete_sync(t);
                        }
                        metrics.syncs.fetch_add(1, Relaxed);
                        durable.notify_one();
                    }
                    Err(e) => {
                        metrics.buffer_errors.fetch_add(1, Relaxed);
                        tracing::error!(error = %e, "fdatasync failed");
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    metrics.buffer_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, "buffer flush failed");
                }
            }
            if let Ok(b) = buffer.lock() {
                durable_total.send_if_modified(|v| {
                    let changed = *v != b.durable_total();
                    *v = b.durable_total();
                    changed
                });
            }
            let cursor = buffer.lock().ok().and_then(|b| b.cursor_to_persist());
            if let Some((dir, acked)) = cursor {
                match write_cursor(&dir, acked) {
                    Ok(()) => {
                        if let Ok(mut b) = buffer.lock() {
                            b.cursor_persisted(acked);
                        }
                    }
                    Err(e) => {
                        metrics.buffer_errors.fetch_add(1, Relaxed);
                        tracing::error!(error = %e, "cursor write failed");
                    }
                }
            }
            if last {
                return;
            }
        })
        .expect("spawn buffer-sync thread")
}
