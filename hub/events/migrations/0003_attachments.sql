-- Wangge events store, schema version 3.
-- Evidence on the closed loop: photos uploaded to an event (POST events/{id}/attachments). The
-- bytes live in the blob store under their SHA-256 (`sha256`); this row is what is known about
-- them. `history_id` is the transition that referenced the photo (at most one); a deleted photo
-- keeps its row (who deleted it, when, which hash) so the history and the audit can name it.
CREATE TABLE attachments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        INTEGER NOT NULL REFERENCES events(id),
    sha256          TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    bytes           INTEGER NOT NULL,
    filename        TEXT,
    uploaded_by     TEXT NOT NULL,
    uploaded_at_ns  INTEGER NOT NULL,
    location_removed INTEGER NOT NULL,
    history_id      INTEGER REFERENCES event_history(id),
    deleted_by      TEXT,
    deleted_at_ns   INTEGER
);
CREATE INDEX attachments_by_event ON attachments (event_id, id);
CREATE INDEX attachments_by_hash ON attachments (sha256) WHERE deleted_at_ns IS NULL;
