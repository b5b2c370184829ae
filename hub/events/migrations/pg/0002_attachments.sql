-- Evidence on the closed loop on PostgreSQL: photos uploaded to an event (the SQLite store's
-- migrations/0003_attachments.sql, in PostgreSQL types). The bytes are the blob store's under
-- their SHA-256; in a cluster that is `attachment_blobs` (one table every hub reads), so a photo
-- uploaded through one hub is served by any other.
CREATE TABLE attachments (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         BIGINT NOT NULL REFERENCES events(id),
    sha256           TEXT NOT NULL,
    content_type     TEXT NOT NULL,
    bytes            BIGINT NOT NULL,
    filename         TEXT,
    uploaded_by      TEXT NOT NULL,
    uploaded_at_ns   BIGINT NOT NULL,
    location_removed BOOLEAN NOT NULL,
    history_id       BIGINT REFERENCES event_history(id),
    deleted_by       TEXT,
    deleted_at_ns    BIGINT
);
CREATE INDEX attachments_by_event ON attachments (event_id, id);
CREATE INDEX attachments_by_hash ON attachments (sha256) WHERE deleted_at_ns IS NULL;

-- The cluster's blob store: a photo's bytes under their SHA-256 (hex), written once.
CREATE TABLE attachment_blobs (
    sha256  TEXT PRIMARY KEY,
    bytes   BYTEA NOT NULL
);
