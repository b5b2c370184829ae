//! The sensors this edge knows, from the registry seed CSV and/or the config list.

use crate::config::{Config, ConfigError};
use std::collections::HashSet;
use std::path::Path;

/// Reads `id,...,edge` rows of a sensors CSV; keeps sensors assigned to `edge_id` (all rows
/// if the file has no `edge` column).
pub fn load_csv(path: &Path, edge_id: &str) -> Result<HashSet<String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
        fix: "point edge.registry at the registry seed sensors.csv",
    })?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let id_col = header.iter().position(|h| h.trim() == "id");
    let edge_col = header.iter().position(|h| h.trim() == "edge");
    let Some(id_col) = id_col else {
        return Err(ConfigError::Invalid {
            path: path.display().to_string(),
            field: "id".into(),
            message: "the header has no `id` column".into(),
            fix:
                "use the registry seed format id,component_id,type,profile,address,interval_s,edge"
                    .into(),
        });
    };
    let mut out = HashSet::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split(',').collect();
        let mine = edge_col
            .and_then(|c| cols.get(c))
            .is_none_or(|e| e.trim() == edge_id);
        if let (true, Some(id)) = (mine, cols.get(id_col)) {
            out.insert(id.trim().to_string());
        }
    }
    Ok(out)
}

/// Registered sensors for this config: the CSV (if any) plus `edge.sensors`.
pub fn registered(cfg: &Config) -> Result<HashSet<String>, ConfigError> {
    let mut set = match &cfg.edge.registry {
        Some(p) => load_csv(p, &cfg.edge.id)?,
        None => HashSet::new(),
    };
    set.extend(cfg.edge.sensors.iter().cloned());
    Ok(set)
}
