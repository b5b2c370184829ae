//! Configuration from the hub: the edge's side.
//!
//! The hub publishes each edge's desired configuration, sealed under the edge's key, retained
//! on `wangge/v1/edges/{id}/config`; the uplink opens it ([`DesiredConfig::open`]: this edge's
//! key, this edge's id, the hash matching) and hands the newest to the [`Manager`], which
//! - ignores a version not newer than every one it has seen (the retained message comes back
//!   at each connect; a replay changes nothing) and only repeats its report;
//! - joins it with the local file and validates it with `edge check`'s rules
//!   ([`document::join`]); a bad one is refused, reported with the field named, and the running
//!   config stays;
//! - stores it atomically as the running document, the previous one kept as last known good
//!   ([`state`]), then applies it by section ([`document::Change`]): sources that changed
//!   restart alone, the validator is rebuilt in place, and a change of the uplink, the buffer,
//!   calibration or the site broker restarts the agent on the new config (the buffer is on
//!   disk, synced first; nothing accepted is lost);
//! - after a change of the uplink, waits for the uplink to be back within
//!   `uplink.config_confirm_ms` of boot; if it is not, returns to the last known good config by
//!   itself (a confirmed commit) and reports `rolled_back`;
//! - reports what it did (sealed, `wangge/v1/edges/{id}/config-report`) and repeats the report
//!   at every connect until a newer one replaces it.
//!
//! At boot ([`boot`]) the agent runs on the stored document when there is one (the hub may be
//! unreachable), falling back to the last known good one, then to the local file alone.

pub mod document;
mod profiles;
pub mod state;

use crate::config::{read_text, Config};
use crate::ingest::{now_ns, Ingest};
use crate::metrics::Metrics;
use crate::source::running::Sources;
use protocol::edge_config::{ConfigReport, DesiredConfig};
use protocol::uplink::{topics, EdgeId};
use rumqttc::{AsyncClient, QoS};
use state::{ConfigOutcomeName, FleetState, Outcome, StateFile, Stored};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The config the agent boots on, and the stored state it came from.
pub struct Boot {
    pub cfg: Config,
    pub state: FleetState,
    /// The local file, parsed, and its text (joined with every document the hub sends later).
    pub file: Config,
    pub file_text: String,
}

/// Chooses the running config: the stored document joined with the local file, else the last
/// known good one, else the file alone. Every fallback is logged with its reason.
pub fn boot(file_cfg: Config) -> anyhow::Result<Boot> {
    let file_text = read_text(&file_cfg.source_path, "check the path given to --config")?;
    let sf = StateFile::new(&file_cfg.edge.data_dir);
    let mut state = match sf.load() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the stored hub configuration is unreadable; running on the local file alone");
            FleetState::default()
        }
    };
    for (which, stored) in [
        ("running", state.current.clone()),
        ("last known good", state.previous.clone()),
    ] {
        let Some(s) = stored else { continue };
        let joined = document::join(&file_cfg, &file_text, s.version, &s.document)
            .map_err(|e| e.to_string())
            .and_then(|cfg| loadable(&cfg).map(|()| cfg));
        match joined {
            Ok(cfg) => {
                tracing::info!(
                    version = s.version,
                    which,
                    "running on the hub's configuration"
                );
                if which != "running" {
                    state.current = Some(s);
                    state.unconfirmed = false;
                }
                return Ok(Boot {
                    cfg,
                    state,
                    file: file_cfg,
                    file_text,
                });
            }
            Err(e) => tracing::error!(version = s.version, which, error = %e,
                "the stored hub configuration no longer joins with the local file"),
        }
    }
    state.current = None;
    state.unconfirmed = false;
    Ok(Boot {
        cfg: file_cfg.clone(),
        state,
        file: file_cfg,
        file_text,
    })
}

/// What the manager needs of the running agent.
pub struct Agent {
    pub ingest: Arc<Ingest>,
    pub sources: Sources,
    pub metrics: Arc<Metrics>,
    pub buffer: Arc<Mutex<crate::buffer::Buffer>>,
    /// The uplink's MQTT client (reports go out on it).
    pub client: AsyncClient,
    pub key: [u8; 32],
}

