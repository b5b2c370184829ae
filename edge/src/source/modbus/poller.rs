//! The owner task of one Modbus line: it alone talks on the line, polls every slave's read plan
//! on its schedule, and keeps one mute or failing slave from stalling the others (after a
//! request fails all its attempts the slave is backed off, doubling up to `backoff_max`, and
//! probed with one request until it answers again). A port or connection that fails is reopened
//! with backoff; readings go to [`Ingest`] like every other source's.

use super::client::{Answer, Client};
use super::line::{Line, Slave};
use super::metrics::{Failure, SlaveMetrics};
use super::plan::Request;
use crate::ingest::Ingest;
use crate::metrics::SourceMetrics;
use crate::normalize::profile::Report;
use crate::source::Backoff;
use protocol::sources_down::modbus_slave_source;
use protocol::Value;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The readings one answer carries, as a report of the slave's sensor.
pub fn report_of(slave: &Slave, req: &Request, answer: &Answer) -> Report {
    let mut values = Vec::with_capacity(req.points.len());
    for &i in &req.points {
        let p = &slave.profile.points[i];
        let raw = match answer {
            Answer::Words(w) => req
                .slice(p, w)
                .and_then(|w| super::point::decode_words(w, p.ty, p.order, p.bit)),
            Answer::Bits(b) => req.slice(p, b).map(|b| f64::from(u8::from(b[0]))),
        };
        let Some(raw) = raw else { continue };
        let v = if p.quantity.is_bool() {
            Value::Bool(raw != 0.0)
        } else if p.quantity == protocol::Quantity::FaultCode {
            Value::Int(p.scaling.apply(raw) as i64)
        } else {
            Value::Float(p.scaling.apply(raw))
        };
        values.push((p.quantity, v));
    }
    Report {
        sensor: slave.sensor.clone(),
        seq: None,
        ts_ns: None,
        values,
        urgent: slave.profile.urgent,
    }
}

/// Where one slave stands in the schedule.
struct SlaveState {
    /// When each plan request is next due.
    due: Vec<Instant>,
    /// Set while the slave is backed off: when to probe it next.
    down_until: Option<Instant>,
    backoff: Backoff,
    metrics: Arc<SlaveMetrics>,
    /// Polls in a row whose request failed; at the line's `down_after_polls` the slave is
    /// reported down in the edge's status (`modbus:<line>/<unit>`), until it answers again.
    failed_polls: u32,
}

impl SlaveState {
    fn new(line: &Line, s: &Slave, metrics: Arc<SlaveMetrics>, now: Instant) -> SlaveState {
        let min_poll = s
            .plan
            .iter()
            .map(|r| r.poll)
            .min()
            .unwrap_or(Duration::from_secs(1));
        SlaveState {
            due: vec![now; s.plan.len()],
            down_until: None,
            backoff: Backoff::new(min_poll, line.backoff_max),
            metrics,
            failed_polls: 0,
        }
    }
    fn next_wake(&self) -> Option<Instant> {
        self.down_until.or_else(|| self.due.iter().min().copied())
    }
}

/// Sends `req` to `slave`, retrying; returns the answer or the last failure.
async fn attempt(
    client: &mut Client,
    line: &Line,
    slave: &Slave,
    req: &Request,
    m: &SlaveMetrics,
) -> Result<Answer, Failure> {
    let mut last = Failure::Timeout;
    for _ in 0..=line.retries {
        m.requests.fetch_add(1, Relaxed);
        match client
            .read(slave.unit, req.table, req.address, req.count)
            .await
        {
            Ok(a) => return Ok(a),
            Err(f) => {
                m.failed(f);
                last = f;
                // A broken port is not retried here; the line is reopened.
                if f == Failure::Io {
                    break;
                }
            }
        }
    }
    Err(last)
}

/// What one pass over a slave's due requests ended with.
enum Pass {
    Done,
    LineLost,
}

/// Polls the requests of one slave that are due (or probes it when its backoff expired).
async fn poll_slave(
    client: &mut Client,
    line: &Line,
    slave: &Slave,
    st: &mut SlaveState,
    ingest: &Ingest,
    src: &SourceMetrics,
) -> Pass {
    let now = Instant::now();
    if st.down_until.is_some_and(|t| t > now) {
        return Pass::Done;
    }
    let probing = st.down_until.is_some();
    let due: Vec<usize> = (0..slave.plan.len())
        .filter(|&i| probing || st.due[i] <= now)
        .take(if probing { 1 } else { usize::MAX })
        .collect();
    if due.is_empty() {
        return Pass::Done;
    }
    st.metrics.cycles.fetch_add(1, Relaxed);
    let sent_before = st.metrics.requests.load(Relaxed);
    let pass = poll_due(client, line, slave, st, due, ingest, src).await;
    let sent = st.metrics.requests.load(Relaxed) - sent_before;
    st.metrics.last_cycle_requests.store(sent, Relaxed);
    pass
}

