//! The registry on both back ends, SQLite and PostgreSQL: each test is a story told once over
//! `&dyn RegistryAdmin` and run on each (PostgreSQL: a fresh database per test in a cluster the
//! test binary shares). Migrations, seed import/export, code validation, credentials, tokens,
//! edge status, gaps and audit behave the same on both.

use hub::registry::seed::{export_dir, import_dir, SeedError};
use hub::registry::{
    ComponentFilter, ComponentInput, GapReport, IngestRefusal, PgRegistry, RegistryAdmin,
    RegistryError, Scope, SensorInput, SqliteRegistry,
};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use wangge_pg::Pg;
use wangge_testkit::paths::{copied_seed_lines, seed_dir};
use wangge_testkit::Postgres;

/// The PostgreSQL cluster of the tests running now: started by the first, stopped (by its PID,
/// on drop) when the last one running lets go of it.
fn cluster() -> Arc<Postgres> {
    static SHARED: Mutex<Weak<Postgres>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(pg) = shared.upgrade() {
        return pg;
    }
    let pg = Arc::new(Postgres::start());
    *shared = Arc::downgrade(&pg);
    pg
}

/// Where one test's registry lives, so the test can open it again (a hub restart), with a
/// scratch directory for seed copies and exports.
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres {
        scratch: tempfile::TempDir,
        url: String,
        _cluster: Arc<Postgres>,
    },
}

