//! An HTTP server on loopback that answers every request with one body after a delay it can change, or never:
//! a slow or hung picture host, as an attacker (or a bad CDN) would offer.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// The delay meaning "never answer".
const NEVER: u64 = u64::MAX;

pub struct SlowHttp {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl SlowHttp {
    /// Serves `body` as `content_type`, `delay` after each request arrives (`None`: it accepts and never
    /// answers, holding the connection open).
    pub fn start(delay: Option<Duration>, body: Vec<u8>, content_type: &str) -> SlowHttp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind slow http");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = SlowHttp {
            port,
            delay_ms: Arc::new(AtomicU64::new(NEVER)),
            requests: Arc::default(),
            stop: Arc::default(),
        };
        server.set_delay(delay);
        let (delay_ms, requests, stop) = (
            server.delay_ms.clone(),
            server.requests.clone(),
            server.stop.clone(),
        );
        let content_type = content_type.to_string();
        let body = Arc::new(body);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (delay_ms, requests, stop, body, content_type) = (
                            delay_ms.clone(),
                            requests.clone(),
                            stop.clone(),
                            body.clone(),
                            content_type.clone(),
                        );
                        std::thread::spawn(move || {
                            answer(conn, &delay_ms, &requests, &stop, &body, &content_type)
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        server
    }

    /// Changes the delay for requests that arrive from now on (`None`: never answer).
    pub fn set_delay(&self, delay: Option<Duration>) {
        let ms = delay.map_or(NEVER, |d| d.as_millis() as u64);
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for SlowHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn answer(
    mut conn: TcpStream,
    delay_ms: &AtomicU64,
    requests: &AtomicUsize,
    stop: &AtomicBool,
    body: &[u8],
    content_type: &str,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let delay = delay_ms.load(Ordering::SeqCst);
    let since = Instant::now();
    while delay == NEVER || since.elapsed() < Duration::from_millis(delay) {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
}
