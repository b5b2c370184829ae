-- Wangge events store, schema version 4.
-- Announced edge outages: a planned window in which an edge is expected to be silent (a
-- technician replaces the box, roadworks cut its line). The evaluation report takes the window
-- off the data completeness of every sensor reporting through the edge, like maintenance.
-- A deleted outage keeps its row (who deleted it, when), so the audit can name it.
CREATE TABLE edge_outages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    edge_id         TEXT NOT NULL,
    from_ns         INTEGER NOT NULL,
    until_ns        INTEGER NOT NULL,
    reason          TEXT NOT NULL,
    announced_by    TEXT NOT NULL,
    announced_at_ns INTEGER NOT NULL,
    deleted_by      TEXT,
    deleted_at_ns   INTEGER,
    CHECK (until_ns > from_ns)
);
CREATE INDEX edge_outages_by_edge ON edge_outages (edge_id, from_ns);
CREATE INDEX edge_outages_by_time ON edge_outages (until_ns) WHERE deleted_at_ns IS NULL;
