-- Registry entities per shared/BRIEF.md "Registry". Ids are TEXT as operators write them.
-- Reference data (regions, component classes) is loaded from config/registry/*.csv, never hard-coded.

CREATE TABLE regions (
    code     TEXT PRIMARY KEY CHECK (length(code) = 6),
    name_zh  TEXT NOT NULL,
    name_en  TEXT NOT NULL DEFAULT ''
);

CREATE TABLE departments (
    id       TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    duty     TEXT NOT NULL DEFAULT '',
    contact  TEXT NOT NULL DEFAULT ''
);

-- Minor classes of GB/T 30428-style codes: 4 digits (major 2 + minor 2).
CREATE TABLE component_classes (
    code           TEXT PRIMARY KEY CHECK (length(code) = 4),
    major          TEXT NOT NULL CHECK (length(major) = 2),
    name_zh        TEXT NOT NULL,
    name_en        TEXT NOT NULL DEFAULT '',
    sensor_type    TEXT NOT NULL,
    default_owner  TEXT REFERENCES departments(id),
    source         TEXT NOT NULL DEFAULT ''
);

CREATE TABLE grid_cells (
    id       TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    parent   TEXT REFERENCES grid_cells(id),
    lat_min  REAL,
    lon_min  REAL,
    lat_max  REAL,
    lon_max  REAL
);

CREATE TABLE components (
    id                     TEXT PRIMARY KEY CHECK (length(id) = 16),
    type                   TEXT NOT NULL,
    name                   TEXT NOT NULL DEFAULT '',
    address                TEXT NOT NULL DEFAULT '',
    lat                    REAL,
    lon                    REAL,
    grid_cell              TEXT REFERENCES grid_cells(id),
    owner_department       TEXT REFERENCES departments(id),
    maintainer_department  TEXT REFERENCES departments(id),
    status                 TEXT NOT NULL DEFAULT 'normal'
                           CHECK (status IN ('normal', 'alarm', 'offline', 'maintenance')),
    updated_at_ns          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX components_type ON components(type, id);
CREATE INDEX components_grid ON components(grid_cell, id);
CREATE INDEX components_owner ON components(owner_department, id);
CREATE INDEX components_maintainer ON components(maintainer_department, id);
CREATE INDEX components_status ON components(status, id);

CREATE TABLE edges (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL DEFAULT '',
    site              TEXT NOT NULL DEFAULT '',
    -- `secrets::hash` of the issued secret; NULL until `hub edge add` issued one.
    password_hash     TEXT,
    -- `protocol::uplink::mac_key(secret)`, 32 bytes: verifies each batch's HMAC.
    mac_key           BLOB,
    revoked           INTEGER NOT NULL DEFAULT 0,
    online            INTEGER NOT NULL DEFAULT 0,
    last_seen_ns      INTEGER,
    version           TEXT NOT NULL DEFAULT '',
    epoch             INTEGER,
    backlog_readings  INTEGER NOT NULL DEFAULT 0,
    backlog_bytes     INTEGER NOT NULL DEFAULT 0,
    oldest_unacked_ns INTEGER,
    status_at_ns      INTEGER
);

CREATE TABLE sensors (
    id            TEXT PRIMARY KEY,
    component_id  TEXT REFERENCES components(id) ON DELETE SET NULL,
    type          TEXT NOT NULL DEFAULT '',
    profile       TEXT NOT NULL DEFAULT '',
    address       TEXT NOT NULL DEFAULT '',
    interval_s    INTEGER NOT NULL DEFAULT 60 CHECK (interval_s > 0),
    edge          TEXT REFERENCES edges(id),
    calibration   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sensors_component ON sensors(component_id);

-- Sensors that sent readings but are not registered: listed for an operator to assign.
CREATE TABLE unassigned_sensors (
    sensor_id      TEXT PRIMARY KEY,
    edge_id        TEXT NOT NULL,
    first_seen_ns  INTEGER NOT NULL,
    last_seen_ns   INTEGER NOT NULL,
    seen_count     INTEGER NOT NULL DEFAULT 1
);

-- API tokens: `<id>.<secret>`; only `secrets::hash(secret)` is stored.
CREATE TABLE api_tokens (
    id             TEXT PRIMARY KEY,
    secret_hash    TEXT NOT NULL,
    department     TEXT REFERENCES departments(id),
    scope          TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    created_at_ns  INTEGER NOT NULL,
    revoked        INTEGER NOT NULL DEFAULT 0
);
