//! Hub configuration (being written).
