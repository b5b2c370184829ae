//! One open Modbus line as a master: every request under a timeout (tokio-modbus has none),
//! the t3.5 silence after every frame on RTU, failures sorted into [`Failure`]s.

use super::line::{Line, RtuConfig, Transport};
use super::metrics::Failure;
use super::point::Table;
use super::tap::Tap;
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
        let ctx = match &line.transport {
            Transport::Rtu(r) => {
                tokio_modbus::client::rtu::attach(Tap::new(open_serial(r)?, read.clone()))
            }
            Transport::Tcp(addr) => {
                let stream =
                    tokio::time::timeout(line.timeout, tokio::net::TcpStream::connect(addr))
                        .await
                        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                stream.set_nodelay(true)?;
                tokio_modbus::client::tcp::attach(Tap::new(stream, read.clone()))
            }
        };
        Ok(Client {
            ctx,
            read,
            timeout: line.timeout,
            gap: line.frame_gap(),
        })
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
        match outcome {
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
        }
    }
}
