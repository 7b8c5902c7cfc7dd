//! An HTTP receiver that records each request (headers and body) and answers as told: a status after a delay,
//! request by request (then 200 at once).

use std::{
    collections::VecDeque,
    io::{Read, Write},
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

/// A request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    /// How the next requests are answered: status and delay.
    script: Arc<Mutex<VecDeque<(u16, Duration)>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Arc<Mutex<VecDeque<(u16, Duration)>>> = Arc::default();
        let (sink, answers) = (got.clone(), script.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (sink, answers) = (sink.clone(), answers.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let Some(req) = read_request(&mut conn) else {
                        return;
                    };
                    let (status, delay) = answers
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or((200, Duration::ZERO));
                    std::thread::sleep(delay);
                    sink.lock().unwrap().push(req);
                    let _ = conn.write_all(
                        format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    );
                });
            }
        });
        Receiver { url, got, script }
    }

    /// The next requests are answered `status` after `delay`, in order.
    pub fn answer(&self, answers: &[(u16, Duration)]) {
        self.script.lock().unwrap().extend(answers.iter().copied());
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

fn read_request(conn: &mut std::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let headers: Vec<(String, String)> = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = conn.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
            return Some(Received { headers, body });
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
