//! Hostile MQTT input through the real edge (site broker → edge → hub, all real processes):
//! every bad message is counted under its reason in the edge's `/metrics`, the edge stays up,
//! one flooding sensor is cut to its rate (counted), and the good readings sent in between
//! all reach the hub exactly once.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use wangge_testkit::{metric_sum, now_ms, wait_for, Mosquitto};
use wangge_tests::system::{sensor_components, Edge, Hub};

/// Publishes `payload` (any bytes) at QoS 1; with `lines`, each line of it is one message.
fn publish(site: &Mosquitto, topic: &str, payload: &[u8], lines: bool) {
    let mut c = Command::new("mosquitto_pub");
    c.args([
        "-h",
        "127.0.0.1",
        "-p",
        &site.port.to_string(),
        "-q",
        "1",
        "-t",
        topic,
    ])
    .arg(match (lines, payload.is_empty()) {
        (true, _) => "-l",
        (false, true) => "-n", // a zero-length message
        (false, false) => "-s",
    })
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = c.spawn().expect("mosquitto_pub installed");
    let mut stdin = child.stdin.take().expect("stdin");
    if !payload.is_empty() {
        stdin.write_all(payload).expect("write payload");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("mosquitto_pub");
    assert!(
        out.status.success(),
        "mosquitto_pub {topic}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Counter values keyed `reject:<reason>` or by metric name.
type Counters = std::collections::BTreeMap<String, f64>;

/// Every counter of interest, keyed `reject:<reason>` or by metric name.
fn counters(edge: &Edge) -> Counters {
    let text = edge.metrics().expect("edge /metrics answers");
    let mut m = std::collections::BTreeMap::new();
    for l in text
        .lines()
        .filter(|l| l.starts_with("edge_rejects_total{"))
    {
        if let Some(reason) = l
            .split("reason=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        {
            m.entry(format!("reject:{reason}"))
                .or_insert_with(|| metric_sum(&text, "edge_rejects_total", &[("reason", reason)]));
        }
    }
    for name in [
        "edge_unregistered_readings_total",
        "edge_ts_from_edge_total",
        "edge_quality_bad_total",
        "edge_values_skipped_total",
        "edge_duplicates_dropped_total",
    ] {
        m.insert(name.into(), metric_sum(&text, name, &[]));
    }
    m.insert(
        "messages".into(),
        metric_sum(&text, "edge_messages_in_total", &[("source", "site")]),
    );
    m.insert(
        "reconnects".into(),
        metric_sum(&text, "edge_source_reconnects_total", &[("source", "site")]),
    );
    m
}

/// How much counter `key` grew between two snapshots (one not there yet counts as 0).
fn grown(before: &Counters, after: &Counters, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

/// What changed between two snapshots (ignoring the message count itself).
fn delta(before: &Counters, after: &Counters) -> Vec<(String, f64)> {
    after
        .keys()
        .filter(|k| k.as_str() != "messages")
        .filter_map(|k| {
            let d = grown(before, after, k);
            (d != 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

/// A line of the report: what case `name` changed.
fn report_line(name: &str, before: &Counters, after: &Counters) -> String {
    format!("{name:40} → {:?}", delta(before, after))
}

fn site_up(edge: &Edge) -> bool {
    edge.metrics()
        .map(|t| metric_sum(&t, "edge_source_up", &[("source", "site")]) == 1.0)
        .unwrap_or(false)
}

#[test]
fn hostile_mqtt_messages_are_counted_by_reason_and_good_readings_arrive_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, site) = Hub::started_with_site(dir.path()).unwrap();
    // A tight flood guard so the flood below trips it quickly.
    let mut edge = Edge::prepare_with(
        dir.path(),
        &hub,
        &site,
        "[validate]\nsensor_reports_per_s_max = 5.0\nsensor_burst_reports_max = 50\n",
    )
    .unwrap();
    edge.start().unwrap();
    wait_for(
        "the edge to subscribe to the site broker",
        Duration::from_secs(30),
        || site_up(&edge).then_some(()),
    )
    .unwrap();

    let t0 = now_ms() - 3_600_000; // an hour ago: clearly valid sensor time
    let mut good: Vec<(i64, f64)> = Vec::new();
    let mut good_seq = 0u64;
    let mut send_good = |site: &Mosquitto| {
        let ts = t0 + good_seq as i64 * 1000;
        let v = 10.0 + good_seq as f64;
        publish(
            site,
            "sensors/MH-0031/readings",
            format!(r#"{{"ts":{ts},"seq":{good_seq},"values":{{"water_level":{v}}}}}"#).as_bytes(),
            false,
        );
        good.push((ts * 1_000_000, v));
        good_seq += 1;
    };

    let deep = format!(
        r#"{{"ts":{t0},"values":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let big_string = format!(
        r#"{{"ts":{t0},"seq":1,"values":{{"water_level":"{}"}}}}"#,
        "x".repeat(200 * 1024)
    );
    let big_object = {
        let mut s = format!(r#"{{"ts":{t0},"seq":2,"values":{{"#);
        for i in 0..8000 {
            s.push_str(&format!(r#""k{i}":{i},"#));
        }
        s.push_str(r#""water_level":1.0}}"#);
        s
    };
    // (case, topic, payload, what must be counted)
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "malformed JSON",
            "sensors/MH-0032/readings",
            br#"{"ts": 17, "values": {"#.to_vec(),
            "reject:syntax",
        ),
        (
            "not JSON at all",
            "sensors/MH-0032/readings",
            b"hello sensor".to_vec(),
            "reject:syntax",
        ),
        (
            "empty payload",
            "sensors/MH-0032/readings",
            Vec::new(),
            "reject:syntax",
        ),
        (
            "deep nesting (100k)",
            "sensors/MH-0032/readings",
            deep.into_bytes(),
            "reject:syntax",
        ),
        (
            "bare NaN",
            "sensors/MH-0032/readings",
            format!(r#"{{"ts":{t0},"values":{{"water_level":NaN}}}}"#).into_bytes(),
            "reject:syntax",
        ),
        (
            "1e999 (infinite)",
            "sensors/MH-0032/readings",
            format!(r#"{{"ts":{t0},"values":{{"water_level":1e999}}}}"#).into_bytes(),
            "reject:syntax",
        ),
        (
            "\"NaN\" as a string",
            "sensors/MH-0032/readings",
            format!(r#"{{"ts":{t0},"seq":3,"values":{{"water_level":"NaN","tilt":"-inf"}}}}"#)
                .into_bytes(),
            "reject:no_values",
        ),
        (
            "invalid UTF-8",
            "sensors/MH-0032/readings",
            vec![b'{', 0xff, 0xfe, 0xc3, 0x28, b'}'],
            "reject:syntax",
        ),
        (
            "values is an array",
            "sensors/MH-0032/readings",
            format!(r#"{{"ts":{t0},"values":[1,2,3]}}"#).into_bytes(),
            "reject:no_values",
        ),
        (
            "value of the wrong type",
            "sensors/MH-0032/readings",
            format!(r#"{{"ts":{t0},"seq":4,"values":{{"water_level":{{"a":1}},"battery":[1]}}}}"#)
                .into_bytes(),
            "reject:no_values",
        ),
        (
            "ts of the wrong type",
            "sensors/MH-0032/readings",
            br#"{"ts":"yesterday","values":{"water_level":1.0}}"#.to_vec(),
            "reject:bad_timestamp",
        ),
        (
            "seq negative",
            "sensors/MH-0032/readings",
            format!(r#"{{"ts":{t0},"seq":-5,"values":{{"water_level":1.0}}}}"#).into_bytes(),
            "reject:bad_seq",
        ),
        (
            "huge string value (200 KB)",
            "sensors/MH-0032/readings",
            big_string.into_bytes(),
            "reject:no_values",
        ),
        (
            "huge object (8000 keys)",
            "sensors/MH-0032/readings",
            big_object.into_bytes(),
            "edge_values_skipped_total",
        ),
        (
            "unknown sensor",
            "sensors/XX-9999/readings",
            format!(r#"{{"ts":{t0},"seq":1,"values":{{"water_level":1.0}}}}"#).into_bytes(),
            "edge_unregistered_readings_total",
        ),
        (
            "timestamp far in the future (2100)",
            "sensors/MH-0034/readings",
            br#"{"ts":4102444800000,"seq":1,"values":{"water_level":1.0}}"#.to_vec(),
            "edge_ts_from_edge_total",
        ),
        (
            "timestamp past i64 ns",
            "sensors/MH-0034/readings",
            br#"{"ts":99999999999999999,"seq":2,"values":{"water_level":1.0}}"#.to_vec(),
            "reject:bad_timestamp",
        ),
        (
            "timestamp before 1970",
            "sensors/MH-0034/readings",
            br#"{"ts":-86400000,"seq":3,"values":{"water_level":1.0}}"#.to_vec(),
            "reject:bad_timestamp",
        ),
        (
            "vendor payload with garbage",
            "acme/HY-0001/data",
            br#"{"devId":7,"sn":"x","time":[],"data":null}"#.to_vec(),
            "reject:",
        ),
        (
            "gateway payload with garbage",
            "gridsense/gw/GW-01/up",
            br#"{"gw":"GW-01","ts":"not a time","items":{}}"#.to_vec(),
            "reject:",
        ),
        (
            "out-of-range value",
            "sensors/MH-0035/readings",
            format!(r#"{{"ts":{t0},"seq":1,"values":{{"water_level":-1e300}}}}"#).into_bytes(),
            "edge_quality_bad_total",
        ),
    ];

    let mut report = Vec::new();
    let mut failures = Vec::new();
    send_good(&site);
    for (name, topic, payload, want) in &cases {
        let before = counters(&edge);
        publish(&site, topic, payload, false);
        // The message counter moves when the message arrives, the reason counters once it is
        // processed: wait for the expected one (a miss shows up as the delta seen at timeout).
        let mut last = before.clone();
        let after = wait_for(
            &format!("the edge to count '{name}'"),
            Duration::from_secs(20),
            || {
                let c = counters(&edge);
                let counted = c["messages"] > before["messages"]
                    && delta(&before, &c).iter().any(|(k, _)| k.starts_with(want));
                last = c.clone();
                counted.then_some(c)
            },
        )
        .unwrap_or(last);
        let d = delta(&before, &after);
        report.push(format!("{name:40} → {d:?}"));
        if !d.iter().any(|(k, _)| k.starts_with(want)) {
            failures.push(format!("{name}: want {want}, got {d:?}"));
        }
        send_good(&site);
    }

    // A payload beyond the edge's 256 KB message limit: received, counted as too_large and
    // acknowledged (so the persistent session does not redeliver it), never ingested.
    let before = counters(&edge);
    let oversize = format!(
        r#"{{"values":{{"water_level":"{}"}}}}"#,
        "y".repeat(1024 * 1024)
    );
    publish(
        &site,
        "sensors/MH-0032/readings",
        oversize.as_bytes(),
        false,
    );
    wait_for(
        "the oversize message counted",
        Duration::from_secs(30),
        || {
            let c = counters(&edge);
            (grown(&before, &c, "reject:too_large") > 0.0 && site_up(&edge)).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nedge log: {}", edge.log_tail()));
    report.push(report_line(
        "oversize 1 MB payload",
        &before,
        &counters(&edge),
    ));
    // A packet beyond what the MQTT client reads at all (16 MiB): the connection breaks, the
    // edge discards its site session once to drop the message (a persistent session would
    // redeliver it forever), reconnects persistent, and carries on.
    let before = counters(&edge);
    let huge = vec![b'z'; 17 * 1024 * 1024];
    publish(&site, "sensors/MH-0032/readings", &huge, false);
    wait_for(
        "the edge to drop the huge packet and come back",
        Duration::from_secs(30),
        || {
            let c = counters(&edge);
            (c["reconnects"] > before["reconnects"]
                && grown(&before, &c, "reject:too_large") > 0.0
                && site_up(&edge))
            .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nedge log: {}", edge.log_tail()));
    report.push(report_line("17 MiB packet", &before, &counters(&edge)));
    send_good(&site);

    // A flood: 1000 reports from one sensor as fast as mosquitto_pub sends them.
    let before = counters(&edge);
    let flood_t0 = now_ms() - 2 * 3_600_000;
    let flood: String = (0..1000)
        .map(|i| {
            format!(
                "{{\"ts\":{},\"seq\":{i},\"values\":{{\"water_level\":{}}}}}\n",
                flood_t0 + i * 1000,
                i % 500
            )
        })
        .collect();
    publish(&site, "sensors/MH-0033/readings", flood.as_bytes(), true);
    let after = wait_for(
        "the edge to receive the flood",
        Duration::from_secs(60),
        || {
            let c = counters(&edge);
            (c["messages"] >= before["messages"] + 1000.0).then_some(c)
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nedge log: {}", edge.log_tail()));
    let limited = grown(&before, &after, "reject:rate_limited");
    report.push(report_line("flood of 1000 from MH-0033", &before, &after));
    send_good(&site);

    println!(
        "hostile MQTT cases (counter deltas):\n{}",
        report.join("\n")
    );
    assert!(failures.is_empty(), "miscounted:\n{}", failures.join("\n"));
    assert!(
        (600.0..1000.0).contains(&limited),
        "the flood guard (burst 50, 5/s) cut {limited} of 1000"
    );
    assert!(
        edge.proc.as_mut().unwrap().try_wait().is_none(),
        "the edge died: {}",
        edge.log_tail()
    );

    // Every good reading reaches the hub exactly once; the flood's admitted part does too.
    let components = sensor_components().unwrap();
    let good_component = &components["MH-0031"];
    let (from, to) = (t0 * 1_000_000, (t0 + 3_600_000) * 1_000_000);
    let mut got = Vec::new();
    let stored = wait_for(
        "the hub to store the good readings",
        Duration::from_secs(60),
        || {
            got = hub.points(good_component, "water_level", from, to).ok()?;
            (got.len() >= good.len()).then(|| got.clone())
        },
    );
    let mut got = stored.unwrap_or_else(|e| panic!("{e}: hub has {got:?}, sent {good:?}"));
    got.sort_by_key(|p| p.0);
    assert_eq!(got, good, "the good readings, exactly once");

    let flood_component = &components["MH-0033"];
    let admitted = 1000 - limited as usize;
    let (from, to) = (flood_t0 * 1_000_000, (flood_t0 + 1_000_000) * 1_000_000);
    let mut n = 0;
    let res = wait_for(
        "the hub to store the admitted flood",
        Duration::from_secs(60),
        || {
            n = hub
                .points(flood_component, "water_level", from, to)
                .ok()?
                .len();
            (n >= admitted).then_some(())
        },
    );
    assert!(
        res.is_ok(),
        "hub stored {n} of the flood, the edge admitted {admitted}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let n = hub
        .points(flood_component, "water_level", from, to)
        .unwrap()
        .len();
    assert_eq!(n, admitted, "admitted flood readings, each stored once");
    edge.kill9();
    hub.kill9();
}
