//! The durable buffer on a real disk: crash recovery, the acked cursor, bounds and eviction.

use edge::buffer::{Buffer, BufferOptions, Lane, Taken};
use protocol::uplink::{GapReason, Quality, Reading, ReadingFlags};
use protocol::{Quantity, Value};
use std::fs::OpenOptions;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

fn options(buffer_bytes_max: u64, segment_bytes_max: u64) -> BufferOptions {
    BufferOptions {
        buffer_bytes_max,
        segment_bytes_max,
    }
}

/// Large enough that nothing is ever evicted.
fn opts() -> BufferOptions {
    options(1 << 30, 8 << 20)
}

/// Small enough that 200 readings evict the first segments (≈ 30 readings per segment).
fn tiny() -> BufferOptions {
    options(4096, 1024)
}

fn open(dir: &Path, opts: BufferOptions) -> Buffer {
    Buffer::open(dir, opts).unwrap()
}

/// A new buffer in a new temporary directory (removed when the `TempDir` is dropped).
fn fresh(opts: BufferOptions) -> (tempfile::TempDir, Buffer) {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path(), opts);
    (dir, b)
}

fn reading(sensor: &str, i: i64, urgent: bool) -> Reading {
    Reading {
        sensor: sensor.into(),
        quantity: if urgent {
            Quantity::Alarm
        } else {
            Quantity::Tilt
        },
        value: if urgent {
            Value::Bool(true)
        } else {
            Value::Float(i as f64)
        },
        ts_ns: 1_732_500_000_000_000_000 + i,
        quality: Quality::Good,
        flags: if urgent {
            ReadingFlags(ReadingFlags::URGENT)
        } else {
            ReadingFlags::default()
        },
    }
}

/// Appends readings `range` of `sensor`, not synced.
fn append(b: &mut Buffer, sensor: &str, urgent: bool, range: Range<i64>) {
    for i in range {
        b.append(&reading(sensor, i, urgent)).unwrap();
    }
}

/// Appends readings `from..to` of sensor "S", synced.
fn append_synced(b: &mut Buffer, from: i64, to: i64) {
    append(b, "S", false, from..to);
    b.sync_now().unwrap();
}

/// A backlog of `n` normal readings of "S", then one urgent reading of "ALARM", synced.
fn backlog_then_alarm(b: &mut Buffer, n: i64) {
    append(b, "S", false, 0..n);
    append(b, "ALARM", true, 0..1);
    b.sync_now().unwrap();
}

fn drain(b: &mut Buffer) -> Vec<Reading> {
    let mut all = Vec::new();
    while let Some(t) = b.take(500).unwrap() {
        b.ack(t.lane, t.end).unwrap();
        all.extend(t.readings);
    }
    all
}

fn last_segment(dir: &Path, lane: &str) -> PathBuf {
    let mut v: Vec<_> = std::fs::read_dir(dir.join(lane))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.pop().unwrap()
}

/// Flips every bit of the byte at `pick(file length)` in the file at `path`.
fn flip_byte(path: &Path, pick: impl FnOnce(usize) -> usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = pick(bytes.len());
    bytes[at] ^= 0xff;
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn readings_are_handed_out_only_once_durable() {
    let (_dir, mut b) = fresh(opts());
    b.append(&reading("S", 1, false)).unwrap();
    assert!(b.take(500).unwrap().is_none(), "not synced yet");
    b.sync_now().unwrap();
    assert_eq!(b.take(500).unwrap().unwrap().readings.len(), 1);
}

#[test]
fn a_restart_resumes_from_the_acked_cursor_and_never_resends_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut b = open(dir.path(), opts());
        append_synced(&mut b, 0, 1000);
        let t = b.take(600).unwrap().unwrap();
        assert_eq!(t.readings.len(), 600);
        b.ack(t.lane, t.end).unwrap();
        b.persist_cursor().unwrap();
        // Taken but never acked: must come back after the restart.
        let t = b.take(100).unwrap().unwrap();
        assert_eq!(t.readings.len(), 100);
    }
    let mut b = open(dir.path(), opts());
    assert_eq!(b.recovery.unacked, 400);
    assert_eq!(b.epoch(), 2);
    let rest = drain(&mut b);
    assert_eq!(rest.len(), 400);
    assert_eq!(rest[0].ts_ns, reading("S", 600, false).ts_ns);
}

