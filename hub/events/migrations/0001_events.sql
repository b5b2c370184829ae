-- Wangge events store, schema version 1.
CREATE TABLE events (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    version             INTEGER NOT NULL,
    component_id        TEXT NOT NULL,
    type                TEXT NOT NULL,
    severity            TEXT NOT NULL,
    status              TEXT NOT NULL,
    raised_at_ns        INTEGER NOT NULL,
    cleared_at_ns       INTEGER,
    count               INTEGER NOT NULL,
    department          TEXT,
    deadline_ns         INTEGER NOT NULL,
    overdue             INTEGER NOT NULL DEFAULT 0,
    late                INTEGER NOT NULL DEFAULT 0,
    trigger_quantity    TEXT NOT NULL,
    trigger_value       TEXT NOT NULL,
    trigger_threshold   REAL,
    trigger_ts_ns       INTEGER NOT NULL,
    created_at_ns       INTEGER NOT NULL,
    acknowledged_at_ns  INTEGER,
    closed_at_ns        INTEGER
);
-- One active event per (component, type), enforced by the store itself: a second concurrent
-- raise fails here instead of creating a duplicate alarm.
CREATE UNIQUE INDEX events_one_active ON events (component_id, type) WHERE status <> 'closed';
CREATE INDEX events_by_component ON events (component_id, type, id);
CREATE INDEX events_by_created ON events (created_at_ns);

-- Every transition: who did what, when, and why.
CREATE TABLE event_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     INTEGER NOT NULL REFERENCES events(id),
    at_ns        INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    department   TEXT,
    note         TEXT
);
CREATE INDEX event_history_by_event ON event_history (event_id, id);

-- The outbox: one row per event change, written in the same transaction as the change.
-- `cursor` is the SSE id; AUTOINCREMENT never reuses a value, even after deletes.
CREATE TABLE changes (
    cursor    INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id  INTEGER NOT NULL,
    version   INTEGER NOT NULL,
    at_ns     INTEGER NOT NULL,
    body      TEXT NOT NULL
);

-- Out-of-scope attempts (403s) and other access decisions worth keeping.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ns       INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    department  TEXT,
    action      TEXT NOT NULL,
    event_id    INTEGER,
    reason      TEXT NOT NULL
);

CREATE TABLE subscriptions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    url            TEXT NOT NULL,
    secret         TEXT NOT NULL,
    department     TEXT,
    event_types    TEXT NOT NULL,  -- JSON array of patterns, empty = all
    created_at_ns  INTEGER NOT NULL,
    -- Changes up to here have been fanned out into deliveries.
    cursor         INTEGER NOT NULL
);

CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id  INTEGER NOT NULL,
    cursor           INTEGER NOT NULL,
    event_id         INTEGER NOT NULL,
    version          INTEGER NOT NULL,
    status           TEXT NOT NULL,  -- pending | delivered | failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ns  INTEGER NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    delivered_at_ns  INTEGER,
    UNIQUE (subscription_id, cursor)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_ns);

CREATE TABLE delivery_attempts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id    INTEGER NOT NULL,
    delivery_uid   TEXT NOT NULL UNIQUE,
    at_ns          INTEGER NOT NULL,
    http_status    INTEGER,
    error          TEXT
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, id);

-- Named positions of consumers that track the change feed (e.g. the MQTT publisher).
CREATE TABLE cursors (
    name    TEXT PRIMARY KEY,
    cursor  INTEGER NOT NULL
);
