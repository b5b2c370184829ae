//! The edge↔hub link under network faults: the edge's uplink goes through a TCP proxy the test
//! controls (`wangge_tests::proxy`) while firmware-sim streams all 200 sensors (MQTT through a
//! mosquitto site broker, both serial lines) for 35 s. The hub becomes unreachable, the link is
//! cut silently, slowed to a crawl, or flaps. After each fault: the hub holds exactly what the
//! simulator recorded — nothing missing, nothing twice — the proxy's and the edge's counters show
//! that the fault really hit (reconnects, resends), and neither process crashed.
//!
//! Each test takes about a minute of wall time (35 s of stream, then the drain and the check).

use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wangge_testkit::record::Recorded;
use wangge_testkit::{metric_sum, now_ns, wait_for, Mosquitto};
use wangge_tests::proxy::{Counts, Mode, Proxy};
use wangge_tests::system::{
    assert_hub_has_exactly, assert_stream_recorded, sim_stream_args, simulate, Edge, Hub,
};

/// firmware-sim streaming on a thread of its own: join for (record, summary).
type SimRun = JoinHandle<anyhow::Result<(Vec<Recorded>, serde_json::Value)>>;

/// Wall time firmware-sim streams in each test; the fault is applied inside it.
const STREAM_SECONDS: u64 = 35;
/// The link works normally this long before the fault, so there is traffic to disturb.
const BEFORE_FAULT: Duration = Duration::from_secs(5);

/// The hub, a site broker, the proxy in front of the hub's MQTT port, and an edge whose uplink
/// goes through the proxy; every part running, the uplink connected.
struct System {
    dir: tempfile::TempDir,
    hub: Hub,
    site: Mosquitto,
    proxy: Proxy,
    edge: Edge,
    started_ns: i64,
}

impl System {
    fn start() -> System {
        let dir = tempfile::tempdir().unwrap();
        let (hub, site) = Hub::started_with_site(dir.path()).unwrap();
        let proxy = Proxy::start(hub.mqtt).unwrap();
        let mut edge = Edge::prepare_via(dir.path(), &hub, &site, proxy.port, "").unwrap();
        edge.start().unwrap();
        let system = System {
            dir,
            hub,
            site,
            proxy,
            edge,
            started_ns: now_ns(),
        };
        system.wait_uplink(true, Duration::from_secs(30));
        system
    }

    /// Starts the system and streams every sensor for `STREAM_SECONDS` (with `seed`) on a
    /// thread; once the link has worked normally for `BEFORE_FAULT`, returns them with the
    /// proxy's counts at that moment, for the test to apply its fault.
    fn streaming(seed: u64) -> (System, SimRun, Counts) {
        let s = System::start();
        let dir = s.dir.path().to_path_buf();
        let args = sim_args(&dir, s.site.port, seed);
        let sim = std::thread::spawn(move || simulate(&dir, "stream", &args));
        std::thread::sleep(BEFORE_FAULT);
        let before = s.proxy.counts();
        (s, sim, before)
    }

    /// Puts the proxy in `mode` now; returns when.
    fn fault(&self, mode: Mode) -> Instant {
        let at = Instant::now();
        self.proxy.set_mode(mode);
        at
    }

    /// Lets the proxy pass again and waits for the uplink; prints the counters since `before`
    /// under `fault` and returns the proxy's counts.
    fn heal(&self, fault: &str, before: Counts) -> Counts {
        self.proxy.set_mode(Mode::Pass);
        self.wait_uplink(true, Duration::from_secs(30));
        let during = self.proxy.counts();
        self.print_counters(fault, before);
        during
    }

    /// Batches the edge has sent again for want of an ack.
    fn resent(&self) -> f64 {
        self.edge_metric("edge_batches_resent_total")
    }

    /// Resent batches the hub recognised instead of storing them again: duplicates of a stored
    /// batch, and resends of one still on its way through the rules.
    fn recognised_resends(&self) -> f64 {
        self.hub_metric("wangge_ingest_batches_duplicate_total")
            + self.hub_metric("wangge_ingest_batches_resent_in_flight_total")
    }

    fn edge_metric(&self, name: &str) -> f64 {
        self.edge
            .metrics()
            .map(|m| metric_sum(&m, name, &[]))
            .unwrap_or(f64::NAN)
    }

    fn hub_metric(&self, name: &str) -> f64 {
        reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", self.hub.http))
            .and_then(|r| r.text())
            .map(|m| metric_sum(&m, name, &[]))
            .unwrap_or(f64::NAN)
    }

    /// Waits until the edge reports its uplink up (or down); fails naming what it waited for.
    fn wait_uplink(&self, connected: bool, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        let want = if connected { 1.0 } else { 0.0 };
        let what = if connected {
            "the edge's uplink to come up"
        } else {
            "the edge to notice its uplink is down"
        };
        if let Err(e) = wait_for(what, timeout, || {
            (self.edge_metric("edge_uplink_connected") == want).then_some(())
        }) {
            panic!(
                "{e}; proxy {:?}\nedge log: {}",
                self.proxy.counts(),
                self.edge.log_tail()
            );
        }
        t0.elapsed()
    }

