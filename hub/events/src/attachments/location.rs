//! Where a photo was taken, removed before it is stored (unless the operator keeps it:
//! `[events.attachments] keep_location = true`).
//!
//! JPEG: the GPS IFD inside the EXIF APP1 segment is blanked in place (its entries and the
//! values they point to are zeroed and IFD0's pointer to it removed), so the rest of EXIF —
//! orientation, capture time — survives and the file keeps its length; XMP packets that carry
//! `GPS` are dropped; an EXIF block too malformed to walk is dropped whole (nothing can be said
//! about what it holds). PNG: `eXIf` chunks and XMP text chunks are dropped. WebP: `EXIF` and
//! `XMP ` chunks are dropped and the VP8X flags updated. The image data itself is copied byte
//! for byte, so the photo decodes exactly as before.
//!
//! Every offset in the input is untrusted: reads are bounds-checked and a file that does not
//! hold together is refused with the byte where it broke, never a panic.

use super::sniff::ImageType;

/// A photo with its location removed, and whether there was one to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripped {
    pub bytes: Vec<u8>,
    pub removed: bool,
}

/// `bytes` (a photo of type `kind`) without the metadata that says where it was taken; Err
/// names what is wrong with a file that is not a well-formed image of its type.
pub fn strip(kind: ImageType, bytes: &[u8]) -> Result<Stripped, String> {
    match kind {
        ImageType::Jpeg => strip_jpeg(bytes),
        ImageType::Png => strip_png(bytes),
        ImageType::WebP => strip_webp(bytes),
    }
}

const EXIF_HEADER: &[u8] = b"Exif\0\0";
const XMP_PREFIX: &[u8] = b"http://ns.adobe.com/";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn strip_jpeg(b: &[u8]) -> Result<Stripped, String> {
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..2]);
    let mut removed = false;
    let mut i = 2;
    loop {
        if b.get(i) != Some(&0xFF) {
            return Err(format!(
                "not a well-formed JPEG: no segment marker at byte {i}"
            ));
        }
        // Any number of 0xFF fill bytes may precede a marker.
        let mut m = i;
        while b.get(m) == Some(&0xFF) {
            m += 1;
        }
        let Some(&marker) = b.get(m) else {
            return Err(format!("not a well-formed JPEG: ends at byte {m}"));
        };
        // SOS (the image data follows, copied as is) or EOI: the rest is not metadata.
        if marker == 0xDA || marker == 0xD9 {
            out.extend_from_slice(&b[m - 1..]);
            return Ok(Stripped {
                bytes: out,
                removed,
            });
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            out.extend_from_slice(&[0xFF, marker]);
            i = m + 1;
            continue;
        }
        let len = match (b.get(m + 1), b.get(m + 2)) {
            (Some(&hi), Some(&lo)) => usize::from(u16::from_be_bytes([hi, lo])),
            _ => {
                return Err(format!(
                    "not a well-formed JPEG: segment at byte {i} is cut"
                ))
            }
        };
        let next = m + 1 + len;
        if len < 2 || next > b.len() {
            return Err(format!(
                "not a well-formed JPEG: segment at byte {i} runs past the end of the file"
            ));
        }
        let segment = &b[m - 1..next];
        let payload = &b[m + 3..next];
        if marker == 0xE1 && payload.starts_with(EXIF_HEADER) {
            let mut tiff = payload[EXIF_HEADER.len()..].to_vec();
            match blank_gps(&mut tiff) {
                Some(false) => out.extend_from_slice(segment),
                Some(true) => {
                    removed = true;
                    out.extend_from_slice(&segment[..4 + EXIF_HEADER.len()]);
                    out.extend_from_slice(&tiff);
                }
                // Unreadable EXIF: dropped whole, since what it holds cannot be known.
                None => removed = true,
            }
        } else if marker == 0xE1 && payload.starts_with(XMP_PREFIX) && contains(payload, b"GPS") {
            removed = true;
        } else {
            out.extend_from_slice(segment);
        }
        i = next;
    }
}

/// Bounds-checked reads of a TIFF block in its byte order.
struct Tiff<'a> {
    b: &'a [u8],
    le: bool,
}

impl Tiff<'_> {
    fn u16(&self, at: usize) -> Option<u16> {
        let s: [u8; 2] = self.b.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.le {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        })
    }
    fn u32(&self, at: usize) -> Option<usize> {
        let s: [u8; 4] = self.b.get(at..at.checked_add(4)?)?.try_into().ok()?;
        let v = if self.le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        };
        usize::try_from(v).ok()
    }
}

/// The GPSInfo tag of IFD0.
const GPS_IFD_TAG: u16 = 0x8825;

/// Bytes per value of a TIFF field type.
fn type_size(t: u16) -> usize {
    match t {
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 => 8,
        _ => 1,
    }
}

fn zero(b: &mut [u8], from: usize, len: usize) {
    let to = from.saturating_add(len).min(b.len());
    if let Some(s) = b.get_mut(from.min(to)..to) {
        s.fill(0);
    }
}

