//! Wangge component events: rules → conditions → events in a closed loop → shared with departments
//! → delivered over SSE, signed webhooks and MQTT.
//!
//! Code map (the data flow):
//! - [`rules`]: readings (and silence) → [`rules::Condition`]s, O(1) state per (component, rule).
//! - [`store`]: conditions and transitions → events, history and the outbox (`changes`), in SQLite.
//! - [`lifecycle`]: which action leads where; deadlines per severity.
//! - [`sharing`]: which department sees which event.
//! - [`delivery`]: webhooks (signed, retried, durable) and MQTT publications from the outbox.
//! - [`http`]: the axum routes the hub nests under `/api/v1` (REST, SSE).
//! - [`report`]: the evaluation report (综合评价).
//! - [`topology`]: `edge.offline` per edge, and the `device.offline` of the sensors behind an
//!   offline edge held back (counted, listed).
//! - [`attachments`]: photos as evidence on transitions (checked, location removed, by hash).
//!
//! Invariant: every change of an event is one SQLite transaction that also writes its history row
//! and its outbox row; every delivery channel reads the outbox, so none can miss a change.

/// `Type { a, b, c }` read from columns 0, 1, 2, … of a row, in the order the fields are
/// named (so a SELECT and its struct read the same way, without an index per field);
/// `field => f` passes that column through `f`. Used by the events store and the hub's registry
/// (`$row` is a `rusqlite::Row` or a `tokio_postgres::Row`: anything [`columns::Columns`]).
/// `from_columns!(row, at n, Type { … })` reads from column `n` on (a row that joins two).
#[macro_export]
macro_rules! from_columns {
    ($row:expr, at $at:expr, $ty:path { $($field:ident $(=> $map:expr)?),+ $(,)? }) => {{
        let mut columns = $at..;
        $ty {
            $($field: $crate::from_columns!(@column $row, columns $(, $map)?)),+
        }
    }};
    ($row:expr, $ty:path { $($field:ident $(=> $map:expr)?),+ $(,)? }) => {
        $crate::from_columns!($row, at 0usize, $ty { $($field $(=> $map)?),+ })
    };
    (@column $row:expr, $columns:ident) => {
        $crate::columns::Columns::column($row, $columns.next().expect("unbounded"))?
    };
    (@column $row:expr, $columns:ident, $map:expr) => {
        ($map)($crate::columns::Columns::column($row, $columns.next().expect("unbounded"))?)
    };
}

pub mod attachments;
pub mod columns;
pub mod config_file;
pub mod delivery;
pub mod egress;
pub mod http;
pub mod lifecycle;
pub mod model;
pub mod report;
pub mod rules;
pub mod sharing;
pub mod status;
pub mod store;
pub mod topology;

use crate::delivery::WebhookConfig;
use crate::lifecycle::Deadlines;
use crate::model::{Actor, Change, ComponentCtx, Event};
use crate::rules::{Evaluator, RuleInput, RuleSet};
use crate::sharing::SharingConfig;
use crate::status::ComponentStatus;
use crate::store::{AuditEntry, EventStore, SqliteStore, StoreError, TransitionRequest};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

pub use crate::http::{router, Authorizer};
pub use crate::model::Scope;

/// The registry facts the events engine needs, implemented by the hub from its registry.
pub trait ComponentDirectory: Send + Sync {
    /// Type, grid cell, owner and maintainer of a component; None if unknown.
    fn component(&self, component_id: &str) -> Option<ComponentCtx>;

    /// Readings received vs expected per component in `[from_ns, to_ns)`, for the evaluation
    /// report's data completeness. The default knows none.
    fn reading_counts(&self, _from_ns: i64, _to_ns: i64) -> Vec<ReadingCount> {
        Vec::new()
    }

    /// Per attached sensor: the part of `[from_ns, to_ns)` it was monitored up to `now_ns` and
    /// the reports it sent in it ([`report::SensorCoverage`]). The default derives one row per
    /// component from [`ComponentDirectory::reading_counts`].
    fn sensor_coverage(
        &self,
        from_ns: i64,
        to_ns: i64,
        _now_ns: i64,
    ) -> Vec<report::SensorCoverage> {
        report::SensorCoverage::from_counts(self.reading_counts(from_ns, to_ns), from_ns)
    }

