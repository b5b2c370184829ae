//! Hub configuration: `config/hub.toml`, or nothing at all.
//!
//! With no file the hub runs on embedded defaults: embedded MQTT broker on `0.0.0.0:1883`,
//! HTTP on `0.0.0.0:8080`, registry and time series under `./data`. Every section is optional
//! and every unknown key is an error naming the file, line and field.
//!
//! `data_dir` is the one place data lives: the registry (`registry.sqlite`), the embedded
//! time series, ingest's dedup state and the InfluxDB spill go under it unless a section names
//! another path explicitly.

use crate::broker::BrokerConfig;
use crate::ingest::IngestConfig;
use crate::timeseries::embedded::EmbeddedConfig;
use crate::timeseries::influx::InfluxConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
pub use wangge_events::EventsSection;

/// Environment variable that supplies (and overrides) the admin token, for the demo.
pub const ADMIN_TOKEN_ENV: &str = "WANGGE_ADMIN_TOKEN";

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Where the hub keeps its data. Default `./data`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// A bearer token with admin scope, for the demo. Prefer `hub token add` in production;
    /// `WANGGE_ADMIN_TOKEN` overrides it. Default: none.
    #[serde(default)]
    pub admin_token: Option<String>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub registry: RegistryConfig,
    /// `[broker]`: embedded rumqttd (default) or an external broker.
    #[serde(default)]
    pub broker: BrokerConfig,
    /// `[ingest]`: group commit and dedup.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// `[timeseries]`: the embedded store (always on: it answers the API's readings queries).
    #[serde(default)]
    pub timeseries: EmbeddedConfig,
    /// `[influx]`: also write readings to an InfluxDB v2 API server. Default: off.
    #[serde(default)]
    pub influx: Option<InfluxConfig>,
    /// `[victoria]`: answer readings queries (API, charts) from VictoriaMetrics, which the
    /// hubs' `[influx]` sinks write to (cluster mode). Default: absent (the embedded store).
    #[serde(default)]
    pub victoria: Option<crate::timeseries::victoria::VictoriaConfig>,
    /// `[events]`: the events engine (rules, closed loop, sharing, delivery): the engine's own
    /// config type, so every key of it is settable here.
    #[serde(default)]
    pub events: EventsSection,
    /// `[cluster]`: several hubs on one PostgreSQL and one external broker. Default: absent
    /// (single node: SQLite, the embedded broker).
    #[serde(default)]
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

/// `[http]`: the API listener and its bounds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Default `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// Largest request body, bytes. Default 65536.
    pub body_bytes_max: usize,
    /// Longest query string, bytes. Default 2048.
    pub query_bytes_max: usize,
    /// Largest list page. Default 1000.
    pub page_limit_max: usize,
    /// Page size without `limit`. Default 100.
    pub page_limit_default: usize,
    /// Most points in one readings response. Default 10000.
    pub points_max: usize,
    /// Ranges longer than this are downsampled even without `step`, ms. Default 6 h.
    pub raw_range_max_ms: u64,
    /// A client must send its whole request head within this, ms (slowloris). Default 10000.
    pub header_read_timeout_ms: u64,
    /// A handler must answer (its response head) within this, ms, else 503. SSE streams answer
    /// at once and are not cut. Default 30000.
    pub request_timeout_ms: u64,
    /// Connections served at once; one past it gets 503 and is closed. Default 1024.
    pub max_connections: usize,
    /// At shutdown, how long open connections may take to finish, ms. Default 5000.
    pub shutdown_drain_ms: u64,
    /// Open SSE streams per bearer token; one more gets 429. Default 4.
    pub sse_streams_per_token_max: usize,
    /// Longest range of the evaluation report, days; longer gets 400 naming `from`.
    /// Default 92 (a quarter).
    pub report_range_max_days: u32,
    /// `[http.tls]`: serve the API over TLS (rustls). Default: none.
    pub tls: Option<HttpTlsConfig>,
    /// With `tls` configured, keep the plain listener on `listen` too. Default false: TLS
    /// configured means plain HTTP is off, so a bearer token never crosses the network in the
    /// clear by accident.
    pub keep_plain: bool,
}