#[test]
fn kill_9_mid_write_torn_tail_is_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    append_synced(&mut open(dir.path(), opts()), 0, 100);
    // The process died halfway through writing a record: a header and part of a payload.
    let seg = last_segment(dir.path(), "normal");
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9]).unwrap();
    drop(f);
    let mut b = open(dir.path(), opts());
    assert_eq!(b.recovery.records_dropped, 1);
    assert_eq!(b.recovery.bytes_dropped, 11);
    assert_eq!(b.stats().recovery_records_dropped, 1);
    assert_eq!(
        drain(&mut b).len(),
        100,
        "everything synced before the crash survives"
    );
    // And the log is appendable after recovery.
    append_synced(&mut b, 100, 101);
    assert_eq!(drain(&mut b).len(), 1);
}

#[test]
fn a_corrupted_last_record_is_dropped_by_its_crc() {
    let dir = tempfile::tempdir().unwrap();
    append_synced(&mut open(dir.path(), opts()), 0, 50);
    flip_byte(&last_segment(dir.path(), "normal"), |n| n - 2);
    let mut b = open(dir.path(), opts());
    assert_eq!(b.recovery.records_dropped, 1);
    assert_eq!(drain(&mut b).len(), 49);
}

#[test]
fn urgent_readings_go_out_ahead_of_the_backlog() {
    let (_dir, mut b) = fresh(opts());
    backlog_then_alarm(&mut b, 1000);
    let t = b.take(500).unwrap().unwrap();
    assert_eq!(t.lane, Lane::Urgent);
    assert_eq!(t.readings[0].sensor.as_str(), "ALARM");
}

#[test]
fn a_full_buffer_evicts_oldest_normal_first_never_urgent_and_reports_gaps() {
    let small = options(256 * 1024, 16 * 1024);
    let (_dir, mut b) = fresh(small.clone());
    append(&mut b, "ALARM", true, 0..200);
    let total = 20_000;
    for i in 0..total {
        b.append(&reading("S", i, false)).unwrap();
        if i % 1000 == 0 {
            b.sync_now().unwrap();
        }
    }
    b.sync_now().unwrap();
    let stats = b.stats();
    assert!(
        stats.bytes <= small.buffer_bytes_max,
        "{} bytes",
        stats.bytes
    );
    assert!(stats.evicted_records > 0);
    assert_eq!(stats.evicted_urgent_records, 0);
    let gaps = b.take_gaps(0);
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].sensor.as_str(), "S");
    assert_eq!(gaps[0].reason, GapReason::BufferFull);
    assert_eq!(gaps[0].count, stats.evicted_records);
    let all = drain(&mut b);
    let alarms = all.iter().filter(|r| r.sensor.as_str() == "ALARM").count();
    assert_eq!(
        alarms, 200,
        "no urgent reading evicted while normal ones remained"
    );
    let normal = all.len() - alarms;
    assert_eq!(
        normal as u64 + gaps[0].count,
        total as u64,
        "every drop is counted"
    );
    // The survivors are the newest ones: the gap ends right before the first survivor.
    let first_normal = all.iter().find(|r| r.sensor.as_str() == "S").unwrap();
    assert_eq!(gaps[0].to_ns + 1, first_normal.ts_ns);
}

#[test]
fn urgent_readings_are_evicted_only_when_nothing_else_remains() {
    let small = options(64 * 1024, 8 * 1024);
    let (_dir, mut b) = fresh(small.clone());
    append(&mut b, "S", false, 0..10);
    append(&mut b, "ALARM", true, 0..5000);
    b.sync_now().unwrap();
    let s = b.stats();
    assert!(s.bytes <= small.buffer_bytes_max);
    assert_eq!(
        s.evicted_records - s.evicted_urgent_records,
        10,
        "the normal ones went first"
    );
    assert!(s.evicted_urgent_records > 0);
}

