-- Announced edge outages on PostgreSQL (the SQLite store's migrations/0004_edge_outages.sql, in
-- PostgreSQL types): planned windows in which an edge is expected to be silent, taken off the
-- evaluation report's data completeness like maintenance.
CREATE TABLE edge_outages (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    edge_id         TEXT NOT NULL,
    from_ns         BIGINT NOT NULL,
    until_ns        BIGINT NOT NULL,
    reason          TEXT NOT NULL,
    announced_by    TEXT NOT NULL,
    announced_at_ns BIGINT NOT NULL,
    deleted_by      TEXT,
    deleted_at_ns   BIGINT,
    CHECK (until_ns > from_ns)
);
CREATE INDEX edge_outages_by_edge ON edge_outages (edge_id, from_ns);
CREATE INDEX edge_outages_by_time ON edge_outages (until_ns) WHERE deleted_at_ns IS NULL;
