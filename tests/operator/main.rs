//! The operator's view of a node: its event stream (`GET /v1/events`), signed webhooks, and who may use the
//! native API (bearer tokens). In-process, no media servers: outputs lead nowhere and retry, which is itself
//! something to be told about.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod events;
mod logs;
mod metrics;
mod receiver;
mod reload;
mod webhooks;

use std::{
    io::{BufRead, BufReader},
    time::{Duration, Instant},
};

use common::*;
use serde_json::{json, Value};

/// Where nothing listens.
pub const NOWHERE: &str = "rtmp://127.0.0.1:1";

/// A node whose inputs and outputs lead nowhere.
pub fn config() -> tessera::Config {
    let mut c = tessera::Config::default();
    c.store.path = String::new();
    c.ingest.pull_url = format!("{NOWHERE}/live/{{stream_id}}");
    c.egress.push_url = format!("{NOWHERE}/mix/{{stream_id}}");
    c.egress.retry_initial_ms = 200;
    c.egress.retry_max_ms = 400;
    c.engine.max_mixes = Some(10);
    c
}

/// A small mix publishing `out`.
pub fn mix(out: &str) -> Value {
    json!({
        "canvas": {"width": 320, "height": 180, "fps": 15},
        "inputs": [{"id": "a", "source": {"stream_id": "a"}, "rect": {"x": 0, "y": 0, "width": 160, "height": 90}}],
        "outputs": [{"target": {"stream_id": out}, "video": {"bitrate_kbps": 300}}]
    })
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: Option<u64>,
    pub event: String,
    pub data: Value,
}

/// Reads server-sent events from a streaming response on a thread of its own.
pub struct SseReader {
    rx: std::sync::mpsc::Receiver<Sse>,
}

impl SseReader {
    /// Opens `url` with `headers`; panics unless it answers 200 `text/event-stream`.
    pub fn open(url: &str, headers: &[(&str, &str)]) -> SseReader {
        let client = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap();
        let mut req = client.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().expect("event stream");
        assert_eq!(resp.status(), 200, "{url}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut current = (None, String::new(), String::new());
            for line in BufReader::new(resp).lines() {
                let Ok(line) = line else { return };
                if line.is_empty() {
                    let (id, event, data) = std::mem::take(&mut current);
                    if !data.is_empty() {
                        let data = serde_json::from_str(&data).unwrap_or(Value::Null);
                        if tx.send(Sse { id, event, data }).is_err() {
                            return;
                        }
                    }
                } else if let Some(v) = line.strip_prefix("id:") {
                    current.0 = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    current.1 = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    current.2.push_str(v.trim());
                }
            }
        });
        SseReader { rx }
    }

    /// The next event for which `pred` holds, within `timeout` (others are passed over and returned too).
    pub fn until(&self, timeout: Duration, pred: impl Fn(&Sse) -> bool) -> (Option<Sse>, Vec<Sse>) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(e) if pred(&e) => return (Some(e), seen),
                Ok(e) => seen.push(e),
                Err(_) => break,
            }
        }
        (None, seen)
    }
}
