//! Wires the broker, ingest, storage and API into one running hub (being written).