impl Place {
    fn sqlite() -> Place {
        Place::Sqlite(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Place {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let cluster = cluster();
        let url = cluster.create_database(&format!(
            "registry_{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        Place::Postgres {
            scratch: tempfile::tempdir().unwrap(),
            url,
            _cluster: cluster,
        }
    }

    /// A fresh registry place of the same back end.
    fn sibling(&self) -> Place {
        match self {
            Place::Sqlite(_) => Place::sqlite(),
            Place::Postgres { .. } => Place::postgres(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Place::Sqlite(_) => "sqlite",
            Place::Postgres { .. } => "postgres",
        }
    }

    fn scratch(&self) -> &Path {
        match self {
            Place::Sqlite(d) => d.path(),
            Place::Postgres { scratch, .. } => scratch.path(),
        }
    }

    /// The registry, opened as a hub opens it (migrations applied if due).
    fn open(&self) -> Box<dyn RegistryAdmin> {
        match self {
            Place::Sqlite(d) => {
                Box::new(SqliteRegistry::open(&d.path().join("registry.sqlite")).unwrap())
            }
            Place::Postgres { url, .. } => {
                Box::new(PgRegistry::open(Arc::new(Pg::connect(url, 2).unwrap())).unwrap())
            }
        }
    }

    /// The registry with the seed of `config/registry` imported.
    fn seeded(&self) -> Box<dyn RegistryAdmin> {
        let reg = self.open();
        import_dir(reg.as_ref(), &seed_dir()).unwrap();
        reg
    }
}

/// Runs `story` on a fresh SQLite registry, then on a fresh PostgreSQL one.
fn on_both(story: impl Fn(&Place)) {
    for place in [Place::sqlite(), Place::postgres()] {
        eprintln!("on {}", place.name());
        story(&place);
    }
}

#[test]
fn migrations_are_applied_once_and_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    {
        let reg = SqliteRegistry::open(&path).unwrap();
        assert_eq!(reg.schema_version().unwrap(), 8);
        import_dir(&reg, &seed_dir()).unwrap();
    }
    let reg = SqliteRegistry::open(&path).unwrap();
    assert_eq!(reg.schema_version().unwrap(), 8);
    assert_eq!(reg.stats().unwrap().components, 200);

    let place = Place::postgres();
    let Place::Postgres { url, .. } = &place else {
        unreachable!()
    };
    let open = || PgRegistry::open(Arc::new(Pg::connect(url, 1).unwrap())).unwrap();
    {
        let reg = open();
        assert_eq!(reg.schema_version().unwrap(), 3);
        import_dir(&reg, &seed_dir()).unwrap();
    }
    let reg = open();
    assert_eq!(reg.schema_version().unwrap(), 3);
    assert_eq!(reg.stats().unwrap().components, 200);
}

#[test]
fn the_seed_imports_every_file_and_maps_sensors_to_components() {
    on_both(|place| {
        let reg = place.seeded();
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
        import_dir(reg.as_ref(), &seed_dir()).unwrap();
        assert_eq!(reg.stats().unwrap(), s);
        assert!(reg.department_exists("sw").unwrap());
        assert!(!reg.department_exists("nope").unwrap());
    });
}

#[test]
fn a_bad_row_fails_the_whole_import_with_file_line_and_field() {
    on_both(|place| {
        let seed = place.scratch().join("seed");
        // Line 7 of sensors.csv (header is line 1) references an unknown component.
        let (path, mut lines) = copied_seed_lines(&seed, "sensors.csv");
        lines[6] = "MH-BAD,1201119999000001,manhole_cover,gridsense,GW-01,60,edge-xq-01".into();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();

        let reg = place.open();
        let err = import_dir(reg.as_ref(), &seed).unwrap_err();
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
    });
}

#[test]
fn component_rows_are_validated_like_the_api() {
    on_both(|place| {
        let seed = place.scratch().join("seed");
        let (path, mut lines) = copied_seed_lines(&seed, "components.csv");
        // Region 999999 is not in regions.csv.
        lines[3] = lines[3].replacen("120111", "999999", 1);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let reg = place.open();
        let err = import_dir(reg.as_ref(), &seed).unwrap_err().to_string();
        assert!(
            err.contains("components.csv:4: id: unknown region 999999"),
            "{err}"
        );
        assert_eq!(reg.stats().unwrap().components, 0);
    });
}

#[test]
fn export_then_import_round_trips() {
    on_both(|place| {
        let reg = place.seeded();
        let out1 = place.scratch().join("export1");
        let summary = export_dir(reg.as_ref(), &out1).unwrap();
        assert!(summary.files.contains(&("components.csv".to_string(), 200)));

        let second = place.sibling();
        let reg2 = second.open();
        import_dir(reg2.as_ref(), &out1).unwrap();
        let out2 = place.scratch().join("export2");
        export_dir(reg2.as_ref(), &out2).unwrap();
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
        let first = |reg: &dyn RegistryAdmin| {
            reg.list_components(&ComponentFilter {
                limit: 1,
                ..Default::default()
            })
            .unwrap()
            .items
        };
        assert_eq!(first(reg2.as_ref()), first(reg.as_ref()));
    });
}

#[test]
fn component_codes_are_validated_and_the_class_suggests_the_owner() {
    on_both(|place| {
        let reg = place.seeded();
        let input = |id: &str| ComponentInput {
            id: Some(id.to_string()),
            ..Default::default()
        };
        fn field_of<T: std::fmt::Debug>(r: Result<T, RegistryError>) -> String {
            match r {
                Err(RegistryError::Field { field, reason }) => format!("{field}: {reason}"),
                other => panic!("want a field error, got {other:?}"),
            }
        }
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
        let mut bad_owner = input("1201110101009999");
        bad_owner.maintainer_department = Some("nope".into());
        assert_eq!(
            field_of(reg.preview_component("1201110101009999", &bad_owner)),
            "maintainer_department: unknown department \"nope\""
        );

        // 0111 = gas manhole cover: owner suggested by its class (rq), maintainer follows.
        let c = reg.create_component(&input("1201110111009999")).unwrap();
        assert_eq!(c.component_type, "manhole_cover");
        assert_eq!(c.owner_department.as_deref(), Some("rq"));
        assert_eq!(c.maintainer_department.as_deref(), Some("rq"));
        assert_eq!(reg.component("1201110111009999").unwrap(), Some(c.clone()));
        assert!(matches!(
            reg.create_component(&input("1201110111009999")),
            Err(RegistryError::Conflict(_))
        ));
        // PUT replaces; the status the events engine sets sticks; DELETE detaches its sensors.
        let mut renamed = input("1201110111009999");
        renamed.name = Some("gas cover".into());
        let (c2, created) = reg.put_component("1201110111009999", &renamed).unwrap();
        assert!(!created);
        assert_eq!(c2.name, "gas cover");
        use hub::registry::ComponentStatus;
        assert!(reg
            .set_component_status("1201110111009999", ComponentStatus::Alarm)
            .unwrap());
        assert!(!reg
            .set_component_status("0000000000000000", ComponentStatus::Alarm)
            .unwrap());
        assert_eq!(
            reg.component("1201110111009999").unwrap().unwrap().status,
            ComponentStatus::Alarm
        );
        let sensor = hub::registry::SensorInput {
            component_id: Some("1201110111009999".into()),
            edge: Some("edge-xq-01".into()),
            ..Default::default()
        };
        let (s, created) = reg.put_sensor("GAS-1", &sensor).unwrap();
        assert!(created && s.interval_s == 60);
        assert_eq!(reg.component_sensors("1201110111009999").unwrap(), vec![s]);
        assert_eq!(
            reg.sensor_context("GAS-1").unwrap().unwrap().component_type,
            "manhole_cover"
        );
        assert!(reg.delete_component("1201110111009999").unwrap());
        assert_eq!(reg.sensor("GAS-1").unwrap().unwrap().component_id, None);
        assert!(reg.sensor_context("GAS-1").unwrap().is_none());
        let unknown_edge = hub::registry::SensorInput {
            edge: Some("edge-nope".into()),
            ..Default::default()
        };
        assert_eq!(
            field_of(reg.put_sensor("GAS-2", &unknown_edge)),
            "edge: unknown edge \"edge-nope\""
        );
    });
}

#[test]
fn pagination_visits_every_component_once() {
    on_both(|place| {
        let reg = place.seeded();
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
        // The reference lists page the same way.
        let first = reg.list_departments(None, 5).unwrap();
        let rest = reg.list_departments(first.next.as_deref(), 100).unwrap();
        assert_eq!((first.items.len(), rest.items.len()), (5, 7));
        assert!(rest.next.is_none());
        assert_eq!(reg.list_grid_cells(None, 100).unwrap().items.len(), 8);
        assert_eq!(reg.sensor_contexts().unwrap().len(), 200);
    });
}

#[test]
fn edge_secrets_are_stored_hashed_and_revocable() {
    on_both(|place| {
        let reg = place.seeded();
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
        assert_eq!(reg.broker_accounts().unwrap().len(), 1);
        reg.revoke_edge("edge-xq-01").unwrap();
        assert!(!reg
            .edge_credentials("edge-xq-01")
            .unwrap()
            .unwrap()
            .verify_password(&secret));
        assert!(reg.broker_accounts().unwrap().is_empty());
        assert!(reg.edge_credentials("edge-unknown").unwrap().is_none());
        assert!(reg.add_edge("bad/edge", None, None).is_err());
        assert!(matches!(
            reg.revoke_edge("edge-unknown"),
            Err(RegistryError::NotFound(_))
        ));
    });
}

#[test]
fn department_mqtt_users_are_issued_listed_and_revoked() {
    on_both(|place| {
        let reg = place.seeded();
        let (user, secret) = reg.add_mqtt_user("sw").unwrap();
        let cred = reg.mqtt_user_credentials(&user).unwrap().unwrap();
        assert!(cred.verify_password(&secret));
        assert_eq!(cred.department_id, "sw");
        let listed = reg.list_mqtt_users().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].username.as_str(), listed[0].revoked),
            (user.as_str(), false)
        );
        assert!(matches!(
            reg.broker_accounts().unwrap()[..],
            [hub::registry::BrokerAccount {
                kind: hub::registry::BrokerAccountKind::Department { .. },
                ..
            }]
        ));
        assert!(matches!(
            reg.add_mqtt_user("nope"),
            Err(RegistryError::Field { .. })
        ));
        reg.revoke_mqtt_user(&user).unwrap();
        assert!(!reg
            .mqtt_user_credentials(&user)
            .unwrap()
            .unwrap()
            .verify_password(&secret));
        assert!(reg.broker_accounts().unwrap().is_empty());
    });
}

