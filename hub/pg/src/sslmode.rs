//! The TLS options of a connection string, which tokio-postgres only half reads: it knows
//! `sslmode=disable|prefer|require` but neither libpq's `verify-ca`/`verify-full` nor
//! `sslrootcert`. They are taken out of the string here (URL `?k=v&…` or `key=value` form)
//! and the rest is handed to tokio-postgres unchanged.
//!
//! Unlike libpq, a string without `sslmode` means `disable` — unless it names a CA
//! (`sslrootcert`), which means `require`: a hub only speaks TLS to PostgreSQL when told to, and
//! a CA given is never silently unused.

use crate::PgError;
use std::path::PathBuf;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server offers it, plain otherwise; a certificate offered is verified as for
    /// `Require`.
    Prefer,
    /// TLS, the server's certificate chain verified (against `sslrootcert`, or the webpki
    /// roots), its name not checked. libpq's `verify-ca` is the same here.
    Require,
    /// TLS, the chain verified and the certificate valid for the host connected to.
    VerifyFull,
}

/// The TLS part of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub mode: SslMode,
    /// The CA certificate(s) (PEM) the server's chain must end in; `None`: the webpki roots.
    pub root_cert: Option<PathBuf>,
}

impl TlsOptions {
    /// Whether connections use TLS at all (`Prefer` may, so it counts).
    pub fn is_on(&self) -> bool {
        self.mode != SslMode::Disable
    }
}

/// Splits `url` into the string for tokio-postgres (without `sslmode`/`sslrootcert`) and the
/// TLS options. Errors name the option, never the rest of the string (it holds the password).
pub fn split(url: &str) -> Result<(String, TlsOptions), PgError> {
    let mut mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: &str| -> Result<bool, PgError> {
        match key {
            "sslmode" => mode = Some(parse_mode(value)?),
            "sslrootcert" => root_cert = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_url(url, &mut take)?
    } else {
        split_key_values(url, &mut take)?
    };
    let mode = match mode {
        Some(m) => m,
        None if root_cert.is_some() => SslMode::Require,
        None => SslMode::Disable,
    };
    Ok((rest, TlsOptions { mode, root_cert }))
}

fn parse_mode(value: &str) -> Result<SslMode, PgError> {
    Ok(match value {
        "disable" => SslMode::Disable,
        "prefer" => SslMode::Prefer,
        "require" | "verify-ca" => SslMode::Require,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(PgError::Config(format!(
                "sslmode={other} is not supported: use disable, prefer, require, verify-ca or \
                 verify-full"
            )))
        }
    })
}

type Take<'a> = dyn FnMut(&str, &str) -> Result<bool, PgError> + 'a;

/// `postgres://…?a=1&sslmode=require` → `postgres://…?a=1`. The query starts at the first `?`
/// after the last `@` (a password may hold either).
fn split_url(url: &str, take: &mut Take<'_>) -> Result<String, PgError> {
    let from = url.rfind('@').unwrap_or(0);
    let Some(q) = url[from..].find('?').map(|i| from + i) else {
        return Ok(url.to_string());
    };
    let mut kept = Vec::new();
    for pair in url[q + 1..].split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !take(&percent_decode(k)?, &percent_decode(v)?)? {
            kept.push(pair);
        }
    }
    let mut out = url[..q].to_string();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, PgError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| PgError::Config("bad %-escape in the URL's options".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PgError::Config("URL options are not UTF-8".into()))
}

/// `host=h sslmode='verify-full' user=u` → `host=h user=u` (values quoted with `'…'` and
/// backslash escapes, as libpq and tokio-postgres read them).
fn split_key_values(s: &str, take: &mut Take<'_>) -> Result<String, PgError> {
    let mut kept = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| PgError::Config("a connection option without '='".into()))?;
        let key = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let (value, len) = read_value(after)?;
        let end = rest.len() - after.len() + len;
        if !take(key, &value)? {
            kept.push(&rest[..end]);
        }
        rest = rest[end..].trim_start();
    }
    Ok(kept.join(" "))
}

/// One value at the start of `s`: its text and how many bytes of `s` it took.
fn read_value(s: &str) -> Result<(String, usize), PgError> {
    let quoted = s.starts_with('\'');
    let mut value = String::new();
    let mut chars = s.char_indices().skip(usize::from(quoted));
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e)) => value.push(e),
                None => break,
            },
            '\'' if quoted => return Ok((value, i + 1)),
            c if c.is_whitespace() && !quoted => return Ok((value, i)),
            c => value.push(c),
        }
    }
    if quoted {
        return Err(PgError::Config(
            "an unterminated quoted connection option".into(),
        ));
    }
    Ok((value, s.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (String, TlsOptions) {
        split(url).unwrap()
    }

    #[test]
    fn without_sslmode_tls_is_off_unless_a_ca_is_named() {
        let (rest, tls) = ok("postgres://u:p@h:5432/db");
        assert_eq!(rest, "postgres://u:p@h:5432/db");
        assert_eq!(tls.mode, SslMode::Disable);
        let (rest, tls) = ok("postgres://u:p@h/db?sslrootcert=%2Fetc%2Fca.pem&application_name=x");
        assert_eq!(rest, "postgres://u:p@h/db?application_name=x");
        assert_eq!(tls.mode, SslMode::Require);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn url_options_are_taken_out_and_the_password_may_hold_question_marks() {
        let (rest, tls) = ok("postgres://u:p?w@h/db?sslmode=verify-full&sslrootcert=/ca.pem");
        assert_eq!(rest, "postgres://u:p?w@h/db");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            ok("postgres://h/db?sslmode=verify-ca").1.mode,
            SslMode::Require
        );
        assert_eq!(ok("postgres://h/db?sslmode=prefer").1.mode, SslMode::Prefer);
    }

    #[test]
    fn key_value_options_are_taken_out_with_quotes_and_escapes() {
        let (rest, tls) =
            ok("host=h password='a b\\'c' sslmode = verify-full sslrootcert='/my ca.pem' dbname=d");
        assert_eq!(rest, "host=h password='a b\\'c' dbname=d");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/my ca.pem")));
        assert_eq!(ok("host=h").1.mode, SslMode::Disable);
    }

    #[test]
    fn an_unknown_mode_is_refused_without_showing_the_url() {
        let e = split("postgres://u:secret@h/db?sslmode=allow").unwrap_err();
        assert!(e.to_string().contains("sslmode=allow"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(split("host=h password='open").is_err());
    }
}
