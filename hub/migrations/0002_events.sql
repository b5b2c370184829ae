-- Step 4 (events, the closed loop, sharing, audit): tables ready so the schema has room for them.
-- Step 4 may extend these with further numbered migrations.

CREATE TABLE events (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    version            INTEGER NOT NULL DEFAULT 1,
    component_id       TEXT NOT NULL,
    type               TEXT NOT NULL,
    severity           TEXT NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'info')),
    status             TEXT NOT NULL DEFAULT 'open'
                       CHECK (status IN ('open', 'acknowledged', 'dispatched', 'in_progress', 'resolved', 'closed')),
    raised_at_ns       INTEGER NOT NULL,
    cleared_at_ns      INTEGER,
    count              INTEGER NOT NULL DEFAULT 1,
    department         TEXT REFERENCES departments(id),
    deadline_ns        INTEGER,
    late               INTEGER NOT NULL DEFAULT 0,
    trigger_quantity   TEXT,
    trigger_value      REAL,
    trigger_threshold  REAL,
    trigger_ts_ns      INTEGER,
    -- 1 while the event is not closed: at most one active event per (component, type).
    active             INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX events_one_active ON events(component_id, type) WHERE active = 1;
CREATE INDEX events_status ON events(status, id);

CREATE TABLE event_transitions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     INTEGER NOT NULL REFERENCES events(id),
    action       TEXT NOT NULL,
    from_status  TEXT NOT NULL,
    to_status    TEXT NOT NULL,
    actor        TEXT NOT NULL,
    department   TEXT,
    note         TEXT NOT NULL DEFAULT '',
    at_ns        INTEGER NOT NULL
);
CREATE INDEX event_transitions_event ON event_transitions(event_id, id);

-- Which department receives which events; NULL matches anything.
CREATE TABLE sharing_rules (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    department      TEXT NOT NULL REFERENCES departments(id),
    component_type  TEXT,
    grid_cell       TEXT,
    -- 'owner' / 'maintainer': share what the department owns or maintains.
    relation        TEXT CHECK (relation IN ('owner', 'maintainer')),
    event_type      TEXT
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ns       INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL DEFAULT '',
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT ''
);
