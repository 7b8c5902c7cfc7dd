//! Signed webhooks: the node's events, as JSON (the same as `GET /v1/events` sends), POSTed to each configured
//! URL.
//!
//! Each URL has its own queue and delivery task, so a receiver that hangs or fails slows nothing but its own
//! deliveries: never the media, the API, or another URL. An event is retried with backoff for
//! `webhooks.retry_for_ms` (about a minute), then dropped; events that find the queue full are dropped too.
//! Dropped events are counted, and the next delivery to that URL says how many (`X-Tessera-Dropped`).
//!
//! Receivers check each delivery with `X-Tessera-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! t + "." + body)>`: the body cannot be changed, nor an old delivery replayed, without the secret (compare `t`
//! with your clock).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{broadcast::error::RecvError, mpsc};

use crate::{
    config::WebhooksConfig,
    events::{Event, EventBus},
    media::backoff::Backoff,
};

/// Counts of deliveries, for the operator (metrics).
#[derive(Debug, Default)]
pub struct Deliveries {
    pub delivered: AtomicU64,
    /// Failed attempts that were tried again.
    pub retried: AtomicU64,
    /// Events given up on (retried for too long) or not queued (the queue was full).
    pub dropped: AtomicU64,
}

/// The signature header's value for `body` sent at `t` (Unix seconds).
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{t}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// The node's webhooks: delivery counts, and the task handing events to the current URLs' queues.
pub struct Webhooks {
    pub counts: Arc<Deliveries>,
    /// The current fan-out; a reload aborts it (the old URLs' queues then drain and their tasks end).
    fan_out: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
}

impl Webhooks {
    /// Starts delivering `events` to every configured URL (nothing when none is configured). Must be called
    /// inside a Tokio runtime.
    pub fn start(config: &WebhooksConfig, http: reqwest::Client, events: &EventBus) -> Self {
        let counts = Arc::new(Deliveries::default());
        let fan_out = spawn(config, http, events, &counts);
        Self {
            counts,
            fan_out: std::sync::Mutex::new(fan_out),
        }
    }

    /// A reload: events from now on go to the URLs of `config`; what the old URLs had queued is still
    /// delivered (or retried, then dropped) by their own tasks.
    pub fn reconfigure(&self, config: &WebhooksConfig, http: reqwest::Client, events: &EventBus) {
        let next = spawn(config, http, events, &self.counts);
        if let Some(old) = std::mem::replace(&mut *self.fan_out.lock().unwrap(), next) {
            old.abort();
        }
    }
}

/// One queue and delivery task per URL, and the fan-out that fills them; `None` when no URL is configured.
fn spawn(
    config: &WebhooksConfig,
    http: reqwest::Client,
    events: &EventBus,
    counts: &Arc<Deliveries>,
) -> Option<tokio::task::AbortHandle> {
    if config.urls.is_empty() {
        return None;
    }
    let queues: Vec<Queue> = config
        .urls
        .iter()
        .map(|url| {
            let (tx, rx) = mpsc::channel(config.queue);
            let dropped = Arc::new(AtomicU64::new(0));
            tokio::spawn(deliver(
                url.clone(),
                rx,
                http.clone(),
                config.secret.expose().to_string(),
                Duration::from_millis(config.retry_for_ms),
                dropped.clone(),
                counts.clone(),
            ));
            Queue { tx, dropped }
        })
        .collect();
    tracing::info!(urls = config.urls.len(), "webhooks on");
    let task = tokio::spawn(fan_out(
        events.subscribe(),
        config.clone(),
        queues,
        counts.clone(),
    ));
    Some(task.abort_handle())
}

/// One URL's queue.
struct Queue {
    tx: mpsc::Sender<Event>,
    /// Events dropped since the last delivery to this URL.
    dropped: Arc<AtomicU64>,
}

/// Hands each wanted event to every URL's queue, without ever waiting for one.
async fn fan_out(
    mut events: tokio::sync::broadcast::Receiver<Event>,
    config: WebhooksConfig,
    queues: Vec<Queue>,
    counts: Arc<Deliveries>,
) {
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                for q in &queues {
                    q.dropped.fetch_add(n, Ordering::Relaxed);
                    counts.dropped.fetch_add(n, Ordering::Relaxed);
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let kind = serde_json::to_value(&event.kind)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_string))
            .unwrap_or_default();
        if !config.wants(&kind) {
            continue;
        }
        for q in &queues {
            if q.tx.try_send(event.clone()).is_err() {
                q.dropped.fetch_add(1, Ordering::Relaxed);
                counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Delivers one URL's events in order.
async fn deliver(
    url: String,
    mut rx: mpsc::Receiver<Event>,
    http: reqwest::Client,
    secret: String,
    retry_for: Duration,
    dropped: Arc<AtomicU64>,
    counts: Arc<Deliveries>,
) {
    let shown = crate::media::redact(&url);
    while let Some(event) = rx.recv().await {
        let body = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
        let began = Instant::now();
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(16));
        loop {
            let before = dropped.load(Ordering::Relaxed);
            match post(&http, &url, &secret, &event, &body, before).await {
                Ok(()) => {
                    // Told: only what was dropped since is told next time.
                    dropped.fetch_sub(before, Ordering::Relaxed);
                    counts.delivered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    if began.elapsed() + delay > retry_for {
                        tracing::warn!(url = %shown, event = event.id, error = %e, "webhook not delivered; dropped");
                        dropped.fetch_add(1, Ordering::Relaxed);
                        counts.dropped.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    tracing::debug!(url = %shown, event = event.id, error = %e, ?delay, "webhook failed; retrying");
                    counts.retried.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    event: &Event,
    body: &str,
    dropped: u64,
) -> Result<(), String> {
    let mut req = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            "x-tessera-signature",
            signature(secret, crate::clock::unix_now(), body),
        )
        .header("x-tessera-event-id", event.id.to_string());
    if dropped > 0 {
        req = req.header("x-tessera-dropped", dropped.to_string());
    }
    let answer = req
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if answer.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", answer.status().as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_time_and_body() {
        // Python: hmac.new(b'0123456789abcdef', b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        let s = signature("0123456789abcdef", 1_700_000_000, r#"{"a":1}"#);
        assert_eq!(
            s,
            "t=1700000000,v1=9eb18f493f8ec135d9eb2dad817c369bb4e9cbfa818657897a7437c1cd8c3a23"
        );
        assert_ne!(
            s,
            signature("0123456789abcdeX", 1_700_000_000, r#"{"a":1}"#)
        );
        assert_ne!(
            s,
            signature("0123456789abcdef", 1_700_000_001, r#"{"a":1}"#)
        );
    }

    #[test]
    fn event_types_are_chosen_exactly_or_by_prefix() {
        let mut c = WebhooksConfig::default();
        assert!(c.wants("mix.started"));
        c.events = vec!["output.*".into(), "mix.failed".into()];
        assert!(c.wants("output.retrying"));
        assert!(c.wants("mix.failed"));
        assert!(!c.wants("mix.started"));
    }
}
