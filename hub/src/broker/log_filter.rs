//! What the hub's log keeps of the embedded broker's own logging.
//!
//! rumqttd 0.19 logs the end of every connection at ERROR: from inside its `remote_link` span
//! "Error while handling MQTT connect packet … connection closed by peer" for a readiness probe
//! (a TCP connect closed before any CONNECT: the hub's own start-up probe, a load balancer's, the
//! demo's) and "Disconnected!!" for every client that leaves, and from its router "no-connection
//! id N is already gone" when a disconnect races the connection's last packets. rumqttd listens
//! on loopback behind the gate, which admits, refuses, counts and logs every client connection
//! itself, so those lines say nothing an operator can act on and drown the errors that do. The
//! broker's server-level errors (bind, accept) and the router's others stay.
//!
//! The edge's site broker has the same filter (`edge/src/log.rs`): the two binaries share no
//! crate that depends on tracing-subscriber.

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The span rumqttd runs each network connection in.
const CONNECTION_SPAN: &str = "remote_link";
/// The router's message for a connection that left while its packets were being routed.
const ALREADY_GONE: &str = "is already gone";

/// Whether `RUST_LOG` names rumqttd: whoever asks for its logs gets them all.
pub fn asked_for_rumqttd() -> bool {
    std::env::var("RUST_LOG").is_ok_and(|v| v.contains("rumqttd"))
}

/// A global filter (a layer that only says no) dropping rumqttd's per-connection chatter, unless
/// [`asked_for_rumqttd`].
pub struct WithoutConnectionChatter;

impl<S> Layer<S> for WithoutConnectionChatter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn event_enabled(&self, event: &Event<'_>, cx: Context<'_, S>) -> bool {
        !is_connection_chatter(event, &cx)
    }
}

/// Whether `event` is rumqttd's news of one connection's end.
fn is_connection_chatter<S>(event: &Event<'_>, cx: &Context<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let target = event.metadata().target();
    if !target.starts_with("rumqttd") {
        return false;
    }
    let in_connection = cx
        .event_scope(event)
        .is_some_and(|mut scope| scope.any(|span| span.name() == CONNECTION_SPAN));
    in_connection || (target == "rumqttd::router::routing" && message(event).contains(ALREADY_GONE))
}

/// The event's message text.
fn message(event: &Event<'_>) -> String {
    struct Message(String);
    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }
    let mut m = Message(String::new());
    event.record(&mut m);
    m.0
}
