//! Device profiles from the hub's document: written to a folder named by their hash, beside
//! copies of the local profiles, so a profile change is a new folder (never a file rewritten
//! under a running agent) and the same profiles are the same folder.

use crate::config::{Config, ConfigError};
use std::path::{Path, PathBuf};
use toml::Value;

/// A profile name: it becomes a file name, so no path separators, dots or other surprises.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Writes the local profiles and the document's `profiles` into
/// `DATA_DIR/hub-config/profiles/<hash>` (once; whole, under a temp name first) and returns it.
pub fn materialize(label: &str, file: &Config, profiles: Value) -> Result<PathBuf, ConfigError> {
    let invalid = |field: String, message: String, fix: &str| ConfigError::Invalid {
        path: label.to_string(),
        field,
        message,
        fix: fix.into(),
    };
    let Value::Table(profiles) = profiles else {
        return Err(invalid(
            "profiles".into(),
            "must be a table of NAME = \"profile text\"".into(),
            "write profiles.NAME = '''…''' with the text of NAME.toml",
        ));
    };
    let mut texts = Vec::with_capacity(profiles.len());
    for (name, text) in profiles {
        let field = format!("profiles.{name}");
        if !valid_name(&name) {
            return Err(invalid(
                field,
                "a profile name is letters, digits, '-' and '_' (64 at most)".into(),
                "rename the profile",
            ));
        }
        let Value::String(text) = text else {
            return Err(invalid(
                field,
                "must be the profile file's text".into(),
                "write it as a TOML string ('''…''')",
            ));
        };
        texts.push((name, text));
    }
    let hash = protocol::edge_config::document_hash(&format!("{texts:?}"));
    let root = file.edge.data_dir.join("hub-config").join("profiles");
    let dir = root.join(&hash["sha256:".len().."sha256:".len() + 16]);
    if dir.is_dir() {
        return Ok(dir);
    }
    let io = |e: std::io::Error, what: &Path| {
        invalid(
            "profiles".into(),
            format!("{}: {e}", what.display()),
            "check the edge's data_dir is writable",
        )
    };
    let tmp = root.join(format!(".tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io(e, &tmp))?;
    if let Ok(entries) = std::fs::read_dir(&file.edge.profiles_dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml") {
                let to = tmp.join(e.file_name());
                std::fs::copy(&p, &to).map_err(|err| io(err, &p))?;
            }
        }
    }
    for (name, text) in &texts {
        let to = tmp.join(format!("{name}.toml"));
        std::fs::write(&to, text).map_err(|e| io(e, &to))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| io(e, &dir))?;
    Ok(dir)
}
