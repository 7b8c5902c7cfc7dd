//! What happens to tasks, as one typed stream: mixes started, updated, stopped or failed; inputs connecting,
//! live or lost; outputs live, retrying or failed; relays started, stopped, failing over and back.
//!
//! The engine and the relays publish on an [`EventBus`]; the dialects' task registries (idle rules, mixes that
//! ended elsewhere), relay status callbacks and, later, the operator's view (metrics, the event stream,
//! webhooks) consume it. Publishing never blocks: a subscriber that falls behind loses the oldest events and is
//! told how many ([`tokio::sync::broadcast`]); recent events stay readable from a bounded ring for consumers that
//! resume.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Which task an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum TaskRef {
    Mix(String),
    Relay(String),
}

impl TaskRef {
    pub fn id(&self) -> &str {
        match self {
            TaskRef::Mix(id) | TaskRef::Relay(id) => id,
        }
    }

    /// The mix's id, for a log line's `mix` field (a `None` field is left out).
    pub fn mix(&self) -> Option<&str> {
        match self {
            TaskRef::Mix(id) => Some(id),
            TaskRef::Relay(_) => None,
        }
    }

    /// The relay project's id, for a log line's `relay` field.
    pub fn relay(&self) -> Option<&str> {
        match self {
            TaskRef::Relay(id) => Some(id),
            TaskRef::Mix(_) => None,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum EventKind {
    /// A mix was created, or came back (a restart of the process, a recovery after a failure).
    #[serde(rename = "mix.started")]
    MixStarted,
    /// A mix took a new spec; `restarted`: its pipeline was rebuilt (canvas rate or encoding changed).
    #[serde(rename = "mix.updated")]
    MixUpdated { restarted: bool },
    /// A mix ended: deleted (`reason` "deleted", "idle", …) or the process shutting down ("shutdown").
    #[serde(rename = "mix.stopped")]
    MixStopped { reason: String },
    /// A mix's pipeline failed (it is restarted after a backoff) or could not be started.
    #[serde(rename = "mix.failed")]
    MixFailed { reason: String },
    #[serde(rename = "input.connecting")]
    InputConnecting { input: String, attempt: u32 },
    #[serde(rename = "input.live")]
    InputLive { input: String },
    /// An input stopped delivering (`reason`) and is being pulled again.
    #[serde(rename = "input.lost")]
    InputLost { input: String, reason: String },
    #[serde(rename = "output.live")]
    OutputLive { output: String },
    #[serde(rename = "output.retrying")]
    OutputRetrying {
        output: String,
        attempt: u32,
        last_error: String,
    },
    /// An output gave up (its retry budget is spent).
    #[serde(rename = "output.failed")]
    OutputFailed { output: String, last_error: String },
    #[serde(rename = "relay.started")]
    RelayStarted,
    #[serde(rename = "relay.stopped")]
    RelayStopped { reason: String },
    /// The relay switched away from its main input (`to` "backup").
    #[serde(rename = "relay.failover")]
    RelayFailover {
        from: String,
        to: String,
        reason: String,
    },
    /// The relay switched back to its main input.
    #[serde(rename = "relay.failback")]
    RelayFailback {
        from: String,
        to: String,
        reason: String,
    },
}

impl EventKind {
    /// The event an output's new link state raises, if any (connecting raises none: retrying says it).
    pub fn of_output(output: &str, state: &crate::media::LinkState) -> Option<EventKind> {
        use crate::media::LinkState;
        let output = output.to_string();
        match state {
            LinkState::Live => Some(EventKind::OutputLive { output }),
            LinkState::Retrying {
                attempt,
                last_error,
                ..
            } => Some(EventKind::OutputRetrying {
                output,
                attempt: *attempt,
                last_error: last_error.clone(),
            }),
            LinkState::Failed { last_error } => Some(EventKind::OutputFailed {
                output,
                last_error: last_error.clone(),
            }),
            LinkState::Idle | LinkState::Connecting { .. } => None,
        }
    }
}

/// One event: a number (increasing, unique for the process), when, about which task, what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub id: u64,
    /// Unix milliseconds.
    pub time_ms: i64,
    pub task: TaskRef,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Events kept for consumers that resume.
const RING: usize = 1024;
/// Events a subscriber may fall behind by before it loses the oldest.
const CHANNEL: usize = 4096;

/// Where events are published. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    tx: broadcast::Sender<Event>,
    next_id: AtomicU64,
    ring: Mutex<VecDeque<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CHANNEL);
        Self {
            inner: Arc::new(Inner {
                tx,
                next_id: AtomicU64::new(1),
                ring: Mutex::new(VecDeque::with_capacity(RING)),
            }),
        }
    }

    /// Publishes an event now. Never blocks.
    pub fn publish(&self, task: TaskRef, kind: EventKind) {
        let event = {
            // The ring's lock also orders ids with their place in the ring and in the channel.
            let mut ring = self.inner.ring.lock().unwrap();
            let event = Event {
                id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
                time_ms: unix_ms(),
                task,
                kind,
            };
            if ring.len() == RING {
                ring.pop_front();
            }
            ring.push_back(event.clone());
            let _ = self.inner.tx.send(event.clone());
            event
        };
        tracing::debug!(id = event.id, mix = event.task.mix(), relay = event.task.relay(), kind = ?event.kind, "event");
    }

    /// Every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.tx.subscribe()
    }

    /// The kept events after `id` (all kept ones for 0), and whether some after it were already dropped.
    pub fn since(&self, id: u64) -> (Vec<Event>, bool) {
        let ring = self.inner.ring.lock().unwrap();
        let missed = ring.front().is_some_and(|first| first.id > id + 1);
        (ring.iter().filter(|e| e.id > id).cloned().collect(), missed)
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_are_numbered_delivered_and_kept() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        bus.publish(TaskRef::Mix("a".into()), EventKind::MixStarted);
        bus.publish(
            TaskRef::Mix("a".into()),
            EventKind::InputLive { input: "h".into() },
        );
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        assert_eq!((first.id, second.id), (1, 2));
        assert!(first.time_ms > 1_600_000_000_000);
        let json = serde_json::to_value(&second).unwrap();
        assert_eq!(json["type"], "input.live");
        assert_eq!(json["task"], serde_json::json!({"kind": "mix", "id": "a"}));
        assert_eq!(json["input"], "h");
        let (kept, missed) = bus.since(1);
        assert_eq!(kept, vec![second]);
        assert!(!missed);
    }

    #[test]
    fn the_ring_is_bounded_and_says_what_was_missed() {
        let bus = EventBus::new();
        for _ in 0..RING + 10 {
            bus.publish(TaskRef::Relay("r".into()), EventKind::RelayStarted);
        }
        let (kept, missed) = bus.since(0);
        assert_eq!(kept.len(), RING);
        assert!(missed);
        assert_eq!(kept[0].id, 11);
        let (recent, missed) = bus.since(RING as u64 + 5);
        assert_eq!(recent.len(), 5);
        assert!(!missed);
    }
}
