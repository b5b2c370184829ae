//! Modbus faults with real processes: `firmware-sim modbus` slaves (CRC-corrupted answers,
//! exception answers, a slave slower than the timeout, a mute one) on an RTU pty line and behind
//! one Modbus TCP connection, polled by the real `edge run`. These are tokio-modbus's known gaps,
//! handled by the edge's client and poller: no built-in request timeout (tokio-modbus #113) and
//! multi-drop framing (#180: a late or garbled answer on a shared bus, taken for the next
//! request's unless the client waits it out and discards it, or on TCP starts a new connection).

mod common;
mod modbus_rig;

use modbus_rig::{line_toml, rtu, summary_count, workdir, Rig, Sim};
use std::time::Duration;
use wangge_testkit::{free_port, wait_until};

const LINE: &str = "rs485";
const REASONS: [&str; 5] = ["timeout", "crc", "exception", "mismatch", "io"];

/// Failures of one slave for one reason.
fn failures(rig: &Rig, unit: u8, reason: &str) -> f64 {
    rig.slave(
        "edge_modbus_failures_total",
        LINE,
        unit,
        &format!("reason=\"{reason}\""),
    )
}

/// Five flood-level transmitters on one RTU line: 1 answers, 2 corrupts half its CRCs, 3
/// answers every read with exception 2, 4 answers after 450 ms (timeout 300 ms: late), 5 is mute.
/// Each failure is counted for its slave and reason; a garbled or late answer never becomes a
/// reading (#180), a slave that never answers costs a timeout, not a hang (#113), and the
/// answering slave on the same bus sees no failure at all.
#[test]
fn crc_exception_and_timeout_are_counted_per_slave_and_never_become_readings() {
    let (dir, link) = workdir();
    let p = "modbus-flood-level";
    let sim = Sim::start(
        dir.path(),
        &link,
        free_port(),
        &[
            &format!("1:{p}"),
            &format!("2:{p}:crc=0.5"),
            &format!("3:{p}:exception=2"),
            &format!("4:{p}:slow=450ms"),
            &format!("5:{p}:mute"),
        ],
        &[],
    );
    let slaves: Vec<(u8, &str, &str)> = vec![
        (1, p, "FL-1"),
        (2, p, "FL-2"),
        (3, p, "FL-3"),
        (4, p, "FL-4"),
        (5, p, "FL-5"),
    ];
    let modbus = line_toml(
        LINE,
        &rtu(&link),
        "timeout = \"300ms\"\nbackoff_max = \"2s\"",
        &slaves,
    );
    let rig = Rig::start(dir.path(), &modbus, "faults");
    wait_until("every fault counted", Duration::from_secs(60), || {
        rig.slave("edge_modbus_poll_cycles_total", LINE, 1, "") >= 6.0
            && failures(&rig, 2, "crc") >= 1.0
            && rig.slave("edge_modbus_poll_cycles_total", LINE, 2, "") >= 2.0
            && failures(&rig, 3, "exception") >= 1.0
            && failures(&rig, 4, "timeout") >= 1.0
            && failures(&rig, 5, "timeout") >= 1.0
    });
    let text = rig.edge.get("/metrics").unwrap();
    for reason in REASONS {
        assert_eq!(failures(&rig, 1, reason), 0.0, "unit 1 {reason}\n{text}");
    }
    // Each slave's failures carry its own reason only.
    for (unit, reason) in [(2, "crc"), (3, "exception"), (4, "timeout"), (5, "timeout")] {
        for other in REASONS.iter().filter(|r| **r != reason) {
            assert_eq!(
                failures(&rig, unit, other),
                0.0,
                "unit {unit} {other}\n{text}"
            );
        }
    }
    for unit in [3, 4, 5] {
        assert_eq!(
            rig.slave("edge_modbus_slave_up", LINE, unit, ""),
            0.0,
            "{text}"
        );
    }
    assert_eq!(
        rig.slave("edge_modbus_slave_up", LINE, 1, ""),
        1.0,
        "{text}"
    );

    // Every intact answer in time is one reading per point at the hub, and nothing else: the
    // corrupted and exception answers made none, and neither did the slow slave's late ones.
    let summary = sim.stop();
    for (unit, sensor) in [(1u8, "FL-1"), (2, "FL-2"), (3, "FL-3"), (5, "FL-5")] {
        let want = summary_count(&summary, "rtu", unit, "values") as usize;
        wait_until(
            &format!("{sensor}: {want} readings at the hub"),
            Duration::from_secs(20),
            || rig.readings(sensor).len() >= want,
        );
        let got = rig.readings(sensor);
        assert_eq!(
            got.len(),
            want,
            "{sensor}: readings vs intact answers\n{summary}"
        );
        for (q, v, _) in &got {
            assert!(
                v.is_finite() && *v >= 0.0 && *v < 1000.0,
                "{sensor} {q:?} = {v}"
            );
        }
    }
    assert!(
        summary_count(&summary, "rtu", 2, "corrupted") >= 1,
        "{summary}"
    );
    assert!(
        summary_count(&summary, "rtu", 2, "values") >= 3,
        "{summary}"
    );
    assert_eq!(summary_count(&summary, "rtu", 3, "values"), 0, "{summary}");
    assert!(
        summary_count(&summary, "rtu", 4, "values") >= 3,
        "{summary}"
    );
    assert_eq!(
        rig.readings("FL-4"),
        vec![],
        "a late answer became a reading"
    );
}

