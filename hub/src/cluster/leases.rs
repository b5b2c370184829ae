//! Members and edge leases in PostgreSQL (tables in `hub/migrations/pg/cluster/`).
//!
//! Every time is the database server's `now()`: hubs never compare their own clocks. A lease is
//! held while `owner` is this hub and `expires_at` is in the future; renewing only extends a
//! lease that has not expired, so a hub that was stopped past its TTL (SIGSTOP, a long GC-like
//! stall, a partition) finds its leases gone and has to acquire them again, under a new fence.

use wangge_pg::{Pg, PgError, Row};

/// A lease this hub holds: the edge and the fence it holds it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub edge_id: String,
    pub fence: i64,
}

/// A member as `GET /api/v1/cluster` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Member {
    pub hub_id: String,
    pub http_url: String,
    /// Seconds since its last heartbeat (the server's clock).
    pub heartbeat_age_s: f64,
    /// Heartbeat within the lease TTL and not left.
    pub live: bool,
    pub left: bool,
    /// Edges whose lease it holds now.
    pub edges: Vec<String>,
    /// Seconds since it last recorded a stored batch (its ingest lag: large while it owns
    /// edges that send, or `None` if it never recorded one).
    pub last_commit_age_s: Option<f64>,
}

fn held(row: &Row) -> Held {
    Held {
        edge_id: row.get(0),
        fence: row.get(1),
    }
}

/// The lease operations of one hub.
pub struct Leases {
    pub(super) pg: Pg,
    pub(super) hub_id: String,
    pub(super) ttl_ms: i64,
}

impl Leases {
    /// The lease operations of member `hub_id` with leases lasting `ttl_ms`.
    pub fn new(pg: Pg, hub_id: &str, ttl_ms: u64) -> Leases {
        Leases {
            pg,
            hub_id: hub_id.to_string(),
            ttl_ms: ttl_ms as i64,
        }
    }

    /// Records this hub as alive (and not left).
    pub fn heartbeat(&self, http_url: &str) -> Result<(), PgError> {
        self.pg
            .execute(
                "INSERT INTO hub_members (hub_id, http_url) VALUES ($1, $2)
                 ON CONFLICT (hub_id) DO UPDATE SET heartbeat_at = now(), left_at = NULL,
                     http_url = excluded.http_url",
                &[&self.hub_id, &http_url],
            )
            .map(|_| ())
    }

    /// Makes sure every edge of `edges` has a lease row (new edges start unowned).
    pub fn ensure_edges(&self, edges: &[String]) -> Result<u64, PgError> {
        self.pg.execute(
            "INSERT INTO edge_leases (edge_id) SELECT unnest($1::text[])
             ON CONFLICT (edge_id) DO NOTHING",
            &[&edges],
        )
    }

    /// How many hubs are live (heartbeat within the TTL, not left), this one included.
    pub fn live_members(&self) -> Result<usize, PgError> {
        let row = self.pg.run(async |c| {
            c.query_one(
                "SELECT count(*) FROM hub_members WHERE left_at IS NULL
                   AND heartbeat_at > now() - $1::float8 * interval '1 millisecond'",
                &[&(self.ttl_ms as f64)],
            )
            .await
        })?;
        Ok(row.get::<_, i64>(0) as usize)
    }

    /// (all leases, leases nobody holds now).
    pub fn counts(&self) -> Result<(usize, usize), PgError> {
        let row = self.pg.run(async |c| {
            c.query_one(
                "SELECT count(*), count(*) FILTER (WHERE owner IS NULL OR expires_at <= now())
                 FROM edge_leases",
                &[],
            )
            .await
        })?;
        Ok((row.get::<_, i64>(0) as usize, row.get::<_, i64>(1) as usize))
    }

    /// Extends every unexpired lease this hub holds; returns them. An expired one is not
    /// renewed: it may have another owner already.
    pub fn renew(&self) -> Result<Vec<Held>, PgError> {
        let rows = self.pg.query(
            "UPDATE edge_leases SET expires_at = now() + $2::float8 * interval '1 millisecond'
             WHERE owner = $1 AND expires_at > now()
             RETURNING edge_id, fence",
            &[&self.hub_id, &(self.ttl_ms as f64)],
        )?;
        Ok(rows.iter().map(held).collect())
    }

