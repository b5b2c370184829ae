//! Rule evaluation throughput (readings/s) and event-store throughput (event changes/s).
//! Run: `cargo bench -p wangge-events --bench rules -- --quick`

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use protocol::uplink::Quality;
use protocol::Quantity;
use std::sync::Arc;
use wangge_events::lifecycle::Deadlines;
use wangge_events::model::{Severity, Trigger};
use wangge_events::rules::{Condition, ConditionKind, Evaluator, RuleInput, RuleSet};
use wangge_events::store::{EventLog, SqliteStore};

const S: i64 = 1_000_000_000;
const COMPONENTS: usize = 10_000;
const READINGS: usize = 100_000;

/// Readings over 10k components of mixed types, in time order; values mostly normal with
/// occasional excursions (so raise/clear paths run too).
fn workload() -> Vec<(String, &'static str, String, Quantity, f64, i64)> {
    let kinds: [(&str, Quantity, f64, f64); 6] = [
        ("manhole_cover", Quantity::Tilt, 2.0, 30.0),
        ("flood_gauge", Quantity::WaterLevel, 5.0, 35.0),
        ("gas_detector", Quantity::Gas, 1.0, 25.0),
        ("fire_hydrant", Quantity::Pressure, 0.3, 0.1),
        ("waste_bin", Quantity::FillLevel, 40.0, 95.0),
        ("smoke_detector", Quantity::Battery, 80.0, 10.0),
    ];
    let mut out = Vec::with_capacity(READINGS);
    for i in 0..READINGS {
        let c = i % COMPONENTS;
        let (t, q, normal, excursion) = kinds[c % kinds.len()];
        let v = if (i / COMPONENTS + c).is_multiple_of(50) {
            excursion
        } else {
            normal
        };
        out.push((
            format!("C{c:06}"),
            t,
            format!("S{c:06}"),
            q,
            v,
            1_732_500_000 * S + i as i64 * 10_000_000,
        ));
    }
    out
}

/// A benchmark group measuring `elements` (readings, conditions) per iteration.
fn group<'a>(c: &'a mut Criterion, name: &str, elements: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(elements as u64));
    g
}

fn evaluate(c: &mut Criterion) {
    let data = workload();
    let mut g = group(c, "rules", READINGS);
    g.bench_function("evaluate_100k_readings_10k_components", |b| {
        b.iter_batched(
            || Evaluator::new(RuleSet::defaults()),
            |mut ev| {
                let mut n = 0usize;
                for (comp, t, sensor, q, v, ts) in &data {
                    let r = RuleInput {
                        component_id: comp,
                        component_type: t,
                        sensor_id: sensor,
                        interval_s: 60,
                        quantity: *q,
                        value: *v,
                        ts_ns: *ts,
                        quality: Quality::Good,
                    };
                    n += ev.evaluate(&r, *ts).len();
                }
                n
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("events.db"), Deadlines::default()).unwrap());
    const N: usize = 200;
    let mut g = group(c, "store", N);
    let mut round = 0i64;
    g.bench_function("raise_then_clear_200_conditions", |b| {
        b.iter(|| {
            round += 1;
            for i in 0..N / 2 {
                let mut cond = Condition {
                    kind: ConditionKind::Raised,
                    component_id: format!("C{i}"),
                    event_type: "gas.leak".into(),
                    severity: Severity::Critical,
                    trigger: Trigger {
                        quantity: "gas".into(),
                        value: serde_json::json!(25.0),
                        threshold: Some(20.0),
                        ts_ns: round * 10 * S,
                    },
                    late: false,
                };
                store.apply_condition(&cond, round * 10 * S).unwrap();
                cond.kind = ConditionKind::Cleared;
                cond.trigger.ts_ns += S;
                store.apply_condition(&cond, round * 10 * S).unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, evaluate, store);
criterion_main!(benches);
