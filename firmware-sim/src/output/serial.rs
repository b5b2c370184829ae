//! A serial line: a device we were given, or a pseudo-terminal pair we create, written at the
//! byte budget of its baud rate (8N1: baud / 10 bytes per second).
//!
//! Writes go through a bounded transmit queue (`queue_bytes_max`) to a writer thread that paces
//! them. Like a UART's FIFO, a full queue refuses the transmission: the engine counts it as
//! dropped and it is not in the summary's sent figures. A created pty keeps its slave end open
//! here too, so bytes wait in the tty buffer until the reader (the edge, a test) opens the link,
//! and the reader never sees a hangup while the simulator runs.

use anyhow::{bail, Context, Result};
use nix::sys::termios::{self, BaudRate, SetArg};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One open serial line.
pub struct SerialLine {
    /// `A` or `B`.
    pub name: &'static str,
    /// The device written to (for a created pty, the slave the reader opens).
    pub path: String,
    /// The symlink made for a created pty.
    pub link: Option<PathBuf>,
    pub baud: u32,
    /// Bytes accepted but not yet written.
    queued: Arc<AtomicUsize>,
    queue_bytes_max: usize,
    tx: Option<mpsc::Sender<Vec<u8>>>,
    /// Hands the device back when done, so a pty's master stays open until the reader has all.
    writer: Option<JoinHandle<(File, std::io::Result<()>)>>,
    /// Our own handle on a created pty's slave end.
    pty_slave: Option<OwnedFd>,
}

/// What was left when a line was closed.
pub struct LineEnd {
    /// Bytes accepted that never reached the device (the reader stopped reading).
    pub unsent_bytes: u64,
}

fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        1200 => BaudRate::B1200,
        2400 => BaudRate::B2400,
        4800 => BaudRate::B4800,
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115200 => BaudRate::B115200,
        230400 => BaudRate::B230400,
        460800 => BaudRate::B460800,
        921600 => BaudRate::B921600,
        _ => return None,
    })
}

/// Raw 8N1 at `baud` (where the rate is a standard one): no echo, no line editing, no CR/NL mapping.
fn make_raw(fd: impl AsFd + Copy, baud: u32) -> nix::Result<()> {
    let mut t = termios::tcgetattr(fd)?;
    termios::cfmakeraw(&mut t);
    if let Some(b) = baud_rate(baud) {
        termios::cfsetspeed(&mut t, b)?;
    }
    termios::tcsetattr(fd, SetArg::TCSANOW, &t)
}

impl SerialLine {
    /// Creates a pseudo-terminal pair in raw mode and symlinks `link` to its slave end.
    pub fn create_pty(
        name: &'static str,
        link: &Path,
        baud: u32,
        queue_bytes_max: usize,
    ) -> Result<SerialLine> {
        let pty = nix::pty::openpty(None, None).context("openpty")?;
        make_raw(&pty.slave, baud).context("setting the pty to raw mode")?;
        let slave_path = nix::unistd::ttyname(&pty.slave).context("ttyname of the pty slave")?;
        match std::fs::symlink_metadata(link) {
            Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(link)
                .with_context(|| format!("replacing the old link {}", link.display()))?,
            Ok(_) => bail!(
                "{} exists and is not a symlink: not replacing it",
                link.display()
            ),
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&slave_path, link).with_context(|| {
            format!("symlinking {} to {}", link.display(), slave_path.display())
        })?;
        let master = File::from(pty.master);
        let mut line = SerialLine::start(
            name,
            slave_path.display().to_string(),
            baud,
            master,
            queue_bytes_max,
        );
        line.link = Some(link.to_path_buf());
        line.pty_slave = Some(pty.slave);
        Ok(line)
    }

