//! Config errors phrased for the person at the terminal: the file, the line and column or the
//! field, what is wrong, and the fix.

use std::path::Path;

/// A config error, already phrased for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source} (fix: {fix})")]
    Read {
        path: String,
        source: std::io::Error,
        fix: &'static str,
    },
    #[error("{path}:{line}:{column}: {message} (fix: {fix})")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
        fix: String,
    },
    #[error("{path}: field `{field}`: {message} (fix: {fix})")]
    Invalid {
        path: String,
        field: String,
        message: String,
        fix: String,
    },
}

impl ConfigError {
    /// `path` could not be read; `fix` says what to check.
    pub fn read(path: &Path, source: std::io::Error, fix: &'static str) -> ConfigError {
        ConfigError::Read {
            path: path.display().to_string(),
            source,
            fix,
        }
    }

    /// `field` of the file at `path` is wrong: `message` says how, `fix` what to do.
    pub fn invalid(path: &Path, field: String, message: String, fix: &str) -> ConfigError {
        ConfigError::Invalid {
            path: path.display().to_string(),
            field,
            message,
            fix: fix.to_string(),
        }
    }
}

/// The text of the file at `path`; a failure is a [`ConfigError::Read`] with `fix`.
pub fn read_text(path: &Path, fix: &'static str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::read(path, source, fix))
}

/// Turns a toml parse error into file:line:column with a fix hint.
pub fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
    let message = e.message().trim().replace('\n', " ");
    let fix = if message.contains("unknown field") {
        "remove or rename the field; the accepted names are listed above".to_string()
    } else if message.contains("missing field") {
        "add the field; see edge/README.md for the reference".to_string()
    } else {
        "correct the value's type or syntax (see edge/README.md, config reference)".to_string()
    };
    ConfigError::Parse {
        path: path.display().to_string(),
        line,
        column,
        message,
        fix,
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}
