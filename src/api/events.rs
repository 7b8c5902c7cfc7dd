//! `GET /v1/events`: the node's event stream ([`crate::events`]) as server-sent events.
//!
//! Each event is one SSE message: `id` (the event's number), `event` (its type, e.g. `mix.started`) and `data`
//! (the event as JSON). `?mix=ID` / `?relay=ID` keep one task's events. A client that reconnects with
//! `Last-Event-ID` (or `?since=ID`) first gets the kept events after that one; when some were already dropped
//! from the bounded ring — or the client fell too far behind a live stream — an `events.missed` message says
//! so, with how many where known, so the client can re-read the state it depends on.

use std::convert::Infallible;

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::sse::{Event as SseEvent, KeepAlive, Sse},
    routing::get,
    Router,
};
use futures::{stream, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::events::{Event, TaskRef};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/events", get(events))
}

/// Which events a client asked for.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// Only this mix's events.
    mix: Option<String>,
    /// Only this relay project's events.
    relay: Option<String>,
    /// Resume after this event (as `Last-Event-ID` does).
    since: Option<u64>,
    /// A token, for clients that cannot send `Authorization` (a browser's `EventSource`); read by the access
    /// check, not here.
    #[allow(dead_code)]
    access_token: Option<String>,
}

impl Filter {
    fn wants(&self, e: &Event) -> bool {
        if self.mix.is_none() && self.relay.is_none() {
            return true;
        }
        match &e.task {
            TaskRef::Mix(id) => self.mix.as_deref() == Some(id),
            TaskRef::Relay(id) => self.relay.as_deref() == Some(id),
        }
    }
}

fn message(e: &Event) -> SseEvent {
    let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
    let kind = serde_json::to_value(&e.kind)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_string))
        .unwrap_or_default();
    SseEvent::default()
        .id(e.id.to_string())
        .event(kind)
        .data(data)
}

/// Tells the client it did not get every event: `missed` of them (`None`: unknown how many).
fn missed(missed: Option<u64>, after: u64) -> SseEvent {
    SseEvent::default().event("events.missed").data(
        serde_json::json!({"missed": missed, "after": after, "hint": "re-read the state you depend on"})
            .to_string(),
    )
}

/// The node's events as server-sent events
///
/// One SSE message per event: `id`, `event` (its type) and `data` (the event as JSON). Send `Last-Event-ID` (or
/// `?since=`) to resume after an event: the kept events after it come first; an `events.missed` message says
/// when some were lost (the ring is bounded, or the client fell behind).
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "events",
    tag = "events",
    params(Filter),
    responses(
        (status = 200, description = "the event stream (text/event-stream); each message's data is an Event",
            body = crate::events::Event, content_type = "text/event-stream"),
        (status = 400, description = "a query parameter that is not understood (invalid_body)", body = super::error::ErrorBody),
        (status = 429, response = super::error::RateLimited),
    )
)]
pub(super) async fn events(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(filter.since);
    // Subscribed before the ring is read: an event published in between is in one or the other.
    let live = s.events.subscribe();
    let (backlog, lost) = match resume {
        Some(after) => s.events.since(after),
        None => (Vec::new(), false),
    };
    let seen = backlog.last().map_or(resume.unwrap_or(0), |e| e.id);
    let mut head: Vec<SseEvent> = Vec::new();
    if lost {
        head.push(missed(None, resume.unwrap_or(0)));
    }
    head.extend(backlog.iter().filter(|e| filter.wants(e)).map(message));
    let tail = stream::unfold(
        (live, filter, seen),
        |(mut live, filter, mut seen)| async move {
            loop {
                match live.recv().await {
                    Ok(e) if e.id <= seen => continue,
                    Ok(e) => {
                        seen = e.id;
                        if filter.wants(&e) {
                            return Some((message(&e), (live, filter, seen)));
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        return Some((missed(Some(n), seen), (live, filter, seen)))
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    // The stream ends when the node shuts down (a graceful shutdown waits for every open response).
    let mut closing = s.closing.subscribe();
    let closed = async move {
        let _ = closing.wait_for(|c| *c).await;
    };
    Sse::new(stream::iter(head).chain(tail).take_until(closed).map(Ok))
        .keep_alive(KeepAlive::default())
}