    /// Opens an existing device (or any writable file) for writing; a tty is set to raw 8N1 at `baud`.
    pub fn open_device(
        name: &'static str,
        path: &Path,
        baud: u32,
        queue_bytes_max: usize,
    ) -> Result<SerialLine> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(!path.exists())
            .truncate(false)
            .custom_flags(libc::O_NOCTTY)
            .open(path)
            .with_context(|| format!("opening serial line {name} at {}", path.display()))?;
        if nix::unistd::isatty(file.as_raw_fd()).unwrap_or(false) {
            make_raw(&file, baud)
                .with_context(|| format!("setting {} to raw {baud} 8N1", path.display()))?;
        }
        Ok(SerialLine::start(
            name,
            path.display().to_string(),
            baud,
            file,
            queue_bytes_max,
        ))
    }

    fn start(
        name: &'static str,
        path: String,
        baud: u32,
        mut file: File,
        queue_bytes_max: usize,
    ) -> SerialLine {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        let secs_per_byte = 10.0 / baud as f64;
        let writer = std::thread::Builder::new()
            .name(format!("serial-{name}"))
            .spawn(move || {
                let mut next = Instant::now();
                let mut write = || {
                    while let Ok(chunk) = rx.recv() {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        } else {
                            next = now;
                        }
                        file.write_all(&chunk)?;
                        next += Duration::from_secs_f64(chunk.len() as f64 * secs_per_byte);
                        q.fetch_sub(chunk.len(), Ordering::AcqRel);
                    }
                    file.flush()
                };
                let result = write();
                (file, result)
            })
            .expect("spawning a thread");
        SerialLine {
            name,
            path,
            link: None,
            baud,
            queued,
            queue_bytes_max,
            tx: Some(tx),
            writer: Some(writer),
            pty_slave: None,
        }
    }

    /// Queues one transmission; `false` (and nothing queued) when the transmit queue is full.
    pub fn try_send(&self, bytes: Vec<u8>) -> bool {
        let len = bytes.len();
        if self.queued.load(Ordering::Acquire) + len > self.queue_bytes_max {
            return false;
        }
        self.queued.fetch_add(len, Ordering::AcqRel);
        match &self.tx {
            Some(tx) if tx.send(bytes).is_ok() => true,
            _ => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                false
            }
        }
    }

    /// Writes out what is queued (waiting at most `timeout`), waits for a pty reader to take the
    /// bytes, then closes the line and removes the link.
    pub fn finish(mut self, timeout: Duration) -> LineEnd {
        let deadline = Instant::now() + timeout;
        drop(self.tx.take());
        // Held until the end of this function: closing a pty master discards what it holds.
        let mut _device = None;
        if let Some(w) = self.writer.take() {
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if w.is_finished() {
                if let Ok((file, result)) = w.join() {
                    if let Err(e) = result {
                        tracing::warn!(line = self.name, "serial write failed: {e}");
                    }
                    _device = Some(file);
                }
            }
        }
        if let Some(slave) = &self.pty_slave {
            // Bytes still in the tty would be lost when the master closes. FIONREAD does not see
            // bytes the kernel has yet to move from the pty's flip buffer to the line discipline,
            // so the queue must stay empty for a while, not just once.
            let mut empty_since: Option<Instant> = None;
            while Instant::now() < deadline {
                if unread_bytes(slave) > 0 {
                    empty_since = None;
                } else if empty_since.get_or_insert_with(Instant::now).elapsed()
                    >= Duration::from_millis(150)
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let unsent = self.queued.load(Ordering::Acquire) as u64
            + self
                .pty_slave
                .as_ref()
                .map_or(0, |s| unread_bytes(s) as u64);
        if unsent > 0 {
            tracing::warn!(line = self.name, unsent, "bytes not taken by any reader");
        }
        if let Some(link) = &self.link {
            // Only our own link: it still points at our pty.
            if std::fs::read_link(link).is_ok_and(|p| p.display().to_string() == self.path) {
                let _ = std::fs::remove_file(link);
            }
        }
        LineEnd {
            unsent_bytes: unsent,
        }
    }
}

/// Bytes waiting in a tty's input queue (FIONREAD).
fn unread_bytes(fd: &OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which lives for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n as *mut libc::c_int) };
    if r < 0 {
        0
    } else {
        n as usize
    }
}
