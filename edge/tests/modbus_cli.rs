//! The technician's Modbus commands on real processes: `edge check` probes every block of every
//! slave (OK, or FAIL with the fix), `edge modbus scan` lists the unit ids that answer, a bad
//! `[[modbus]]` section is refused naming the file and the field, and an independent master
//! (`mbpoll`, Debian) reads the simulator's registers the way the edge decodes them.

mod common;
mod modbus_rig;

use common::{edge_on_config, write_config, EdgeConfig};
use modbus_rig::{line_toml, render, rtu, workdir, Rig, Sim};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use wangge_testkit::{free_port, wait_until};

const FL: &str = "modbus-flood-level";
const EF: &str = "modbus-electrical-fire";

/// An edge.toml in `dir` with `modbus` lines (site and hub on ports nobody listens on).
fn config_with(dir: &Path, name: &str, modbus: &str) -> std::path::PathBuf {
    let cfg = EdgeConfig::new(free_port(), free_port(), dir, modbus);
    write_config(dir, name, &render(&cfg, dir))
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_probes_every_block_and_scan_lists_the_units_that_answer() {
    let (dir, link) = workdir();
    let _sim = Sim::start(
        dir.path(),
        &link,
        free_port(),
        &[
            &format!("1:{FL}"),
            &format!("2:{EF}"),
            &format!("3:{FL}:mute"),
            &format!("5:{FL}"),
        ],
        &[],
    );
    let modbus = line_toml(
        "rs485",
        &rtu(&link),
        "timeout = \"200ms\"",
        &[(1, FL, "FL-1"), (2, EF, "EF-2"), (3, FL, "FL-3")],
    );
    let config = config_with(dir.path(), "edge.toml", &modbus);
    let out = edge_on_config(&["check"], &config);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    for block in [
        "OK   modbus profiles: modbus-electrical-fire (2 requests a cycle), modbus-flood-level (1 request a cycle)",
        "OK   modbus rs485 unit 1 (FL-1) input 0+5: answers",
        "OK   modbus rs485 unit 2 (EF-2) holding 0+10: answers",
        "OK   modbus rs485 unit 2 (EF-2) holding 20+1: answers",
    ] {
        assert!(t.lines().any(|l| l == block), "{block}\n{t}");
    }
    let mute: Vec<&str> = t.lines().filter(|l| l.contains("unit 3 (FL-3)")).collect();
    assert_eq!(mute.len(), 1, "{t}");
    assert!(
        mute[0].starts_with("FAIL modbus rs485 unit 3 (FL-3) input 0+5: no answer"),
        "{t}"
    );
    assert!(
        mute[0].contains("(fix: check the unit id (edge modbus scan)"),
        "{t}"
    );

    // The scan finds 1, 2 and 5 (the mute 3 and the absent 4 do not answer).
    let out = edge_on_config(
        &["modbus", "scan", "--line", "rs485", "--units", "1-5"],
        &config,
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let answering: Vec<&str> = t
        .lines()
        .filter(|l| l.starts_with("unit") && l.contains(": answers"))
        .map(|l| l[4..].split(':').next().unwrap().trim())
        .collect();
    assert_eq!(answering, ["1", "2", "5"], "{t}");
    assert!(t.contains("3 of 5 unit ids answer: [1, 2, 5]"), "{t}");
}

/// Each bad `[[modbus]]` section is refused by `edge check` and `edge run` with the file and
/// the field named.
#[test]
fn a_bad_modbus_section_names_the_file_and_the_field() {
    let (dir, link) = workdir();
    let cases = [
        (
            "unknown-profile",
            line_toml("l", &rtu(&link), "", &[(1, "modbus-nonesuch", "X-1")]),
            "modbus[0].slave[0].profile",
        ),
        (
            "unit-zero",
            line_toml("l", &rtu(&link), "", &[(0, FL, "X-1")]),
            "modbus[0].slave[0].unit",
        ),
        (
            "duplicate-unit",
            line_toml("l", &rtu(&link), "", &[(4, FL, "X-1"), (4, FL, "X-2")]),
            "modbus[0].slave[1].unit",
        ),
        (
            "rtu-and-tcp",
            line_toml(
                "l",
                &format!("{}\ntcp = \"127.0.0.1:502\"", rtu(&link)),
                "",
                &[(1, FL, "X-1")],
            ),
            "modbus[0]",
        ),
    ];
    for (name, modbus, field) in cases {
        let config = config_with(dir.path(), &format!("{name}.toml"), &modbus);
        for cmd in ["check", "run"] {
            let out = edge_on_config(&[cmd], &config);
            let t = text(&out);
            assert!(!out.status.success(), "{name}: edge {cmd} accepted it\n{t}");
            assert!(
                t.contains(&config.display().to_string()),
                "{name}: edge {cmd}: no file\n{t}"
            );
            assert!(t.contains(field), "{name}: edge {cmd}: no {field}\n{t}");
        }
    }
}

/// `mbpoll`, installing it (Debian) when missing; None if it cannot be had.
fn mbpoll() -> Option<&'static str> {
    let found = || {
        Command::new("mbpoll")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !found() {
        let _ =
            Command::new(wangge_testkit::paths::workspace_root().join("scripts/install-test-deps"))
                .status();
    }
    found().then_some("mbpoll")
}

/// One poll by mbpoll of unit 1's input registers from `reference` (PDU addressing); the numbers
/// it prints, in order. `how` is the transport: `-m tcp -p PORT 127.0.0.1` or `-m rtu ... LINK`.
fn mbpoll_read(how: &[&str], kind: &str, reference: u16, count: u16) -> Vec<f64> {
    let (r, c) = (reference.to_string(), count.to_string());
    let mut args = vec![
        "-a", "1", "-t", kind, "-0", "-r", &r, "-c", &c, "-1", "-o", "2",
    ];
    args.splice(0..0, how.iter().take(how.len() - 1).copied());
    args.push(how[how.len() - 1]);
    let out = Command::new("mbpoll").args(&args).output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "mbpoll {args:?}\n{t}");
    let values: Vec<f64> = t
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| {
            let v = l
                .split(':')
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            v.parse().unwrap_or_else(|e| panic!("{e}: {l}\n{t}"))
        })
        .collect();
    assert_eq!(values.len(), count as usize, "mbpoll {args:?}\n{t}");
    values
}

