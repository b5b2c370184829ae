//! The hub's document for this edge, and how it joins the local file into the running config.
//!
//! Precedence (edge/README.md "Configuration from the hub"): the local `edge.toml` is
//! authoritative for the edge's identity — `edge.id`, `edge.data_dir`, `edge.registry`,
//! `edge.profiles_dir`, `hub.host`, `hub.port`, `hub.secret`, `hub.secret_file` and
//! `local_api` — and a document naming one of them is refused. Every other section the
//! document holds replaces the file's section of the same name as a whole (`[[mqtt]]`,
//! `[site_broker]`, `[[serial]]`, `[[modbus]]`, `[buffer]`, `[uplink]`, `[validate]`,
//! `[calibration]`); in `[edge]` the document may set only `sensors`, in `[hub]` only
//! `keepalive_s` and `ca_pem`. Sections the document leaves out come from the file.
//!
//! `[profiles]` carries device profiles: `profiles.NAME = '''…'''`, each the text of a
//! `NAME.toml` profile file. The edge writes the local `edge.profiles_dir`'s files and these
//! (a document's profile wins over a local one of the same name) into a folder named by the
//! profiles' hash, `DATA_DIR/hub-config/profiles/<hash>` (written whole under a temp name,
//! then renamed), and runs with that folder as its profiles folder.
//!
//! The joined text is then parsed and validated by [`Config::parse`], the same rules as
//! `edge check`, so a bad document is refused with the same field-level message.

use crate::config::{toml_error, Config, ConfigError};
use protocol::edge_config::{document_keys_in, DOCUMENT_SECTIONS};
use std::path::Path;
use toml::{Table, Value};

/// What applying a document would change, section by section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    /// The uplink's connection or the buffer: applied by restarting the agent on the new
    /// config, then confirmed (the uplink must come back within the confirm window).
    pub uplink: bool,
    /// Calibration, device profiles or the embedded site broker: applied by restarting the
    /// agent, no confirm needed (the uplink does not change).
    pub restart: bool,
    /// Registered sensors or validation limits: the validator is rebuilt in place.
    pub validator: bool,
}

impl Change {
    /// Compares the sections of two configs that a document can change. Debug renderings
    /// are compared: both sides are the same types, parsed the same way.
    pub fn between(old: &Config, new: &Config) -> Change {
        let differ =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        Change {
            uplink: differ(&old.uplink, &new.uplink)
                || differ(&old.buffer, &new.buffer)
                || old.hub.keepalive_s != new.hub.keepalive_s
                || old.hub.ca_pem != new.hub.ca_pem
                || old.hub.ca_file != new.hub.ca_file,
            restart: differ(&old.calibration, &new.calibration)
                || differ(&old.site_broker, &new.site_broker)
                || old.edge.profiles_dir != new.edge.profiles_dir,
            validator: old.edge.sensors != new.edge.sensors || differ(&old.validate, &new.validate),
        }
    }
}

/// The running config: the local file `file` (its text `file_text`) joined with the hub's
/// `document` of `version`. Errors name `hub config vN` and the document's line or field.
pub fn join(
    file: &Config,
    file_text: &str,
    version: u64,
    document: &str,
) -> Result<Config, ConfigError> {
    let file_path = file.source_path.as_path();
    let label = format!("hub config v{version}");
    let mut doc: Table = document
        .parse()
        .map_err(|e: toml::de::Error| toml_error(Path::new(&label), document, &e))?;
    check_keys(&label, &doc)?;
    let profiles = match doc.remove("profiles") {
        Some(p) => Some(super::profiles::materialize(&label, file, p)?),
        None => None,
    };
    let file_dir = file_path.parent().unwrap_or(Path::new("."));
    let mut file: Table = file_text
        .parse()
        .map_err(|e: toml::de::Error| toml_error(file_path, file_text, &e))?;
    if let Some(dir) = profiles {
        // Relative paths resolve against the file's folder; this one is absolute already
        // unless the data dir is relative to it.
        let dir = dir
            .strip_prefix(file_dir)
            .unwrap_or(&dir)
            .display()
            .to_string();
        if let Some(Value::Table(edge)) = file.get_mut("edge") {
            edge.insert("profiles_dir".into(), Value::String(dir));
        }
    }
    for (section, value) in doc {
        match (section.as_str(), value) {
            ("edge" | "hub", Value::Table(keys)) => {
                let into = file
                    .entry(section.clone())
                    .or_insert_with(|| Value::Table(Table::new()));
                if let Value::Table(t) = into {
                    t.extend(keys);
                }
            }
            (_, value) => {
                file.insert(section, value);
            }
        }
    }
    let joined = toml::to_string(&file).map_err(|e| ConfigError::Invalid {
        path: label.clone(),
        field: "document".into(),
        message: e.to_string(),
        fix: "send a TOML document of edge.toml's sections".into(),
    })?;
    // Parsed as if it were the file, so relative paths resolve against the file's folder;
    // an error is reported under the document's name.
    Config::parse(file_path, &joined).map_err(|e| relabel(e, file_path, &label))
}

