//! `hub edge config get|set`: an edge's desired configuration from the terminal, on the registry
//! like `hub edge add` (no running hub needed; a running hub's delivery pass publishes a version
//! set here within `fleet::PASS_EVERY`).

use super::store::store_version;
use crate::api::edge_config::EdgeConfigJson;
use crate::registry::{now_ns, NewConfig, RegistryAdmin};
use anyhow::{bail, Context};
use std::path::Path;

/// Who `created_by` names for a version stored from the terminal.
pub const CLI_AUTHOR: &str = "cli";

/// Prints the state as `#` comment lines, then the desired document (so the output is itself a
/// document `set` takes back).
pub fn get(reg: &dyn RegistryAdmin, id: &str) -> anyhow::Result<()> {
    let Some(state) = reg.edge_config(id)? else {
        bail!("edge {id}: not registered (hub edge add {id})");
    };
    let s = EdgeConfigJson::of(id, state);
    match &s.desired {
        None => println!("# edge {id}: no desired configuration (the edge runs its own file)"),
        Some(d) => println!(
            "# edge {id}: desired version {} ({}), stored {} by {}",
            d.version, d.hash, d.created_at, d.created_by
        ),
    }
    match &s.applied {
        None => println!("# applied: no report from the edge yet"),
        Some(a) => {
            println!(
                "# applied: version {} (newest seen: version {}, {}), reported {}",
                a.applied_version, a.version, a.outcome, a.reported_at
            );
            if let Some(e) = &a.error {
                println!("# last error: {}", e.replace('\n', " "));
            }
        }
    }
    println!("# in sync: {}", if s.in_sync { "yes" } else { "no" });
    if let Some(d) = &s.desired {
        print!("{}", d.document);
        if !d.document.ends_with('\n') {
            println!();
        }
    }
    Ok(())
}

/// Stores `file` as the edge's next version (the API's checks); errors name the file and line.
pub fn set(
    reg: &dyn RegistryAdmin,
    id: &str,
    file: &Path,
    base_version: Option<u64>,
) -> anyhow::Result<()> {
    let document =
        std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let (stored, _) = store_version(
        reg,
        &NewConfig {
            edge_id: id,
            document: &document,
            base_version,
            created_by: CLI_AUTHOR,
            created_ns: now_ns(),
        },
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    eprintln!(
        "edge {id}: stored desired version {} ({}); a running hub delivers it within seconds",
        stored.version, stored.hash
    );
    Ok(())
}
