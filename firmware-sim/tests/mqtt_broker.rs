//! Publishing to a real mosquitto, seen by a real `mosquitto_sub`: messages per topic equal the
//! summary, and what the subscriber decodes is exactly the `--record` file.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn mosquitto_bin() -> String {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!("mosquitto is not installed: run scripts/install-test-deps");
}

/// Kills the child when the test ends, however it ends.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_broker(dir: &std::path::Path) -> (Killed, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    let mut f = std::fs::File::create(&conf).unwrap();
    // Unlimited queues: count our messages, not the broker's drops.
    writeln!(
        f,
        "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\npersistence false"
    )
    .unwrap();
    let child = Command::new(mosquitto_bin())
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting mosquitto");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (Killed(child), port)
}

/// `mosquitto_sub -v -t '#'`, its lines collected by a thread.
fn subscribe(port: u16) -> (Killed, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-v",
            "-t",
            "#",
            "-q",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "mosquitto_sub (mosquitto-clients) is not installed: run scripts/install-test-deps",
        );
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(line) => l.lock().unwrap().push(line),
                Err(_) => break,
            }
        }
    });
    // The subscription is live once a probe comes through.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _ = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "probe/ready",
                "-m",
                "1",
                "-q",
                "1",
            ])
            .status();
        std::thread::sleep(Duration::from_millis(50));
        if lines
            .lock()
            .unwrap()
            .iter()
            .any(|x| x.starts_with("probe/ready"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mosquitto_sub never received the probe"
        );
    }
    (Killed(child), lines)
}

#[test]
fn mosquitto_sub_sees_exactly_what_the_summary_says() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = start_broker(dir.path());
    let (_sub, lines) = subscribe(port);
    let summary = run_sim(
        sim()
            .args(["--profiles", "canonical,acme,lumen,gridsense"])
            .args([
                "--scenario",
                repo("config/scenarios/faults.toml").to_str().unwrap(),
            ])
            .args(["--interval-scale", "0.02", "--duration", "4s"])
            .args(["--mqtt", &format!("127.0.0.1:{port}")])
            .arg("--record")
            .arg(dir.path().join("record.jsonl")),
        Duration::from_secs(60),
    );
    let mqtt = &summary["mqtt"];
    let published = mqtt["published"].as_u64().unwrap();
    assert!(published > 500, "{published} messages is too few");
    assert_eq!(
        mqtt["acked"].as_u64().unwrap(),
        published,
        "the broker acked everything"
    );

    // Wait (bounded) until the subscriber has everything; then nothing more may come.
    let deadline = Instant::now() + Duration::from_secs(20);
    let count = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| !l.starts_with("probe/"))
            .count() as u64
    };
    while count() < published && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let seen: Vec<String> = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| !l.starts_with("probe/"))
        .cloned()
        .collect();
    assert_eq!(seen.len() as u64, published);

    let mut per_topic = std::collections::BTreeMap::<String, u64>::new();
    let mut got = Readings::new();
    for line in &seen {
        let (topic, payload) = line.split_once(' ').expect("`-v` prints TOPIC PAYLOAD");
        *per_topic.entry(topic.to_string()).or_default() += 1;
        decode_mqtt(topic, payload.as_bytes(), &mut got);
    }
    let want_topics: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(mqtt["topics"].clone()).unwrap();
    assert_eq!(per_topic, want_topics);
    // A sensor with its own topic: messages seen there = its `messages` in the summary.
    for (id, s) in summary["sensors"].as_object().unwrap() {
        let topic = match s["profile"].as_str().unwrap() {
            "canonical" => format!("sensors/{id}/readings"),
            "acme" => format!("acme/{id}/data"),
            "lumen" => format!("lumen/v2/telemetry/{id}"),
            _ => continue,
        };
        assert_eq!(
            per_topic.get(&topic).copied().unwrap_or(0),
            s["messages"].as_u64().unwrap(),
            "{id}"
        );
    }
    assert!(summary["totals"]["duplicates_sent"].as_u64().unwrap() > 0);
    assert_same_readings(&got, &read_record(&dir.path().join("record.jsonl")));
}

#[test]
fn an_unreachable_broker_is_a_clear_error() {
    let port = free_port();
    let child = sim()
        .args([
            "--mqtt",
            &format!("127.0.0.1:{port}"),
            "--mqtt-connect-timeout",
            "1s",
            "--count",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(30));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot connect to the MQTT broker at 127.0.0.1:{port}"
        )),
        "{err}"
    );
}
