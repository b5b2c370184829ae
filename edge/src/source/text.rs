//! Splits a serial byte stream into text lines, bounded.

/// Longest line kept; longer ones are dropped up to the next newline and counted.
pub const LINE_BYTES_MAX: usize = 512;

#[derive(Debug, PartialEq)]
pub enum Line<'a> {
    Text(&'a str),
    TooLong,
    NotUtf8,
}

#[derive(Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    overflowed: bool,
}

impl LineSplitter {
    /// Feeds bytes; calls `on_line` for each complete line (CR/LF trimmed, empty skipped).
    pub fn feed(&mut self, bytes: &[u8], mut on_line: impl FnMut(Line<'_>)) {
        for &b in bytes {
            if b == b'\n' {
                if self.overflowed {
                    on_line(Line::TooLong);
                } else {
                    let mut s = &self.buf[..];
                    while let Some((&last, rest)) = s.split_last() {
                        if last == b'\r' {
                            s = rest;
                        } else {
                            break;
                        }
                    }
                    if !s.is_empty() {
                        match std::str::from_utf8(s) {
                            Ok(t) => on_line(Line::Text(t)),
                            Err(_) => on_line(Line::NotUtf8),
                        }
                    }
                }
                self.buf.clear();
                self.overflowed = false;
            } else if self.buf.len() >= LINE_BYTES_MAX {
                self.overflowed = true;
                self.buf.clear();
            } else if !self.overflowed {
                self.buf.push(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_reads_and_garbage_is_counted() {
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        s.feed(b"id=A seq=1 ti", |l| got.push(format!("{l:?}")));
        s.feed(b"lt=1\r\n\r\n", |l| got.push(format!("{l:?}")));
        s.feed(&[0xff, 0xfe, b'\n'], |l| got.push(format!("{l:?}")));
        s.feed(&vec![b'x'; 2000], |l| got.push(format!("{l:?}")));
        s.feed(b"\nid=B\n", |l| got.push(format!("{l:?}")));
        assert_eq!(
            got,
            vec![
                "Text(\"id=A seq=1 tilt=1\")",
                "NotUtf8",
                "TooLong",
                "Text(\"id=B\")"
            ]
        );
    }
}