    /// Reports of one sensor in `[from_ns, to_ns)`: what the report takes off a sensor's count
    /// for a window it excludes (maintenance). The default knows none.
    fn reports_between(&self, _sensor_id: &str, _from_ns: i64, _to_ns: i64) -> u64 {
        0
    }

    /// Reports per sensor in each of `windows` (the daily trend's days, each inside one UTC
    /// day) up to `now_ns`: sensor → one count per window, in order. With them the trend
    /// scores each day from the window's [`ComponentDirectory::sensor_coverage`] instead of
    /// asking for every day's coverage. None (the default): it asks for every day's.
    fn reports_per_window(
        &self,
        _windows: &[(i64, i64)],
        _now_ns: i64,
    ) -> Option<std::collections::HashMap<String, Vec<u64>>> {
        None
    }

    /// Whether `department` is registered (dispatch targets must be). The default knows none,
    /// so a directory that cannot tell refuses every dispatch rather than allowing any name.
    fn department_exists(&self, _department: &str) -> bool {
        false
    }
}

/// Data completeness of one component over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadingCount {
    pub component_id: String,
    pub received: u64,
    pub expected: u64,
}

/// Everything the engine is configured with.
#[derive(Debug, Clone, Default)]
pub struct EventsConfig {
    pub rules: Option<RuleSet>,
    pub sharing: SharingConfig,
    pub deadlines: Deadlines,
    pub webhooks: WebhookConfig,
    /// Photo limits, location removal and evidence rules (checked at load).
    pub attachments: attachments::Attachments,
}

impl EventsConfig {
    /// The built-in defaults (`config/rules.toml`, `config/sharing.toml` compiled in).
    pub fn defaults() -> EventsConfig {
        EventsConfig {
            rules: Some(RuleSet::defaults()),
            sharing: SharingConfig::defaults(),
            deadlines: Deadlines::default(),
            webhooks: WebhookConfig::default(),
            attachments: attachments::Attachments::default(),
        }
    }
}

/// The `[events]` table: the one config type of the engine, embedded as is in the hub's
/// `hub.toml` (`HubConfig::events`), so every key below is settable there. All keys optional
/// (defaults built in); unknown keys are refused.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    /// Evaluate rules and serve `/api/v1/events…`. Default true.
    pub enabled: bool,
    /// Rules file (format of `config/rules.toml`). Default: the built-in copy of it.
    pub rules_path: Option<std::path::PathBuf>,
    /// Sharing rules (format of `config/sharing.toml`). Default: the built-in copy of it.
    pub sharing_path: Option<std::path::PathBuf>,
    /// Clock tick for `device.offline` and overdue flags, ms. Default 1000.
    pub tick_interval_ms: u64,
    /// `[events.deadlines]`: response deadline per severity (`critical_s` 7200, `major_s`
    /// 86400, `minor_s` 259200, `info_s` 604800).
    pub deadlines: Deadlines,
    /// `[events.webhooks]`: delivery limits (`backoff_initial_ms` 1000, `backoff_max_ms`
    /// 300000, `attempts_max` 100, `timeout_ms` 10000, `batch_max` 16, `poll_interval_ms` 1000)
    /// and the SSRF guard: `allow` (CIDRs and host names whose private addresses webhooks may
    /// reach; default empty) and `insecure_allow_loopback` (default false; tests only).
    pub webhooks: WebhookConfig,
    /// `[events.attachments]`: photos on events — `dir` (default `<data_dir>/attachments`),
    /// `bytes_max` (10485760), `per_event_max` (32), `keep_location` (false: GPS removed) and
    /// `[[events.attachments.require]]` rules (`name`, `event_types`, `actions` default
    /// `["resolve", "close"]`) that make those transitions carry at least one photo.
    pub attachments: attachments::AttachmentsConfig,
}

impl Default for EventsSection {
    fn default() -> Self {
        EventsSection {
            enabled: true,
            rules_path: None,
            sharing_path: None,
            tick_interval_ms: 1000,
            deadlines: Deadlines::default(),
            webhooks: WebhookConfig::default(),
            attachments: attachments::AttachmentsConfig::default(),
        }
    }
}