    /// Sleeps until `until`, sampling the edge's backlog; returns the largest seen.
    fn backlog_until(&self, until: Instant) -> f64 {
        let mut max = self.edge_metric("edge_buffer_records");
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(500).min(until - Instant::now()));
            max = max.max(self.edge_metric("edge_buffer_records"));
        }
        max
    }

    /// Joins the stream, then waits for the hub to hold exactly its record and the edge's
    /// buffer to be empty, and checks that nothing crashed. Returns the record.
    fn finish(&mut self, sim: SimRun) -> Vec<Recorded> {
        let (record, summary) = sim.join().unwrap().unwrap();
        let covers = format!("the stream covers all 200 sensors for {STREAM_SECONDS} s");
        assert_stream_recorded(&record, &summary, 5000, &covers);
        let drain = Instant::now();
        assert_hub_has_exactly(
            &self.hub,
            &record,
            self.started_ns,
            Duration::from_secs(150),
        );
        wait_for(
            "the edge's buffer to drain",
            Duration::from_secs(60),
            || (self.edge_metric("edge_buffer_records") == 0.0).then_some(()),
        )
        .unwrap();
        println!(
            "{} readings stored exactly once; drained and checked {:.1} s after the stream ended",
            record.len(),
            drain.elapsed().as_secs_f64()
        );
        let hub_exit = self.hub.proc.as_mut().and_then(|p| p.try_wait());
        assert!(
            hub_exit.is_none(),
            "the hub exited: {hub_exit:?}\n{}",
            self.hub.log_tail()
        );
        let edge_exit = self.edge.proc.as_mut().and_then(|p| p.try_wait());
        assert!(
            edge_exit.is_none(),
            "the edge exited: {edge_exit:?}\n{}",
            self.edge.log_tail()
        );
        record
    }

    /// [`System::finish`] after an outage: readings waited in the edge's buffer (`backlog_max`
    /// the largest backlog seen), and then every one reached the hub once.
    fn finish_backlog(&mut self, sim: SimRun, backlog_max: f64) -> Vec<Recorded> {
        assert!(backlog_max > 0.0, "readings waited in the edge's buffer");
        self.finish(sim)
    }

    /// The counters a report prints after each fault.
    fn print_counters(&self, fault: &str, before: Counts) {
        let c = self.proxy.counts();
        println!(
            "{fault}: proxy accepted +{}, refused +{}, cut +{}, {} B up / {} B down in total; \
             edge batches sent {}, resent {}, acked {}, acks unexpected {}; \
             hub batches received {}, stored {}, duplicate {}, resent while in flight {}",
            c.accepted - before.accepted,
            c.refused - before.refused,
            c.cut - before.cut,
            c.bytes_up,
            c.bytes_down,
            self.edge_metric("edge_batches_sent_total"),
            self.resent(),
            self.edge_metric("edge_batches_acked_total"),
            self.edge_metric("edge_acks_unexpected_total"),
            self.hub_metric("wangge_ingest_batches_received_total"),
            self.hub_metric("wangge_ingest_batches_stored_total"),
            self.hub_metric("wangge_ingest_batches_duplicate_total"),
            self.hub_metric("wangge_ingest_batches_resent_in_flight_total"),
        );
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.edge.kill9();
        self.hub.kill9();
    }
}

fn sim_args(dir: &Path, site_port: u16, seed: u64) -> Vec<String> {
    let extra = [
        "--duration".to_string(),
        format!("{STREAM_SECONDS}s"),
        "--seed".into(),
        seed.to_string(),
    ];
    sim_stream_args(dir, site_port, &extra)
}

#[test]
fn a_hub_unreachable_for_15_s_gets_every_reading_once_when_it_is_reachable_again() {
    let (mut s, sim, before) = System::streaming(21);
    let fault_at = s.fault(Mode::Refuse);
    let noticed = s.wait_uplink(false, Duration::from_secs(30));
    let backlog_max = s.backlog_until(fault_at + Duration::from_secs(15));
    let during = s.heal("unreachable 15 s", before);
    println!(
        "edge noticed after {:.1} s; largest backlog {backlog_max} readings",
        noticed.as_secs_f64()
    );
    assert!(
        during.cut > before.cut,
        "the open uplink was reset: {during:?}"
    );
    assert!(
        during.refused > before.refused,
        "the edge kept trying while the hub was unreachable: {during:?}"
    );
    assert!(
        during.accepted > before.accepted,
        "the edge reconnected once the hub was reachable: {during:?}"
    );
    s.finish_backlog(sim, backlog_max);
}

