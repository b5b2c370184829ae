-- When each sensor was registered: data completeness in the evaluation report counts a sensor
-- from its registration or its first reading, whichever is later, not from the start of the
-- report's window. Sensors registered before this migration keep NULL (unknown): their first
-- reading alone starts them. Set by a trigger so every way of inserting a sensor (API, CSV
-- import, seed) records it; an update (re-attachment) keeps the first registration.

ALTER TABLE sensors ADD COLUMN registered_at_ns INTEGER;

CREATE TRIGGER sensors_registered_at AFTER INSERT ON sensors
WHEN NEW.registered_at_ns IS NULL
BEGIN
    UPDATE sensors
       SET registered_at_ns = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) * 1000000
     WHERE id = NEW.id;
END;
