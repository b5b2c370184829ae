//! The SQLite registry: migrations, seed import/export, code validation, credentials, tokens.

use hub::registry::seed::{export_dir, import_dir, SeedError};
use hub::registry::{
    ComponentFilter, ComponentInput, GapReport, IngestRefusal, RegistryAdmin, RegistryError,
    RegistryStore, Scope, SqliteRegistry,
};
use wangge_testkit::paths::{copied_seed_lines, seed_dir};

fn seeded() -> (tempfile::TempDir, SqliteRegistry) {
    let dir = tempfile::tempdir().unwrap();
    let reg = SqliteRegistry::open(&dir.path().join("registry.sqlite")).unwrap();
    import_dir(&reg, &seed_dir()).unwrap();
    (dir, reg)
}

#[test]
fn migrations_are_applied_once_and_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    {
        let reg = SqliteRegistry::open(&path).unwrap();
        assert_eq!(reg.schema_version().unwrap(), 7);
        import_dir(&reg, &seed_dir()).unwrap();
    }
    let reg = SqliteRegistry::open(&path).unwrap();
    assert_eq!(reg.schema_version().unwrap(), 7);
    assert_eq!(reg.stats().unwrap().components, 200);
}

#[test]
fn the_seed_imports_every_file_and_maps_sensors_to_components() {
    let (_d, reg) = seeded();
    let s = reg.stats().unwrap();
    assert_eq!(s.components, 200);
    assert_eq!(s.sensors, 200);
    assert_eq!(s.departments, 12);
    assert_eq!(s.grid_cells, 8);
    assert_eq!(s.edges, 1);
    let a = reg.sensor_assignment("MH-0001").unwrap().unwrap();
    assert_eq!(a.component_id.as_deref(), Some("1201110101000001"));
    assert_eq!(a.component_type.as_deref(), Some("manhole_cover"));
    assert_eq!(a.grid_cell.as_deref(), Some("120111001001"));
    assert_eq!(a.owner_department.as_deref(), Some("sw"));
    assert!(reg.sensor_assignment("NOPE").unwrap().is_none());
    // Importing the same seed again changes nothing (upserts).
    import_dir(&reg, &seed_dir()).unwrap();
    assert_eq!(reg.stats().unwrap().components, 200);
}

#[test]
fn a_bad_row_fails_the_whole_import_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed");
    // Line 7 of sensors.csv (header is line 1) references an unknown component.
    let (path, mut lines) = copied_seed_lines(&seed, "sensors.csv");
    lines[6] = "MH-BAD,1201119999000001,manhole_cover,gridsense,GW-01,60,edge-xq-01".into();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let reg = SqliteRegistry::open(&dir.path().join("registry.sqlite")).unwrap();
    let err = import_dir(&reg, &seed).unwrap_err();
    let SeedError::Row(row) = &err else {
        panic!("want a row error, got {err}")
    };
    assert!(row.file.ends_with("sensors.csv"), "{err}");
    assert_eq!(row.line, 7, "{err}");
    assert_eq!(row.field, "component_id", "{err}");
    assert!(
        err.to_string()
            .contains("sensors.csv:7: component_id: unknown component"),
        "{err}"
    );
    // Nothing half-imported: not even the earlier files.
    let s = reg.stats().unwrap();
    assert_eq!((s.components, s.sensors, s.departments), (0, 0, 0));
}

#[test]
fn component_rows_are_validated_like_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed");
    let (path, mut lines) = copied_seed_lines(&seed, "components.csv");
    // Region 999999 is not in regions.csv.
    lines[3] = lines[3].replacen("120111", "999999", 1);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let reg = SqliteRegistry::open(&dir.path().join("registry.sqlite")).unwrap();
    let err = import_dir(&reg, &seed).unwrap_err().to_string();
    assert!(
        err.contains("components.csv:4: id: unknown region 999999"),
        "{err}"
    );
    assert_eq!(reg.stats().unwrap().components, 0);
}

