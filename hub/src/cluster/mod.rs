//! Cluster mode: several hubs on one PostgreSQL, one external MQTT broker and one time-series
//! server. PostgreSQL holds what is shared; this module holds what makes the hubs share work:
//!
//! - **members** (`leases::Leases::heartbeat`): every hub heartbeats its row each round;
//! - **edge leases**: each registered edge is owned by one live hub at a time. A round (every
//!   `heartbeat_ms`) renews this hub's unexpired leases, then moves towards its fair share
//!   ([`share::rebalance`]): takes free or expired leases (a dead hub's, after its TTL), or hands
//!   some back when a member joined. A lease changing hands gets a new **fence**;
//! - **ownership** ([`ownership::Ownership`]): what the last round held, trusted only until those
//!   leases could have expired, read by ingest (a batch of an edge not owned is not handled) and
//!   by the broker client (it subscribes to the owned edges' topics only);
//! - **the batch ledger** ([`ledger::PgLedger`]): a batch is recorded, and so acked, only in a
//!   transaction that holds its edge's lease at the fence this hub knows.
//!
//! The per-edge choice keeps every component's readings in reading order on one hub (the rules
//! need that) and needs nothing of the broker but plain subscriptions. MQTT v5 shared
//! subscriptions (`$share/…`) were the alternative: they spread messages of one edge over
//! several hubs, so the rules would need per-component serialization in the database on the
//! hot path; rejected (ARCHITECTURE.md, "Hub cluster").

pub mod hub_accounts;
pub mod leases;
pub mod ledger;
pub mod ownership;
pub mod share;
pub mod status;

use crate::registry::RegistryAdmin;
use leases::{Leases, Member};
use ownership::Ownership;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wangge_pg::{migrate, Migration, Pg, PgError};

/// The cluster's own tables (members, leases, roles, batch ledger); `hub migrate` applies them
/// too.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: include_str!("../../migrations/pg/cluster/0001_cluster.sql"),
}];

/// `[cluster]`: present = cluster mode.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `postgres://user:password@host:port/database`. Prefer `postgres_url_file` or the
    /// environment variable `WANGGE_POSTGRES_URL` (which wins) so the password is not in the
    /// config file.
    #[serde(default)]
    pub postgres_url: Option<String>,
    /// A file holding the URL (mode 0600), read at start.
    #[serde(default)]
    pub postgres_url_file: Option<std::path::PathBuf>,
    /// This hub's member id: unique in the cluster, stable across its restarts.
    pub hub_id: String,
    /// The URL peers and operators reach this hub's API at (shown in the cluster status).
    #[serde(default)]
    pub http_url: String,
    /// How long a lease (and a member's heartbeat) lasts without renewal. Default 6000.
    #[serde(default = "default_lease_ttl_ms")]
    pub lease_ttl_ms: u64,
    /// How often a hub heartbeats, renews and rebalances. Default 1000.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// Connections in this hub's pool. Default 8.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn default_lease_ttl_ms() -> u64 {
    6000
}
fn default_heartbeat_ms() -> u64 {
    1000
}
fn default_pool_size() -> usize {
    8
}

impl ClusterConfig {
    /// The PostgreSQL URL: `WANGGE_POSTGRES_URL`, else `postgres_url_file`, else `postgres_url`.
    pub fn postgres_url(&self) -> anyhow::Result<String> {
        if let Ok(u) = std::env::var("WANGGE_POSTGRES_URL") {
            if !u.trim().is_empty() {
                return Ok(u.trim().to_string());
            }
        }
        if let Some(f) = &self.postgres_url_file {
            let text = std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("cluster.postgres_url_file {}: {e}", f.display()))?;
            return Ok(text.trim().to_string());
        }
        self.postgres_url.clone().ok_or_else(|| {
            anyhow::anyhow!("cluster: set postgres_url, postgres_url_file or WANGGE_POSTGRES_URL")
        })
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.hub_id.trim().is_empty() || self.hub_id.len() > 64 {
            anyhow::bail!("cluster.hub_id: must be 1-64 characters");
        }
        if self.heartbeat_ms == 0 || self.lease_ttl_ms < 2 * self.heartbeat_ms {
            anyhow::bail!(
                "cluster.lease_ttl_ms ({}) must be at least twice cluster.heartbeat_ms ({})",
                self.lease_ttl_ms,
                self.heartbeat_ms
            );
        }
        Ok(())
    }
}

/// The role whose holder publishes events on MQTT and keeps component status in step.
const LEADER: &str = "leader";