/// Refuses identity keys and anything that is not a section of edge.toml.
fn check_keys(label: &str, doc: &Table) -> Result<(), ConfigError> {
    let refuse = |field: String, message: &str, fix: &str| ConfigError::Invalid {
        path: label.to_string(),
        field,
        message: message.into(),
        fix: fix.into(),
    };
    for (section, value) in doc {
        if section == "local_api" {
            return Err(refuse(
                section.clone(),
                "identity comes from the edge's own edge.toml",
                "remove local_api from the hub's document",
            ));
        }
        if !DOCUMENT_SECTIONS.contains(&section.as_str()) {
            return Err(refuse(
                section.clone(),
                "not a section of edge.toml",
                "use edge.toml's sections: mqtt, site_broker, serial, modbus, buffer, uplink, validate, calibration",
            ));
        }
        let Some(allowed) = document_keys_in(section) else {
            continue;
        };
        let Value::Table(keys) = value else {
            return Err(refuse(
                section.clone(),
                "must be a table",
                "write it as [section]",
            ));
        };
        if let Some(k) = keys.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(refuse(
                format!("{section}.{k}"),
                "identity comes from the edge's own edge.toml",
                &format!(
                    "the document may set only {} in [{section}]",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// An error [`Config::parse`] reported against the file path, renamed to the document.
fn relabel(e: ConfigError, file_path: &Path, label: &str) -> ConfigError {
    match e {
        ConfigError::Invalid {
            path,
            field,
            message,
            fix,
        } if path.starts_with(&file_path.display().to_string()) => ConfigError::Invalid {
            path: label.to_string(),
            field,
            message,
            fix,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[edge]
id = "edge-1"
sensors = ["A"]
[hub]
host = "10.0.0.1"
secret = "s"
[uplink]
batch_age_ms = 300
[validate.limits.pressure]
max = 5.0
"#;

    fn join_doc(doc: &str) -> Result<Config, ConfigError> {
        let file = Config::parse(Path::new("/etc/w/edge.toml"), FILE).unwrap();
        join(&file, FILE, 3, doc)
    }

    #[test]
    fn a_document_replaces_whole_sections_and_keeps_the_identity() {
        let c =
            join_doc("[edge]\nsensors = [\"A\", \"B\"]\n[validate.limits.pressure]\nmax = 9.0\n")
                .unwrap();
        assert_eq!(c.edge.id, "edge-1");
        assert_eq!(c.hub.host, "10.0.0.1");
        assert_eq!(c.edge.sensors, vec!["A".to_string(), "B".to_string()]);
        assert_eq!(c.validate.limits["pressure"].max, Some(9.0));
        assert_eq!(
            c.uplink.batch_age_ms, 300,
            "a section the document leaves out stays"
        );
    }

    #[test]
    fn identity_keys_are_refused_naming_the_field() {
        for (doc, field) in [
            ("[edge]\nid = \"edge-2\"\n", "edge.id"),
            ("[hub]\nhost = \"evil\"\n", "hub.host"),
            ("[hub]\nsecret = \"x\"\n", "hub.secret"),
            ("[local_api]\nlisten = \"0.0.0.0:1\"\n", "local_api"),
            ("[nonsense]\nx = 1\n", "nonsense"),
        ] {
            let e = join_doc(doc).unwrap_err().to_string();
            assert!(
                e.contains("hub config v3") && e.contains(field),
                "{doc}: {e}"
            );
        }
    }

    #[test]
    fn a_bad_value_is_refused_with_the_fields_message_of_edge_check() {
        let e = join_doc("[uplink]\nbatch_readings_max = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hub config v3") && e.contains("uplink.batch_readings_max"),
            "{e}"
        );
        let e = join_doc("[uplink\n").unwrap_err().to_string();
        assert!(e.starts_with("hub config v3:1:"), "{e}");
    }

    #[test]
    fn changes_are_classified_by_section() {
        let old = join_doc("").unwrap();
        let sensors = join_doc("[edge]\nsensors = [\"A\", \"B\"]\n").unwrap();
        assert_eq!(
            Change::between(&old, &sensors),
            Change {
                validator: true,
                ..Change::default()
            }
        );
        let uplink = join_doc("[uplink]\nbatch_age_ms = 100\n").unwrap();
        assert!(Change::between(&old, &uplink).uplink);
        let sources =
            join_doc("[[serial]]\nname = \"s1\"\npath = \"/dev/ttyS0\"\nformat = \"binary\"\n")
                .unwrap();
        assert_eq!(Change::between(&old, &sources), Change::default());
    }

    #[test]
    fn profiles_from_the_document_join_the_local_ones_in_a_folder_named_by_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("profiles")).unwrap();
        std::fs::write(dir.path().join("profiles/local.toml"), "x").unwrap();
        let path = dir.path().join("edge.toml");
        let text = "[edge]\nid = \"e\"\nprofiles_dir = \"profiles\"\n[hub]\nsecret = \"s\"\n";
        let file = Config::parse(&path, text).unwrap();
        let doc = "[profiles]\nacme2 = '''\nkind = \"json\"\n'''\n";
        let a = join(&file, text, 1, doc).unwrap();
        let p = &a.edge.profiles_dir;
        assert!(
            p.starts_with(dir.path().join("data/edge/hub-config/profiles")),
            "{p:?}"
        );
        assert_eq!(std::fs::read_to_string(p.join("local.toml")).unwrap(), "x");
        assert!(std::fs::read_to_string(p.join("acme2.toml"))
            .unwrap()
            .contains("json"));
        let b = join(&file, text, 2, doc).unwrap();
        assert_eq!(
            a.edge.profiles_dir, b.edge.profiles_dir,
            "same profiles, same folder"
        );
        assert!(
            Change::between(&file, &a).restart,
            "new profiles restart the agent"
        );
        let e = join(&file, text, 3, "[profiles]\n\"../evil\" = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("profiles.../evil"), "{e}");
    }
}