#[test]
fn edge_status_and_unassigned_sensors_are_recorded() {
    on_both(|place| {
        let reg = place.seeded();
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
            sources_down: Vec::new(),
        })
        .unwrap();
        let e = &reg.list_edges(None, 10).unwrap().items[0];
        assert!(e.online);
        assert_eq!((e.version.as_str(), e.backlog_readings), ("0.1.0", 42));
        assert!(e.last_seen.is_some());
        assert_eq!(reg.stats().unwrap().edges_online, 1);
        reg.record_edge_seen("edge-xq-01", 5).unwrap();
        reg.note_unassigned_sensor("XX-1", "edge-xq-01", 1_000_000_000)
            .unwrap();
        reg.note_unassigned_sensor("XX-1", "edge-xq-01", 2_000_000_000)
            .unwrap();
        let u = reg.list_unassigned_sensors(None, 10).unwrap();
        assert_eq!(u.items.len(), 1);
        assert_eq!(u.items[0].seen_count, 2);
        assert_eq!(reg.stats().unwrap().sensors_unassigned, 1);
    });
}

#[test]
fn tokens_verify_only_with_their_secret_and_carry_scope() {
    on_both(|place| {
        let reg = place.seeded();
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
    });
}

#[test]
fn gaps_an_edge_reports_are_recorded_once_and_shown_on_the_edge() {
    use protocol::uplink::{Gap, GapReason};
    on_both(|place| {
        let reg = place.seeded();
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
    });
}