/// Counts for `/metrics`.
#[derive(Default)]
pub struct ClusterMetrics {
    pub rounds: AtomicU64,
    pub rounds_failed: AtomicU64,
    pub leases_acquired: AtomicU64,
    pub leases_released: AtomicU64,
    pub leases_lost: AtomicU64,
    pub members_live: AtomicU64,
    /// Edges this hub holds (last round).
    pub edges_owned: AtomicU64,
    /// The last round reached PostgreSQL.
    pub database_ok: AtomicBool,
}

/// This hub as a cluster member.
pub struct Cluster {
    pub config: ClusterConfig,
    pub pg: Pg,
    pub ownership: Arc<Ownership>,
    pub metrics: Arc<ClusterMetrics>,
    leases: Arc<Leases>,
}

impl Cluster {
    /// Connects to PostgreSQL and applies the cluster's migrations.
    pub fn connect(config: ClusterConfig) -> anyhow::Result<Cluster> {
        config.validate()?;
        let pg = Pg::connect(&config.postgres_url()?, config.pool_size)?;
        migrate(&pg, "cluster", MIGRATIONS)?;
        let leases = Arc::new(Leases {
            pg: pg.clone(),
            hub_id: config.hub_id.clone(),
            ttl_ms: config.lease_ttl_ms as i64,
        });
        Ok(Cluster {
            config,
            pg,
            ownership: Arc::default(),
            metrics: Arc::default(),
            leases,
        })
    }

    /// The batch ledger for ingest: commits only under this hub's leases.
    pub fn ledger(&self, keep_days: u32) -> ledger::PgLedger {
        ledger::PgLedger {
            pg: self.pg.clone(),
            hub_id: self.config.hub_id.clone(),
            ownership: self.ownership.clone(),
            keep_days,
        }
    }

    /// Every member with its edges, for `GET /api/v1/cluster`.
    pub fn members(&self) -> Result<Vec<Member>, PgError> {
        self.leases.members()
    }

    /// The members' broker accounts, for a provisioned external broker.
    pub fn hub_accounts(&self) -> hub_accounts::PgHubAccounts {
        hub_accounts::PgHubAccounts {
            pg: self.pg.clone(),
        }
    }

    /// The member holding the leader role now.
    pub fn leader(&self) -> Result<Option<String>, PgError> {
        self.leases.role_holder(LEADER)
    }

    /// Edges no live hub holds now.
    pub fn orphaned_edges(&self) -> Result<Vec<String>, PgError> {
        self.leases.orphaned_edges()
    }

    /// Runs lease rounds on a thread of its own until `stop` is set, then hands every lease
    /// back. The registry gives the edges to lease.
    pub fn spawn_rounds(
        &self,
        registry: Arc<dyn RegistryAdmin>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let round = Round {
            leases: self.leases.clone(),
            ownership: self.ownership.clone(),
            metrics: self.metrics.clone(),
            registry,
            http_url: self.config.http_url.clone(),
            ttl: Duration::from_millis(self.config.lease_ttl_ms),
            held: BTreeMap::new(),
        };
        let every = Duration::from_millis(self.config.heartbeat_ms);
        std::thread::Builder::new()
            .name("cluster-leases".into())
            .spawn(move || round.run(every, &stop))
    }
}

/// The lease loop's state.
struct Round {
    leases: Arc<Leases>,
    ownership: Arc<Ownership>,
    metrics: Arc<ClusterMetrics>,
    registry: Arc<dyn RegistryAdmin>,
    http_url: String,
    ttl: Duration,
    held: BTreeMap<String, i64>,
}

impl Round {
    fn run(mut self, every: Duration, stop: &AtomicBool) {
        let mut n: u64 = 0;
        while !stop.load(Relaxed) {
            let started = Instant::now();
            // New edges are leased within ten rounds of their registration.
            let sync_edges = n.is_multiple_of(10);
            match self.once(started, sync_edges) {
                Ok(()) => {
                    self.metrics.database_ok.store(true, Relaxed);
                    n += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cluster lease round failed; owning nothing until it works");
                    self.metrics.database_ok.store(false, Relaxed);
                    self.metrics.rounds_failed.fetch_add(1, Relaxed);
                    self.held.clear();
                    self.ownership.clear();
                }
            }
            self.metrics.rounds.fetch_add(1, Relaxed);
            std::thread::sleep(every.saturating_sub(started.elapsed()));
        }
        self.ownership.clear();
        if let Err(e) = self.leases.leave() {
            tracing::warn!(error = %e, "cannot hand the leases back; they expire by themselves");
        }
    }

