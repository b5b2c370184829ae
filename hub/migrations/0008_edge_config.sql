-- Configuration from the hub (issue 14): every version of each edge's desired configuration,
-- kept (an operator can see what was pushed when and by whom), and the newest report the edge
-- sealed about it. Versions start at 1 per edge and increase by one; the document may hold
-- site-broker passwords, so only the API's admin or the edge's maintaining department reads it.
CREATE TABLE edge_configs (
    edge_id    TEXT NOT NULL REFERENCES edges(id),
    version    INTEGER NOT NULL CHECK (version > 0),
    -- `sha256:` + hex of the document (`protocol::edge_config::document_hash`).
    hash       TEXT NOT NULL,
    document   TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    -- The token id (or `admin`, or `cli`) that stored this version.
    created_by TEXT NOT NULL,
    PRIMARY KEY (edge_id, version)
);

-- The newest sealed `ConfigReport` accepted from each edge (older or replayed ones are refused).
CREATE TABLE edge_config_reports (
    edge_id         TEXT PRIMARY KEY REFERENCES edges(id),
    applied_version INTEGER NOT NULL,
    applied_hash    TEXT NOT NULL,
    version         INTEGER NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('applied', 'refused', 'rolled_back')),
    error           TEXT,
    reported_ns     INTEGER NOT NULL,
    received_ns     INTEGER NOT NULL
);
