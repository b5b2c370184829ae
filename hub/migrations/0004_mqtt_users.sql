-- MQTT credentials of department event consumers (`hub mqtt-user add --department D`).
-- The username is `dept.{department}.{6 hex}` (no edge id may start with `dept.`); the secret
-- is stored hashed only: `secrets::hash` for the hub's own gate, and `broker_hash` (mosquitto's
-- PBKDF2-SHA512 `$7$` format) for an external mosquitto the hub provisions. A revoked user can no longer log in, and the broker gate
-- closes its open connections.
CREATE TABLE mqtt_users (
    username      TEXT PRIMARY KEY,
    department_id TEXT NOT NULL REFERENCES departments(id),
    password_hash TEXT NOT NULL,
    broker_hash   TEXT NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0,
    created_at_ns INTEGER NOT NULL
);

-- The same secret in mosquitto's password-file format, written when `hub edge add` issues it;
-- NULL for secrets issued before this migration (re-issue them to use an external mosquitto).
ALTER TABLE edges ADD COLUMN broker_hash TEXT;