    fn once(&mut self, started: Instant, sync_edges: bool) -> anyhow::Result<()> {
        self.leases.heartbeat(&self.http_url)?;
        if sync_edges {
            self.leases
                .ensure_edges(&registered_edges(&*self.registry)?)?;
        }
        let renewed: BTreeMap<String, i64> = self
            .leases
            .renew()?
            .into_iter()
            .map(|h| (h.edge_id, h.fence))
            .collect();
        let lost = self
            .held
            .keys()
            .filter(|e| !renewed.contains_key(*e))
            .count();
        if lost > 0 {
            tracing::warn!(
                lost,
                "leases expired before they were renewed; peers may own them now"
            );
            self.metrics.leases_lost.fetch_add(lost as u64, Relaxed);
        }
        let mut held = renewed;
        let members = self.leases.live_members()?;
        self.metrics.members_live.store(members as u64, Relaxed);
        let (edges, unowned) = self.leases.counts()?;
        match share::rebalance(held.len(), edges, members, unowned) {
            share::Rebalance::Acquire(k) => {
                for h in self.leases.acquire(k)? {
                    tracing::info!(edge_id = %h.edge_id, fence = h.fence, "edge lease acquired");
                    self.metrics.leases_acquired.fetch_add(1, Relaxed);
                    held.insert(h.edge_id, h.fence);
                }
            }
            share::Rebalance::Release(k) => {
                for e in self.leases.release(k)? {
                    tracing::info!(edge_id = %e, "edge lease handed back for a peer");
                    self.metrics.leases_released.fetch_add(1, Relaxed);
                    held.remove(&e);
                }
            }
            share::Rebalance::Hold => {}
        }
        let leader = self.leases.hold_role(LEADER)?;
        self.metrics.edges_owned.store(held.len() as u64, Relaxed);
        self.ownership.set(held.clone(), started, self.ttl);
        self.ownership.set_leader(leader);
        self.held = held;
        Ok(())
    }
}

/// Every registered edge's id (all pages).
fn registered_edges(registry: &dyn RegistryAdmin) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = registry.list_edges(after.as_deref(), 1000)?;
        out.extend(page.items.into_iter().filter(|e| !e.revoked).map(|e| e.id));
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

/// The member's lines for `/metrics`: that it is a cluster member, what it owns, its rounds.
pub fn render_metrics(hub_id: &str, m: &ClusterMetrics, owned: &[String]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let id = hub_id.replace(['\\', '"', '\n'], "_");
    let _ = writeln!(
        s,
        "# HELP wangge_cluster_member This hub is a cluster member (its id)."
    );
    let _ = writeln!(s, "# TYPE wangge_cluster_member gauge");
    let _ = writeln!(s, "wangge_cluster_member{{hub_id=\"{id}\"}} 1");
    let gauges = [
        (
            "wangge_cluster_edges_owned",
            "Edges whose lease this hub holds.",
            m.edges_owned.load(Relaxed),
        ),
        (
            "wangge_cluster_members_live",
            "Live members the last round counted.",
            m.members_live.load(Relaxed),
        ),
        (
            "wangge_cluster_database_ok",
            "1 if the last lease round reached PostgreSQL.",
            u64::from(m.database_ok.load(Relaxed)),
        ),
    ];
    for (name, help, v) in gauges {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    let _ = writeln!(
        s,
        "# HELP wangge_cluster_edge_owned The edges whose lease this hub holds (one series each).\n# TYPE wangge_cluster_edge_owned gauge"
    );
    for e in owned {
        let e = e.replace(['\\', '"', '\n'], "_");
        let _ = writeln!(s, "wangge_cluster_edge_owned{{edge_id=\"{e}\"}} 1");
    }
    let counters = [
        (
            "wangge_cluster_lease_rounds_total",
            "Lease rounds run.",
            &m.rounds,
        ),
        (
            "wangge_cluster_lease_rounds_failed_total",
            "Lease rounds that failed (PostgreSQL unreachable).",
            &m.rounds_failed,
        ),
        (
            "wangge_cluster_leases_acquired_total",
            "Edge leases taken (free, expired or handed back).",
            &m.leases_acquired,
        ),
        (
            "wangge_cluster_leases_released_total",
            "Edge leases handed back for a joining member.",
            &m.leases_released,
        ),
        (
            "wangge_cluster_leases_lost_total",
            "Edge leases that expired before this hub renewed them.",
            &m.leases_lost,
        ),
    ];
    for (name, help, c) in counters {
        let _ = writeln!(
            s,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            c.load(Relaxed)
        );
    }
    s
}
