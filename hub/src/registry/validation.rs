//! Component validation, one function for every back end and for the seed import: the code's
//! shape, a known region and class (whose sensor type and default owner fill the gaps), a known
//! grid cell and known departments, coordinates in range. The back ends differ only in how they
//! answer [`ReferenceLookup`] (SQLite asks its connection, PostgreSQL answers from what it
//! fetched for the component, the seed import from the rows it holds), so the API and the CSV
//! import refuse the same things with the same words on both.

use super::codes::ComponentCode;
use super::model::{Component, ComponentInput, ComponentStatus, Sensor};
use super::RegistryError;

/// A component class as validation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassRef {
    /// The sensor type every component of the class has (`components.type`).
    pub sensor_type: String,
    /// The department a component of the class is owned by unless it says otherwise.
    pub default_owner: Option<String>,
}

/// The reference tables as validation reads them.
pub trait ReferenceLookup {
    fn region_known(&self, code: &str) -> Result<bool, RegistryError>;
    fn class(&self, code: &str) -> Result<Option<ClassRef>, RegistryError>;
    fn grid_cell_known(&self, id: &str) -> Result<bool, RegistryError>;
    fn department_known(&self, id: &str) -> Result<bool, RegistryError>;
}

pub(super) fn field(field: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::Field {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// The trimmed value, `None` if absent or blank.
pub(super) fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A row the input points at: `value` in the `id` column of `table`, named by the input's
/// `field`. The back end checks it exists in the transaction that writes the input.
pub(super) struct Reference<'a> {
    pub(super) table: &'static str,
    pub(super) field: &'static str,
    /// What the row is, for the refusal (`unknown component "x"`).
    pub(super) what: &'static str,
    pub(super) value: &'a str,
}

impl Reference<'_> {
    /// The refusal when there is no such row.
    pub(super) fn unknown(&self) -> RegistryError {
        field(
            self.field,
            format!("unknown {} {:?}", self.what, self.value),
        )
    }
}

/// The department `id` that field `department` names.
pub(super) fn department(id: &str) -> Reference<'_> {
    Reference {
        table: "departments",
        field: "department",
        what: "department",
        value: id,
    }
}

/// A PUT's body may name its id only if it is the path's.
pub(super) fn same_id(id: &str, input: &ComponentInput) -> Result<(), RegistryError> {
    match non_empty(&input.id) {
        Some(body_id) if body_id != id => Err(field(
            "id",
            format!("{body_id:?} differs from the path's id {id:?}"),
        )),
        _ => Ok(()),
    }
}

/// Creating component `id`, which exists.
pub(super) fn component_exists(id: &str) -> RegistryError {
    RegistryError::Conflict(format!(
        "component {id} already exists (use PUT to change it)"
    ))
}