/// `[http.tls]`: the API's TLS listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTlsConfig {
    /// Default `0.0.0.0:8443`.
    #[serde(default = "default_https_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain (leaf first).
    pub cert_path: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
}

fn default_https_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}

impl HttpConfig {
    /// Whether the plain listener on `listen` is served.
    pub fn plain_on(&self) -> bool {
        self.tls.is_none() || self.keep_plain
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            body_bytes_max: 64 * 1024,
            query_bytes_max: 2048,
            page_limit_max: 1000,
            page_limit_default: 100,
            points_max: 10_000,
            raw_range_max_ms: 6 * 3600 * 1000,
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            max_connections: 1024,
            shutdown_drain_ms: 5_000,
            sse_streams_per_token_max: 4,
            report_range_max_days: 92,
            tls: None,
            keep_plain: false,
        }
    }
}

/// `[registry]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// The SQLite file. Default `<data_dir>/registry.sqlite`.
    pub path: Option<PathBuf>,
    /// Seed directory (`regions.csv`, `classes.csv`, …) imported at start when the registry has
    /// no components yet. Default: none (start empty; use `hub registry import DIR`).
    pub seed_dir: Option<PathBuf>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            data_dir: default_data_dir(),
            admin_token: None,
            http: HttpConfig::default(),
            registry: RegistryConfig::default(),
            broker: BrokerConfig::default(),
            ingest: IngestConfig::default(),
            timeseries: EmbeddedConfig::default(),
            influx: None,
            victoria: None,
            events: EventsSection::default(),
            cluster: None,
        }
    }
}

/// A config file that could not be used: the message names file, line and field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {field}: {reason}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        reason: String,
    },
}

/// The longest webhook attempt the config accepts: half the cluster's delivery claim
/// (`DELIVERY_LEASE_NS` in hub/events/src/store/pg/subscriptions.rs, 120 s), so an attempt — all of a round's run
/// concurrently — and its record always finish while this hub still holds the delivery.
pub const WEBHOOK_TIMEOUT_MS_MAX: u64 = 60_000;