/// Blanks the GPS IFD of a TIFF block in place: Some(true) if there was one, Some(false) if
/// not, None if the block cannot be walked.
fn blank_gps(tiff: &mut [u8]) -> Option<bool> {
    let le = match tiff.get(..4)? {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let (ifd0, n, gps, k) = {
        let t = Tiff { b: tiff, le };
        let ifd0 = t.u32(4)?;
        let n = usize::from(t.u16(ifd0)?);
        let entries = ifd0 + 2;
        if entries + 12 * n > tiff.len() {
            return None;
        }
        let Some(k) = (0..n).find(|k| t.u16(entries + 12 * k) == Some(GPS_IFD_TAG)) else {
            return Some(false);
        };
        (ifd0, n, t.u32(entries + 12 * k + 8)?, k)
    };
    // The GPS IFD's out-of-line values, then its entries, then its count.
    let fields: Vec<(usize, usize)> = {
        let t = Tiff { b: tiff, le };
        let m = usize::from(t.u16(gps).unwrap_or(0));
        (0..m)
            .filter_map(|e| {
                let at = gps + 2 + 12 * e;
                let size = type_size(t.u16(at + 2)?).checked_mul(t.u32(at + 4)?)?;
                Some((at, size))
            })
            .collect()
    };
    for &(at, size) in &fields {
        if size > 4 {
            let offset = Tiff { b: tiff, le }.u32(at + 8).unwrap_or(usize::MAX);
            zero(tiff, offset, size);
        }
        zero(tiff, at, 12);
    }
    zero(tiff, gps, 2);
    // IFD0 without its GPS pointer: later entries and the next-IFD offset move up one entry.
    let entries = ifd0 + 2;
    let tail_end = (entries + 12 * n + 4).min(tiff.len());
    tiff.copy_within(entries + 12 * (k + 1)..tail_end, entries + 12 * k);
    zero(tiff, tail_end - 12, 12);
    let count = u16::try_from(n - 1).ok()?;
    let count = if le {
        count.to_le_bytes()
    } else {
        count.to_be_bytes()
    };
    tiff.get_mut(ifd0..ifd0 + 2)?.copy_from_slice(&count);
    Some(true)
}

const PNG_SIGNATURE_LEN: usize = 8;

fn strip_png(b: &[u8]) -> Result<Stripped, String> {
    let mut out = b[..PNG_SIGNATURE_LEN].to_vec();
    let mut removed = false;
    let mut i = PNG_SIGNATURE_LEN;
    while i < b.len() {
        let head = b
            .get(i..i + 8)
            .ok_or_else(|| format!("not a well-formed PNG: chunk at byte {i} is cut"))?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        let end = i
            .checked_add(12)
            .and_then(|e| e.checked_add(len))
            .filter(|e| *e <= b.len())
            .ok_or_else(|| {
                format!("not a well-formed PNG: chunk at byte {i} runs past the end of the file")
            })?;
        let data = &b[i + 8..i + 8 + len];
        let xmp = matches!(kind, b"iTXt" | b"tEXt" | b"zTXt")
            && (data.starts_with(b"XML:com.adobe.xmp") || data.starts_with(b"Raw profile type"));
        if kind == b"eXIf" || xmp {
            removed = true;
        } else {
            out.extend_from_slice(&b[i..end]);
        }
        i = end;
        if kind == b"IEND" {
            out.extend_from_slice(&b[i..]);
            break;
        }
    }
    Ok(Stripped {
        bytes: out,
        removed,
    })
}

/// VP8X flag bits of the metadata chunks.
const VP8X_EXIF: u8 = 0x08;
const VP8X_XMP: u8 = 0x04;

fn strip_webp(b: &[u8]) -> Result<Stripped, String> {
    let mut out = b[..12].to_vec();
    let mut removed = false;
    let mut vp8x_flags_at = None;
    let mut i = 12;
    while i < b.len() {
        let head = b
            .get(i..i + 8)
            .ok_or_else(|| format!("not a well-formed WebP: chunk at byte {i} is cut"))?;
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let end = (i + 8)
            .checked_add(len + (len & 1))
            .filter(|e| *e <= b.len())
            .ok_or_else(|| {
                format!("not a well-formed WebP: chunk at byte {i} runs past the end of the file")
            })?;
        match &head[..4] {
            b"EXIF" | b"XMP " => removed = true,
            fourcc => {
                if fourcc == b"VP8X" {
                    vp8x_flags_at = Some(out.len() + 8);
                }
                out.extend_from_slice(&b[i..end]);
            }
        }
        i = end;
    }
    if removed {
        if let Some(flags) = vp8x_flags_at.and_then(|at| out.get_mut(at)) {
            *flags &= !(VP8X_EXIF | VP8X_XMP);
        }
        let riff = u32::try_from(out.len() - 8).map_err(|_| "WebP too large".to_string())?;
        out[4..8].copy_from_slice(&riff.to_le_bytes());
    }
    Ok(Stripped {
        bytes: out,
        removed,
    })
}
