//! `GET /events/stream`: the outbox as server-sent events, resumable by cursor.

use super::{actor, ApiError, ApiState, SSE_PAGE};
use crate::model::{Actor, Change};
use crate::Events;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;

/// Where a stream stands: the last cursor read and the visible changes not yet sent.
struct StreamState {
    events: Events,
    actor: Actor,
    cursor: i64,
    pending: VecDeque<Change>,
    feed: tokio::sync::watch::Receiver<i64>,
}

pub(super) async fn stream(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let actor = actor(&state, &headers)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("last_event_id").cloned());
    let cursor = match resume {
        Some(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("Last-Event-ID: {s:?} is not a cursor")))?,
        // A new consumer starts with what happens from now on.
        None => state.events.store().last_cursor()?,
    };
    let st = StreamState {
        feed: state.events.subscribe(),
        events: state.events.clone(),
        actor,
        cursor,
        pending: VecDeque::new(),
    };
    let s = futures::stream::unfold(st, |mut s| async move {
        loop {
            if let Some(ch) = s.pending.pop_front() {
                let ev = SseEvent::default()
                    .id(ch.cursor.to_string())
                    .event("event")
                    .data(ch.body);
                return Some((Ok(ev), s));
            }
            s.feed.borrow_and_update();
            let (events, actor, cursor) = (s.events.clone(), s.actor.clone(), s.cursor);
            let page = tokio::task::spawn_blocking(move || {
                events
                    .store()
                    .changes_after(cursor, SSE_PAGE)
                    .map(|changes| {
                        let last = changes.last().map(|c| c.cursor);
                        let visible: Vec<Change> = changes
                            .into_iter()
                            .filter(|c| events.actor_sees(&actor, &c.event))
                            .collect();
                        (last, visible)
                    })
            })
            .await;
            match page {
                Ok(Ok((Some(last), visible))) => {
                    s.cursor = last;
                    s.pending.extend(visible);
                    continue;
                }
                Ok(Ok((None, _))) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "sse: reading the outbox failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "sse: worker failed");
                    return None;
                }
            }
            if s.feed.changed().await.is_err() {
                return None;
            }
        }
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::default()))
}