/// Applies the hub's documents to the running agent.
pub struct Manager {
    running: Config,
    file: Config,
    file_text: String,
    state_file: StateFile,
    state: FleetState,
    agent: Agent,
}

/// How often the manager looks at the uplink's connect count (to confirm, and to repeat the
/// report after a reconnect).
const LINK_CHECK: Duration = Duration::from_millis(200);

impl Manager {
    pub fn new(boot: Boot, agent: Agent) -> Manager {
        Manager {
            state_file: StateFile::new(&boot.cfg.edge.data_dir),
            running: boot.cfg,
            file: boot.file,
            file_text: boot.file_text,
            state: boot.state,
            agent,
        }
    }

    /// Runs until the agent stops (or restarts itself on a new config).
    pub async fn run(mut self, mut configs: watch::Receiver<Option<DesiredConfig>>) {
        let confirm_by = self.state.unconfirmed.then(|| {
            tokio::time::Instant::now()
                + Duration::from_millis(self.running.uplink.config_confirm_ms)
        });
        if confirm_by.is_some() {
            tracing::info!(
                ms = self.running.uplink.config_confirm_ms,
                "running on an unconfirmed uplink change: the uplink must come back in time"
            );
        }
        let mut connects = 0;
        let mut check = tokio::time::interval(LINK_CHECK);
        loop {
            tokio::select! {
                changed = configs.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let desired = configs.borrow_and_update().clone();
                    if let Some(d) = desired {
                        self.on_desired(d);
                    }
                }
                _ = check.tick() => {
                    let now = self.agent.metrics.uplink_connects.load(Relaxed);
                    if now != connects {
                        connects = now;
                        if self.state.unconfirmed {
                            self.confirm();
                        }
                        self.report();
                    } else if self.state.unconfirmed
                        && confirm_by.is_some_and(|t| tokio::time::Instant::now() >= t)
                    {
                        self.roll_back();
                    }
                }
            }
        }
    }

    fn on_desired(&mut self, d: DesiredConfig) {
        if d.version <= self.state.seen_version {
            self.report();
            return;
        }
        self.state.seen_version = d.version;
        let new = document::join(&self.file, &self.file_text, d.version, &d.document)
            .map_err(|e| e.to_string())
            .and_then(|cfg| loadable(&cfg).map(|()| cfg));
        let new = match new {
            Ok(cfg) => cfg,
            Err(error) => {
                tracing::warn!(version = d.version, %error, "configuration from the hub refused; the running one stays");
                self.state.report = Some(Outcome {
                    version: d.version,
                    outcome: ConfigOutcomeName::Refused,
                    error: Some(error),
                });
                self.save_and_report();
                return;
            }
        };
        let change = document::Change::between(&self.running, &new);
        self.state.previous = self.state.current.take();
        self.state.current = Some(Stored {
            version: d.version,
            hash: d.hash.clone(),
            document: d.document,
        });
        self.state.unconfirmed = change.uplink;
        self.state.report = (!change.uplink).then_some(Outcome {
            version: d.version,
            outcome: ConfigOutcomeName::Applied,
            error: None,
        });
        if change.uplink || change.restart {
            tracing::info!(
                version = d.version,
                uplink = change.uplink,
                "configuration from the hub: restarting the agent on it"
            );
            self.save_or_exit();
            restart_agent(&self.agent);
        }
        self.save_or_exit();
        if change.validator {
            match crate::run::validator(&new) {
                Ok(v) => {
                    if let Ok(mut cur) = self.agent.ingest.validator.lock() {
                        *cur = v;
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot rebuild the validator"),
            }
        }
        let restarted = self.agent.sources.update(&new);
        tracing::info!(
            version = d.version,
            ?restarted,
            "configuration from the hub applied"
        );
        self.running = new;
        self.report();
    }

    /// The uplink is back on an unconfirmed change: it holds.
    fn confirm(&mut self) {
        let Some(cur) = &self.state.current else {
            return;
        };
        tracing::info!(
            version = cur.version,
            "the uplink is back: configuration confirmed"
        );
        self.state.unconfirmed = false;
        self.state.report = Some(Outcome {
            version: cur.version,
            outcome: ConfigOutcomeName::Applied,
            error: None,
        });
        self.save_or_exit();
    }

    /// The uplink did not come back in time: back to the last known good config.
    fn roll_back(&mut self) {
        let failed = self.state.current.take().map(|s| s.version).unwrap_or(0);
        self.state.current = self.state.previous.take();
        self.state.unconfirmed = false;
        let back = self.state.current.as_ref().map(|s| s.version).unwrap_or(0);
        let error = format!(
            "the uplink was not back within uplink.config_confirm_ms = {} ms after applying v{failed}; back on v{back} (last known good)",
            self.running.uplink.config_confirm_ms
        );
        tracing::error!(%error, "configuration rolled back");
        self.state.report = Some(Outcome {
            version: failed,
            outcome: ConfigOutcomeName::RolledBack,
            error: Some(error),
        });
        self.save_or_exit();
        restart_agent(&self.agent);
    }

    fn save_and_report(&mut self) {
        self.save_or_exit();
        self.report();
    }

    /// A state that cannot be stored must not be run on (a restart would boot on another):
    /// the agent stops and its supervisor starts it on what is on disk.
    fn save_or_exit(&self) {
        if let Err(e) = self.state_file.save(&self.state) {
            tracing::error!(error = %e, path = %self.state_file.path().display(), "cannot store the hub configuration state; stopping");
            std::process::exit(74);
        }
    }

    /// Publishes the report owed, if any (sealed; QoS 1; repeated at every connect).
    fn report(&self) {
        let Some(r) = &self.state.report else {
            return;
        };
        let cur = self.state.current.as_ref();
        let report = ConfigReport {
            edge_id: EdgeId(self.running.edge.id.clone()),
            applied_version: cur.map(|c| c.version).unwrap_or(0),
            applied_hash: cur.map(|c| c.hash.clone()).unwrap_or_default(),
            version: r.version,
            outcome: r.outcome.into(),
            error: r.error.clone(),
            ts_ns: now_ns(),
        };
        let _ = self.agent.client.try_publish(
            topics::config_report(&self.running.edge.id),
            QoS::AtLeastOnce,
            false,
            report.seal(&self.agent.key),
        );
    }
}

/// What `edge run` would load beyond the config itself: profiles and the registered sensors.
fn loadable(cfg: &Config) -> Result<(), String> {
    crate::normalize::Normalizer::load(&cfg.edge.profiles_dir, cfg).map_err(|e| e.to_string())?;
    crate::registry::registered(cfg).map_err(|e| e.to_string())?;
    Ok(())
}

/// Syncs the buffer and replaces this process with a fresh start of the same command line
/// (same pid): the new image boots on the stored state. Never returns.
/// How long a restart waits for the site messages taken to be acknowledged.
const DRAIN_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

fn restart_agent(agent: &Agent) -> ! {
    // Every site message taken is durable and PUBACKed first, so none is redelivered to the
    // next process (a clockless sensor's reading would be stored again, stamped anew).
    let ingest = agent.ingest.clone();
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(ingest.drain(DRAIN_WITHIN))
    });
    if let Ok(mut b) = agent.buffer.lock() {
        if let Err(e) = b.sync_now().and_then(|_| b.persist_cursor()) {
            tracing::error!(error = %e, "cannot sync the buffer before the restart");
        }
    }
    let exe = std::env::current_exe();
    let err = match exe {
        Ok(exe) => {
            use std::os::unix::process::CommandExt;
            std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .exec()
        }
        Err(e) => e,
    };
    tracing::error!(error = %err, "cannot restart the agent; exiting for the supervisor");
    std::process::exit(75);
}
