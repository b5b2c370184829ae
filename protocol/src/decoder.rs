//! Pulls sensor frames out of a serial byte stream.

use crate::frame::{SensorFrame, FRAME_VERSION, MAX_ENCODED_FRAME_BYTES};
use crate::{cobs, CRC32};
use core::fmt;

/// Why bytes between two delimiters were not a frame. Each is counted in [`DecodeStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// More bytes than the decoder's buffer before a delimiter; discarded up to the next 0x00.
    TooLong,
    /// Not valid COBS (a code byte pointing past the end).
    Cobs,
    /// Decoded to fewer bytes than version + CRC.
    TooShort,
    /// The version byte is not one this decoder speaks.
    UnknownVersion(u8),
    /// The CRC-32 does not match.
    Crc,
    /// The CRC matched but the postcard body is not a valid frame.
    Malformed,
}

impl FrameError {
    /// A stable, metric-friendly name for the reason.
    pub const fn reason(self) -> &'static str {
        match self {
            FrameError::TooLong => "too_long",
            FrameError::Cobs => "cobs",
            FrameError::TooShort => "too_short",
            FrameError::UnknownVersion(_) => "unknown_version",
            FrameError::Crc => "crc",
            FrameError::Malformed => "malformed",
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::UnknownVersion(v) => write!(f, "unknown frame version {v}"),
            other => f.write_str(other.reason()),
        }
    }
}

/// Counts of what the decoder saw. Every byte run between delimiters lands in exactly one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub frames: u64,
    pub too_long: u64,
    pub cobs: u64,
    pub too_short: u64,
    pub unknown_version: u64,
    pub crc: u64,
    pub malformed: u64,
}

impl DecodeStats {
    /// All rejected frames, whatever the reason.
    pub fn rejected(&self) -> u64 {
        self.by_reason().iter().map(|&(_, n)| n).sum()
    }

    /// (reason, count) pairs, for metrics: one per [`FrameError`], named by its
    /// [`FrameError::reason`].
    pub fn by_reason(&self) -> [(&'static str, u64); 6] {
        [
            (FrameError::TooLong.reason(), self.too_long),
            (FrameError::Cobs.reason(), self.cobs),
            (FrameError::TooShort.reason(), self.too_short),
            (FrameError::UnknownVersion(0).reason(), self.unknown_version),
            (FrameError::Crc.reason(), self.crc),
            (FrameError::Malformed.reason(), self.malformed),
        ]
    }
}

/// A streaming frame decoder with a fixed buffer of `N` bytes; it never allocates.
///
/// Bytes accumulate until a 0x00 delimiter; then the run is COBS-decoded in place, its version
/// and CRC checked and its body decoded. Any failure is reported and counted, and decoding
/// resumes at the next byte, so garbage costs at most the frame it overlaps.
pub struct FrameDecoder<const N: usize = MAX_ENCODED_FRAME_BYTES> {
    buf: [u8; N],
    len: usize,
    /// Set when a run overflowed `buf`; bytes are skipped until the next delimiter.
    overflowed: bool,
    stats: DecodeStats,
}

impl<const N: usize> Default for FrameDecoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameDecoder<N> {
    pub const fn new() -> Self {
        FrameDecoder {
            buf: [0; N],
            len: 0,
            overflowed: false,
            stats: DecodeStats {
                frames: 0,
                too_long: 0,
                cobs: 0,
                too_short: 0,
                unknown_version: 0,
                crc: 0,
                malformed: 0,
            },
        }
    }

    /// What has been decoded and rejected so far.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Bytes waiting for their delimiter.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Feeds one byte; returns a frame or an error when the byte completes a run.
    pub fn push(&mut self, byte: u8) -> Option<Result<SensorFrame<'_>, FrameError>> {
        if byte != 0 {
            if self.overflowed {
                return None;
            }
            if self.len == N {
                self.overflowed = true;
                self.len = 0;
                return None;
            }
            self.buf[self.len] = byte;
            self.len += 1;
            return None;
        }
        if self.overflowed {
            self.overflowed = false;
            self.stats.too_long += 1;
            return Some(Err(FrameError::TooLong));
        }
        let run = core::mem::take(&mut self.len);
        if run == 0 {
            // Back-to-back delimiters are idle line, not an error.
            return None;
        }
        let body = match self.check(run) {
            Ok(body) => body,
            Err(e) => return Some(Err(e)),
        };
        match postcard::take_from_bytes::<SensorFrame<'_>>(&self.buf[1..1 + body]) {
            Ok((frame, [])) => {
                self.stats.frames += 1;
                Some(Ok(frame))
            }
            _ => {
                self.stats.malformed += 1;
                Some(Err(FrameError::Malformed))
            }
        }
    }

    /// Feeds a chunk of bytes, calling `on_frame` for each completed run.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        mut on_frame: impl FnMut(Result<SensorFrame<'_>, FrameError>),
    ) {
        for &b in bytes {
            if let Some(r) = self.push(b) {
                on_frame(r);
            }
        }
    }

    /// COBS-decodes `buf[..run]` and checks version and CRC; returns the body length.
    fn check(&mut self, run: usize) -> Result<usize, FrameError> {
        let err = match cobs::decode_in_place(&mut self.buf[..run]) {
            Err(_) => FrameError::Cobs,
            Ok(n) if n < 1 + 4 + 1 => FrameError::TooShort,
            Ok(n) => {
                let (data, crc) = self.buf[..n].split_at(n - 4);
                let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
                // CRC first: line noise is a CRC error; a well-formed frame of a newer
                // format (same CRC) is an unknown version.
                if CRC32.checksum(data) != want {
                    FrameError::Crc
                } else if data[0] != FRAME_VERSION {
                    FrameError::UnknownVersion(data[0])
                } else {
                    return Ok(n - 4 - 1);
                }
            }
        };
        match err {
            FrameError::Cobs => self.stats.cobs += 1,
            FrameError::TooShort => self.stats.too_short += 1,
            FrameError::UnknownVersion(_) => self.stats.unknown_version += 1,
            FrameError::Crc => self.stats.crc += 1,
            FrameError::TooLong => self.stats.too_long += 1,
            FrameError::Malformed => self.stats.malformed += 1,
        }
        Err(err)
    }
}