#[test]
fn unacknowledged_gaps_survive_a_crash_and_are_reported_again() {
    let dir = tempfile::tempdir().unwrap();
    let small = options(64 * 1024, 8 * 1024);
    let evicted;
    {
        let mut b = open(dir.path(), small.clone());
        append_synced(&mut b, 0, 5000);
        evicted = b.stats().evicted_records;
        assert!(evicted > 0);
        // Taken for batch 7, never acked: the process dies.
        assert_eq!(b.take_gaps(7)[0].count, evicted);
    }
    let mut b = open(dir.path(), small.clone());
    let gaps = b.take_gaps(0);
    assert_eq!(gaps.len(), 1);
    assert_eq!(
        gaps[0].count, evicted,
        "the loss is still reported after the crash"
    );
    b.gaps_acked(0).unwrap();
    drop(b);
    let mut b = open(dir.path(), small);
    assert!(
        b.take_gaps(0).is_empty(),
        "an acked gap is not reported twice"
    );
}

#[test]
fn the_backlog_can_be_read_offline_without_touching_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut b = open(dir.path(), opts());
        backlog_then_alarm(&mut b, 300);
        let t = b.take(100).unwrap().unwrap(); // the urgent one
        b.ack(t.lane, t.end).unwrap();
        let t = b.take(100).unwrap().unwrap();
        b.ack(t.lane, t.end).unwrap();
        b.persist_cursor().unwrap();
    }
    let seg = last_segment(dir.path(), "normal");
    let before = std::fs::read(&seg).unwrap();
    let s = edge::buffer::offline_stats(dir.path()).unwrap();
    assert_eq!((s.unacked, s.urgent_unacked, s.epoch), (200, 0, 1));
    assert_eq!(s.oldest_unacked_ns, Some(reading("S", 100, false).ts_ns));
    assert_eq!(std::fs::read(&seg).unwrap(), before, "read-only");
}

#[test]
fn a_record_damaged_while_running_is_skipped_and_counted_not_a_stall() {
    let (dir, mut b) = fresh(opts());
    append_synced(&mut b, 0, 100);
    // Bit rot in the middle of the active segment, after recovery ran.
    flip_byte(&last_segment(dir.path(), "normal"), |n| n / 2);
    let first = drain(&mut b);
    assert!(!first.is_empty() && first.len() < 100, "{}", first.len());
    assert_eq!(b.stats().unreadable_skipped, 100 - first.len() as u64);
    // New readings go to a fresh segment and still flow.
    append_synced(&mut b, 100, 110);
    assert_eq!(drain(&mut b).len(), 10);
}

/// A tiny buffer in `dir` holding readings 0..40 of "S", the first `n` taken as a batch (sent,
/// not acked yet).
fn tiny_with_batch_in_flight(dir: &Path, n: usize) -> (Buffer, Taken) {
    let mut b = open(dir, tiny());
    append_synced(&mut b, 0, 40);
    let batch = b.take(n).unwrap().unwrap();
    (b, batch)
}

fn gap_count(gaps: &[protocol::uplink::Gap]) -> u64 {
    gaps.iter().map(|g| g.count).sum()
}