impl HubConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<HubConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` (named `path` in errors) and validates it.
    pub fn parse(path: &Path, text: &str) -> Result<HubConfig, ConfigError> {
        let cfg: HubConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let h = &self.http;
        for (field, v) in [
            ("http.body_bytes_max", h.body_bytes_max),
            ("http.query_bytes_max", h.query_bytes_max),
            ("http.page_limit_max", h.page_limit_max),
            ("http.page_limit_default", h.page_limit_default),
            ("http.points_max", h.points_max),
            ("http.max_connections", h.max_connections),
            (
                "http.header_read_timeout_ms",
                h.header_read_timeout_ms as usize,
            ),
            ("http.request_timeout_ms", h.request_timeout_ms as usize),
            (
                "http.sse_streams_per_token_max",
                h.sse_streams_per_token_max,
            ),
            (
                "http.report_range_max_days",
                h.report_range_max_days as usize,
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    field,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if h.page_limit_default > h.page_limit_max {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field: "http.page_limit_default",
                reason: format!(
                    "{} exceeds page_limit_max {}",
                    h.page_limit_default, h.page_limit_max
                ),
            });
        }
        if self.events.tick_interval_ms == 0 {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field: "events.tick_interval_ms",
                reason: "must be at least 1".into(),
            });
        }
        if let Err(e) = self.events.webhooks.egress() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field: "events.webhooks.allow",
                reason: e.to_string(),
            });
        }
        for (field, v) in [
            (
                "events.webhooks.timeout_ms",
                self.events.webhooks.timeout_ms,
            ),
            (
                "events.webhooks.attempts_max",
                u64::from(self.events.webhooks.attempts_max),
            ),
            (
                "events.webhooks.batch_max",
                self.events.webhooks.batch_max as u64,
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    field,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if self.events.webhooks.timeout_ms > WEBHOOK_TIMEOUT_MS_MAX {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field: "events.webhooks.timeout_ms",
                reason: format!(
                    "{} ms is over {WEBHOOK_TIMEOUT_MS_MAX} ms: in a cluster a delivery is claimed for 120 s, and an attempt must end well inside its claim (else another hub attempts it too)",
                    self.events.webhooks.timeout_ms,
                ),
            });
        }
        if self.admin_token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field: "admin_token",
                reason: "shorter than 16 characters".into(),
            });
        }
        Ok(())
    }

    /// Points every stage's paths that were left at their defaults under `data_dir`.
    pub fn resolve_paths(&mut self) {
        let default_dir = default_data_dir();
        if self.ingest.data_dir == default_dir {
            self.ingest.data_dir = self.data_dir.clone();
        }
        if self.timeseries.data_dir == default_dir {
            self.timeseries.data_dir = self.data_dir.clone();
        }
        if let Some(influx) = &mut self.influx {
            if influx.spill_dir == default_dir.join("influx-spill") {
                influx.spill_dir = self.data_dir.join("influx-spill");
            }
        }
    }

    /// The registry's SQLite file.
    pub fn registry_path(&self) -> PathBuf {
        self.registry
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("registry.sqlite"))
    }

    /// The admin token: `WANGGE_ADMIN_TOKEN` if set and non-empty, else the file's.
    pub fn effective_admin_token(&self) -> Option<String> {
        std::env::var(ADMIN_TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| self.admin_token.clone())
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error `text` as `hub.toml` fails with.
    fn parse_error(text: &str) -> String {
        HubConfig::parse(Path::new("hub.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn no_file_means_embedded_defaults() {
        let c = HubConfig::parse(Path::new("x.toml"), "").unwrap();
        assert_eq!(c, HubConfig::default());
        assert_eq!(c.http.listen.port(), 8080);
        assert_eq!(c.broker.listen.port(), 1883);
        assert_eq!(c.registry_path(), PathBuf::from("./data/registry.sqlite"));
    }

    #[test]
    fn an_unknown_key_names_file_line_and_field() {
        let text = "data_dir = \"d\"\n[http]\nlisten = \"127.0.0.1:1\"\nbody_bytes = 5\n";
        let e = parse_error(text);
        assert!(
            e.starts_with("hub.toml:4:1: unknown field `body_bytes`"),
            "{e}"
        );
    }

    #[test]
    fn a_webhook_timeout_longer_than_half_the_delivery_claim_is_refused() {
        let e = parse_error("[events.webhooks]\ntimeout_ms = 60001\n");
        assert!(
            e.contains("events.webhooks.timeout_ms") && e.contains("120 s"),
            "{e}"
        );
        let ok = HubConfig::parse(
            Path::new("hub.toml"),
            "[events.webhooks]\ntimeout_ms = 60000\n",
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn the_repo_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/hub.toml");
        let c = HubConfig::load(&path).unwrap();
        assert_eq!(c.http.listen.port(), 8080);
    }

    #[test]
    fn every_events_key_is_settable_including_deadlines_and_webhooks() {
        let text = "[events]\ntick_interval_ms = 250\n[events.deadlines]\ncritical_s = 600\n\
                    [events.webhooks]\nallow = [\"10.12.0.0/16\", \"platform.example\"]\n\
                    insecure_allow_loopback = true\ntimeout_ms = 3000\n";
        let c = HubConfig::parse(Path::new("hub.toml"), text).unwrap();
        assert_eq!(c.events.tick_interval_ms, 250);
        assert_eq!(c.events.deadlines.critical_s, 600);
        assert_eq!(
            c.events.webhooks.allow,
            ["10.12.0.0/16", "platform.example"]
        );
        assert!(c.events.webhooks.insecure_allow_loopback);
        assert_eq!(c.events.webhooks.timeout_ms, 3000);
        let e = parse_error("[events.webhooks]\nallow = [\"127.0.0.0/8\"]\n");
        assert!(
            e.contains("events.webhooks.allow") && e.contains("insecure_allow_loopback"),
            "{e}"
        );
        let e = parse_error("[events.webhooks]\nallow_all = true\n");
        assert!(
            e.starts_with("hub.toml:2:1: unknown field `allow_all`"),
            "{e}"
        );
    }

    /// Every key of `[events]` set in hub.toml, seen in the section and in the `EventsConfig`
    /// that `serve` opens the engine with (`EventsSection::load`).
    #[test]
    fn every_events_key_in_hub_toml_reaches_the_engine_config() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.toml");
        let text = wangge_events::rules::RuleSet::defaults_text();
        assert!(text.contains("late_after_s = 120 "));
        std::fs::write(
            &rules,
            text.replace("late_after_s = 120 ", "late_after_s = 33 "),
        )
        .unwrap();
        let sharing = dir.path().join("sharing.toml");
        std::fs::write(&sharing, "owner_sees = false\nmaintainer_sees = false\n").unwrap();
        let toml = format!(
            "[events]\nenabled = false\nrules_path = {rules:?}\nsharing_path = {sharing:?}\n\
             tick_interval_ms = 250\n\
             [events.deadlines]\ncritical_s = 1\nmajor_s = 2\nminor_s = 3\ninfo_s = 4\n\
             [events.webhooks]\nbackoff_initial_ms = 5\nbackoff_max_ms = 6\nattempts_max = 7\n\
             timeout_ms = 8\nbatch_max = 9\npoll_interval_ms = 10\nallow = [\"10.12.0.0/16\"]\n\
             insecure_allow_loopback = true\n"
        );
        let c = HubConfig::parse(Path::new("hub.toml"), &toml).unwrap();
        assert!(!c.events.enabled);
        assert_eq!(c.events.tick_interval_ms, 250);
        let e = c.events.load().unwrap();
        assert_eq!(e.rules.unwrap().settings.late_after_s, 33);
        assert!(!e.sharing.owner_sees && !e.sharing.maintainer_sees);
        let d = &e.deadlines;
        assert_eq!((d.critical_s, d.major_s, d.minor_s, d.info_s), (1, 2, 3, 4));
        let w = &e.webhooks;
        assert_eq!(
            (
                w.backoff_initial_ms,
                w.backoff_max_ms,
                w.attempts_max,
                w.timeout_ms,
                w.batch_max,
                w.poll_interval_ms
            ),
            (5, 6, 7, 8, 9, 10)
        );
        assert_eq!(w.allow, ["10.12.0.0/16"]);
        assert!(w.insecure_allow_loopback);
        // Nothing set: the engine's built-in defaults.
        let c = HubConfig::parse(Path::new("hub.toml"), "").unwrap();
        assert_eq!(c.events, EventsSection::default());
        assert!(c.events.enabled);
        let e = c.events.load().unwrap();
        assert_eq!(e.deadlines, Default::default());
        assert_eq!(e.webhooks, Default::default());
        let rules = e.rules.unwrap();
        assert_eq!(rules.settings.late_after_s, 120);
        assert_eq!(
            rules.rules.len(),
            wangge_events::rules::RuleSet::defaults().rules.len()
        );
        assert!(e.sharing.owner_sees);
    }

    #[test]
    fn stage_paths_follow_data_dir() {
        let mut c = HubConfig::parse(
            Path::new("x.toml"),
            "data_dir = \"/srv/hub\"\n[influx]\nurl = \"http://x\"\norg = \"o\"\nbucket = \"b\"\ntoken = \"t\"\n",
        )
        .unwrap();
        c.resolve_paths();
        assert_eq!(c.ingest.data_dir, PathBuf::from("/srv/hub"));
        assert_eq!(c.timeseries.data_dir, PathBuf::from("/srv/hub"));
        assert_eq!(
            c.influx.unwrap().spill_dir,
            PathBuf::from("/srv/hub/influx-spill")
        );
    }
}
