-- The events tables of 0002_events.sql were never used: the events engine keeps its own
-- `events.db` with its own migrations (hub/events/migrations). Children before parents.

DROP INDEX IF EXISTS event_transitions_event;
DROP TABLE IF EXISTS event_transitions;
DROP INDEX IF EXISTS events_one_active;
DROP INDEX IF EXISTS events_status;
DROP TABLE IF EXISTS events;
DROP TABLE IF EXISTS sharing_rules;
DROP TABLE IF EXISTS audit_log;
