-- Readings an edge lost (buffer full, recovery) and reported as gaps on its batches.
-- Keyed by the batch that carried the gap, so a resent batch records nothing twice.
CREATE TABLE edge_gaps (
    edge_id     TEXT    NOT NULL,
    epoch       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    sensor_id   TEXT    NOT NULL,
    from_ns     INTEGER NOT NULL,
    to_ns       INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    received_ns INTEGER NOT NULL,
    PRIMARY KEY (edge_id, epoch, seq, sensor_id, from_ns)
) WITHOUT ROWID;
CREATE INDEX edge_gaps_by_sensor ON edge_gaps (sensor_id, from_ns);
