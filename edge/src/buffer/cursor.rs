//! The acked-cursor file (both lanes' cursors, CRC-checked) and the epoch file, written
//! atomically.

use super::Buffer;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub(super) const CURSOR_FILE: &str = "cursor";
pub(super) const EPOCH_FILE: &str = "epoch";

impl Buffer {
    /// The acked cursors if they moved since the last persist; write them with
    /// [`write_cursor`] outside the lock, then call [`Buffer::cursor_persisted`].
    pub fn cursor_to_persist(&self) -> Option<(PathBuf, [u64; 2])> {
        let acked = [self.logs[0].acked, self.logs[1].acked];
        (acked != self.persisted_acked).then(|| (self.dir.clone(), acked))
    }

    pub fn cursor_persisted(&mut self, acked: [u64; 2]) {
        self.persisted_acked = acked;
    }

    /// Persists the acked cursors now if they moved (tests, shutdown).
    pub fn persist_cursor(&mut self) -> io::Result<()> {
        if let Some((dir, acked)) = self.cursor_to_persist() {
            write_cursor(&dir, acked)?;
            self.cursor_persisted(acked);
        }
        Ok(())
    }
}

/// Writes the acked cursors (atomic rename; two fsyncs). Safe to call without the lock.
pub fn write_cursor(dir: &Path, acked: [u64; 2]) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(20);
    bytes.extend_from_slice(&acked[0].to_le_bytes());
    bytes.extend_from_slice(&acked[1].to_le_bytes());
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    write_atomically(dir, CURSOR_FILE, &bytes)
}

pub(super) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

pub(super) fn read_u64_file(path: &Path) -> io::Result<Option<u64>> {
    match std::fs::read(path) {
        Ok(b) if b.len() >= 8 => Ok(Some(u64::from_le_bytes(
            b[..8].try_into().expect("8 bytes"),
        ))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The acked cursors; a missing or corrupt file means nothing acked (resend, hub dedups).
pub(super) fn read_cursor(path: &Path) -> io::Result<[u64; 2]> {
    match std::fs::read(path) {
        Ok(b) if b.len() == 20 => {
            let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&b[..16]);
            if crc.to_le_bytes() != b[16..20] {
                return Ok([0, 0]);
            }
            Ok([
                u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
            ])
        }
        Ok(_) => Ok([0, 0]),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok([0, 0]),
        Err(e) => Err(e),
    }
}
