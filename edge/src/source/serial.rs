//! Reads one serial line: binary frames (COBS + CRC + postcard) or text lines. A port that
//! disappears (USB unplugged, pty closed) is reopened with backoff and reported, not fatal.

use super::text::{Line, LineSplitter};
use super::Backoff;
use crate::config::{Parity, SerialFormat, SerialSource};
use crate::ingest::Ingest;
use protocol::FrameDecoder;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio_serial::{DataBits, SerialPortBuilderExt, SerialStream, StopBits};

/// How long a silent line waits before its port is probed for a hang-up.
const IDLE_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// True if the device reports a hang-up or error (POLLHUP / POLLERR / POLLNVAL).
fn hung_up(port: &SerialStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut fds = libc::pollfd {
        fd: port.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let rc = unsafe { libc::poll(&mut fds, 1, 0) };
    rc > 0 && fds.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// A port builder with its line settings: data bits (5-8), parity, stop bits (1 or 2).
pub fn port_builder(
    path: &std::path::Path,
    baud: u32,
    data_bits: u8,
    parity: Parity,
    stop_bits: u8,
) -> tokio_serial::SerialPortBuilder {
    let data_bits = match data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let parity = match parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Odd => tokio_serial::Parity::Odd,
        Parity::Even => tokio_serial::Parity::Even,
    };
    let stop_bits = if stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    tokio_serial::new(path.to_string_lossy(), baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
}

/// Opens the port with its configured line settings.
pub fn open(src: &SerialSource) -> Result<SerialStream, tokio_serial::Error> {
    port_builder(
        &src.path,
        src.baud,
        src.data_bits,
        src.parity,
        src.stop_bits,
    )
    .timeout(Duration::from_millis(100))
    .open_native_async()
}

/// Runs forever: open, read, decode; reopen with backoff when the port goes away.
pub async fn run(src: SerialSource, ingest: Arc<Ingest>) {
    let metrics = ingest.metrics.source(&src.name, "serial");
    let mut backoff = Backoff::new(
        Duration::from_millis(100),
        Duration::from_millis(src.reopen_backoff_max_ms),
    );
    let mut reported_missing = false;
    loop {
        let mut port = match open(&src) {
            Ok(p) => p,
            Err(e) => {
                if !reported_missing {
                    tracing::warn!(port = %src.name, path = %src.path.display(), error = %e, "serial port unavailable; retrying");
                    reported_missing = true;
                }
                metrics.up.store(false, Relaxed);
                metrics.reconnects.fetch_add(1, Relaxed);
                tokio::time::sleep(backoff.step()).await;
                continue;
            }
        };
        tracing::info!(port = %src.name, path = %src.path.display(), "serial port open");
        reported_missing = false;
        backoff.reset();
        metrics.up.store(true, Relaxed);
        let mut frames: FrameDecoder = FrameDecoder::new();
        let mut lines = LineSplitter::default();
        let mut buf = vec![0u8; 4096];
        loop {
            let read = tokio::time::timeout(IDLE_PROBE_INTERVAL, port.read(&mut buf)).await;
            let n = match read {
                // Quiet line: make sure it is still there (a closed pty or an unplugged
                // adapter shows as a hang-up that an async read may never wake up for).
                Err(_) => {
                    if hung_up(&port) {
                        tracing::warn!(port = %src.name, "serial port hung up");
                        break;
                    }
                    continue;
                }
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => n,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Ok(Err(e)) => {
                    tracing::warn!(port = %src.name, error = %e, "serial port lost");
                    break;
                }
            };
            match src.format {
                SerialFormat::Binary => frames.feed(&buf[..n], |f| match f {
                    Ok(frame) => ingest.frame(&metrics, &frame),
                    Err(e) => {
                        metrics.messages.fetch_add(1, Relaxed);
                        ingest.metrics.reject(e.reason(), &src.name)
                    }
                }),
                SerialFormat::Text => lines.feed(&buf[..n], |l| match l {
                    Line::Text(t) => ingest.text_line(&metrics, t),
                    Line::TooLong => ingest.metrics.reject("too_long", &src.name),
                    Line::NotUtf8 => ingest.metrics.reject("not_utf8", &src.name),
                }),
            }
        }
        metrics.up.store(false, Relaxed);
        metrics.reconnects.fetch_add(1, Relaxed);
        tokio::time::sleep(backoff.step()).await;
    }
}
