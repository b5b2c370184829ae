//! SIGTERM (and Ctrl-C) end a run cleanly: what was sent is summarised and recorded, exactly.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn sigterm_finishes_cleanly_with_an_exact_summary() {
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_sim(
        sim()
            .args(["--interval-scale", "0.01"])
            .arg("--mqtt-dump")
            .arg(dir.path().join("mqtt.txt"))
            .arg("--serial-a")
            .arg(dir.path().join("a.bin"))
            .arg("--record")
            .arg(dir.path().join("record.jsonl")),
    );
    // Stop it mid-run, once it has visibly sent something (the dump is written as it goes).
    let dump = dir.path().join("mqtt.txt");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&dump).map_or(0, |m| m.len()) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing sent within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = finish_ok(child, Duration::from_secs(30));
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("a summary after SIGTERM");
    let readings = summary["totals"]["readings"].as_u64().unwrap();
    assert!(readings > 0);
    assert!(
        summary["sim_ms"].as_u64().unwrap() < 3_600_000,
        "the run was stopped early"
    );
    let record = read_record(&dir.path().join("record.jsonl"));
    assert_eq!(record.len() as u64, readings);
    let dumped = std::fs::read_to_string(dir.path().join("mqtt.txt"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(dumped, summary["mqtt"]["published"].as_u64().unwrap());
}