/// A mute slave (no built-in timeout in tokio-modbus, #113) never stalls the others on its
/// line: while it is backed off, the answering slaves keep one poll cycle per interval, and it
/// is probed again after its backoff (its requests grow, but far slower than theirs).
#[test]
fn a_mute_slave_is_backed_off_and_never_stalls_the_line() {
    let (dir, link) = workdir();
    let (fl, ef) = ("modbus-flood-level", "modbus-electrical-fire");
    let _sim = Sim::start(
        dir.path(),
        &link,
        free_port(),
        &[
            &format!("1:{fl}"),
            &format!("2:{ef}"),
            &format!("3:{fl}:mute"),
        ],
        &[],
    );
    let modbus = line_toml(
        LINE,
        &rtu(&link),
        "timeout = \"400ms\"\nretries = 2\nbackoff_max = \"4s\"",
        &[(1, fl, "FL-1"), (2, ef, "EF-2"), (3, fl, "FL-3")],
    );
    let rig = Rig::start(dir.path(), &modbus, "mute");
    let cycles = |u| rig.slave("edge_modbus_poll_cycles_total", LINE, u, "");
    let requests = |u| rig.slave("edge_modbus_requests_total", LINE, u, "");
    wait_until("the mute slave down", Duration::from_secs(30), || {
        rig.slave("edge_modbus_slave_up", LINE, 3, "") == 0.0 && failures(&rig, 3, "timeout") >= 3.0
    });
    let (c1, c2, r3) = (cycles(1), cycles(2), requests(3));
    // Ten more cycles of the answering slaves.
    wait_until("ten more poll cycles", Duration::from_secs(60), || {
        cycles(1) >= c1 + 10.0 && cycles(2) >= c2 + 10.0
    });
    let (d1, d2) = (cycles(1) - c1, cycles(2) - c2);
    let d3 = requests(3) - r3;
    let text = rig.edge.get("/metrics").unwrap();
    // Both answering slaves kept the same cadence (one cycle each per interval, ±1).
    assert!((d1 - d2).abs() <= 1.0, "cycles {d1} vs {d2}\n{text}");
    // The mute slave was tried again, but backed off: fewer requests than a full cadence
    // (3 attempts per cycle) would have sent.
    assert!(d3 >= 1.0, "the mute slave was never probed again\n{text}");
    assert!(
        d3 < d1 * 3.0 / 2.0,
        "the mute slave was not backed off: {d3} requests in {d1} cycles\n{text}"
    );
    for reason in REASONS {
        assert_eq!(failures(&rig, 1, reason), 0.0, "unit 1 {reason}\n{text}");
        assert_eq!(failures(&rig, 2, reason), 0.0, "unit 2 {reason}\n{text}");
    }
}

