//! A tiny HTTP server that records the JSON bodies POSTed to it (the projects' callbacks).

use std::{
    io::{Read, Write},
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;

pub struct Hooks {
    pub url: String,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Hooks {
    /// Listens on 127.0.0.1 (a free port) until the test process ends; answers 200 to everything.
    pub fn start() -> Hooks {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hooks");
        let url = format!("http://{}/hooks/relay", listener.local_addr().unwrap());
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                if let Some(body) = read_request(&mut conn) {
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        sink.lock().unwrap().push(v);
                    }
                }
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Hooks { url, events }
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Waits for an event that satisfies `pred`.
    pub fn wait(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let mut found = None;
        let ok = super::wait_for(timeout, || {
            found = self.events().into_iter().find(|e| pred(e));
            found.is_some()
        });
        assert!(ok, "no such callback event; got {:#?}", self.events());
        found.unwrap()
    }
}

/// Reads one request; returns its body.
fn read_request(conn: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = conn.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf[end + 4..end + 4 + len].to_vec());
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
