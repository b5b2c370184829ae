//! One open Modbus line as a master: every request under a timeout (tokio-modbus has none),
//! the t3.5 silence after every frame on RTU, failures sorted into [`Failure`]s.

use super::line::{Line, RtuConfig, Transport};
use super::metrics::Failure;
use super::point::Table;
use super::tap::Tap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::Slave;
use tokio_serial::SerialPortBuilderExt;

/// A read's answer: registers or bits.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Words(Vec<u16>),
    Bits(Vec<bool>),
}

impl Answer {
    pub fn len(&self) -> usize {
        match self {
            Answer::Words(w) => w.len(),
            Answer::Bits(b) => b.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct Client {
    ctx: Context,
    /// Bytes read from the transport so far (see [`Tap`]).
    read: Arc<AtomicU64>,
    timeout: Duration,
    gap: Duration,
    /// RTU: a second handle on the port, to wait out and discard a late answer.
    port: Option<OwnedFd>,
    /// TCP: the device's address, to start a fresh connection after a late answer.
    tcp: Option<SocketAddr>,
}

async fn connect_tcp(
    addr: SocketAddr,
    timeout: Duration,
    read: &Arc<AtomicU64>,
) -> std::io::Result<Context> {
    let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    stream.set_nodelay(true)?;
    Ok(tokio_modbus::client::tcp::attach(Tap::new(
        stream,
        read.clone(),
    )))
}

/// A duplicate of the serial port's descriptor (the stream itself belongs to tokio-modbus).
fn dup_port(s: &tokio_serial::SerialStream) -> std::io::Result<OwnedFd> {
    // SAFETY: dup(2) on a descriptor the stream keeps open; the result is ours alone.
    let fd = unsafe { libc::dup(s.as_raw_fd()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Bytes waiting to be read on `fd` (0 if unknown).
fn pending(fd: &OwnedFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc < 0 {
        0
    } else {
        n
    }
}

fn open_serial(r: &RtuConfig) -> std::io::Result<tokio_serial::SerialStream> {
    crate::source::serial::port_builder(&r.path, r.baud, 8, r.parity, r.stop_bits)
        .open_native_async()
        .map_err(std::io::Error::other)
}

impl Client {
    /// Opens the port or connects (the connect under the line's timeout).
    pub async fn open(line: &Line) -> std::io::Result<Client> {
        let read = Arc::new(AtomicU64::new(0));
        let (mut port, mut tcp) = (None, None);
        let ctx = match &line.transport {
            Transport::Rtu(r) => {
                let stream = open_serial(r)?;
                port = Some(dup_port(&stream)?);
                tokio_modbus::client::rtu::attach(Tap::new(stream, read.clone()))
            }
            Transport::Tcp(addr) => {
                tcp = Some(*addr);
                connect_tcp(*addr, line.timeout, &read).await?
            }
        };
        Ok(Client {
            ctx,
            read,
            timeout: line.timeout,
            gap: line.frame_gap(),
            port,
            tcp,
        })
    }

    /// After a timeout or a garbled or foreign answer on RTU: the bus is not known to be quiet
    /// (a slow slave may still answer, tokio-modbus #180, and that late frame would be taken for
    /// the next slave's answer). Waits one timeout, discards whatever arrived, and again while
    /// bytes keep arriving (a few rounds at most), so the next request starts on a silent bus.
    /// On TCP the late answer would arrive on the same connection (and be taken for the next
    /// request's, whatever its transaction id): the connection is replaced; if that fails the
    /// line is lost ([`Failure::Io`]).
    async fn settle(&mut self) -> Result<(), Failure> {
        if let Some(addr) = self.tcp {
            self.ctx = connect_tcp(addr, self.timeout, &self.read)
                .await
                .map_err(|_| Failure::Io)?;
            return Ok(());
        }
        let Some(fd) = &self.port else { return Ok(()) };
        for _ in 0..4 {
            tokio::time::sleep(self.timeout).await;
            if pending(fd) == 0 {
                return Ok(());
            }
            // SAFETY: tcflush(3) on a descriptor we own.
            unsafe { libc::tcflush(fd.as_raw_fd(), libc::TCIFLUSH) };
        }
        Ok(())
    }

    /// One read of `count` items of `table` at `address` from `unit`.
    pub async fn read(
        &mut self,
        unit: u8,
        table: Table,
        address: u16,
        count: u16,
    ) -> Result<Answer, Failure> {
        self.ctx.set_slave(Slave(unit));
        let before = self.read.load(Relaxed);
        let ctx = &mut self.ctx;
        let words = |r: tokio_modbus::Result<Vec<u16>>| r.map(|r| r.map(Answer::Words));
        let bits = |r: tokio_modbus::Result<Vec<bool>>| r.map(|r| r.map(Answer::Bits));
        let call = async {
            match table {
                Table::Holding => words(ctx.read_holding_registers(address, count).await),
                Table::Input => words(ctx.read_input_registers(address, count).await),
                Table::Coil => bits(ctx.read_coils(address, count).await),
                Table::Discrete => bits(ctx.read_discrete_inputs(address, count).await),
            }
        };
        let outcome = tokio::time::timeout(self.timeout, call).await;
        if !self.gap.is_zero() {
            tokio::time::sleep(self.gap).await;
        }
        let result = match outcome {
            Err(_) if self.read.load(Relaxed) > before => Err(Failure::Garbled),
            Err(_) => Err(Failure::Timeout),
            Ok(Ok(Ok(a))) if a.len() != usize::from(count) => Err(Failure::Garbled),
            Ok(Ok(Ok(a))) => Ok(a),
            Ok(Ok(Err(code))) => Err(Failure::Exception(u8::from(code))),
            Ok(Err(tokio_modbus::Error::Protocol(_))) => Err(Failure::Mismatch),
            Ok(Err(tokio_modbus::Error::Transport(e)))
                if e.kind() == std::io::ErrorKind::InvalidData =>
            {
                Err(Failure::Garbled)
            }
            Ok(Err(tokio_modbus::Error::Transport(_))) => Err(Failure::Io),
        };
        if let Err(Failure::Timeout | Failure::Garbled | Failure::Mismatch) = result {
            self.settle().await?;
        }
        result
    }
}
