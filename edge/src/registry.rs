//! The sensors this edge knows: the registry seed CSV, the config list, and the sensors its
//! `[[modbus]]` slaves report under (the technician named them there).

use crate::config::{read_text, Config, ConfigError};
use protocol::seed_csv::SeedTable;
use std::collections::HashSet;
use std::path::Path;

/// Reads `id,...,edge` rows of a sensors CSV (the shared `protocol::seed_csv` parser); keeps
/// sensors assigned to `edge_id` (all rows if the file has no `edge` column).
pub fn load_csv(path: &Path, edge_id: &str) -> Result<HashSet<String>, ConfigError> {
    let text = read_text(path, "point edge.registry at the registry seed sensors.csv")?;
    let table = SeedTable::parse(&text).map_err(|e| ConfigError::Invalid {
        path: format!("{}:{}", path.display(), e.line),
        field: "row".into(),
        message: e.reason,
        fix: "correct the CSV syntax of that line".into(),
    })?;
    let Some(id_col) = table.column("id") else {
        return Err(ConfigError::Invalid {
            path: path.display().to_string(),
            field: "id".into(),
            message: "the header has no `id` column".into(),
            fix:
                "use the registry seed format id,component_id,type,profile,address,interval_s,edge"
                    .into(),
        });
    };
    let edge_col = table.column("edge");
    let mut out = HashSet::new();
    for row in table.rows() {
        let mine = edge_col
            .and_then(|c| row.get(c))
            .is_none_or(|e| e == edge_id);
        if let (true, Some(id)) = (mine, row.get(id_col)) {
            out.insert(id.to_string());
        }
    }
    Ok(out)
}

/// Registered sensors for this config: the CSV (if any), `edge.sensors` and the Modbus slaves'.
pub fn registered(cfg: &Config) -> Result<HashSet<String>, ConfigError> {
    let mut set = match &cfg.edge.registry {
        Some(p) => load_csv(p, &cfg.edge.id)?,
        None => HashSet::new(),
    };
    set.extend(cfg.edge.sensors.iter().cloned());
    let slaves = cfg.modbus.iter().flat_map(|l| &l.slaves);
    set.extend(slaves.map(|s| s.sensor.clone()));
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_this_edges_sensors_and_names_the_file_without_an_id_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sensors.csv");
        let load_e1 = |csv: &str| {
            std::fs::write(&p, csv).unwrap();
            load_csv(&p, "e1")
        };
        let got = load_e1(
            "id,type,edge\nMH-1,manhole_cover,e1\n\n# comment\nMH-2,manhole_cover,e2\nMH-3,x\n",
        )
        .unwrap();
        assert_eq!(got, HashSet::from(["MH-1".to_string(), "MH-3".to_string()]));
        let e = load_e1("name,edge\nMH-1,e1\n").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: field `id`", p.display())),
            "{e}"
        );
    }
}
