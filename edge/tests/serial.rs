//! Serial lines through real pseudo-terminals: binary frames and text lines with garbage in
//! between are counted by reason while good data still reaches the hub; a port that goes
//! away is reported, not fatal.

mod common;

use common::*;
use protocol::{encode_frame, measurements, Quantity, SensorFrame, Value};
use std::io::Write;
use std::time::Duration;

fn frame(sensor: &str, seq: u32) -> Vec<u8> {
    let values = measurements(&[
        (Quantity::Tilt, Value::Float(f64::from(seq % 90))),
        (Quantity::Battery, Value::Int(80)),
    ])
    .unwrap();
    let f = SensorFrame {
        sensor_id: sensor,
        seq,
        ts_ms: Some(1_732_500_000_000 + u64::from(seq)),
        values,
    };
    let mut buf = [0u8; 200];
    let n = encode_frame(&f, &mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn garbage_on_pty_serial_lines_is_counted_and_good_frames_and_lines_still_flow() {
    let mut rig = SerialRig::start("serial");
    let (a, b) = (&mut rig.a, &mut rig.b);

    // Line A: 200 good frames, with line noise, a corrupted frame and an overlong run between.
    let mut bytes = vec![0u8];
    for seq in 0..200u32 {
        bytes.extend(frame("MH-0041", seq));
        match seq % 50 {
            10 => bytes.extend([0x13, 0x37, 0xff, 0x00]),
            20 => {
                let mut bad = frame("MH-0041", 9999);
                bad[5] ^= 0x55;
                bytes.extend(bad);
            }
            30 => {
                bytes.extend(vec![0x42; 400]);
                bytes.push(0);
            }
            _ => {}
        }
    }
    for chunk in bytes.chunks(97) {
        a.master.write_all(chunk).unwrap();
    }
    // Line B: 100 good text lines with junk lines between.
    for seq in 0..100u32 {
        writeln!(
            b.master,
            "id=HY-0013 seq={seq} t={} p=312.5kPa tilt=1.2deg leak=0\r",
            1_732_500_000_000u64 + u64::from(seq)
        )
        .unwrap();
        if seq % 25 == 0 {
            b.master.write_all(b"\xff\xfe garbage\r\n").unwrap();
            b.master.write_all(b"no equals signs here\r\n").unwrap();
        }
    }
    b.master.flush().unwrap();

    let want = 200 * 2 + 100 * 3;
    wait_until(
        "serial readings at the hub",
        Duration::from_secs(30),
        || rig.unique() >= want,
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(rig.unique(), want);
    let rejects = |reason: &str| rig.rejects(reason);
    wait_until("garbage counted", Duration::from_secs(10), || {
        rejects("crc") >= 4.0 && rejects("too_long") >= 4.0 && rejects("not_utf8") >= 4.0
    });
    assert!(rejects("missing_sensor") >= 4.0, "junk text lines counted");

    // The USB adapter is unplugged: reported (source down), the agent keeps running.
    drop(rig.a);
    wait_until("port A reported down", Duration::from_secs(20), || {
        !rig.edge.source_up("A")
    });
    assert!(rig.edge.get("/health").is_some());
    assert!(rig.edge.source_up("B"));
}

#[test]
fn an_unplugged_port_is_retried_and_reading_resumes_when_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let site = broker();
    let hub = broker();
    // The config names a stable symlink (like /dev/serial/by-id/...), re-pointed on replug.
    let link = dir.path().join("ttyWANGGE");
    let mut a = pty();
    std::os::unix::fs::symlink(&a.path, &link).unwrap();
    let cfg = EdgeConfig::new(site.port, hub.port, dir.path(), &format!(
            "[[serial]]\nname = \"A\"\npath = \"{}\"\nformat = \"binary\"\nreopen_backoff_max_ms = 500\n",
            link.display()
        ));
    let (store, _stub) = acking_hub(hub.port);
    let edge = EdgeProc::start(dir.path(), &cfg, "replug");
    edge.wait_source_up("A");

    // `edge ports` shows the configured path and where it points.
    let cfg_path = dir.path().join("edge-replug.toml");
    let out = edge_on_config(&["ports"], &cfg_path);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "configured A {}: present -> {}",
            link.display(),
            a.path.display()
        )),
        "{text}"
    );

    for seq in 0..50 {
        a.master.write_all(&frame("MH-0041", seq)).unwrap();
    }
    wait_until("first readings", Duration::from_secs(30), || {
        store.lock().unwrap().unique() >= 100
    });

    // Unplugged...
    drop(a);
    std::fs::remove_file(&link).unwrap();
    wait_until("reported down", Duration::from_secs(20), || {
        !edge.source_up("A")
    });
    let reconnects = edge.metric("edge_source_reconnects_total", "source=\"A\"");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        edge.metric("edge_source_reconnects_total", "source=\"A\"") > reconnects,
        "retrying with backoff"
    );
    // ... and plugged back in (a new device behind the same name).
    let mut b = pty();
    std::os::unix::fs::symlink(&b.path, &link).unwrap();
    wait_until("port reopened", Duration::from_secs(20), || {
        edge.source_up("A")
    });
    for seq in 50..100 {
        b.master.write_all(&frame("MH-0041", seq)).unwrap();
    }
    wait_until("readings after replug", Duration::from_secs(30), || {
        store.lock().unwrap().unique() >= 200
    });
    assert_eq!(store.lock().unwrap().unique(), 200);
}
