-- The registry on PostgreSQL: the final schema SQLite's migrations 0001-0006 produce
-- (hub/migrations/000N_*.sql), in PostgreSQL types. Timestamps are ns since the epoch (BIGINT),
-- u64 counters are stored as i64 bit patterns as on SQLite, flags are BOOLEAN.
-- Keys and ordered columns use the "C" collation: keyset pagination (`id > $1 ORDER BY id`) and
-- the seed export then order bytewise, exactly as SQLite does.

CREATE TABLE regions (
    code     TEXT COLLATE "C" PRIMARY KEY CHECK (length(code) = 6),
    name_zh  TEXT NOT NULL,
    name_en  TEXT NOT NULL DEFAULT ''
);

CREATE TABLE departments (
    id       TEXT COLLATE "C" PRIMARY KEY,
    name     TEXT NOT NULL,
    duty     TEXT NOT NULL DEFAULT '',
    contact  TEXT NOT NULL DEFAULT ''
);

-- Minor classes of GB/T 30428-style codes: 4 digits (major 2 + minor 2).
CREATE TABLE component_classes (
    code           TEXT COLLATE "C" PRIMARY KEY CHECK (length(code) = 4),
    major          TEXT NOT NULL CHECK (length(major) = 2),
    name_zh        TEXT NOT NULL,
    name_en        TEXT NOT NULL DEFAULT '',
    sensor_type    TEXT NOT NULL,
    default_owner  TEXT COLLATE "C" REFERENCES departments(id),
    source         TEXT NOT NULL DEFAULT ''
);

CREATE TABLE grid_cells (
    id       TEXT COLLATE "C" PRIMARY KEY,
    name     TEXT NOT NULL,
    parent   TEXT COLLATE "C" REFERENCES grid_cells(id),
    lat_min  DOUBLE PRECISION,
    lon_min  DOUBLE PRECISION,
    lat_max  DOUBLE PRECISION,
    lon_max  DOUBLE PRECISION
);

CREATE TABLE components (
    id                     TEXT COLLATE "C" PRIMARY KEY CHECK (length(id) = 16),
    type                   TEXT COLLATE "C" NOT NULL,
    name                   TEXT NOT NULL DEFAULT '',
    address                TEXT NOT NULL DEFAULT '',
    lat                    DOUBLE PRECISION,
    lon                    DOUBLE PRECISION,
    grid_cell              TEXT COLLATE "C" REFERENCES grid_cells(id),
    owner_department       TEXT COLLATE "C" REFERENCES departments(id),
    maintainer_department  TEXT COLLATE "C" REFERENCES departments(id),
    status                 TEXT COLLATE "C" NOT NULL DEFAULT 'normal'
                           CHECK (status IN ('normal', 'alarm', 'offline', 'maintenance')),
    updated_at_ns          BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX components_type ON components(type, id);
CREATE INDEX components_grid ON components(grid_cell, id);
CREATE INDEX components_owner ON components(owner_department, id);
CREATE INDEX components_maintainer ON components(maintainer_department, id);
CREATE INDEX components_status ON components(status, id);

CREATE TABLE edges (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    name                TEXT NOT NULL DEFAULT '',
    site                TEXT NOT NULL DEFAULT '',
    -- `secrets::hash` of the issued secret; NULL until `hub edge add` issued one.
    password_hash       TEXT,
    -- `protocol::uplink::mac_key(secret)`, 32 bytes: verifies each batch's HMAC.
    mac_key             BYTEA,
    revoked             BOOLEAN NOT NULL DEFAULT false,
    online              BOOLEAN NOT NULL DEFAULT false,
    last_seen_ns        BIGINT,
    version             TEXT NOT NULL DEFAULT '',
    epoch               BIGINT,
    backlog_readings    BIGINT NOT NULL DEFAULT 0,
    backlog_bytes       BIGINT NOT NULL DEFAULT 0,
    oldest_unacked_ns   BIGINT,
    status_at_ns        BIGINT,
    -- The secret in mosquitto's password-file format (an external broker is provisioned with it).
    broker_hash         TEXT,
    -- Status freshness: the newest (epoch, counter) accepted and the will counter the latest
    -- online status announced. Read `FOR UPDATE` so two hubs never both accept one status.
    status_counter      BIGINT,
    status_will_pending BIGINT
);

CREATE TABLE sensors (
    id            TEXT COLLATE "C" PRIMARY KEY,
    component_id  TEXT COLLATE "C" REFERENCES components(id) ON DELETE SET NULL,
    type          TEXT NOT NULL DEFAULT '',
    profile       TEXT NOT NULL DEFAULT '',
    address       TEXT NOT NULL DEFAULT '',
    interval_s    BIGINT NOT NULL DEFAULT 60 CHECK (interval_s > 0),
    edge          TEXT COLLATE "C" REFERENCES edges(id),
    calibration   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sensors_component ON sensors(component_id);

-- Sensors that sent readings but are not registered: listed for an operator to assign.
CREATE TABLE unassigned_sensors (
    sensor_id      TEXT COLLATE "C" PRIMARY KEY,
    edge_id        TEXT NOT NULL,
    first_seen_ns  BIGINT NOT NULL,
    last_seen_ns   BIGINT NOT NULL,
    seen_count     BIGINT NOT NULL DEFAULT 1
);

-- API tokens: `<id>.<secret>`; only `secrets::hash(secret)` is stored.
CREATE TABLE api_tokens (
    id             TEXT COLLATE "C" PRIMARY KEY,
    secret_hash    TEXT NOT NULL,
    department     TEXT COLLATE "C" REFERENCES departments(id),
    scope          TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    created_at_ns  BIGINT NOT NULL,
    revoked        BOOLEAN NOT NULL DEFAULT false
);

-- Readings an edge lost, keyed by the batch that carried the gap: a resent batch records
-- nothing twice (ON CONFLICT DO NOTHING).
CREATE TABLE edge_gaps (
    edge_id     TEXT COLLATE "C" NOT NULL,
    epoch       BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    sensor_id   TEXT COLLATE "C" NOT NULL,
    from_ns     BIGINT NOT NULL,
    to_ns       BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    received_ns BIGINT NOT NULL,
    PRIMARY KEY (edge_id, epoch, seq, sensor_id, from_ns)
);
CREATE INDEX edge_gaps_by_sensor ON edge_gaps (sensor_id, from_ns);

-- MQTT credentials of department event consumers; secrets stored hashed only.
CREATE TABLE mqtt_users (
    username      TEXT COLLATE "C" PRIMARY KEY,
    department_id TEXT COLLATE "C" NOT NULL REFERENCES departments(id),
    password_hash TEXT NOT NULL,
    broker_hash   TEXT NOT NULL,
    revoked       BOOLEAN NOT NULL DEFAULT false,
    created_at_ns BIGINT NOT NULL
);

-- What ingest refused about a batch's claims, once per (kind, edge, sensor).
CREATE TABLE ingest_audit (
    kind          TEXT COLLATE "C" NOT NULL,
    edge_id       TEXT COLLATE "C" NOT NULL,
    sensor_id     TEXT COLLATE "C" NOT NULL,
    detail        TEXT NOT NULL,
    first_seen_ns BIGINT NOT NULL,
    last_seen_ns  BIGINT NOT NULL,
    seen_count    BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (kind, edge_id, sensor_id)
);
