//! Callbacks: JSON events POSTed to a project's `callback_url`.
//!
//! Events are queued (bounded, never waited for) and delivered in order by one task per project run, each
//! retried with backoff a few times; a dead callback receiver never holds back media or API requests. Only
//! `http://` is spoken (a minimal HTTP/1.1 client): an `https://` URL is accepted by validation but its events
//! are logged and dropped.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{json, Value};
use tokio::{net::TcpStream, sync::mpsc};

use super::status::OutputState;
use crate::engine::backoff::Backoff;

/// Events waiting for delivery per project; more are dropped (and logged).
const QUEUE: usize = 256;
/// Attempts per event.
const ATTEMPTS: u32 = 4;
const TIMEOUT: Duration = Duration::from_secs(5);

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Where a project's events go. Cheap to clone; sending never blocks.
#[derive(Clone)]
pub(crate) struct Events {
    project: String,
    tx: mpsc::Sender<Value>,
}

impl Events {
    /// Starts the delivery task of one project run. `url` is read when each event is sent, so a changed
    /// `callback_url` applies to the next event. The task ends once every clone is dropped and the queue is
    /// delivered.
    pub(crate) fn start(project: &str, url: Arc<Mutex<Option<String>>>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(project.to_string(), rx, url));
        Self {
            project: project.to_string(),
            tx,
        }
    }

    /// Events that go nowhere (tests); the receiver sees what would have been sent.
    #[cfg(test)]
    pub(crate) fn detached(project: &str) -> (Self, mpsc::Receiver<Value>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Self {
                project: project.to_string(),
                tx,
            },
            rx,
        )
    }

    fn send(&self, event: &str, mut fields: Value) {
        if let Some(map) = fields.as_object_mut() {
            map.insert("event".into(), event.into());
            map.insert("project".into(), self.project.clone().into());
            map.insert("time".into(), unix_now().into());
        }
        if self.tx.try_send(fields).is_err() {
            tracing::warn!(project = %self.project, event, "callback queue full; event dropped");
        }
    }

    pub(crate) fn started(&self) {
        self.send("project_started", json!({}));
    }

    pub(crate) fn stopped(&self, reason: &str) {
        self.send("project_stopped", json!({ "reason": reason }));
    }

    pub(crate) fn failover(&self, from: &str, to: &str, reason: &str) {
        self.send(
            "failover",
            json!({ "from": from, "to": to, "reason": reason }),
        );
    }

    /// An output changed state (its URL is not sent: it usually holds a stream key).
    pub(crate) fn output(&self, id: &str, name: &str, state: &OutputState) {
        let mut v = serde_json::to_value(state).unwrap_or_else(|_| json!({}));
        if let Some(map) = v.as_object_mut() {
            map.insert("output".into(), id.into());
            map.insert("name".into(), name.into());
        }
        self.send("output_state", v);
    }
}

async fn deliver(project: String, mut rx: mpsc::Receiver<Value>, url: Arc<Mutex<Option<String>>>) {
    while let Some(event) = rx.recv().await {
        let Some(target) = url.lock().unwrap().clone() else {
            continue;
        };
        if !target.starts_with("http://") {
            tracing::warn!(%project, "only http:// callback URLs are supported; event not sent");
            continue;
        }
        let body = event.to_string();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        for attempt in 1..=ATTEMPTS {
            match post_json(&target, body.as_bytes(), TIMEOUT).await {
                Ok(()) => {
                    tracing::debug!(%project, %body, "callback delivered");
                    break;
                }
                Err(e) if attempt == ATTEMPTS => {
                    tracing::warn!(%project, error = %e, %body, "callback not delivered; giving up");
                }
                Err(e) => {
                    tracing::debug!(%project, error = %e, attempt, "callback failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

/// POSTs `body` as JSON to an `http://` URL; `Ok` on a 2xx answer.
pub(crate) async fn post_json(url: &str, body: &[u8], timeout: Duration) -> Result<(), String> {
    let u = url::Url::parse(url).map_err(|e| format!("bad callback URL: {e}"))?;
    if u.scheme() != "http" {
        return Err(format!("{}:// callbacks are not supported", u.scheme()));
    }
    let host = match u.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => return Err("callback URL without host".into()),
    };
    let port = u.port_or_known_default().unwrap_or(80);
    let authority = &u[url::Position::BeforeHost..url::Position::AfterPort];
    let path = &u[url::Position::BeforePath..url::Position::AfterQuery];
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: tessera\r\n\r\n",
        body.len()
    );
    let exchange = async {
        let s = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut out = request.into_bytes();
        out.extend_from_slice(body);
        write_all(&s, &out).await.map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut chunk = [0u8; 512];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
            let n = read_some(&s, &mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let code = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| "no HTTP status in the answer".to_string())?;
        if (200..300).contains(&code) {
            Ok(())
        } else {
            Err(format!("answered {code}"))
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Writes all of `data` (tokio's `net` readiness API; the crate does without `io-util`).
async fn write_all(s: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        s.writable().await?;
        match s.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what is there (at least one byte, or 0 at the end of the stream).
async fn read_some(s: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        s.readable().await?;
        match s.try_read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn posts_json_and_reads_the_status() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut got = Vec::new();
            for status in ["500 Oops", "204 No Content"] {
                let (s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let mut req = Vec::new();
                loop {
                    let n = read_some(&s, &mut buf).await.unwrap();
                    req.extend_from_slice(&buf[..n]);
                    if n == 0 || req.ends_with(b"}") {
                        break;
                    }
                }
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                write_all(&s, answer.as_bytes()).await.unwrap();
                got.push(String::from_utf8(req).unwrap());
            }
            got
        });
        let url = format!("http://127.0.0.1:{port}/hook?x=1");
        let first = post_json(&url, br#"{"a":1}"#, TIMEOUT).await;
        assert_eq!(first, Err("answered 500".to_string()));
        post_json(&url, br#"{"a":1}"#, TIMEOUT).await.unwrap();
        let got = server.await.unwrap();
        assert!(
            got[1].starts_with("POST /hook?x=1 HTTP/1.1\r\n"),
            "{}",
            got[1]
        );
        assert!(got[1].contains(&format!("Host: 127.0.0.1:{port}\r\n")));
        assert!(got[1].contains("Content-Length: 7\r\n"));
        assert!(got[1].ends_with("\r\n\r\n{\"a\":1}"));
        assert!(post_json("https://127.0.0.1/x", b"{}", TIMEOUT)
            .await
            .unwrap_err()
            .contains("not supported"));
    }

    #[test]
    fn events_carry_name_project_and_time() {
        let (events, mut rx) = Events::detached("p1");
        events.failover("main", "backup", "ended");
        events.output(
            "yt",
            "YouTube",
            &OutputState::Retrying {
                attempt: 2,
                last_error: "refused".into(),
                retry_in_ms: 900,
            },
        );
        let f = rx.try_recv().unwrap();
        assert_eq!(f["event"], "failover");
        assert_eq!(f["project"], "p1");
        assert_eq!(
            (f["from"].as_str(), f["to"].as_str()),
            (Some("main"), Some("backup"))
        );
        assert!(f["time"].as_i64().unwrap() > 1_600_000_000);
        let o = rx.try_recv().unwrap();
        assert_eq!(o["event"], "output_state");
        assert_eq!(o["output"], "yt");
        assert_eq!(o["state"], "retrying");
        assert_eq!(o["last_error"], "refused");
    }
}
