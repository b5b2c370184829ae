//! The agent's log: stderr, coloured only when stderr is a terminal (a log file or journald gets
//! plain text), and without rumqttd's per-connection chatter.
//!
//! The edge's own site broker (rumqttd 0.19) logs the end of every connection at ERROR: from its
//! `remote_link` span "Error while handling MQTT connect packet … connection closed by peer" for
//! a readiness probe (a TCP connect closed before CONNECT: the agent's own start-up probe, a
//! script's) and "Disconnected!!" for every sensor that leaves, and from its router
//! "no-connection id N is already gone" when a disconnect races the last packets (the agent's own
//! subscriber at shutdown). rumqttd listens on loopback behind the front door
//! (`source::site_front`), so those lines say nothing a technician can act on. rumqttd's
//! server-level errors (bind, accept) and the router's others stay. The hub has the same filter
//! (`hub/src/broker/log_filter.rs`).

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// The default filter without `RUST_LOG`.
const DEFAULT_FILTER: &str = "info,rumqttc=warn,rumqttd=warn";
/// The span rumqttd runs each network connection in.
const CONNECTION_SPAN: &str = "remote_link";
/// The router's message for a connection that left while its packets were being routed.
const ALREADY_GONE: &str = "is already gone";

/// Installs the global subscriber. rumqttd's per-connection chatter is dropped unless `RUST_LOG`
/// names rumqttd (whoever asks for its logs gets them all).
pub fn init() {
    let env = tracing_subscriber::EnvFilter::try_from_default_env();
    let asked_for_rumqttd = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("rumqttd"));
    let chatter = (!asked_for_rumqttd).then_some(WithoutConnectionChatter);
    let filter = env.unwrap_or_else(|_| DEFAULT_FILTER.into());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    tracing_subscriber::registry()
        .with(filter)
        .with(chatter)
        .with(fmt)
        .init();
}

/// A global filter (a layer that only says no) dropping rumqttd's per-connection chatter.
struct WithoutConnectionChatter;

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

#[cfg(test)]
mod tests {
    use super::WithoutConnectionChatter;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::Arc;
    use tracing_subscriber::layer::{Context, Layer};
    use tracing_subscriber::prelude::*;

    /// Counts the events that get through.
    struct Count(Arc<AtomicUsize>);
    impl<S: tracing::Subscriber> Layer<S> for Count {
        fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    fn passed(emit: impl FnOnce()) -> usize {
        let n = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(WithoutConnectionChatter)
            .with(Count(n.clone()));
        tracing::subscriber::with_default(subscriber, emit);
        n.load(Relaxed)
    }

    #[test]
    fn rumqttd_connection_ends_are_dropped_and_everything_else_kept() {
        let probe = passed(|| {
            let _s = tracing::error_span!("remote_link", client_id = "x").entered();
            tracing::error!(target: "rumqttd::server::broker", "Error while handling MQTT connect packet");
        });
        assert_eq!(probe, 0);
        let gone = passed(|| {
            tracing::error!(target: "rumqttd::router::routing", "no-connection id 1 is already gone");
        });
        assert_eq!(gone, 0);
        let kept = passed(|| {
            tracing::error!(target: "rumqttd::server::broker", "Server error - V4");
            tracing::error!(target: "rumqttd::router::routing", "no space for new connection");
            let _s = tracing::error_span!("remote_link").entered();
            tracing::error!(target: "edge::uplink", "ours, inside a span of that name");
        });
        assert_eq!(kept, 3);
    }
}