/// The departments `input` names itself (validation also asks about its class's default owner).
pub(super) fn input_departments(input: &ComponentInput) -> Vec<String> {
    [
        non_empty(&input.owner_department),
        non_empty(&input.maintainer_department),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Checks a component against the reference tables and fills its class's defaults.
pub fn validate_component(
    refs: &dyn ReferenceLookup,
    id: &str,
    input: &ComponentInput,
) -> Result<Component, RegistryError> {
    let code = ComponentCode::parse(id).map_err(|e| field("id", e.to_string()))?;
    if !refs.region_known(code.region())? {
        return Err(field(
            "id",
            format!("unknown region {} (not in regions)", code.region()),
        ));
    }
    let Some(class) = refs.class(code.class())? else {
        return Err(field(
            "id",
            format!(
                "unknown component class {} (major {}, minor {}; not in component classes)",
                code.class(),
                code.major(),
                &code.class()[2..]
            ),
        ));
    };
    let component_type = match non_empty(&input.component_type) {
        None => class.sensor_type.clone(),
        Some(t) if t == class.sensor_type => t,
        Some(t) => {
            return Err(field(
                "type",
                format!(
                    "{t:?} does not match class {} ({})",
                    code.class(),
                    class.sensor_type
                ),
            ))
        }
    };
    let grid_cell = non_empty(&input.grid_cell);
    if let Some(g) = &grid_cell {
        if !refs.grid_cell_known(g)? {
            return Err(field("grid_cell", format!("unknown grid cell {g:?}")));
        }
    }
    let owner = non_empty(&input.owner_department).or(class.default_owner);
    let maintainer = non_empty(&input.maintainer_department).or_else(|| owner.clone());
    for (name, dep) in [
        ("owner_department", &owner),
        ("maintainer_department", &maintainer),
    ] {
        if let Some(d) = dep {
            if !refs.department_known(d)? {
                return Err(field(name, format!("unknown department {d:?}")));
            }
        }
    }
    if let Some(lat) = input.lat {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(field("lat", format!("{lat} is outside -90..=90")));
        }
    }
    if let Some(lon) = input.lon {
        if !(-180.0..=180.0).contains(&lon) {
            return Err(field("lon", format!("{lon} is outside -180..=180")));
        }
    }
    Ok(Component {
        id: code.as_str().to_string(),
        component_type,
        name: input.name.clone().unwrap_or_default(),
        address: input.address.clone().unwrap_or_default(),
        lat: input.lat,
        lon: input.lon,
        grid_cell,
        owner_department: owner,
        maintainer_department: maintainer,
        status: input.status.unwrap_or(ComponentStatus::Normal),
    })
}

/// An edge id as `hub edge add` accepts it: it is the MQTT username and a topic level, and
/// must not look like the hub's own clients or a department's MQTT user.
pub(super) fn edge_id(edge_id: &str) -> Result<&str, RegistryError> {
    let edge_id = edge_id.trim();
    if edge_id.is_empty()
        || !edge_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(field(
            "id",
            format!("{edge_id:?}: use letters, digits, '-', '_' or '.' (it is the MQTT username and a topic level)"),
        ));
    }
    for (prefix, whose) in [
        (
            crate::broker::HUB_CLIENT_ID_PREFIX,
            "the hub's own MQTT client ids",
        ),
        (
            crate::broker::DEPARTMENT_USER_PREFIX,
            "department MQTT users",
        ),
    ] {
        if edge_id.starts_with(prefix) {
            return Err(field(
                "id",
                format!("{edge_id:?}: ids starting with {prefix:?} are {whose}"),
            ));
        }
    }
    Ok(edge_id)
}

/// A sensor's id and reporting interval as `PUT sensors/{id}` accepts them (the component and
/// edge it names are checked against the registry by the back end).
pub(super) fn sensor_fields<'a>(
    id: &'a str,
    input: &super::model::SensorInput,
) -> Result<(&'a str, i64), RegistryError> {
    let id = id.trim();
    if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_control() || c == '/') {
        return Err(field(
            "id",
            "1 to 64 characters, no '/' or control characters",
        ));
    }
    let interval_s = input.interval_s.unwrap_or(60);
    if interval_s <= 0 {
        return Err(field(
            "interval_s",
            format!("{interval_s} is not a positive number of seconds"),
        ));
    }
    Ok((id, interval_s))
}

/// The sensor `input` describes at `id`, checked (see [`sensor_fields`]); what it points at is
/// in [`sensor_references`].
pub(super) fn sensor(id: &str, input: &super::model::SensorInput) -> Result<Sensor, RegistryError> {
    let (id, interval_s) = sensor_fields(id, input)?;
    Ok(Sensor {
        id: id.to_string(),
        component_id: non_empty(&input.component_id),
        sensor_type: input.sensor_type.clone().unwrap_or_default(),
        profile: input.profile.clone().unwrap_or_default(),
        address: input.address.clone().unwrap_or_default(),
        interval_s,
        edge: non_empty(&input.edge),
    })
}

/// The component and the edge sensor `s` names, if it names them.
pub(super) fn sensor_references(s: &Sensor) -> Vec<Reference<'_>> {
    let component = s.component_id.as_deref().map(|c| Reference {
        table: "components",
        field: "component_id",
        what: "component",
        value: c,
    });
    let edge = s.edge.as_deref().map(|e| Reference {
        table: "edges",
        field: "edge",
        what: "edge",
        value: e,
    });
    component.into_iter().chain(edge).collect()
}

/// Only admin tokens may belong to no department.
pub(super) fn token_department(
    department: Option<&str>,
    scope: super::model::Scope,
) -> Result<(), RegistryError> {
    if department.is_none() && scope != super::model::Scope::Admin {
        return Err(field(
            "department",
            "required for read and write tokens (only admin tokens may have none)",
        ));
    }
    Ok(())
}

/// A new department MQTT username: `dept.{department}.{6 hex}`.
pub(super) fn new_mqtt_username(department: &str) -> String {
    format!(
        "{}{department}.{}",
        crate::broker::DEPARTMENT_USER_PREFIX,
        hex::encode(rand::random::<[u8; 3]>())
    )
}
