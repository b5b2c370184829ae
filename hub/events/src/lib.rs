//! Wangge component events: rules → conditions → events in a closed loop → shared with departments
//! → delivered over SSE, signed webhooks and MQTT.
pub mod lifecycle;
pub mod model;
pub mod rules;
pub mod sharing;
pub mod store;
