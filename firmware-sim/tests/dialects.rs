//! Every payload the simulator writes parses as DIALECTS.md describes, and what a receiver decodes
//! from all outputs together is exactly the `--record` file. Runs every sensor of the seed with the
//! demo incidents and all wire faults, into files.

mod common;

use common::*;
use std::time::Duration;

fn run_into(dir: &std::path::Path, scenario: &str, seed: &str) -> serde_json::Value {
    run_sim(
        sim()
            .args(["--scenario", repo(scenario).to_str().unwrap()])
            .args([
                "--seed",
                seed,
                "--interval-scale",
                "0",
                "--duration",
                "400s",
            ])
            // Files need no realistic pacing.
            .args(["--baud-a", "921600", "--baud-b", "921600"])
            .arg("--mqtt-dump")
            .arg(dir.join("mqtt.txt"))
            .arg("--serial-a")
            .arg(dir.join("line-a.bin"))
            .arg("--serial-b")
            .arg(dir.join("line-b.txt"))
            .arg("--record")
            .arg(dir.join("record.jsonl")),
        Duration::from_secs(120),
    )
}

fn decode_all(dir: &std::path::Path) -> (Readings, (u64, u64)) {
    let mut got = Readings::new();
    for line in std::fs::read_to_string(dir.join("mqtt.txt"))
        .unwrap()
        .lines()
    {
        let (topic, payload) = line.split_once('\t').expect("TOPIC<tab>PAYLOAD");
        decode_mqtt(topic, payload.as_bytes(), &mut got);
    }
    let text = std::fs::read_to_string(dir.join("line-b.txt")).unwrap();
    assert!(text.ends_with("\r\n"));
    for line in text.split_terminator("\r\n") {
        decode_text_line(line, &mut got);
    }
    let counts = decode_frames(&std::fs::read(dir.join("line-a.bin")).unwrap(), &mut got);
    (got, counts)
}

#[test]
fn every_payload_parses_per_dialects_md_and_matches_the_record() {
    for scenario in ["config/scenarios/demo.toml", "config/scenarios/faults.toml"] {
        let dir = tempfile::tempdir().unwrap();
        let summary = run_into(dir.path(), scenario, "3");
        let (got, (frames, rejected)) = decode_all(dir.path());
        let want = read_record(&dir.path().join("record.jsonl"));
        assert_same_readings(&got, &want);
        let totals = &summary["totals"];
        assert_eq!(
            want.len() as u64,
            totals["readings"].as_u64().unwrap(),
            "{scenario}: record vs summary"
        );
        let a = &summary["serial"]["A"];
        assert_eq!(frames, a["frames_sent"].as_u64().unwrap());
        let damaged = ["frames_corrupted", "frames_truncated", "noise_bursts"]
            .iter()
            .map(|k| a[k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(rejected, damaged, "{scenario}");
        // Per sensor, readings in the summary are the receiver's distinct readings.
        for (id, s) in summary["sensors"].as_object().unwrap() {
            let n = got.keys().filter(|(sid, _, _)| sid == id).count() as u64;
            assert_eq!(n, s["readings"].as_u64().unwrap(), "{scenario}: {id}");
        }
        if scenario.ends_with("faults.toml") {
            for k in [
                "duplicates_sent",
                "frames_corrupted",
                "frames_truncated",
                "noise_bursts",
                "reordered",
            ] {
                assert!(
                    totals[k].as_u64().unwrap() > 0,
                    "faults.toml injected no {k}"
                );
            }
        }
    }
}

#[test]
fn a_reading_is_unique_by_sensor_quantity_and_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    run_into(dir.path(), "config/scenarios/faults.toml", "5");
    let want = read_record(&dir.path().join("record.jsonl"));
    let mut seen = std::collections::HashSet::new();
    for ((sensor, q, _), (_, ts)) in &want {
        if let Some(ts) = ts {
            assert!(
                seen.insert((sensor.clone(), q.clone(), *ts)),
                "{sensor} {q} twice at {ts}"
            );
        }
    }
    assert!(seen.len() > 1000);
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    for (d, seed) in dirs.iter().zip(["21", "21", "22"]) {
        run_into(d.path(), "config/scenarios/faults.toml", seed);
    }
    for f in ["record.jsonl", "mqtt.txt", "line-a.bin", "line-b.txt"] {
        let a = std::fs::read(dirs[0].path().join(f)).unwrap();
        let b = std::fs::read(dirs[1].path().join(f)).unwrap();
        let c = std::fs::read(dirs[2].path().join(f)).unwrap();
        assert!(!a.is_empty(), "{f} is empty");
        assert!(a == b, "{f} differs between two runs with seed 21");
        assert!(a != c, "{f} is the same with seed 22");
    }
}