#[test]
fn export_then_import_round_trips() {
    let (dir, reg) = seeded();
    let out1 = dir.path().join("export1");
    let summary = export_dir(&reg, &out1).unwrap();
    assert!(summary.files.contains(&("components.csv".to_string(), 200)));

    let reg2 = SqliteRegistry::open(&dir.path().join("second.sqlite")).unwrap();
    import_dir(&reg2, &out1).unwrap();
    let out2 = dir.path().join("export2");
    export_dir(&reg2, &out2).unwrap();
    for f in [
        "regions.csv",
        "departments.csv",
        "classes.csv",
        "grid_cells.csv",
        "edges.csv",
        "components.csv",
        "sensors.csv",
    ] {
        let a = std::fs::read_to_string(out1.join(f)).unwrap();
        let b = std::fs::read_to_string(out2.join(f)).unwrap();
        assert_eq!(a, b, "{f} differs after a round trip");
    }
    // The export carries the seed's values (floats print back identically).
    let seed = std::fs::read_to_string(seed_dir().join("grid_cells.csv")).unwrap();
    let exported = std::fs::read_to_string(out1.join("grid_cells.csv")).unwrap();
    assert_eq!(seed, exported);
    let page = reg2
        .list_components(&ComponentFilter {
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        page.items,
        reg.list_components(&ComponentFilter {
            limit: 1,
            ..Default::default()
        })
        .unwrap()
        .items
    );
}

#[test]
fn component_codes_are_validated_and_the_class_suggests_the_owner() {
    let (_d, reg) = seeded();
    let input = |id: &str| ComponentInput {
        id: Some(id.to_string()),
        ..Default::default()
    };
    let field_of = |r: Result<_, RegistryError>| match r {
        Err(RegistryError::Field { field, reason }) => format!("{field}: {reason}"),
        other => panic!("want a field error, got {other:?}"),
    };
    assert!(field_of(reg.create_component(&input("12011101010001")))
        .starts_with("id: must be 16 digits"));
    assert!(field_of(reg.create_component(&input("9999990101000001")))
        .contains("unknown region 999999"));
    assert!(field_of(reg.create_component(&input("1201119901000001")))
        .contains("unknown component class 9901"));
    let mut wrong_type = input("1201110101009999");
    wrong_type.component_type = Some("street_light".into());
    assert!(field_of(reg.create_component(&wrong_type)).starts_with("type:"));
    let mut bad_grid = input("1201110101009999");
    bad_grid.grid_cell = Some("nowhere".into());
    assert!(field_of(reg.create_component(&bad_grid)).starts_with("grid_cell:"));

    // 0111 = gas manhole cover: owner suggested by its class (rq), maintainer follows.
    let c = reg.create_component(&input("1201110111009999")).unwrap();
    assert_eq!(c.component_type, "manhole_cover");
    assert_eq!(c.owner_department.as_deref(), Some("rq"));
    assert_eq!(c.maintainer_department.as_deref(), Some("rq"));
    assert!(matches!(
        reg.create_component(&input("1201110111009999")),
        Err(RegistryError::Conflict(_))
    ));
}

#[test]
fn pagination_visits_every_component_once() {
    let (_d, reg) = seeded();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = reg
            .list_components(&ComponentFilter {
                after: after.clone(),
                limit: 37,
                ..Default::default()
            })
            .unwrap();
        seen.extend(page.items.into_iter().map(|c| c.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 200);
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 200);
    let lights = reg
        .list_components(&ComponentFilter {
            component_type: Some("street_light".into()),
            department: Some("zm".into()),
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    assert!(!lights.items.is_empty());
    assert!(lights
        .items
        .iter()
        .all(|c| c.component_type == "street_light"));
}

#[test]
fn edge_secrets_are_stored_hashed_and_revocable() {
    let (_d, reg) = seeded();
    let secret = reg.add_edge("edge-xq-01", None, None).unwrap();
    let cred = reg.edge_credentials("edge-xq-01").unwrap().unwrap();
    assert!(cred.verify_password(&secret));
    assert!(!cred.verify_password("guess"));
    assert!(!cred.password_hash.contains(&secret));
    assert_eq!(cred.mac_key, protocol::uplink::mac_key(&secret));
    // Name from the seed kept.
    let edges = reg.list_edges(None, 10).unwrap();
    assert_eq!(edges.items[0].name, "西营门街边缘网关");
    assert!(edges.items[0].has_credentials);
    reg.revoke_edge("edge-xq-01").unwrap();
    assert!(!reg
        .edge_credentials("edge-xq-01")
        .unwrap()
        .unwrap()
        .verify_password(&secret));
    assert!(reg.edge_credentials("edge-unknown").unwrap().is_none());
    assert!(reg.add_edge("bad/edge", None, None).is_err());
}

#[test]
fn edge_status_and_unassigned_sensors_are_recorded() {
    let (_d, reg) = seeded();
    reg.record_edge_status(&protocol::uplink::EdgeStatus {
        edge_id: "edge-xq-01".into(),
        online: true,
        version: "0.1.0".into(),
        epoch: 3,
        counter: 1,
        will_counter: 0,
        backlog_readings: 42,
        backlog_bytes: 4200,
        oldest_unacked_ns: None,
        ts_ns: 1,
    })
    .unwrap();
    let e = &reg.list_edges(None, 10).unwrap().items[0];
    assert!(e.online);
    assert_eq!((e.version.as_str(), e.backlog_readings), ("0.1.0", 42));
    assert!(e.last_seen.is_some());
    reg.note_unassigned_sensor("XX-1", "edge-xq-01", 1_000_000_000)
        .unwrap();
    reg.note_unassigned_sensor("XX-1", "edge-xq-01", 2_000_000_000)
        .unwrap();
    let u = reg.list_unassigned_sensors(None, 10).unwrap();
    assert_eq!(u.items.len(), 1);
    assert_eq!(u.items[0].seen_count, 2);
    assert_eq!(reg.stats().unwrap().sensors_unassigned, 1);
}

#[test]
fn tokens_verify_only_with_their_secret_and_carry_scope() {
    let (_d, reg) = seeded();
    let t = reg.add_token(Some("sw"), Scope::Read).unwrap();
    let p = reg.verify_token(&t).unwrap().unwrap();
    assert_eq!(
        (p.department.as_deref(), p.scope),
        (Some("sw"), Scope::Read)
    );
    let forged = format!("{}x", &t[..t.len() - 1]);
    assert!(reg.verify_token(&forged).unwrap().is_none());
    assert!(reg.verify_token("garbage").unwrap().is_none());
    assert!(reg.add_token(Some("nope"), Scope::Write).is_err());
    assert!(reg.add_token(None, Scope::Read).is_err());
    reg.revoke_token(&p.token_id).unwrap();
    assert!(reg.verify_token(&t).unwrap().is_none());
}

#[test]
fn gaps_an_edge_reports_are_recorded_once_and_shown_on_the_edge() {
    use protocol::uplink::{Gap, GapReason};
    let (_d, reg) = seeded();
    let gaps = [
        Gap {
            sensor: "MH-0001".into(),
            from_ns: 1,
            to_ns: 9,
            count: 7,
            reason: GapReason::BufferFull,
        },
        Gap {
            sensor: "MH-0002".into(),
            from_ns: 3,
            to_ns: 4,
            count: 2,
            reason: GapReason::Recovery,
        },
    ];
    let report = |seq, gaps| GapReport {
        edge_id: "edge-xq-01",
        epoch: 5,
        seq,
        gaps,
    };
    reg.record_gaps(&report(11, &gaps), 100).unwrap();
    // The same batch resent after a lost ack: nothing counted twice.
    reg.record_gaps(&report(11, &gaps), 200).unwrap();
    let e = &reg.list_edges(None, 10).unwrap().items[0];
    assert_eq!(e.readings_lost, 9);
    // A later batch's gap adds up.
    reg.record_gaps(&report(12, &gaps[..1]), 300).unwrap();
    assert_eq!(reg.list_edges(None, 10).unwrap().items[0].readings_lost, 16);
}

#[test]
fn a_status_replayed_after_a_hub_restart_is_still_stale() {
    use hub::registry::Freshness;
    use protocol::uplink::EdgeStatus;
    let (dir, reg) = seeded();
    // A status of epoch 5 reporting `counter` readings of backlog.
    let st = |online: bool, counter: u64, will_counter: u64| {
        let st = EdgeStatus::online("edge-xq-01", "0.1.0", 5, counter, will_counter, 1);
        EdgeStatus {
            online,
            backlog_readings: counter,
            ..st
        }
    };
    // Each (online, counter, will_counter) in turn, and how the registry judges it.
    let judged = |reg: &SqliteRegistry, steps: &[((bool, u64, u64), Freshness)]| {
        for &((online, counter, will), want) in steps {
            let got = reg.record_edge_status(&st(online, counter, will)).unwrap();
            assert_eq!(got, want, "online {online}, counter {counter}, will {will}");
        }
    };
    judged(
        &reg,
        &[
            ((true, 1, 0), Freshness::Fresh),
            ((true, 3, 2), Freshness::Fresh),
        ],
    );
    drop(reg);
    // The hub restarts: the mark (epoch 5, counter 3, will 2 pending) was persisted.
    let reg = SqliteRegistry::open(&dir.path().join("registry.sqlite")).unwrap();
    judged(
        &reg,
        &[
            ((true, 1, 0), Freshness::Stale),
            ((false, 0, 0), Freshness::Stale),
            ((true, 3, 2), Freshness::Same),
            ((false, 2, 2), Freshness::AnnouncedWill),
        ],
    );
    assert!(!reg.list_edges(None, 10).unwrap().items[0].online);
    judged(&reg, &[((false, 2, 2), Freshness::Stale)]);
    // A re-issued secret starts freshness over (a re-provisioned box restarts its epochs).
    reg.add_edge("edge-xq-01", None, None).unwrap();
    let mut again = st(true, 0, 0);
    again.epoch = 1;
    assert_eq!(reg.record_edge_status(&again).unwrap(), Freshness::Fresh);
}

#[test]
fn a_foreign_sensor_is_audited_once_per_edge_and_sensor() {
    let (_d, reg) = seeded();
    let audit = |edge: &str, ts| {
        reg.audit_ingest(&IngestRefusal {
            kind: "foreign_sensor",
            edge_id: edge,
            sensor_id: "MH-9",
            detail: "sensor of edge-2",
            at_ns: ts,
        })
        .unwrap()
    };
    assert!(audit("edge-xq-01", 1));
    assert!(!audit("edge-xq-01", 2));
    assert!(audit("edge-xq-02", 3));
}