/// Sends the `due` requests of one slave in turn; a failure backs the slave off.
async fn poll_due(
    client: &mut Client,
    line: &Line,
    slave: &Slave,
    st: &mut SlaveState,
    due: Vec<usize>,
    ingest: &Ingest,
    src: &SourceMetrics,
) -> Pass {
    let now = Instant::now();
    for i in due {
        let req = &slave.plan[i];
        st.due[i] = (st.due[i] + req.poll).max(now);
        match attempt(client, line, slave, req, &st.metrics).await {
            Ok(answer) => {
                if st.down_until.take().is_some() {
                    tracing::info!(line = %line.name, unit = slave.unit, "modbus slave answers again");
                }
                if std::mem::take(&mut st.failed_polls) >= line.down_after_polls {
                    let source = modbus_slave_source(&line.name, slave.unit);
                    ingest.metrics.sources_down.set_up(&source);
                }
                st.backoff.reset();
                st.metrics.up.store(true, Relaxed);
                ingest.report(src, report_of(slave, req, &answer));
            }
            Err(Failure::Io) => return Pass::LineLost,
            Err(f) => {
                if st.down_until.is_none() {
                    tracing::warn!(line = %line.name, unit = slave.unit, sensor = %slave.sensor, failure = %f, "modbus slave not answering; backing off");
                }
                st.metrics.up.store(false, Relaxed);
                st.failed_polls = st.failed_polls.saturating_add(1);
                if st.failed_polls == line.down_after_polls {
                    tracing::warn!(line = %line.name, unit = slave.unit, sensor = %slave.sensor, polls = st.failed_polls, "modbus slave reported down");
                    let source = modbus_slave_source(&line.name, slave.unit);
                    ingest
                        .metrics
                        .sources_down
                        .set_down(&source, vec![slave.sensor.clone()]);
                }
                st.down_until = Some(Instant::now() + st.backoff.step());
                return Pass::Done;
            }
        }
    }
    Pass::Done
}

/// Registers the line's per-slave counters; the returned ones are in slave order.
pub fn slave_metrics(line: &Line, ingest: &Ingest) -> Vec<Arc<SlaveMetrics>> {
    line.slaves
        .iter()
        .map(|s| {
            let m = SlaveMetrics::new(&line.name, s.unit, &s.sensor);
            m.plan_requests.store(s.plan.len() as u64, Relaxed);
            ingest.metrics.modbus_slave(m)
        })
        .collect()
}

/// Runs the line's owner task and starts it again if it panics (tokio-modbus debug-asserts on
/// an answer's item count, so a hostile device could otherwise end a debug build's polling).
pub async fn supervise(line: Line, ingest: Arc<Ingest>) {
    let src = ingest.metrics.source(&line.name, "modbus");
    let slaves = slave_metrics(&line, &ingest);
    loop {
        let task = tokio::spawn(run(
            line.clone(),
            ingest.clone(),
            src.clone(),
            slaves.clone(),
        ));
        match task.await {
            Err(e) if e.is_panic() => {
                tracing::error!(line = %line.name, "modbus line task panicked; restarting it");
                ingest.metrics.reject("modbus_task_restarted", &line.name);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => return,
        }
    }
}

/// Runs forever: open the line, poll its slaves; reopen with backoff when it fails. `src` and
/// `slaves` are the line's counters (registered once, in [`supervise`]).
pub async fn run(
    line: Line,
    ingest: Arc<Ingest>,
    src: Arc<SourceMetrics>,
    slaves: Vec<Arc<SlaveMetrics>>,
) {
    let now = Instant::now();
    let mut states: Vec<SlaveState> = line
        .slaves
        .iter()
        .zip(slaves)
        .map(|(s, m)| SlaveState::new(&line, s, m, now))
        .collect();
    let mut reopen = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    // What an earlier run of this line reported is not known to hold any more.
    let down = &ingest.metrics.sources_down;
    down.forget(&line.source());
    loop {
        let mut client = match Client::open(&line).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(line = %line.name, error = %e, "modbus line unavailable; retrying");
                // A line that cannot be opened is down, with every sensor on it; one that was
                // lost and reopens at once is not (a blip is no outage).
                down.set_down(&line.source(), line.sensors());
                src.up.store(false, Relaxed);
                src.reconnects.fetch_add(1, Relaxed);
                tokio::time::sleep(reopen.step()).await;
                continue;
            }
        };
        tracing::info!(line = %line.name, slaves = line.slaves.len(), "modbus line open");
        reopen.reset();
        down.set_up(&line.source());
        src.up.store(true, Relaxed);
        'polling: loop {
            let wake = states.iter().filter_map(SlaveState::next_wake).min();
            match wake {
                Some(t) => tokio::time::sleep_until(t).await,
                None => tokio::time::sleep(Duration::from_secs(3600)).await,
            }
            for (slave, st) in line.slaves.iter().zip(states.iter_mut()) {
                if let Pass::LineLost =
                    poll_slave(&mut client, &line, slave, st, &ingest, &src).await
                {
                    tracing::warn!(line = %line.name, "modbus line lost; reopening");
                    break 'polling;
                }
            }
        }
        src.up.store(false, Relaxed);
        src.reconnects.fetch_add(1, Relaxed);
        tokio::time::sleep(reopen.step()).await;
    }
}
