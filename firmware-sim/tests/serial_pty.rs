//! Serial output through a pseudo-terminal the simulator creates: a reader opens the link,
//! decodes with the protocol crate, and the counts match the summary exactly, faults included.

mod common;

use common::*;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Opens `link` once it exists (bounded) and reads until the simulator closes the pty.
fn read_pty(link: std::path::PathBuf) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !link.exists() {
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                link.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&link)
            .expect("opening the pty link");
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                // EIO: the simulator closed its end.
                Err(_) => break,
            }
        }
        let _ = tx.send(all);
    });
    rx
}

#[test]
fn frames_through_a_pty_are_decoded_and_faults_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyA");
    let bytes = read_pty(link.clone());
    let child = spawn_sim(
        faults_sim("serial-binary", "6s", &dir.path().join("record.jsonl"))
            .arg("--pty-a")
            .arg(&link),
    );
    let out = finish_ok(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("serial A: /dev/pts/"),
        "the pty path is printed: {stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bytes = bytes
        .recv_timeout(Duration::from_secs(20))
        .expect("the reader finished");

    let mut got = Readings::new();
    let (frames, rejected) = decode_frames(&bytes, &mut got);
    let a = &summary["serial"]["A"];
    let n = |k: &str| a[k].as_u64().unwrap();
    assert_eq!(bytes.len() as u64, n("bytes"), "every byte written arrived");
    assert_eq!(frames, n("frames_sent"));
    assert_eq!(
        rejected,
        n("frames_corrupted") + n("frames_truncated") + n("noise_bursts")
    );
    assert!(
        n("frames_corrupted") > 0 && n("frames_truncated") > 0 && n("noise_bursts") > 0,
        "{a}"
    );
    assert_eq!(n("unsent_bytes"), 0);
    assert!(a["path"].as_str().unwrap().starts_with("/dev/pts/"));
    assert!(!link.exists(), "the link is removed at exit");

    assert_same_readings(&got, &read_record(&dir.path().join("record.jsonl")));
    assert_eq!(
        got.len() as u64,
        summary["totals"]["readings"].as_u64().unwrap()
    );
}

#[test]
fn the_line_is_paced_at_the_baud_rate() {
    // 2400 baud 8N1 = 240 bytes/s: with no scenario pacing at all (--interval-scale 0), the
    // byte budget alone must stretch the run to at least bytes / 240 seconds.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyA");
    let bytes = read_pty(link.clone());
    let started = Instant::now();
    let summary = run_sim(
        sim()
            .args([
                "--only",
                "MH-004",
                "--count",
                "2",
                "--interval-scale",
                "0",
                "--baud-a",
                "2400",
            ])
            .arg("--pty-a")
            .arg(&link),
        Duration::from_secs(60),
    );
    let elapsed = started.elapsed().as_secs_f64();
    let sent = summary["serial"]["A"]["bytes"].as_u64().unwrap();
    let got = bytes.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(got.len() as u64, sent);
    // Everything but the first write (one frame, < 100 bytes) waits for its budget.
    let budget = (sent as f64 - 100.0) / 240.0;
    assert!(sent > 500, "{sent} bytes is too few to measure");
    assert!(
        elapsed >= budget,
        "{sent} bytes at 2400 baud took only {elapsed:.2} s (budget {budget:.2} s)"
    );
}