#[test]
fn in_flight_readings_evicted_then_an_edge_restart_before_the_ack_are_reported_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (total, unsent_evicted);
    {
        // Batch 0 carries readings 0..20 to the hub; its ack never comes.
        let (mut b, t) = tiny_with_batch_in_flight(dir.path(), 20);
        assert_eq!((t.start, t.end), (0, 20));
        // The hub stays silent and the buffer fills: the batch's segment is evicted.
        append_synced(&mut b, 40, 200);
        total = 200;
        let s = b.stats();
        assert_eq!(
            s.evicted_in_flight_records, 20,
            "the whole batch was evicted"
        );
        unsent_evicted = s.evicted_records;
        assert_eq!(
            gap_count(&b.take_gaps(1)),
            unsent_evicted,
            "only the never-sent readings are reported while the batch may still arrive"
        );
        b.persist_cursor().unwrap();
        // The edge dies (or loses power) before the hub acks batch 0.
    }
    let mut b = open(dir.path(), tiny());
    assert_eq!(b.recovery.in_flight_lost, 20);
    let gaps = b.take_gaps(0);
    assert_eq!(gaps.len(), 1, "merged per sensor: {gaps:?}");
    assert_eq!(
        gap_count(&gaps),
        unsent_evicted + 20,
        "the batch's readings are reported now, with the unsent ones of the last epoch"
    );
    assert_eq!(gaps[0].from_ns, reading("S", 0, false).ts_ns);
    let survivors = drain(&mut b).len() as u64;
    assert_eq!(
        survivors + gap_count(&gaps),
        total,
        "every reading is either still sent or reported lost, exactly once"
    );
    // Acked: not reported a third time.
    b.gaps_acked(0).unwrap();
    drop(b);
    let mut b = open(dir.path(), tiny());
    assert_eq!(b.recovery.in_flight_lost, 0);
    assert!(b.take_gaps(0).is_empty());
}

#[test]
fn in_flight_readings_evicted_then_acked_are_never_reported_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let unsent_evicted;
    {
        let (mut b, t) = tiny_with_batch_in_flight(dir.path(), 20);
        append_synced(&mut b, 40, 200);
        assert_eq!(b.stats().evicted_in_flight_records, 20);
        unsent_evicted = b.stats().evicted_records;
        // The hub stored batch 0 and acks it: its readings arrived.
        b.batch_acked(0, t.lane, t.start, t.end).unwrap();
        b.ack(t.lane, t.end).unwrap();
        b.persist_cursor().unwrap();
        assert_eq!(gap_count(&b.take_gaps(1)), unsent_evicted);
        // The edge restarts before the hub acks the batch carrying the gaps.
    }
    let mut b = open(dir.path(), tiny());
    assert_eq!(b.recovery.in_flight_lost, 0, "an acked batch lost nothing");
    let gaps = b.take_gaps(0);
    assert_eq!(
        gap_count(&gaps),
        unsent_evicted,
        "only the never-sent readings: none the hub stored"
    );
    let survivors = drain(&mut b).len() as u64;
    assert_eq!(
        survivors + gap_count(&gaps) + 20,
        200,
        "stored + gaps == sent"
    );
}

#[test]
fn a_batch_acked_out_of_order_loses_nothing_when_its_segment_is_evicted_before_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut b, first) = tiny_with_batch_in_flight(dir.path(), 10);
        let second = b.take(10).unwrap().unwrap();
        assert_eq!((first.end, second.start, second.end), (10, 10, 20));
        // The hub stored and acked the second batch first; the cursor cannot move past the
        // first one, still unacked.
        b.batch_acked(1, second.lane, second.start, second.end)
            .unwrap();
        append_synced(&mut b, 40, 200);
        assert_eq!(b.stats().evicted_in_flight_records, 20);
        b.persist_cursor().unwrap();
    }
    let b = open(dir.path(), tiny());
    assert_eq!(
        b.recovery.in_flight_lost, 10,
        "only the unacked batch's readings are lost"
    );
}

#[test]
fn an_unreadable_gaps_file_is_reported_and_the_buffer_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut b, _batch) = tiny_with_batch_in_flight(dir.path(), 20);
        append_synced(&mut b, 40, 200);
    }
    flip_byte(&dir.path().join("gaps"), |n| n / 2);
    let mut b = open(dir.path(), tiny());
    assert!(b.recovery.gaps_file_unreadable);
    assert!(b.take_gaps(0).is_empty());
    assert!(!drain(&mut b).is_empty(), "the readings on disk still flow");
}
