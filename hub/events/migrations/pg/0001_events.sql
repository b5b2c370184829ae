-- Wangge events store on PostgreSQL, schema version 1: the SQLite schema (0001 + 0002) for a
-- cluster of hubs sharing one database. What the cluster needs is enforced here, not by callers:
-- one active event per (component, type), one delivery per (subscription, change), and outbox
-- cursors assigned in commit order (see `record_change`, which takes `pg_advisory_xact_lock`).
CREATE TABLE events (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version             BIGINT NOT NULL,
    component_id        TEXT NOT NULL,
    type                TEXT NOT NULL,
    severity            TEXT NOT NULL,
    status              TEXT NOT NULL,
    raised_at_ns        BIGINT NOT NULL,
    cleared_at_ns       BIGINT,
    count               BIGINT NOT NULL,
    department          TEXT,
    deadline_ns         BIGINT NOT NULL,
    overdue             BOOLEAN NOT NULL DEFAULT false,
    late                BOOLEAN NOT NULL DEFAULT false,
    trigger_quantity    TEXT NOT NULL,
    trigger_value       TEXT NOT NULL,  -- JSON
    trigger_threshold   DOUBLE PRECISION,
    trigger_ts_ns       BIGINT NOT NULL,
    created_at_ns       BIGINT NOT NULL,
    acknowledged_at_ns  BIGINT,
    closed_at_ns        BIGINT
);
-- One active event per (component, type): a raise that loses the race to another hub finds no
-- row to insert (ON CONFLICT DO NOTHING) and becomes a repeat or a no-op.
CREATE UNIQUE INDEX events_one_active ON events (component_id, type) WHERE status <> 'closed';
CREATE INDEX events_by_component ON events (component_id, type, id);
CREATE INDEX events_by_created ON events (created_at_ns);
CREATE INDEX events_overdue_due ON events (deadline_ns) WHERE NOT overdue;

CREATE TABLE event_history (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     BIGINT NOT NULL REFERENCES events(id),
    at_ns        BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    department   TEXT,
    note         TEXT
);
CREATE INDEX event_history_by_event ON event_history (event_id, id);

-- The outbox. `cursor` comes from `changes_cursor`, drawn only under the outbox's advisory
-- transaction lock, so cursors commit in ascending order: a reader past cursor N never misses
-- a change committed later (a bare sequence hands out ids in start order, not commit order).
CREATE SEQUENCE changes_cursor AS BIGINT;
CREATE TABLE changes (
    cursor    BIGINT PRIMARY KEY,
    event_id  BIGINT NOT NULL,
    version   BIGINT NOT NULL,
    at_ns     BIGINT NOT NULL,
    body      TEXT NOT NULL,
    UNIQUE (event_id, version)
);

CREATE TABLE audit (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ns       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    department  TEXT,
    action      TEXT NOT NULL,
    event_id    BIGINT,
    reason      TEXT NOT NULL
);

CREATE TABLE subscriptions (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url            TEXT NOT NULL,
    secret         TEXT NOT NULL,
    department     TEXT,
    event_types    TEXT NOT NULL,  -- JSON array of patterns, empty = all
    created_at_ns  BIGINT NOT NULL,
    -- Changes up to here have been fanned out into deliveries.
    cursor         BIGINT NOT NULL
);

CREATE TABLE deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id  BIGINT NOT NULL,
    cursor           BIGINT NOT NULL,
    event_id         BIGINT NOT NULL,
    version          BIGINT NOT NULL,
    status           TEXT NOT NULL,  -- pending | delivered | failed
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_ns  BIGINT NOT NULL,
    last_status      BIGINT,
    last_error       TEXT,
    delivered_at_ns  BIGINT,
    -- The hub that claimed this delivery (`due_deliveries`) attempts it alone until then.
    claimed_until_ns BIGINT,
    -- Two hubs fanning out the same page create one delivery stream per (event version, subscription).
    UNIQUE (subscription_id, cursor),
    UNIQUE (subscription_id, event_id, version)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_ns, id) WHERE status = 'pending';
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, id);

CREATE TABLE delivery_attempts (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id    BIGINT NOT NULL,
    delivery_uid   TEXT NOT NULL UNIQUE,
    at_ns          BIGINT NOT NULL,
    http_status    BIGINT,
    error          TEXT
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, id);

-- Named positions of consumers that track the change feed (e.g. the MQTT publisher).
CREATE TABLE cursors (
    name    TEXT PRIMARY KEY,
    cursor  BIGINT NOT NULL
);

-- Duration conditions (`for_s`) that hold on a component but have not held long enough to raise.
CREATE TABLE pending_conditions (
    component_id TEXT NOT NULL,
    rule_key     TEXT NOT NULL,
    since_ns     BIGINT NOT NULL,
    PRIMARY KEY (component_id, rule_key)
);