/// The first reading of quantity `q` the edge sent for `sensor`.
fn first(rig: &Rig, sensor: &str, q: protocol::Quantity) -> f64 {
    rig.readings(sensor)
        .iter()
        .find(|r| r.0 == q)
        .map(|r| r.1)
        .unwrap_or_else(|| panic!("{sensor}: no {q:?} reading"))
}

/// An independent master agrees with the edge: mbpoll reads the simulator's flood-level
/// transmitter over Modbus TCP (decoding the CDAB float itself) and over the RTU pty (raw
/// registers); a fresh simulator with the same seed serves the edge the same first answer, and
/// the edge's readings equal mbpoll's numbers under the profile (m -> cm, 0.1 V, status bit 0).
#[test]
fn mbpoll_reads_what_the_edge_decodes_over_tcp_and_rtu() {
    let Some(_) = mbpoll() else {
        eprintln!(
            "SKIP: mbpoll is not installed and could not be installed (scripts/install-test-deps)"
        );
        return;
    };
    let (dir, link) = workdir();
    let tcp = free_port();
    let dev = format!("1:{FL}");
    let sim = Sim::start(dir.path(), &link, tcp, &[&dev], &[&dev]);
    let port = tcp.to_string();
    let over_tcp = ["-m", "tcp", "-p", &port, "127.0.0.1"];
    let link_s = link.display().to_string();
    let over_rtu = ["-m", "rtu", "-b", "19200", "-P", "even", &link_s];
    // Each server's first answer: the TCP one as mbpoll's float, the RTU one as raw words.
    let level_m = mbpoll_read(&over_tcp, "3:float", 0, 1)[0];
    let words = mbpoll_read(&over_rtu, "3", 0, 5);
    sim.stop();
    // The same answer both ways: mbpoll's float is the CDAB (low word first) f32 of the words.
    let from_words = f32::from_bits(((words[1] as u32) << 16) | words[0] as u32) as f64;
    assert!(
        (from_words - level_m).abs() <= 1e-5 * level_m.abs(),
        "{level_m} vs {words:?}"
    );

    let sim = Sim::start(dir.path(), &link, tcp, &[&dev], &[&dev]);
    let mut modbus = line_toml(
        "rs485",
        &rtu(&link),
        "timeout = \"500ms\"",
        &[(1, FL, "FL-R")],
    );
    modbus += &line_toml(
        "tcp",
        &format!("tcp = \"127.0.0.1:{tcp}\""),
        "",
        &[(1, FL, "FL-T")],
    );
    let rig = Rig::start(dir.path(), &modbus, "mbpoll");
    wait_until(
        "both lines' first readings",
        Duration::from_secs(30),
        || rig.readings("FL-R").len() >= 3 && rig.readings("FL-T").len() >= 3,
    );
    drop(sim);
    use protocol::Quantity::{Alarm, Voltage, WaterLevel};
    for sensor in ["FL-R", "FL-T"] {
        let level = first(&rig, sensor, WaterLevel);
        assert!(
            (level - level_m * 100.0).abs() <= 1e-5 * level.abs(),
            "{sensor}: {level} cm vs mbpoll {level_m} m"
        );
        assert!(
            (first(&rig, sensor, Voltage) - words[3] * 0.1).abs() < 1e-9,
            "{sensor} voltage vs {words:?}"
        );
        assert_eq!(
            first(&rig, sensor, Alarm),
            f64::from(words[4] as u16 & 1),
            "{sensor} alarm vs {words:?}"
        );
    }
}
