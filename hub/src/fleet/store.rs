//! Storing a new version of an edge's desired configuration: the one path for the API and the
//! CLI, so both refuse the same documents with the same field-naming errors.

use super::document::{self, DocumentError};
use crate::registry::{NewConfig, RegistryAdmin, RegistryError, StoredConfig};

/// A refused document as the registry's field error (an API 400, a CLI message).
pub fn refused(e: DocumentError) -> RegistryError {
    RegistryError::Field {
        reason: e.reason_at_line(),
        field: e.field,
    }
}

/// Checks `new.document` ([`document::check`]; every sensor of `edge.sensors` must be
/// registered to this edge) and stores it as the edge's next version; the bool is true for its
/// first. `NotFound` for an unknown edge (before the document is looked at), `Field` for a
/// refused document, `Conflict` for a stale `base_version`.
pub fn store_version(
    reg: &dyn RegistryAdmin,
    new: &NewConfig<'_>,
) -> Result<(StoredConfig, bool), RegistryError> {
    if reg.edge_config(new.edge_id)?.is_none() {
        return Err(RegistryError::NotFound(format!("edge {}", new.edge_id)));
    }
    let checked = document::check(new.document).map_err(refused)?;
    for (i, (sensor_id, line)) in checked.sensors.iter().enumerate() {
        let at = |reason: String| DocumentError {
            field: format!("edge.sensors[{i}]"),
            reason,
            line: *line,
        };
        match reg.sensor(sensor_id)? {
            None => {
                return Err(refused(at(format!(
                    "sensor {sensor_id:?} is not registered"
                ))))
            }
            Some(s) if s.edge.as_deref() != Some(new.edge_id) => {
                return Err(refused(at(format!(
                    "sensor {sensor_id:?} is registered to {}, not to edge {}",
                    s.edge
                        .map_or("no edge".to_string(), |e| format!("edge {e}")),
                    new.edge_id
                ))))
            }
            Some(_) => {}
        }
    }
    reg.put_edge_config(new)
}
