//! The admin token's start-up policy: `hub serve` refuses a guessable one.
//!
//! The admin token opens every route, so a short one or one copied from the repository's
//! examples (`config/hub.toml`, the README) would be a shipped default secret. The check runs
//! at `hub serve`, not at config parse, so the operator commands (`hub token add`, …) keep
//! working on a config whose token is being replaced.

use crate::config::ADMIN_TOKEN_ENV;

/// Shortest admin token accepted, characters. 32 random hex digits are 128 bits.
pub const ADMIN_TOKEN_CHARS_MIN: usize = 32;

/// Values that appear in the repository's examples and docs: anyone can read them.
pub const EXAMPLE_ADMIN_TOKENS: &[&str] = &[
    "demo-admin-token-change-me",
    "change-me",
    "e2e-admin-token",
    "test-admin-token-0123456789",
    "events-admin-token-0123456789",
];

/// Why `hub serve` refused the admin token. The message names the field and the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminTokenError {
    #[error(
        "admin_token (or {ADMIN_TOKEN_ENV}) is {len} characters; at least \
         {ADMIN_TOKEN_CHARS_MIN} are required. Generate one: \
         export {ADMIN_TOKEN_ENV}=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \\n'), \
         or remove it and issue tokens with `hub token add --scope admin`"
    )]
    TooShort { len: usize },
    #[error(
        "admin_token (or {ADMIN_TOKEN_ENV}) is an example value published in the repository; \
         set a random one: export {ADMIN_TOKEN_ENV}=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \\n'), \
         or remove it and issue tokens with `hub token add --scope admin`"
    )]
    Example,
}

/// Checks the effective admin token (none is fine: then only issued tokens exist).
pub fn check(token: Option<&str>) -> Result<(), AdminTokenError> {
    let Some(t) = token else { return Ok(()) };
    let t = t.trim();
    // An example stays an example with a suffix or in another case, e.g. `change-me-2`.
    let lower = t.to_ascii_lowercase();
    if EXAMPLE_ADMIN_TOKENS.iter().any(|e| lower.contains(e)) {
        return Err(AdminTokenError::Example);
    }
    let len = t.chars().count();
    if len < ADMIN_TOKEN_CHARS_MIN {
        return Err(AdminTokenError::TooShort { len });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_admin_token_is_refused() {
        let e = check(Some("0123456789abcdef0123456789abcde")).unwrap_err();
        assert_eq!(e, AdminTokenError::TooShort { len: 31 });
        let msg = e.to_string();
        assert!(
            msg.contains("admin_token") && msg.contains(ADMIN_TOKEN_ENV),
            "{msg}"
        );
        assert!(check(Some("0123456789abcdef0123456789abcdef")).is_ok());
        assert!(check(None).is_ok());
    }

    #[test]
    fn the_example_admin_token_is_refused() {
        // The value in config/hub.toml, read from the file so the list cannot drift from it.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/hub.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let example = text
            .lines()
            .find_map(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.strip_prefix("admin_token = \"")?.strip_suffix('"')
            })
            .expect("config/hub.toml shows an admin_token example");
        assert_eq!(check(Some(example)), Err(AdminTokenError::Example));
        // Long enough, still the example.
        let padded = format!("{example}-0123456789abcdef");
        assert_eq!(check(Some(&padded)), Err(AdminTokenError::Example));
    }
}
