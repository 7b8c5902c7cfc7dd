//! Callbacks: JSON events POSTed to a project's `callback_url`.
//!
//! Events are queued (bounded, never waited for) and delivered in order by one task per project run, each
//! retried with backoff a few times; a dead callback receiver never holds back media or API requests. `http://`
//! and `https://` (rustls, the system's CAs plus `[callbacks] ca_file`) are spoken by one client per node.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::{config::CallbacksConfig, media::backoff::Backoff, media::LinkState};

/// Events waiting for delivery per project; more are dropped (and logged).
const QUEUE: usize = 256;
/// Attempts per event.
const ATTEMPTS: u32 = 4;

/// The HTTP client every callback of this node is sent with (built once: it holds the TLS roots and a
/// connection pool). Fails on an unreadable or non-PEM `ca_file`.
pub fn callback_client(config: &CallbacksConfig) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_millis(config.timeout_ms))
        .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
        // A callback receiver that redirects is misconfigured; following it could send events elsewhere.
        .redirect(reqwest::redirect::Policy::none());
    if !config.ca_file.is_empty() {
        let pem = std::fs::read(&config.ca_file)
            .map_err(|e| format!("callbacks.ca_file {}: {e}", config.ca_file))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("callbacks.ca_file {}: {e}", config.ca_file))?;
        if certs.is_empty() {
            return Err(format!(
                "callbacks.ca_file {}: no PEM certificate in it",
                config.ca_file
            ));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| format!("callback HTTP client: {e}"))
}

pub(crate) use crate::clock::unix_now;

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
    pub(crate) fn start(
        project: &str,
        url: Arc<Mutex<Option<String>>>,
        client: reqwest::Client,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(project.to_string(), rx, url, client));
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
            tracing::warn!(relay = %self.project, event, "callback queue full; event dropped");
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
    pub(crate) fn output(&self, id: &str, name: &str, state: &LinkState) {
        let mut v = serde_json::to_value(state).unwrap_or_else(|_| json!({}));
        if let Some(map) = v.as_object_mut() {
            map.insert("output".into(), id.into());
            map.insert("name".into(), name.into());
        }
        self.send("output_state", v);
    }
}

async fn deliver(
    project: String,
    mut rx: mpsc::Receiver<Value>,
    url: Arc<Mutex<Option<String>>>,
    client: reqwest::Client,
) {
    while let Some(event) = rx.recv().await {
        let Some(target) = url.lock().unwrap().clone() else {
            continue;
        };
        let body = event.to_string();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        for attempt in 1..=ATTEMPTS {
            match post_json(&client, &target, body.clone()).await {
                Ok(()) => {
                    tracing::debug!(relay = %project, %body, "callback delivered");
                    break;
                }
                Err(e) if attempt == ATTEMPTS => {
                    tracing::warn!(relay = %project, error = %e, %body, "callback not delivered; giving up");
                }
                Err(e) => {
                    tracing::debug!(relay = %project, error = %e, attempt, "callback failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

/// POSTs `body` as JSON to an `http(s)://` URL; `Ok` on a 2xx answer.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: String,
) -> Result<(), String> {
    let answer = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        // `{:#}`-style chains carry the cause (refused, certificate unknown, timed out) into the log.
        .map_err(|e| error_chain(&e))?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", status.as_u16()))
    }
}

/// An error and its sources, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{Read, Write};

    /// Answers one request per status on a blocking listener (plain or through `tls`), returning what came.
    fn serve(
        listener: std::net::TcpListener,
        statuses: &'static [&'static str],
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::thread::JoinHandle<Vec<String>> {
        std::thread::spawn(move || {
            let mut got = Vec::new();
            for status in statuses {
                let (tcp, _) = listener.accept().unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut stream: Box<dyn ReadWrite> = match &tls {
                    Some(config) => Box::new(rustls::StreamOwned::new(
                        rustls::ServerConnection::new(config.clone()).unwrap(),
                        tcp,
                    )),
                    None => Box::new(tcp),
                };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.ends_with(b"}") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let answer =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes());
                let _ = stream.flush();
                got.push(String::from_utf8_lossy(&req).into_owned());
            }
            got
        })
    }

    trait ReadWrite: Read + Write {}
    impl<T: Read + Write> ReadWrite for T {}

    fn client(ca_file: &str) -> reqwest::Client {
        callback_client(&CallbacksConfig {
            ca_file: ca_file.into(),
            timeout_ms: 5000,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn posts_json_and_reads_the_status() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = serve(listener, &["500 Oops", "204 No Content"], None);
        let url = format!("http://127.0.0.1:{port}/hook?x=1");
        let http = client("");
        let first = post_json(&http, &url, r#"{"a":1}"#.into()).await;
        assert_eq!(first, Err("answered 500".to_string()));
        post_json(&http, &url, r#"{"a":1}"#.into()).await.unwrap();
        let got = tokio::task::spawn_blocking(move || server.join().unwrap())
            .await
            .unwrap();
        let lower = got[1].to_ascii_lowercase();
        assert!(
            got[1].starts_with("POST /hook?x=1 HTTP/1.1\r\n"),
            "{}",
            got[1]
        );
        assert!(
            lower.contains(&format!("host: 127.0.0.1:{port}\r\n")),
            "{}",
            got[1]
        );
        assert!(
            lower.contains("content-type: application/json\r\n"),
            "{}",
            got[1]
        );
        assert!(lower.contains("content-length: 7\r\n"), "{}", got[1]);
        assert!(got[1].ends_with("\r\n\r\n{\"a\":1}"));
    }

    /// An `https://` receiver whose certificate comes from a private CA: refused with the system's roots only,
    /// delivered once `ca_file` names the CA.
    #[tokio::test]
    async fn https_callbacks_trust_the_configured_ca() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Tessera test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // The first connection fails its handshake (its "answer" is never read), the second is delivered.
        let server = serve(listener, &["204 No Content", "200 OK"], Some(Arc::new(tls)));
        let url = format!("https://localhost:{port}/events");
        let refused = post_json(&client(""), &url, "{}".into()).await.unwrap_err();
        assert!(refused.to_lowercase().contains("certificate"), "{refused}");
        post_json(
            &client(ca_file.to_str().unwrap()),
            &url,
            r#"{"event":"x"}"#.into(),
        )
        .await
        .unwrap();
        let got = tokio::task::spawn_blocking(move || server.join().unwrap())
            .await
            .unwrap();
        assert!(
            got[1].starts_with("POST /events HTTP/1.1\r\n"),
            "{}",
            got[1]
        );
        assert!(got[1].ends_with(r#"{"event":"x"}"#), "{}", got[1]);
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let config = CallbacksConfig {
            ca_file: path.to_str().unwrap().into(),
            timeout_ms: 1000,
        };
        let err = callback_client(&config).unwrap_err();
        assert!(err.contains("callbacks.ca_file"), "{err}");
        let missing = CallbacksConfig {
            ca_file: "/nonexistent/ca.pem".into(),
            timeout_ms: 1000,
        };
        assert!(callback_client(&missing).is_err());
    }

    #[test]
    fn events_carry_name_project_and_time() {
        let (events, mut rx) = Events::detached("p1");
        events.failover("main", "backup", "ended");
        events.output(
            "yt",
            "YouTube",
            &LinkState::Retrying {
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