/// The RS-485 adapter disappears (the simulator and its pty go away) and comes back on the same
/// path: the edge reports the line down, reopens it, and readings resume.
#[test]
fn the_line_is_reopened_when_the_adapter_comes_back() {
    let (dir, link) = workdir();
    let fl = "modbus-flood-level";
    let tcp = free_port();
    let mut sim = Sim::start(dir.path(), &link, tcp, &[&format!("1:{fl}")], &[]);
    let modbus = line_toml(LINE, &rtu(&link), "timeout = \"300ms\"", &[(1, fl, "FL-1")]);
    let rig = Rig::start(dir.path(), &modbus, "reopen");
    let src = |name: &str| rig.edge.metric(name, &format!("source=\"{LINE}\""));
    wait_until("readings from the line", Duration::from_secs(30), || {
        src("edge_readings_in_total") >= 3.0 && rig.edge.source_up(LINE)
    });
    // Unplugged cleanly (SIGTERM: the pty and its link go away), then abruptly (kill -9: the
    // pty goes, its link is left dangling until the next simulator replaces it).
    for abrupt in [false, true] {
        let reconnects = src("edge_source_reconnects_total");
        if abrupt {
            sim.proc.kill9();
        } else {
            sim.stop();
            assert!(!link.exists(), "the simulator left its link behind");
        }
        wait_until("the line reported down", Duration::from_secs(30), || {
            !rig.edge.source_up(LINE)
        });
        let readings = src("edge_readings_in_total");
        assert!(
            src("edge_source_reconnects_total") > reconnects,
            "abrupt {abrupt}"
        );
        sim = Sim::start(dir.path(), &link, tcp, &[&format!("1:{fl}")], &[]);
        wait_until("readings again", Duration::from_secs(60), || {
            rig.edge.source_up(LINE) && src("edge_readings_in_total") >= readings + 3.0
        });
        assert_eq!(rig.slave("edge_modbus_slave_up", LINE, 1, ""), 1.0);
    }
}

/// The same late answer on Modbus TCP (a gateway with several units behind one connection):
/// the slow unit's answer, arriving after its timeout, is not taken for the next unit's.
#[test]
fn a_late_answer_on_tcp_does_not_land_on_the_next_unit() {
    let (dir, link) = workdir();
    let fl = "modbus-flood-level";
    let tcp = free_port();
    let _sim = Sim::start(
        dir.path(),
        &link,
        tcp,
        &[&format!("9:{fl}")],
        &[&format!("1:{fl}"), &format!("4:{fl}:slow=450ms")],
    );
    let modbus = line_toml(
        "tcp",
        &format!("tcp = \"127.0.0.1:{tcp}\""),
        "timeout = \"300ms\"\nbackoff_max = \"2s\"",
        &[(1, fl, "FL-1"), (4, fl, "FL-4")],
    );
    let rig = Rig::start(dir.path(), &modbus, "tcp-late");
    let m = |u, f: &str| {
        rig.slave(
            "edge_modbus_failures_total",
            "tcp",
            u,
            &format!("reason=\"{f}\""),
        )
    };
    wait_until(
        "the slow unit timed out thrice",
        Duration::from_secs(60),
        || {
            m(4, "timeout") >= 3.0
                && rig.slave("edge_modbus_poll_cycles_total", "tcp", 1, "") >= 6.0
        },
    );
    let text = rig.edge.get("/metrics").unwrap();
    for reason in REASONS {
        assert_eq!(m(1, reason), 0.0, "unit 1 {reason}\n{text}");
    }
    assert!(
        rig.readings("FL-4").is_empty(),
        "a late answer became a reading"
    );
}
