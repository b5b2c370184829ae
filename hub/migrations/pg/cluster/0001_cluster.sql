-- The hub cluster's coordination state (PostgreSQL only; a single-node hub has none of it).
-- Times are the database server's clock (now()), so hubs never compare their own clocks.

-- Members: every hub heartbeats its row; a member whose heartbeat is older than the lease TTL
-- is not counted when the edges are shared out.
CREATE TABLE hub_members (
    hub_id       TEXT PRIMARY KEY,
    http_url     TEXT NOT NULL DEFAULT '',
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    left_at      TIMESTAMPTZ
);

-- One lease per registered edge: its owner stores, evaluates and acks that edge's batches.
-- `fence` grows every time the lease changes hands; a commit names the fence it holds.
CREATE TABLE edge_leases (
    edge_id     TEXT PRIMARY KEY,
    owner       TEXT,
    fence       BIGINT NOT NULL DEFAULT 0,
    expires_at  TIMESTAMPTZ NOT NULL DEFAULT 'epoch',
    acquired_at TIMESTAMPTZ
);
CREATE INDEX edge_leases_owner ON edge_leases (owner);

-- Roles one member holds at a time (`leader`: MQTT event publication, component status sync),
-- leased like edges.
CREATE TABLE cluster_roles (
    role       TEXT PRIMARY KEY,
    owner      TEXT,
    fence      BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch'
);
INSERT INTO cluster_roles (role) VALUES ('leader');

-- Each member's own account on the external broker (its mosquitto password hash, never the
-- password): every member's provisioner writes them all, so each hub logs in as itself.
CREATE TABLE hub_accounts (
    username    TEXT PRIMARY KEY,
    broker_hash TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The batch ledger: one row per batch (edge, epoch, seq) whose readings were stored and
-- evaluated; the primary key makes "one ack-worthy commit per batch" the database's rule.
CREATE TABLE stored_batches (
    edge         TEXT NOT NULL,
    epoch        BIGINT NOT NULL,
    seq          BIGINT NOT NULL,
    stored_at_ns BIGINT NOT NULL,
    hub_id       TEXT NOT NULL,
    PRIMARY KEY (edge, epoch, seq)
);
CREATE INDEX stored_batches_age ON stored_batches (stored_at_ns);
-- A member's latest commit (its ingest lag in the cluster status).
CREATE INDEX stored_batches_hub ON stored_batches (hub_id, stored_at_ns);