#[test]
fn a_silent_cut_is_noticed_by_keepalive_and_the_backlog_drains_after() {
    let (mut s, sim, before) = System::streaming(22);
    let fault_at = s.fault(Mode::Blackhole);
    // Nothing is reset: only the MQTT keepalive (`hub.keepalive_s`, 10 s by default: a ping
    // unanswered by the next one) can tell. 60 s is far beyond that.
    let noticed = s.wait_uplink(false, Duration::from_secs(60));
    // Stay silent 8 s more, so the edge's reconnect attempts vanish into the hole too (its MQTT
    // connect times out after 5 s); the link then heals with those stale connections still
    // open, as a real partition would, and their held CONNECTs reach the hub late.
    let backlog_max = s.backlog_until(
        (fault_at + Duration::from_secs(15)).max(Instant::now() + Duration::from_secs(8)),
    );
    let blackholed = fault_at.elapsed();
    let silent = s.proxy.counts();
    let during = s.heal("blackhole", before);
    let resent = s.resent();
    println!(
        "edge noticed the silent cut after {:.1} s; blackholed {:.1} s, {} connections tried while \
         silent; largest backlog {backlog_max} readings; {} connections after healing",
        noticed.as_secs_f64(),
        blackholed.as_secs_f64(),
        silent.accepted - before.accepted,
        during.accepted - silent.accepted,
    );
    assert!(
        silent.accepted > before.accepted,
        "the edge gave up the silent connection and tried anew while the link was silent: {silent:?}"
    );
    assert!(
        resent > 0.0,
        "batches went unacknowledged past `uplink.ack_timeout_ms` and were resent"
    );
    s.finish_backlog(sim, backlog_max);
}

#[test]
fn a_slow_link_delays_readings_but_loses_and_duplicates_none() {
    let (mut s, sim, before) = System::streaming(23);
    let resent_before = s.resent();
    let duplicate_before = s.recognised_resends();
    // First a long link: 4 s each way, more than `uplink.ack_timeout_ms` (3 s in these tests),
    // so every batch is resent while its ack is on the way, and the resend reaches the hub after
    // the original was stored. The MQTT session survives it (a ping is answered in 8 s, within
    // the 10 s keepalive), so the resends really arrive.
    let fault_at = s.fault(Mode::Slow {
        latency: Duration::from_secs(4),
        bytes_per_s: 1_000_000,
    });
    let long_backlog = s.backlog_until(fault_at + Duration::from_secs(10));
    s.print_counters("slow: 4 s latency, 10 s", before);
    // Then a narrow one: this stream's batches take ≈ 25 KB/s (≈ 700 readings/s, ≈ 35 bytes
    // each sealed), so at 4 KB/s the edge's window of unacked batches queues in the link, and
    // keepalive pings wait behind it. (300 ms and 20 KB/s only delayed: no resend, 2026-11-26.)
    s.proxy.set_mode(Mode::Slow {
        latency: Duration::from_millis(300),
        bytes_per_s: 4_000,
    });
    let narrow_backlog = s.backlog_until(fault_at + Duration::from_secs(20));
    s.proxy.set_mode(Mode::Pass);
    s.print_counters("slow: then 300 ms and 4 KB/s, 10 s", before);
    println!("largest backlog {long_backlog} readings (long link), {narrow_backlog} (narrow link)");
    s.finish(sim);
    s.print_counters("slow, after the drain", before);
    let resent = s.resent() - resent_before;
    // A resend that finds its batch stored is acked as a duplicate; one that finds it stored
    // but still on its way through the rules is dropped (its ack answers both). Neither stores.
    let duplicate = s.recognised_resends() - duplicate_before;
    assert!(
        resent > 0.0,
        "acks came later than `uplink.ack_timeout_ms`, so the edge resent batches"
    );
    assert!(
        duplicate > 0.0,
        "the resent batches reached the hub and were recognised, not stored twice"
    );
}

#[test]
fn a_link_flapping_every_2_to_5_s_loses_and_duplicates_nothing() {
    let (mut s, sim, before) = System::streaming(24);
    let connects_before = s.edge_metric("edge_uplink_connects_total");
    let resent_before = s.resent();
    let pauses = s.proxy.flap(24, Duration::from_secs(20));
    // The uplink gauge may still read "connected" from before the last cut: wait for the
    // reconnect that follows it (the proxy counts it) before taking the counts.
    wait_for(
        "the edge's reconnect after the last cut",
        Duration::from_secs(30),
        || (s.proxy.counts().accepted - before.accepted >= pauses.len() as u64).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", s.proxy.counts()));
    s.wait_uplink(true, Duration::from_secs(30));
    let during = s.proxy.counts();
    let connects = s.edge_metric("edge_uplink_connects_total") - connects_before;
    let resent = s.resent() - resent_before;
    println!("edge: {connects} uplink sessions, {resent} batches resent");
    s.print_counters(&format!("flapping, {} cuts", pauses.len()), before);
    println!("pauses between cuts: {pauses:?}");
    assert!(pauses.len() >= 4, "20 s of 2–5 s pauses: {pauses:?}");
    assert!(
        during.cut - before.cut >= pauses.len() as u64,
        "every flap cut the live uplink: {} cuts for {} flaps",
        during.cut - before.cut,
        pauses.len()
    );
    assert!(
        during.accepted - before.accepted >= pauses.len() as u64,
        "the edge reconnected after every cut: {during:?}"
    );
    assert!(
        connects >= pauses.len() as f64,
        "the edge counts a new uplink session after every cut: {connects} for {} flaps",
        pauses.len()
    );
    assert!(
        resent > 0.0,
        "batches unacked at a cut are sent again and counted as resent"
    );
    s.finish(sim);
}
