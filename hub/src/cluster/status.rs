//! The cluster as `GET /api/v1/cluster` and `hub cluster status` show it.

use super::leases::Member;
use super::Cluster;
use serde::Serialize;
use std::sync::atomic::Ordering::Relaxed;

/// Members, what each owns, and what nobody owns.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClusterStatus {
    /// `single` (no `[cluster]`: this hub alone) or `cluster`.
    pub mode: String,
    /// The hub that answered.
    pub hub_id: Option<String>,
    /// PostgreSQL as `host:port/database` and user (never the password).
    pub database: Option<String>,
    /// The last lease round of the answering hub reached PostgreSQL.
    pub database_ok: bool,
    /// The member holding the leader role (MQTT event publication, component status sync).
    pub leader: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub members: Vec<Member>,
    /// Edges no live member holds now (a takeover is under way, or no member is live).
    pub orphaned_edges: Vec<String>,
}

impl ClusterStatus {
    /// What a single-node hub answers.
    pub fn single() -> ClusterStatus {
        ClusterStatus {
            mode: "single".into(),
            hub_id: None,
            database: None,
            database_ok: true,
            leader: None,
            members: Vec::new(),
            orphaned_edges: Vec::new(),
        }
    }

    /// Read from PostgreSQL through `cluster`'s pool.
    pub fn of(cluster: &Cluster) -> anyhow::Result<ClusterStatus> {
        Ok(ClusterStatus {
            mode: "cluster".into(),
            hub_id: Some(cluster.config.hub_id.clone()),
            database: Some(cluster.pg.describe().to_string()),
            database_ok: cluster.metrics.database_ok.load(Relaxed),
            leader: cluster.leader()?,
            members: cluster.members()?,
            orphaned_edges: cluster.orphaned_edges()?,
        })
    }

    /// The table `hub cluster status` prints.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        if self.mode == "single" {
            return "single node (no [cluster] in the config)\n".into();
        }
        let _ = writeln!(
            s,
            "cluster on {}  leader: {}",
            self.database.as_deref().unwrap_or("?"),
            self.leader.as_deref().unwrap_or("none")
        );
        let _ = writeln!(
            s,
            "{:<20} {:<6} {:>10} {:>12}  edges",
            "member", "state", "heartbeat", "last commit"
        );
        for m in &self.members {
            let state = if m.left {
                "left"
            } else if m.live {
                "live"
            } else {
                "silent"
            };
            let commit = m
                .last_commit_age_s
                .map_or("never".to_string(), |a| format!("{a:.1}s ago"));
            let _ = writeln!(
                s,
                "{:<20} {:<6} {:>9.1}s {:>12}  {} {}",
                m.hub_id,
                state,
                m.heartbeat_age_s,
                commit,
                m.edges.len(),
                m.edges.join(",")
            );
        }
        let _ = writeln!(
            s,
            "orphaned edges: {}",
            if self.orphaned_edges.is_empty() {
                "none".to_string()
            } else {
                self.orphaned_edges.join(",")
            }
        );
        s
    }
}
