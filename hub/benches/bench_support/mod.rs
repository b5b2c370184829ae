//! The district-scale registry the 100k benches load: `COMPONENTS` components of four classes
//! spread over grid cells, one sensor each on the seed's edge, written in one transaction.
#![allow(dead_code)]

use hub::registry::upsert_component;
use hub::registry::{Component, ComponentStatus, RegistryError, SqliteRegistry};

pub const COMPONENTS: usize = 100_000;
/// (class code in the id, component type, owner department).
pub const CLASSES: [(&str, &str, &str); 4] = [
    ("0101", "manhole_cover", "sw"),
    ("0118", "street_light", "zm"),
    ("0113", "fire_hydrant", "xf"),
    ("0650", "flood_gauge", "sw"),
];

/// The id of component `i` (16 digits: district, class, serial).
pub fn component_id(i: usize) -> String {
    let (class, _, _) = CLASSES[i % CLASSES.len()];
    format!("120111{class}{:06}", i / CLASSES.len())
}

/// The id of component `i`'s sensor.
pub fn sensor_id(i: usize) -> String {
    format!("B-{i:06}")
}

/// A component's (address, lat, lon).
pub type Place = (String, Option<f64>, Option<f64>);

/// What differs between the benches' registries.
pub struct Load {
    /// The grid cells are `120111<street><cell>` on two streets (`001`, `002`) of this many
    /// cells each; component `i` is in cell `i % (2 × cells_per_street)` of that list.
    pub cells_per_street: usize,
    /// Component `i`'s place.
    pub place: fn(usize) -> Place,
    pub interval_s: i64,
    /// The sensors' registration time (`None`: the column's default).
    pub registered_ns: Option<i64>,
}

/// The grid cell of component `i` (see [`Load::cells_per_street`]).
fn grid_cell(i: usize, cells_per_street: usize) -> String {
    let k = i % (2 * cells_per_street);
    format!(
        "120111{:03}{:03}",
        k / cells_per_street + 1,
        k % cells_per_street + 1
    )
}

/// Writes [`COMPONENTS`] components and their sensors in one transaction.
pub fn load_registry(reg: &SqliteRegistry, load: &Load) -> Result<(), RegistryError> {
    reg.write(|tx| {
        for i in 0..COMPONENTS {
            let (_, ty, owner) = CLASSES[i % CLASSES.len()];
            let (address, lat, lon) = (load.place)(i);
            let c = Component {
                id: component_id(i),
                component_type: ty.to_string(),
                name: format!("bench component {i}"),
                address,
                lat,
                lon,
                grid_cell: Some(grid_cell(i, load.cells_per_street)),
                owner_department: Some(owner.to_string()),
                maintainer_department: Some(owner.to_string()),
                status: ComponentStatus::Normal,
            };
            upsert_component(tx, &c)?;
            let sensor = sensor_id(i);
            let inserted = match load.registered_ns {
                Some(at) => tx.execute(
                    "INSERT INTO sensors(id, component_id, type, profile, address, interval_s,
                                         edge, registered_at_ns)
                     VALUES (?1, ?2, ?3, 'bench', '', ?4, 'edge-xq-01', ?5)",
                    rusqlite::params![sensor, c.id, ty, load.interval_s, at],
                ),
                None => tx.execute(
                    "INSERT INTO sensors(id, component_id, type, profile, address, interval_s, edge)
                     VALUES (?1, ?2, ?3, 'bench', '', ?4, 'edge-xq-01')",
                    rusqlite::params![sensor, c.id, ty, load.interval_s],
                ),
            };
            inserted.map_err(|e| RegistryError::Db(e.to_string()))?;
        }
        Ok::<_, RegistryError>(())
    })
}

/// The registry of data dir `data`, with the repository's seed imported.
pub fn seeded_registry(data: &std::path::Path) -> SqliteRegistry {
    let reg = SqliteRegistry::open(&data.join("registry.sqlite")).unwrap();
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry");
    hub::registry::seed::import_dir(&reg, &seed).unwrap();
    reg
}

/// `hub serve` (this crate's binary) on `data`, its log in `dir`, with `admin` as the bootstrap
/// token when given; returns once its API answers (up to a minute: a big data dir opens slowly).
pub fn serve(
    dir: &std::path::Path,
    data: &std::path::Path,
    admin: Option<&str>,
) -> wangge_testkit::hub::HubServe {
    let mut c = wangge_testkit::hub::HubServe::config(
        std::path::Path::new(env!("CARGO_BIN_EXE_hub")),
        &dir.join("hub.log"),
    )
    .data_dir(data)
    .timeout(std::time::Duration::from_secs(60))
    .answering();
    if let Some(token) = admin {
        c = c.admin_token(token);
    }
    c.start().unwrap()
}

/// A current-thread runtime for the benches' HTTP clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
