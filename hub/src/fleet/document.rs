//! The hub's checks of a desired configuration document before it stores a version (the API's
//! `PUT edges/{id}/config` and `hub edge config set` alike). The edge validates the whole
//! document with `edge check`'s rules when it receives it; the hub refuses up front what can
//! never be right: a document too large, not TOML, with a key the edge does not know at the
//! top, or with the edge's identity in it (the edge's own `edge.toml` is authoritative for its
//! id, paths, hub address and secret, and a document must not be able to move an edge to
//! another hub). Every refusal names the field and, where it has one, the document's line.

use protocol::edge_config::{document_keys_in, CONFIG_DOCUMENT_BYTES_MAX, DOCUMENT_SECTIONS};

/// The identity keys: refused with [`IDENTITY`] as the reason.
const IDENTITY_KEYS: &[&str] = &[
    "edge.id",
    "edge.data_dir",
    "edge.registry",
    "edge.profiles_dir",
    "hub.host",
    "hub.port",
    "hub.secret",
    "hub.secret_file",
    "local_api",
];

/// Why an identity key is refused.
pub const IDENTITY: &str = "identity comes from the edge's own edge.toml";

/// A refused document: the field at fault, why, and the document's line if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentError {
    pub field: String,
    pub reason: String,
    /// 1-based line of the document.
    pub line: Option<usize>,
}

impl DocumentError {
    fn new(field: &str, reason: impl Into<String>, line: Option<usize>) -> DocumentError {
        DocumentError {
            field: field.to_string(),
            reason: reason.into(),
            line,
        }
    }

    /// The reason with the line, for an error that names the field separately.
    pub fn reason_at_line(&self) -> String {
        match self.line {
            Some(l) => format!("{} (line {l})", self.reason),
            None => self.reason.clone(),
        }
    }
}

impl std::fmt::Display for DocumentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason_at_line())
    }
}

/// What a document that passed asks of the registry: the sensor ids in `edge.sensors` (each
/// must be registered to the edge; the caller checks), with their lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checked {
    pub sensors: Vec<(String, Option<usize>)>,
}

/// Checks `document` (see the module doc).
pub fn check(document: &str) -> Result<Checked, DocumentError> {
    if document.len() > CONFIG_DOCUMENT_BYTES_MAX {
        return Err(DocumentError::new(
            "document",
            format!(
                "{} bytes, at most {CONFIG_DOCUMENT_BYTES_MAX} accepted",
                document.len()
            ),
            None,
        ));
    }
    let table: toml::Table = document.parse().map_err(|e: toml::de::Error| {
        let line = e.span().map(|s| {
            document[..s.start.min(document.len())]
                .matches('\n')
                .count()
                + 1
        });
        DocumentError::new(
            "document",
            format!("not TOML: {}", e.message().trim()),
            line,
        )
    })?;
    for (key, value) in &table {
        let line = line_of(document, &[key]);
        if IDENTITY_KEYS.contains(&key.as_str()) {
            return Err(DocumentError::new(key, IDENTITY, line));
        }
        if !DOCUMENT_SECTIONS.contains(&key.as_str()) {
            return Err(DocumentError::new(
                key,
                format!(
                    "unknown top-level key; allowed: {}",
                    DOCUMENT_SECTIONS.join(", ")
                ),
                line,
            ));
        }
        if let Some(allowed) = document_keys_in(key) {
            check_restricted(document, key, value, allowed)?;
        }
    }
    Ok(Checked {
        sensors: sensors(document, &table)?,
    })
}

/// `[edge]` and `[hub]`: only the keys `allowed`, never identity.
fn check_restricted(
    document: &str,
    table: &str,
    value: &toml::Value,
    allowed: &[&str],
) -> Result<(), DocumentError> {
    let Some(inner) = value.as_table() else {
        return Err(DocumentError::new(
            table,
            "must be a table",
            line_of(document, &[table]),
        ));
    };
    for key in inner.keys() {
        let field = format!("{table}.{key}");
        let line = line_of(document, &[table, key]);
        if IDENTITY_KEYS.contains(&field.as_str()) {
            return Err(DocumentError::new(&field, IDENTITY, line));
        }
        if !allowed.contains(&key.as_str()) {
            return Err(DocumentError::new(
                &field,
                format!(
                    "not settable from the hub; [{table}] allows only {}",
                    allowed.join(", ")
                ),
                line,
            ));
        }
    }
    Ok(())
}