/// Why the events configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Rules(#[from] rules::RulesError),
    #[error(transparent)]
    Sharing(#[from] sharing::SharingError),
    #[error("{0}")]
    Attachments(String),
}

impl EventsSection {
    /// The engine's configuration: loads the files it names (errors name the file, rule and
    /// field). `enabled` and `tick_interval_ms` are for whoever runs the engine and its ticker.
    pub fn load(&self) -> Result<EventsConfig, ConfigError> {
        Ok(EventsConfig {
            rules: Some(match &self.rules_path {
                Some(p) => RuleSet::load(p)?,
                None => RuleSet::defaults(),
            }),
            sharing: match &self.sharing_path {
                Some(p) => SharingConfig::load(p)?,
                None => SharingConfig::defaults(),
            },
            deadlines: self.deadlines.clone(),
            webhooks: self.webhooks.clone(),
            attachments: self
                .attachments
                .validate()
                .map_err(ConfigError::Attachments)?,
        })
    }
}

struct Inner {
    store: Arc<dyn EventStore>,
    evaluator: Mutex<Evaluator>,
    /// Conditions the store refused (an I/O error, a full disk), oldest first: retried before
    /// anything newer, on the next reading and on every tick, so a raise is late, never lost.
    unstored: Mutex<Vec<rules::Condition>>,
    sharing: SharingConfig,
    directory: Arc<dyn ComponentDirectory>,
    webhooks: WebhookConfig,
    /// The SSRF guard built from `webhooks` (allow list, loopback switch) and its counters.
    egress: egress::Egress,
    /// The latest committed cursor: SSE streams, the webhook worker and the MQTT publisher wait on it.
    feed: watch::Sender<i64>,
    /// `[events.attachments]` in force.
    attachments: attachments::Attachments,
    /// Where photo bytes live; None when the engine was built without one (uploads refused).
    blobs: Option<Arc<dyn attachments::BlobStore>>,
    /// Orders blob writes and deletions (see `attachments/service.rs`).
    blob_lock: Mutex<()>,
    /// `wangge_attachments_total{outcome}`.
    attachment_metrics: attachments::AttachmentMetrics,
}

/// The events engine handle: cheap to clone, shared by ingest, the API and the delivery tasks.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

