//! The read plan merges a device's points into as few requests as its limits allow, and the
//! profile loader rejects what a device cannot answer, naming the file and the point.

use edge::source::modbus::plan::plan;
use edge::source::modbus::point::Table;
use edge::source::modbus::profile::DeviceProfile;
use std::path::Path;

/// A profile with the given header lines and (table, address, type, poll) points.
fn profile(header: &str, points: &[(&str, u16, &str, &str)]) -> String {
    let mut s = format!("name = \"t\"\nkind = \"modbus\"\n{header}\n");
    for (table, address, ty, poll) in points {
        s += &format!(
            "[[point]]\nquantity = \"temperature\"\ntable = \"{table}\"\naddress = {address}\n\
             type = \"{ty}\"\npoll = \"{poll}\"\n"
        );
    }
    s
}

/// One request of a plan: (table, address, count).
type Block = (Table, u16, u16);

/// The plan as (table, address, count) triples.
fn blocks(header: &str, points: &[(&str, u16, &str, &str)]) -> Vec<Block> {
    let p = DeviceProfile::parse(&profile(header, points), Path::new("p.toml")).unwrap();
    plan(&p)
        .iter()
        .map(|r| (r.table, r.address, r.count))
        .collect()
}

#[test]
fn contiguous_and_nearby_points_share_one_request() {
    let pts = [
        ("holding", 0, "u16", "5s"),
        ("holding", 1, "f32", "5s"),
        ("holding", 10, "u16", "5s"), // gap of 7 after 1..=2: merged with gap_max 8
        ("holding", 30, "u16", "5s"), // gap of 19: a new request
    ];
    assert_eq!(
        blocks("", &pts),
        vec![(Table::Holding, 0, 11), (Table::Holding, 30, 1)]
    );
    assert_eq!(
        blocks("gap_max = 0", &pts),
        vec![
            (Table::Holding, 0, 3),
            (Table::Holding, 10, 1),
            (Table::Holding, 30, 1)
        ]
    );
}

#[test]
fn tables_and_poll_intervals_are_never_merged() {
    let pts = [
        ("holding", 0, "u16", "5s"),
        ("input", 1, "u16", "5s"),
        ("holding", 1, "u16", "1m"),
        ("coil", 0, "bool", "5s"),
        ("coil", 1, "bool", "5s"),
    ];
    assert_eq!(
        blocks("", &pts),
        vec![
            (Table::Holding, 0, 1),
            (Table::Input, 1, 1),
            (Table::Coil, 0, 2),
            (Table::Holding, 1, 1)
        ]
    );
}

#[test]
fn a_request_never_exceeds_the_devices_limit_nor_splits_a_point() {
    // 40 two-register points back to back: 80 registers.
    let pts: Vec<_> = (0..40).map(|i| ("input", i * 2, "f32", "5s")).collect();
    assert_eq!(blocks("", &pts), vec![(Table::Input, 0, 80)]);
    let small = blocks("registers_per_request_max = 16", &pts);
    assert_eq!(small.len(), 5);
    assert!(
        small
            .iter()
            .all(|&(_, a, n)| n <= 16 && a % 2 == 0 && n % 2 == 0),
        "{small:?}"
    );
    assert_eq!(small.iter().map(|b| b.2).sum::<u16>(), 80);
}

#[test]
fn the_loader_names_the_file_and_point_of_a_mistake() {
    let cases: &[(&str, &str)] = &[
        (
            "name = \"t\"\nkind = \"modbus\"\n[[point]]\nquantity = \"wattage\"\ntable = \"holding\"\naddress = 0\ntype = \"u16\"\n",
            "point[0].quantity",
        ),
        (
            "name = \"t\"\nkind = \"modbus\"\n[[point]]\nquantity = \"alarm\"\ntable = \"coil\"\naddress = 0\ntype = \"u16\"\n",
            "point[0].type",
        ),
        (
            "name = \"t\"\nkind = \"modbus\"\n[[point]]\nquantity = \"alarm\"\ntable = \"holding\"\naddress = 0\ntype = \"bool\"\nbit = 16\n",
            "point[0].bit",
        ),
        (
            "name = \"t\"\nkind = \"modbus\"\n[[point]]\nquantity = \"voltage\"\ntable = \"holding\"\naddress = 65535\ntype = \"f32\"\n",
            "point[0].address",
        ),
        (
            "name = \"t\"\nkind = \"modbus\"\nregisters_per_request_max = 200\n[[point]]\nquantity = \"voltage\"\ntable = \"holding\"\naddress = 0\ntype = \"u16\"\n",
            "registers_per_request_max",
        ),
        (
            "name = \"t\"\nkind = \"modbus\"\n[[point]]\nquantity = \"voltage\"\ntable = \"holdings\"\naddress = 0\ntype = \"u16\"\n",
            "p.toml:5:",
        ),
    ];
    for (text, names) in cases {
        let e = DeviceProfile::parse(text, Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.toml") && e.contains(names), "{names}: {e}");
        assert!(e.contains("fix:"), "{e}");
    }
}

#[test]
fn the_shipped_profiles_load_and_merge_into_their_documented_requests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles");
    let expect: &[(&str, &[Block])] = &[
        ("modbus-flood-level", &[(Table::Input, 0, 5)]),
        (
            "modbus-electrical-fire",
            &[(Table::Holding, 0, 10), (Table::Holding, 20, 1)],
        ),
        (
            "modbus-hydrant-pressure",
            &[(Table::Holding, 0, 3), (Table::Discrete, 0, 1)],
        ),
    ];
    for (name, want) in expect {
        let p = DeviceProfile::load(&dir.join(format!("{name}.toml"))).unwrap();
        let got: Vec<_> = plan(&p)
            .iter()
            .map(|r| (r.table, r.address, r.count))
            .collect();
        assert_eq!(&got, want, "{name}");
    }
    // ... and the MQTT profile loader passes over them.
    let json = edge::normalize::profile::Profile::load_dir(&dir).unwrap();
    assert!(json.iter().all(|p| !p.name.starts_with("modbus-")));
}