/// The ids of `edge.sensors`, which must be an array of non-empty strings.
fn sensors(
    document: &str,
    table: &toml::Table,
) -> Result<Vec<(String, Option<usize>)>, DocumentError> {
    let Some(v) = table.get("edge").and_then(|e| e.get("sensors")) else {
        return Ok(Vec::new());
    };
    let line = line_of(document, &["edge", "sensors"]);
    let Some(items) = v.as_array() else {
        return Err(DocumentError::new(
            "edge.sensors",
            "must be an array of sensor ids",
            line,
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, s)| match s.as_str() {
            Some(id) if !id.trim().is_empty() => Ok((id.to_string(), line)),
            _ => Err(DocumentError::new(
                &format!("edge.sensors[{i}]"),
                "must be a sensor id (a non-empty string)",
                line,
            )),
        })
        .collect()
}

/// The 1-based line where the key `path` (a top-level key, or a key inside a top-level table)
/// is written: a `[table]` header, `key =`, or a dotted `table.key =`. Best effort: `None` if
/// it cannot be told from the text.
pub fn line_of(document: &str, path: &[&str]) -> Option<usize> {
    let starts = |line: &str, key: &str| {
        let rest = line.trim_start().trim_start_matches('"');
        rest.strip_prefix(key).is_some_and(|after| {
            let after = after.trim_start_matches('"').trim_start();
            after.starts_with('=') || after.starts_with('.')
        })
    };
    let header = |line: &str, key: &str| {
        let t = line.trim_start().trim_start_matches('[').trim_start();
        line.trim_start().starts_with('[')
            && t.strip_prefix(key)
                .is_some_and(|a| a.trim_start().starts_with(']') || a.starts_with('.'))
    };
    let lines: Vec<&str> = document.lines().collect();
    let top = path[0];
    match path {
        [_] => lines
            .iter()
            .position(|l| header(l, top) || starts(l, top))
            .map(|i| i + 1),
        [_, key, ..] => {
            let dotted = format!("{top}.{key}");
            if let Some(i) = lines.iter().position(|l| starts(l, &dotted)) {
                return Some(i + 1);
            }
            let h = lines.iter().position(|l| header(l, top))?;
            lines[h + 1..]
                .iter()
                .take_while(|l| !l.trim_start().starts_with('['))
                .position(|l| starts(l, key))
                .map(|i| h + i + 2)
        }
        [] => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_of_allowed_sections_passes_and_lists_its_sensors() {
        let doc = "[edge]\nsensors = [\"S-1\", \"S-2\"]\n\n[hub]\nkeepalive_s = 30\n\n\
                   [uplink]\nbatch_age_ms = 100\n";
        let c = check(doc).unwrap();
        assert_eq!(
            c.sensors,
            vec![("S-1".to_string(), Some(2)), ("S-2".to_string(), Some(2))]
        );
    }

    #[test]
    fn identity_is_refused_naming_the_field_and_the_line() {
        let e = check("[uplink]\nbatch_age_ms = 1\n[edge]\nid = \"other\"\n").unwrap_err();
        assert_eq!(e.field, "edge.id");
        assert_eq!(e.reason, IDENTITY);
        assert_eq!(e.line, Some(4));
        assert_eq!(
            e.to_string(),
            "edge.id: identity comes from the edge's own edge.toml (line 4)"
        );
        for (doc, field) in [
            ("hub.secret = \"x\"\n", "hub.secret"),
            ("[hub]\nhost = \"evil\"\n", "hub.host"),
            ("[local_api]\nlisten = \"0.0.0.0:1\"\n", "local_api"),
        ] {
            assert_eq!(check(doc).unwrap_err().field, field, "{doc}");
        }
    }

    #[test]
    fn unknown_keys_bad_toml_and_size_are_refused_naming_the_field() {
        let e = check("[uplink]\nx = 1\n[nonsense]\na = 1\n").unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("nonsense", Some(3)));
        let e = check("[edge]\nname = \"x\"\n").unwrap_err();
        assert_eq!(e.field, "edge.name");
        let e = check("[uplink]\nbatch_age_ms = = 3\n").unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("document", Some(2)));
        let big = format!("# {}\n", "x".repeat(CONFIG_DOCUMENT_BYTES_MAX));
        assert_eq!(check(&big).unwrap_err().field, "document");
        let e = check("[edge]\nsensors = [\"a\", 3]\n").unwrap_err();
        assert_eq!(e.field, "edge.sensors[1]");
    }
}