    /// Takes up to `n` leases nobody holds (free or expired), each under a new fence. Rows
    /// another hub is taking at the same moment are skipped, never waited for.
    pub fn acquire(&self, n: usize) -> Result<Vec<Held>, PgError> {
        let rows = self.pg.query(
            "UPDATE edge_leases SET owner = $1, fence = fence + 1, acquired_at = now(),
                 expires_at = now() + $2::float8 * interval '1 millisecond'
             WHERE edge_id IN (
                 SELECT edge_id FROM edge_leases
                 WHERE owner IS NULL OR expires_at <= now()
                 ORDER BY md5(edge_id || $1) LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             RETURNING edge_id, fence",
            &[&self.hub_id, &(self.ttl_ms as f64), &(n as i64)],
        )?;
        Ok(rows.iter().map(held).collect())
    }

    /// Hands back up to `n` of this hub's leases (the ones it took last), for a joining member.
    pub fn release(&self, n: usize) -> Result<Vec<String>, PgError> {
        let rows = self.pg.query(
            "UPDATE edge_leases SET owner = NULL, expires_at = now()
             WHERE edge_id IN (
                 SELECT edge_id FROM edge_leases WHERE owner = $1
                 ORDER BY acquired_at DESC, edge_id LIMIT $2
                 FOR UPDATE SKIP LOCKED)
             RETURNING edge_id",
            &[&self.hub_id, &(n as i64)],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Takes or keeps `role` if it is free, expired or already this hub's; true if held now.
    /// Keeping it does not change its fence; taking it does.
    pub fn hold_role(&self, role: &str) -> Result<bool, PgError> {
        let row = self.pg.query_opt(
            "UPDATE cluster_roles SET
                 fence = CASE WHEN owner = $1 AND expires_at > now() THEN fence ELSE fence + 1 END,
                 owner = $1, expires_at = now() + $3::float8 * interval '1 millisecond'
             WHERE role = $2 AND (owner IS NULL OR owner = $1 OR expires_at <= now())
             RETURNING fence",
            &[&self.hub_id, &role, &(self.ttl_ms as f64)],
        )?;
        Ok(row.is_some())
    }

    /// Who holds `role` now, if anyone.
    pub fn role_holder(&self, role: &str) -> Result<Option<String>, PgError> {
        let row = self.pg.query_opt(
            "SELECT owner FROM cluster_roles WHERE role = $1 AND expires_at > now()",
            &[&role],
        )?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// A clean shutdown: every lease handed back at once, the member marked as left.
    pub fn leave(&self) -> Result<(), PgError> {
        self.pg.transaction(async |tx| {
            tx.execute(
                "UPDATE edge_leases SET owner = NULL, expires_at = now() WHERE owner = $1",
                &[&self.hub_id],
            )
            .await?;
            tx.execute(
                "UPDATE cluster_roles SET owner = NULL, expires_at = now() WHERE owner = $1",
                &[&self.hub_id],
            )
            .await?;
            tx.execute(
                "UPDATE hub_members SET left_at = now() WHERE hub_id = $1",
                &[&self.hub_id],
            )
            .await?;
            Ok(())
        })
    }

    /// Every member, with the edges it holds now, ordered by id.
    pub fn members(&self) -> Result<Vec<Member>, PgError> {
        let rows = self.pg.query(
            "SELECT m.hub_id, m.http_url,
                    EXTRACT(EPOCH FROM now() - m.heartbeat_at)::float8,
                    m.left_at IS NULL
                      AND m.heartbeat_at > now() - $1::float8 * interval '1 millisecond',
                    m.left_at IS NOT NULL,
                    COALESCE(array_agg(l.edge_id ORDER BY l.edge_id)
                             FILTER (WHERE l.edge_id IS NOT NULL), '{}'),
                    (SELECT (EXTRACT(EPOCH FROM now()) * 1e9 - max(b.stored_at_ns)) / 1e9
                       FROM stored_batches b WHERE b.hub_id = m.hub_id)::float8
             FROM hub_members m
             LEFT JOIN edge_leases l ON l.owner = m.hub_id AND l.expires_at > now()
             GROUP BY m.hub_id ORDER BY m.hub_id",
            &[&(self.ttl_ms as f64)],
        )?;
        Ok(rows
            .iter()
            .map(|r| Member {
                hub_id: r.get(0),
                http_url: r.get(1),
                heartbeat_age_s: r.get(2),
                live: r.get(3),
                left: r.get(4),
                edges: r.get(5),
                last_commit_age_s: r.get(6),
            })
            .collect())
    }

    /// Edges no live hub holds (unowned or expired), ordered by id.
    pub fn orphaned_edges(&self) -> Result<Vec<String>, PgError> {
        let rows = self.pg.query(
            "SELECT edge_id FROM edge_leases WHERE owner IS NULL OR expires_at <= now()
             ORDER BY edge_id",
            &[],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