#[test]
fn a_status_replayed_after_a_hub_restart_is_still_stale() {
    use hub::registry::Freshness;
    use protocol::uplink::EdgeStatus;
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
    let judged = |reg: &dyn RegistryAdmin, steps: &[((bool, u64, u64), Freshness)]| {
        for &((online, counter, will), want) in steps {
            let got = reg.record_edge_status(&st(online, counter, will)).unwrap();
            assert_eq!(got, want, "online {online}, counter {counter}, will {will}");
        }
    };
    on_both(|place| {
        let reg = place.seeded();
        judged(
            reg.as_ref(),
            &[
                ((true, 1, 0), Freshness::Fresh),
                ((true, 3, 2), Freshness::Fresh),
            ],
        );
        drop(reg);
        // The hub restarts: the mark (epoch 5, counter 3, will 2 pending) was persisted.
        let reg = place.open();
        judged(
            reg.as_ref(),
            &[
                ((true, 1, 0), Freshness::Stale),
                ((false, 0, 0), Freshness::Stale),
                ((true, 3, 2), Freshness::Same),
                ((false, 2, 2), Freshness::AnnouncedWill),
            ],
        );
        assert!(!reg.list_edges(None, 10).unwrap().items[0].online);
        judged(reg.as_ref(), &[((false, 2, 2), Freshness::Stale)]);
        // A re-issued secret starts freshness over (a re-provisioned box restarts its epochs).
        reg.add_edge("edge-xq-01", None, None).unwrap();
        let mut again = st(true, 0, 0);
        again.epoch = 1;
        assert_eq!(reg.record_edge_status(&again).unwrap(), Freshness::Fresh);
        let mut unknown = again.clone();
        unknown.edge_id = "edge-unknown".into();
        assert!(matches!(
            reg.record_edge_status(&unknown),
            Err(RegistryError::NotFound(_))
        ));
    });
}

#[test]
fn a_foreign_sensor_is_audited_once_per_edge_and_sensor() {
    on_both(|place| {
        let reg = place.seeded();
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
    });
}

#[test]
fn coverage_lists_attached_sensors_and_a_reattachment_keeps_the_first_registration() {
    on_both(|place| {
        let before = hub::registry::now_ns();
        let reg = place.seeded();
        let after = hub::registry::now_ns();
        let cov = reg.coverage_sensors().unwrap();
        assert!(!cov.is_empty());
        // Every attached sensor once (in no particular order: the report ranks them).
        let mut keys: Vec<_> = cov.iter().map(|s| &s.sensor_id).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), cov.len(), "each sensor once");
        assert_eq!(cov.len(), 200, "the seed's 200 attached sensors");
        // SQLite's trigger has millisecond precision: allow one on either side.
        let ms = 1_000_000;
        for s in &cov {
            let at = s.registered_at_ns.expect("registered on insert");
            assert!(at >= before - ms && at <= after + ms, "{s:?}");
            assert!(s.interval_s > 0 && !s.component_name.is_empty(), "{s:?}");
        }
        let first = &cov[0];
        let sensor = reg.sensor(&first.sensor_id).unwrap().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (_, created) = reg
            .put_sensor(
                &sensor.id,
                &SensorInput {
                    component_id: sensor.component_id.clone(),
                    sensor_type: Some(sensor.sensor_type.clone()),
                    profile: Some(sensor.profile.clone()),
                    address: Some(sensor.address.clone()),
                    interval_s: Some(sensor.interval_s * 2),
                    edge: sensor.edge.clone(),
                },
            )
            .unwrap();
        assert!(!created);
        let again = reg.coverage_sensors().unwrap();
        let s = again
            .iter()
            .find(|s| s.sensor_id == first.sensor_id)
            .unwrap();
        assert_eq!(s.interval_s, first.interval_s * 2, "the update was applied");
        assert_eq!(
            s.registered_at_ns, first.registered_at_ns,
            "first registration kept"
        );
    });
}
