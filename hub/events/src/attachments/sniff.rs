//! What an uploaded file is, from its first bytes (never from its name or the client's
//! Content-Type): JPEG, PNG and WebP are photos; everything else is named as well as the magic
//! bytes allow, so a refusal can say what was sent.

/// The photo formats an attachment may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Jpeg,
    Png,
    WebP,
}

impl ImageType {
    /// The media type served back (`Content-Type`) and stored.
    pub const fn mime(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
            ImageType::WebP => "image/webp",
        }
    }

    /// The file extension of the served file name.
    pub const fn extension(self) -> &'static str {
        match self {
            ImageType::Jpeg => "jpg",
            ImageType::Png => "png",
            ImageType::WebP => "webp",
        }
    }

    /// The stored media type read back; None for anything this build does not serve.
    pub fn from_mime(mime: &str) -> Option<ImageType> {
        [ImageType::Jpeg, ImageType::Png, ImageType::WebP]
            .into_iter()
            .find(|t| t.mime() == mime)
    }
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The photo type of `bytes`, or `Err(detected)`: the media type the magic bytes suggest
/// (`application/pdf`, `image/gif`, …, `application/octet-stream` when nothing matches).
pub fn detect(bytes: &[u8]) -> Result<ImageType, &'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(ImageType::Jpeg);
    }
    if bytes.starts_with(PNG_MAGIC) {
        return Ok(ImageType::Png);
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Ok(ImageType::WebP);
    }
    Err(other(bytes))
}

/// The media type of a file that is not a photo we accept, as far as its first bytes tell.
fn other(bytes: &[u8]) -> &'static str {
    let starts = |m: &[u8]| bytes.starts_with(m);
    let text = std::str::from_utf8(&bytes[..bytes.len().min(256)]).unwrap_or("");
    let trimmed = text.trim_start().to_ascii_lowercase();
    if bytes.is_empty() {
        "an empty file"
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        "image/gif"
    } else if starts(b"%PDF-") {
        "application/pdf"
    } else if starts(b"BM") {
        "image/bmp"
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        "image/tiff"
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        match &bytes[8..12] {
            b"heic" | b"heix" | b"mif1" | b"msf1" => "image/heic",
            b"avif" => "image/avif",
            _ => "video/mp4",
        }
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" {
        "a RIFF file that is not WebP"
    } else if starts(b"PK\x03\x04") {
        "application/zip"
    } else if starts(b"\x7fELF") || starts(b"MZ") {
        "an executable"
    } else if trimmed.starts_with("<svg") || (trimmed.starts_with("<?xml") && text.contains("<svg"))
    {
        "image/svg+xml"
    } else if trimmed.starts_with("<!doctype html") || trimmed.starts_with("<html") {
        "text/html"
    } else if !text.is_empty() && !text.contains('\0') {
        "text/plain"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photos_are_known_by_their_first_bytes_and_anything_else_is_named() {
        assert_eq!(
            detect(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Ok(ImageType::Jpeg)
        );
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Ok(ImageType::Png));
        assert_eq!(detect(b"RIFF\x24\0\0\0WEBPVP8 "), Ok(ImageType::WebP));
        assert_eq!(detect(b"%PDF-1.7\n"), Err("application/pdf"));
        assert_eq!(detect(b"GIF89a\x01\0"), Err("image/gif"));
        assert_eq!(detect(b"  <svg xmlns='x'>"), Err("image/svg+xml"));
        assert_eq!(detect(b"<!DOCTYPE html><p>"), Err("text/html"));
        assert_eq!(detect(b"\0\0\0\x18ftypheic"), Err("image/heic"));
        assert_eq!(
            detect(b"RIFF\x24\0\0\0WAVEfmt "),
            Err("a RIFF file that is not WebP")
        );
        assert_eq!(detect(b""), Err("an empty file"));
        assert_eq!(detect(&[0, 1, 2, 3]), Err("application/octet-stream"));
        // A JPEG name on a PNG does not matter: only the bytes do.
        assert_eq!(detect(PNG_MAGIC), Ok(ImageType::Png));
    }
}
