//! The engine's TOML files (rules, sharing): read and parsed the same way, with errors that name
//! the file.

use serde::de::DeserializeOwned;
use std::path::Path;

/// A config file that could not be read or is not valid TOML for its shape; both name the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
}

/// The text of the file at `path`, and the file's name as errors show it.
pub(crate) fn read(path: &Path) -> Result<(String, String), FileError> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, name)),
        Err(source) => Err(FileError::Read { path: name, source }),
    }
}

/// `text`, the content of the file `path`, as TOML of a `T`.
pub(crate) fn parse_toml<T: DeserializeOwned>(text: &str, path: &str) -> Result<T, FileError> {
    toml::from_str(text).map_err(|e| FileError::Parse {
        path: path.to_string(),
        message: e.to_string(),
    })
}