impl Events {
    /// Opens the SQLite store at `path` (e.g. `<data_dir>/events.db`).
    pub fn open(
        path: &Path,
        config: EventsConfig,
        directory: Arc<dyn ComponentDirectory>,
    ) -> Result<Events, StoreError> {
        let store = SqliteStore::open(path, config.deadlines.clone())?;
        // Photos next to the database unless `[events.attachments] dir` says otherwise.
        let dir = config
            .attachments
            .dir
            .clone()
            .unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).join("attachments"));
        let blobs = attachments::FsBlobStore::open(&dir).map_err(|e| {
            StoreError::Config(format!("attachments directory {}: {e}", dir.display()))
        })?;
        Events::with_parts(Arc::new(store), Some(Arc::new(blobs)), config, directory)
    }

    /// Uses any [`EventStore`] implementation; photos go to `[events.attachments] dir` when
    /// set, else uploads are refused (see [`Events::with_parts`]).
    pub fn with_store(
        store: Arc<dyn EventStore>,
        config: EventsConfig,
        directory: Arc<dyn ComponentDirectory>,
    ) -> Result<Events, StoreError> {
        let blobs: Option<Arc<dyn attachments::BlobStore>> = match &config.attachments.dir {
            Some(dir) => Some(Arc::new(attachments::FsBlobStore::open(dir).map_err(
                |e| StoreError::Config(format!("attachments directory {}: {e}", dir.display())),
            )?)),
            None => None,
        };
        Events::with_parts(store, blobs, config, directory)
    }

    /// Uses any [`EventStore`] and any [`attachments::BlobStore`] (an object store in a
    /// cluster); `blobs: None` refuses uploads.
    pub fn with_parts(
        store: Arc<dyn EventStore>,
        blobs: Option<Arc<dyn attachments::BlobStore>>,
        config: EventsConfig,
        directory: Arc<dyn ComponentDirectory>,
    ) -> Result<Events, StoreError> {
        let egress = config
            .webhooks
            .egress()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        if egress.insecure_allow_loopback() {
            tracing::warn!(
                "[events.webhooks] insecure_allow_loopback = true: webhooks may target loopback \
                 (127/8, ::1), so any department's write token can make the hub POST to its own \
                 loopback services; for tests and one-machine demos only"
            );
        }
        let last = store.last_cursor()?;
        let (feed, _) = watch::channel(last);
        // Re-attach what the store still holds raised, so a restart cannot leave it uncleared.
        let mut evaluator = Evaluator::new(config.rules.unwrap_or_else(RuleSet::defaults));
        for (component_id, event_type, since_ns) in store.raised_conditions()? {
            match topology::source_of_component(&component_id) {
                Some((edge, source)) if event_type == topology::SOURCE_OFFLINE_EVENT => {
                    evaluator.restore_source_down(edge, source);
                    continue;
                }
                _ => {}
            }
            match topology::edge_of_component(&component_id) {
                Some(edge) if event_type == topology::EDGE_OFFLINE_EVENT => {
                    evaluator.restore_edge_offline(edge, since_ns)
                }
                _ => evaluator.restore_raised(&component_id, &event_type, since_ns),
            }
        }
        // …and what was pending (a `for_s` condition holding, not yet raised), so a restart in
        // the middle resumes the count instead of starting it over.
        evaluator.log_pending_changes();
        for (component_id, rule_key, since_ns) in store.pending_conditions()? {
            evaluator.restore_pending(&component_id, &rule_key, since_ns);
        }
        Ok(Events {
            inner: Arc::new(Inner {
                store,
                evaluator: Mutex::new(evaluator),
                unstored: Mutex::new(Vec::new()),
                sharing: config.sharing,
                directory,
                webhooks: config.webhooks,
                egress,
                feed,
                attachments: config.attachments,
                blobs,
                blob_lock: Mutex::new(()),
                attachment_metrics: attachments::AttachmentMetrics::default(),
            }),
        })
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    pub fn sharing(&self) -> &SharingConfig {
        &self.inner.sharing
    }

    pub fn directory(&self) -> &Arc<dyn ComponentDirectory> {
        &self.inner.directory
    }

    pub fn webhook_config(&self) -> &WebhookConfig {
        &self.inner.webhooks
    }

    /// The webhook SSRF guard (and its `wangge_webhook_refused_total` counters).
    pub fn egress(&self) -> &egress::Egress {
        &self.inner.egress
    }

    fn evaluator(&self) -> std::sync::MutexGuard<'_, Evaluator> {
        self.inner
            .evaluator
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Feeds one stored reading through the rules; returns the event changes it caused.
    /// Call it after the reading is stored, in per-sensor timestamp order.
    pub fn ingest(&self, input: &RuleInput<'_>, now_ns: i64) -> Result<Vec<Change>, StoreError> {
        // The evaluator lock is held while the conditions are stored, so two ingest tasks can never
        // store one component's raise and clear in the wrong order. Stores are rare (only changes).
        let mut evaluator = self.evaluator();
        let conditions = evaluator.evaluate(input, now_ns);
        let pending = evaluator.take_pending_changes();
        if conditions.is_empty() && pending.is_empty() && self.unstored().is_empty() {
            return Ok(Vec::new());
        }
        let changes = self.apply(conditions, now_ns);
        // Written before the caller acks the reading (the hub's rules stage runs before the ack).
        for p in &pending {
            if let Err(e) = self
                .inner
                .store
                .set_pending(&p.component_id, &p.rule_key, p.since_ns)
            {
                tracing::error!(error = %e, component_id = %p.component_id, rule = %p.rule_key,
                    "cannot record a pending duration condition; a restart would restart its count");
            }
        }
        drop(evaluator);
        changes
    }

    /// Starts offline detection for a registered sensor before its first reading.
    pub fn watch_sensor(
        &self,
        sensor_id: &str,
        component_id: &str,
        component_type: &str,
        interval_s: u32,
        last_seen_ns: i64,
    ) {
        self.evaluator().watch_sensor(
            sensor_id,
            component_id,
            component_type,
            interval_s,
            last_seen_ns,
        );
    }

    /// Stops offline detection for a sensor another hub of the cluster watches now.
    pub fn unwatch_sensor(&self, sensor_id: &str) -> bool {
        self.evaluator().unwatch_sensor(sensor_id)
    }

    /// `sensor_id` reports through `edge_id`: its `device.offline` is held back while that
    /// edge is offline ([`topology`]).
    pub fn set_sensor_edge(&self, sensor_id: &str, edge_id: &str) {
        self.evaluator().set_sensor_edge(sensor_id, edge_id);
    }

    /// An accepted (authenticated, fresh) status of `edge_id`: `edge.offline` raised on an
    /// offline status (its last will), cleared on an online one. Returns the event changes.
    pub fn edge_status(
        &self,
        edge_id: &str,
        online: bool,
        now_ns: i64,
    ) -> Result<Vec<Change>, StoreError> {
        let mut evaluator = self.evaluator();
        let conditions = evaluator.edge_status(edge_id, online, now_ns);
        if conditions.is_empty() && self.unstored().is_empty() {
            return Ok(Vec::new());
        }
        let changes = self.apply(conditions, now_ns);
        drop(evaluator);
        changes
    }

    /// An accepted status of `edge_id` with the sources it lists down
    /// ([`rules::Evaluator::edge_report`]): `edge.offline` as [`Events::edge_status`], and
    /// (online statuses) one `source.offline` per source newly listed, cleared once it is no
    /// longer listed. Returns the event changes.
    pub fn edge_report(
        &self,
        edge_id: &str,
        online: bool,
        sources_down: &[protocol::uplink::SourceDown],
        now_ns: i64,
    ) -> Result<Vec<Change>, StoreError> {
        let mut evaluator = self.evaluator();
        let conditions = evaluator.edge_report(edge_id, online, sources_down, now_ns);
        if conditions.is_empty() && self.unstored().is_empty() {
            return Ok(Vec::new());
        }
        let changes = self.apply(conditions, now_ns);
        drop(evaluator);
        changes
    }

    /// The sources of `edge_id` its status lists down now, with the edge's own sensors behind
    /// each (what sharing needs of a `source.offline` event).
    pub fn sources_of(&self, edge_id: &str) -> Vec<(String, Vec<String>)> {
        self.evaluator().sources_of(edge_id)
    }

    /// The sensors whose `device.offline` the current outage of `source` of `edge_id` holds
    /// back.
    pub fn source_suppressed_of(&self, edge_id: &str, source: &str) -> Vec<String> {
        self.evaluator().source_suppressed_of(edge_id, source)
    }

    /// In a cluster: only the edges this hub owns are watched for silence.
    pub fn retain_edges(&self, owned: &std::collections::BTreeSet<String>) {
        self.evaluator().retain_edges(owned);
    }

    /// `device.offline` events held back because their edge was offline, since start.
    pub fn suppressed_total(&self) -> u64 {
        self.evaluator().suppressed_total()
    }

    /// The sensors whose `device.offline` `edge_id`'s current outage holds back.
    pub fn suppressed_of(&self, edge_id: &str) -> Vec<String> {
        self.evaluator().suppressed_of(edge_id)
    }

    /// `wangge_events_suppressed_total{event="device.offline"}` for the hub's `/metrics`.
    pub fn render_topology_metrics(&self, out: &mut String) {
        let (suppressed, ignored) = {
            let ev = self.evaluator();
            (ev.suppressed_total(), ev.source_sensors_ignored())
        };
        topology::render_prometheus(suppressed, ignored, out);
    }

    /// The clock tick: `edge.offline` for edges whose status is overdue, `device.offline` for
    /// silent sensors (unless their edge is offline), overdue flags for late cases.
    pub fn tick(&self, now_ns: i64) -> Result<Vec<Change>, StoreError> {
        let mut evaluator = self.evaluator();
        let conditions = evaluator.tick(now_ns);
        let mut changes = self.apply(conditions, now_ns)?;
        drop(evaluator);
        let overdue = self.inner.store.mark_overdue(now_ns)?;
        if let Some(last) = overdue.last() {
            self.notify(last.cursor);
        }
        changes.extend(overdue);
        Ok(changes)
    }

    fn unstored(&self) -> std::sync::MutexGuard<'_, Vec<rules::Condition>> {
        self.inner
            .unstored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Stores conditions in order, after any the store refused before. On an error the
    /// refused condition and everything after it wait in `unstored` (the evaluator has moved
    /// on, so they would not come again) and the error is returned: the hub then does not ack
    /// the readings, and the next reading or tick retries.
    fn apply(
        &self,
        conditions: Vec<rules::Condition>,
        now_ns: i64,
    ) -> Result<Vec<Change>, StoreError> {
        let mut queue = self.unstored();
        queue.extend(conditions);
        let mut changes = Vec::new();
        let mut stored = 0;
        let mut failed = None;
        for c in queue.iter() {
            match self.inner.store.apply_condition(c, now_ns) {
                Ok(change) => {
                    stored += 1;
                    if let Some(ch) = change {
                        tracing::info!(event_id = ch.event.id, component_id = %ch.event.component_id,
                            event_type = %ch.event.event_type, version = ch.event.version, "event change");
                        self.notify(ch.cursor);
                        changes.push(ch);
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        queue.drain(..stored);
        match failed {
            None => Ok(changes),
            Some(e) => {
                tracing::error!(error = %e, waiting = queue.len(),
                    "events store refused a condition; kept to retry in order");
                Err(e)
            }
        }
    }

    /// Conditions waiting for the store to accept them (see [`Events::ingest`]).
    pub fn unstored_conditions(&self) -> usize {
        self.unstored().len()
    }

    /// Moves an event through the closed loop on behalf of `actor` (access checked by the
    /// caller), without photos: refused where an evidence rule requires one
    /// ([`Events::transition_with`]).
    pub fn transition(
        &self,
        id: i64,
        actor: &Actor,
        req: &TransitionRequest,
        now_ns: i64,
    ) -> Result<Change, StoreError> {
        self.transition_with(id, actor, req, &[], now_ns)
    }

    /// Wakes every consumer of the change feed.
    pub fn notify(&self, cursor: i64) {
        self.inner.feed.send_if_modified(|c| {
            if cursor > *c {
                *c = cursor;
                true
            } else {
                false
            }
        });
    }

    /// A receiver that changes whenever a new change is committed.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.inner.feed.subscribe()
    }

    /// Whether `department` receives `event` per the sharing rules.
    pub fn visible_to(&self, department: &str, event: &Event) -> bool {
        let ctx = self.inner.directory.component(&event.component_id);
        self.inner
            .sharing
            .visible_to(department, event, ctx.as_ref())
    }

    /// Whether `actor` may see `event` (admin sees all).
    pub fn actor_sees(&self, actor: &Actor, event: &Event) -> bool {
        let ctx = self.inner.directory.component(&event.component_id);
        self.inner.sharing.actor_sees(actor, event, ctx.as_ref())
    }

    /// Records an out-of-scope attempt.
    pub fn audit_denied(&self, actor: &Actor, action: &str, event_id: Option<i64>, reason: &str) {
        let entry = AuditEntry {
            at_ns: model::now_ns(),
            actor: actor.name.clone(),
            department: actor.department.clone(),
            action: action.to_string(),
            event_id,
            reason: reason.to_string(),
        };
        tracing::warn!(actor = %actor.label(), action, ?event_id, reason, "access denied");
        if let Err(e) = self.inner.store.audit(&entry) {
            tracing::error!(error = %e, "audit write failed");
        }
    }

    /// A component's status as its events say (normal / alarm / offline / maintenance).
    pub fn component_status(&self, component_id: &str) -> Result<ComponentStatus, StoreError> {
        Ok(status::component_status(
            &self.inner.store.active_for_component(component_id)?,
        ))
    }

    /// The MQTT messages for one change: `(wangge/v1/events/{department}/{type}, Event JSON)`,
    /// one per department that receives the event.
    pub fn mqtt_publications(&self, change: &Change) -> Vec<(String, String)> {
        let ctx = self.inner.directory.component(&change.event.component_id);
        self.inner
            .sharing
            .recipients(&change.event, ctx.as_ref())
            .into_iter()
            .map(|d| {
                (
                    delivery::mqtt_topic(&d, &change.event.event_type),
                    change.body.clone(),
                )
            })
            .collect()
    }

    /// Runs [`Events::tick`] every `period` (spawn it; abort it on shutdown).
    pub async fn run_ticker(self, period: std::time::Duration) {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = self.tick(model::now_ns()) {
                tracing::error!(error = %e, "events tick failed");
            }
        }
    }
}
