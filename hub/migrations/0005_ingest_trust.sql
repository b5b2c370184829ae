-- Status freshness: the newest (epoch, counter) accepted from each edge, and the last-will
-- counter its latest online status announced (accepted once). Persisted so a hub restart does
-- not reopen status replay. NULL: no v2 status accepted yet (anything sealed is fresh).
ALTER TABLE edges ADD COLUMN status_counter INTEGER;
ALTER TABLE edges ADD COLUMN status_will_pending INTEGER;

-- What ingest refused about a batch's claims, once per (kind, edge, sensor): e.g. an edge
-- sending readings for a sensor registered to another edge (`foreign_sensor`).
CREATE TABLE ingest_audit (
    kind          TEXT    NOT NULL,
    edge_id       TEXT    NOT NULL,
    sensor_id     TEXT    NOT NULL,
    detail        TEXT    NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns  INTEGER NOT NULL,
    seen_count    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (kind, edge_id, sensor_id)
) WITHOUT ROWID;
