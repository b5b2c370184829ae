-- When each sensor was registered (SQLite migration 0007): data completeness counts a sensor
-- from its registration or its first reading, whichever is later. Sensors registered before
-- this migration keep NULL (the column is added without a default, so existing rows are not
-- filled); every later insert gets now() in ns from the default. The upserts in
-- registry/pg/sensors.rs never set the column, so a re-attachment keeps the first registration.

ALTER TABLE sensors ADD COLUMN registered_at_ns BIGINT;
ALTER TABLE sensors ALTER COLUMN registered_at_ns
    SET DEFAULT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT * 1000;
