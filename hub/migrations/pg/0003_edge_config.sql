-- Configuration from the hub (SQLite migration 0008): every version of each edge's desired
-- configuration, and the newest report the edge sealed about it.
CREATE TABLE edge_configs (
    edge_id    TEXT COLLATE "C" NOT NULL REFERENCES edges(id),
    version    BIGINT NOT NULL CHECK (version > 0),
    hash       TEXT NOT NULL,
    document   TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (edge_id, version)
);

CREATE TABLE edge_config_reports (
    edge_id         TEXT COLLATE "C" PRIMARY KEY REFERENCES edges(id),
    applied_version BIGINT NOT NULL,
    applied_hash    TEXT NOT NULL,
    version         BIGINT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('applied', 'refused', 'rolled_back')),
    error           TEXT,
    reported_ns     BIGINT NOT NULL,
    received_ns     BIGINT NOT NULL
);
