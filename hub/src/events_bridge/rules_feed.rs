//! The events rules as ingest's last stage (`ingest::RulesStage`), with its test hooks.

use crate::ingest;
use crate::registry::RegistryAdmin;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the rules stage forgets its sensor → component cache, so registry edits apply.
const SENSOR_CACHE_MS: u64 = 60_000;

/// The events rules as ingest's last stage: maps each stored reading's sensor to its component
/// (cached) and feeds it to the rules. Ingest acks a group only after `evaluate` returned, so an
/// acked reading has been evaluated; a reading seen again after a crash raises nothing twice.
pub(super) struct RulesFeed {
    events: wangge_events::Events,
    registry: Arc<dyn RegistryAdmin>,
    cache: HashMap<String, Option<crate::registry::SensorContext>>,
    cache_at: Instant,
    hooks: TestHooks,
    /// In a cluster, the edges this hub owns (for the status hook).
    owned: Option<tokio::sync::watch::Receiver<Vec<String>>>,
    /// The down sources' sensors the status hook keeps for the directory.
    sources: super::edge_status::SourceSensors,
}

impl RulesFeed {
    /// The rules stage over `events`, its test hooks read from the environment.
    pub(super) fn new(
        events: wangge_events::Events,
        registry: Arc<dyn RegistryAdmin>,
        owned: Option<tokio::sync::watch::Receiver<Vec<String>>>,
        sources: super::edge_status::SourceSensors,
    ) -> RulesFeed {
        RulesFeed {
            events,
            registry,
            cache: HashMap::new(),
            cache_at: Instant::now(),
            hooks: TestHooks::from_env(),
            owned,
            sources,
        }
    }
}

impl ingest::RulesStage for RulesFeed {
    fn evaluate(&mut self, group: &ingest::StoredGroup) -> Result<(), String> {
        self.hooks.before_group();
        // Every reading is evaluated even after a failure (the rules' state stays current);
        // the events engine keeps the refused conditions and retries them in order.
        let mut failed = None;
        if self.cache_at.elapsed() > Duration::from_millis(SENSOR_CACHE_MS) {
            self.cache.clear();
            self.cache_at = Instant::now();
        }
        for sr in &group.readings {
            if sr.component_id.is_none() {
                continue;
            }
            let r = &sr.reading;
            let registry = &self.registry;
            let events = &self.events;
            let ctx = self
                .cache
                .entry(r.sensor.as_str().to_string())
                .or_insert_with(|| {
                    // Its readings came through this edge, the only one ingest accepts for it.
                    events.set_sensor_edge(r.sensor.as_str(), &sr.edge_id);
                    registry.sensor_context(r.sensor.as_str()).ok().flatten()
                });
            let Some(ctx) = ctx else { continue };
            let input = wangge_events::rules::RuleInput {
                component_id: &ctx.component_id,
                component_type: &ctx.component_type,
                sensor_id: r.sensor.as_str(),
                interval_s: ctx.interval_s,
                quantity: r.quantity,
                value: r.value.as_f64(),
                ts_ns: r.ts_ns,
                quality: r.quality,
            };
            if let Err(e) = self.events.ingest(&input, wangge_events::model::now_ns()) {
                failed.get_or_insert_with(|| format!("sensor {}: {e}", r.sensor.as_str()));
            }
        }
        failed.map_or(Ok(()), Err)
    }

    fn status_hook(&self) -> Option<Arc<dyn ingest::EdgeStatusHook>> {
        Some(Arc::new(super::edge_status::EdgeStatusFeed {
            events: self.events.clone(),
            owned: self.owned.clone(),
            sources: self.sources.clone(),
        }))
    }
}

/// Test-only hooks on the rules stage, read once from the environment at start, so system tests
/// can hold the rules at a chosen point of a real hub process (`hub/tests/rules_replay.rs`):
/// - `WANGGE_TEST_PAUSE_RULES=<file>`: before each group, wait while `<file>` exists (the test
///   then `kill -9`s a hub whose group is stored but not evaluated, hence not acked);
/// - `WANGGE_TEST_SLOW_RULES_MS=<ms>`: sleep this long before each group (rules slower than
///   ingest).
///
/// Unset in production; the hub logs a warning when either is set.
#[derive(Debug, Default)]
struct TestHooks {
    pause_file: Option<PathBuf>,
    delay: Option<Duration>,
}

impl TestHooks {
    fn from_env() -> TestHooks {
        let hooks = TestHooks {
            pause_file: std::env::var_os("WANGGE_TEST_PAUSE_RULES").map(PathBuf::from),
            delay: std::env::var("WANGGE_TEST_SLOW_RULES_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
                .map(Duration::from_millis),
        };
        if hooks.pause_file.is_some() || hooks.delay.is_some() {
            tracing::warn!(?hooks, "test hooks on the rules stage are active");
        }
        hooks
    }

    fn before_group(&self) {
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        if let Some(f) = &self.pause_file {
            while f.exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
