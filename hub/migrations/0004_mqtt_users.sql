-- MQTT credentials of department event consumers (`hub mqtt-user add --department D`).
-- The username is `dept:{department}:{6 hex}` (edge ids cannot contain ':'); the secret is
-- stored as `secrets::hash` only. A revoked user can no longer log in, and the broker gate
-- closes its open connections.
CREATE TABLE mqtt_users (
    username      TEXT PRIMARY KEY,
    department_id TEXT NOT NULL REFERENCES departments(id),
    password_hash TEXT NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0,
    created_at_ns INTEGER NOT NULL
);
