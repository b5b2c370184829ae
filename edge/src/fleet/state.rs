//! What the edge keeps on disk of the hub's configuration: `DATA_DIR/hub-config/state.json`.
//!
//! One file holds the running document, the last known good one before it, the newest version
//! seen and the report owed to the hub, so no crash can leave a torn pair: it is replaced as a
//! whole (written to a temp file, fsynced, renamed over, the folder fsynced). A `kill -9` at
//! any point boots on the old state or the new one.

use protocol::edge_config::ConfigOutcome;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One version of the hub's document as the edge stored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub version: u64,
    pub hash: String,
    pub document: String,
}

/// The report the edge owes the hub (sent at every connect until replaced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub version: u64,
    pub outcome: ConfigOutcomeName,
    pub error: Option<String>,
}

/// [`ConfigOutcome`] as it is written in the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigOutcomeName {
    Applied,
    Refused,
    RolledBack,
}

impl From<ConfigOutcomeName> for ConfigOutcome {
    fn from(o: ConfigOutcomeName) -> ConfigOutcome {
        match o {
            ConfigOutcomeName::Applied => ConfigOutcome::Applied,
            ConfigOutcomeName::Refused => ConfigOutcome::Refused,
            ConfigOutcomeName::RolledBack => ConfigOutcome::RolledBack,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetState {
    /// The document the edge runs on (none: the local file alone).
    pub current: Option<Stored>,
    /// The last known good document before `current` (none: the local file alone).
    pub previous: Option<Stored>,
    /// The newest version seen, applied or not: an older or equal one is never applied again
    /// (the retained message comes back at every connect; a replay changes nothing).
    pub seen_version: u64,
    /// `current` changed the uplink and is not confirmed yet: if the uplink is not back within
    /// the confirm window after boot, the edge returns to `previous`.
    pub unconfirmed: bool,
    pub report: Option<Outcome>,
}

/// The state file of one edge.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(data_dir: &Path) -> StateFile {
        StateFile {
            path: data_dir.join("hub-config").join("state.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored state; none yet is the default. An unreadable file is an error naming it
    /// (the caller boots on the local file alone and says so).
    pub fn load(&self) -> Result<FleetState, String> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", self.path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FleetState::default()),
            Err(e) => Err(format!("{}: {e}", self.path.display())),
        }
    }

    /// Replaces the state atomically (temp → fsync → rename → fsync the folder).
    pub fn save(&self, state: &FleetState) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join("state.json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_a_round_trip_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path());
        assert_eq!(f.load().unwrap(), FleetState::default());
        let s = FleetState {
            current: Some(Stored {
                version: 2,
                hash: "sha256:x".into(),
                document: "[uplink]\n".into(),
            }),
            seen_version: 3,
            unconfirmed: true,
            report: Some(Outcome {
                version: 3,
                outcome: ConfigOutcomeName::Refused,
                error: Some("e".into()),
            }),
            ..FleetState::default()
        };
        f.save(&s).unwrap();
        assert_eq!(f.load().unwrap(), s);
        assert!(!dir.path().join("hub-config/state.json.tmp").exists());
    }

    #[test]
    fn a_torn_temp_file_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path());
        f.save(&FleetState {
            seen_version: 1,
            ..FleetState::default()
        })
        .unwrap();
        // A crash while writing the next state leaves only a partial temp file.
        std::fs::write(dir.path().join("hub-config/state.json.tmp"), b"{\"curr").unwrap();
        assert_eq!(f.load().unwrap().seen_version, 1);
    }
}
