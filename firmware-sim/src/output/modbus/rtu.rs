//! The RTU server: a pseudo-terminal pair whose slave end the edge opens as its RS-485 port.
//! Requests are read from the master end; each answer is written after the request's and the
//! answer's wire time at the line's baud rate (11 bits a character) plus the t3.5 silence that
//! ends the request, so a poll costs what it would on a real 9600- or 115200-baud line. A frame with a bad CRC is resynchronized past
//! byte by byte, as a real slave's receiver would.

use super::device::Reply;
use super::frame::{parse_rtu_request, with_crc};
use super::Bus;
use anyhow::{bail, Context, Result};
use nix::sys::termios::{self, SetArg};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A running RTU line; its thread stops when the process does.
pub struct RtuLine {
    pub link: PathBuf,
    /// Our handle on the slave end, so the line never hangs up while the simulator runs.
    _slave: OwnedFd,
}

/// Wire time of `bytes` characters at `baud`, 11 bits each (8 data, parity or 2 stop, start).
pub fn wire_time(bytes: usize, baud: u32) -> Duration {
    Duration::from_secs_f64(bytes as f64 * 11.0 / f64::from(baud.max(1)))
}

impl RtuLine {
    pub fn start(link: &Path, baud: u32, bus: Bus) -> Result<RtuLine> {
        let pty = nix::pty::openpty(None, None).context("openpty")?;
        let mut t = termios::tcgetattr(&pty.slave).context("tcgetattr")?;
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(&pty.slave, SetArg::TCSANOW, &t).context("raw mode")?;
        let slave_path = nix::unistd::ttyname(&pty.slave).context("ttyname")?;
        match std::fs::symlink_metadata(link) {
            Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(link)?,
            Ok(_) => bail!("{} exists and is not a symlink", link.display()),
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&slave_path, link)
            .with_context(|| format!("symlinking {}", link.display()))?;
        let mut master = File::from(pty.master);
        std::thread::Builder::new()
            .name("modbus-rtu".into())
            .spawn(move || serve(&mut master, baud, &bus))?;
        Ok(RtuLine {
            link: link.to_path_buf(),
            _slave: pty.slave,
        })
    }
}

fn serve(master: &mut File, baud: u32, bus: &Bus) {
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut chunk = [0u8; 256];
    loop {
        let n = match master.read(&mut chunk) {
            Ok(0) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Ok(n) => n,
            // EIO while no one has the slave end open: wait for the edge.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 8 {
            let Some(req) = parse_rtu_request(&buf) else {
                buf.remove(0);
                continue;
            };
            buf.drain(..8);
            let Some(reply) = bus.answer(req) else {
                continue;
            };
            let frame = rtu_frame(req.unit, &reply);
            // The request's wire time, the t3.5 silence that ends it, the answer's wire time.
            let t35 = edge::source::modbus::line::t35(baud);
            std::thread::sleep(wire_time(8 + frame.len(), baud) + t35 + reply.delay);
            if master.write_all(&frame).is_ok() {
                bus.delivered(req.unit, &reply);
            }
        }
    }
}

/// The RTU frame of `reply` from `unit`: address, PDU, CRC (spoiled if the reply is corrupt).
fn rtu_frame(unit: u8, reply: &Reply) -> Vec<u8> {
    let mut body = vec![unit];
    body.extend_from_slice(&reply.pdu);
    let mut frame = with_crc(body);
    if reply.corrupt {
        let last = frame.len() - 1;
        frame[last] ^= 0x5A;
    }
    frame
}
