//! A scripted HTTP-FLV source: a tiny HTTP server on loopback whose every answer is decided by the test, byte for
//! byte (Tessera pulls `http://` inputs with souphttpsrc), plus the FLV tag surgery the fault tests need.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

/// How one request is answered.
pub enum Reply {
    /// `200`, these bytes, then the connection is closed (end of stream).
    Bytes(Vec<u8>),
    /// `200`, these bytes, then nothing more with the connection held open until the client gives up on it.
    Stall(Vec<u8>),
    /// This status with an empty body.
    Status(u16),
}

type Handler = dyn Fn(usize) -> Reply + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    requests: AtomicUsize,
    stalls_closed: AtomicUsize,
    stop: AtomicBool,
}

pub struct FlvServer {
    pub port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FlvServer {
    /// Serves every request with `handler(n)`, `n` counting requests from 0.
    pub fn start(handler: impl Fn(usize) -> Reply + Send + Sync + 'static) -> FlvServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the FLV server");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            requests: AtomicUsize::new(0),
            stalls_closed: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("flv-server".into())
                .spawn(move || {
                    while !shared.stop.load(Ordering::SeqCst) {
                        match listener.accept() {
                            Ok((conn, _)) => {
                                let shared = shared.clone();
                                std::thread::spawn(move || serve(conn, &shared));
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(10)),
                        }
                    }
                })
                .unwrap()
        };
        FlvServer {
            port,
            shared,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/{name}.flv`
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}.flv", self.port)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Stalled connections the client closed (a client that gives up on a stall and lets go of its socket).
    pub fn stalls_closed(&self) -> usize {
        self.shared.stalls_closed.load(Ordering::SeqCst)
    }
}

impl Drop for FlvServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    // The request head; its content does not matter.
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let n = shared.requests.fetch_add(1, Ordering::SeqCst);
    let (status, body, stall) = match (shared.handler)(n) {
        Reply::Bytes(b) => (200, b, false),
        Reply::Stall(b) => (200, b, true),
        Reply::Status(s) => (s, Vec::new(), false),
    };
    let reason = if status == 200 { "OK" } else { "Error" };
    let length = if status == 200 {
        String::new()
    } else {
        "Content-Length: 0\r\n".to_string()
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: video/x-flv\r\n{length}Connection: close\r\n\r\n"
    );
    if conn.write_all(head.as_bytes()).is_err() || conn.write_all(&body).is_err() {
        return;
    }
    if !stall {
        let _ = conn.shutdown(Shutdown::Write);
        // Let the client read everything before the socket goes.
        let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
        while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        return;
    }
    // Hold the connection: nothing more is sent; wait for the client to close its side.
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        match conn.read(&mut buf) {
            Ok(0) => {
                shared.stalls_closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                shared.stalls_closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

/// An FLV file cut into its parts.
pub struct Flv {
    /// The 9-byte header and the first PreviousTagSize (0).
    pub header: Vec<u8>,
    pub tags: Vec<Tag>,
}

/// One FLV tag with its trailing PreviousTagSize.
#[derive(Clone)]
pub struct Tag {
    /// 8 audio, 9 video, 18 script data.
    pub kind: u8,
    pub bytes: Vec<u8>,
}

impl Tag {
    pub fn timestamp_ms(&self) -> u32 {
        let b = &self.bytes;
        u32::from_be_bytes([b[7], b[4], b[5], b[6]])
    }

    pub fn set_timestamp_ms(&mut self, ts: u32) {
        let t = ts.to_be_bytes();
        self.bytes[4] = t[1];
        self.bytes[5] = t[2];
        self.bytes[6] = t[3];
        self.bytes[7] = t[0];
    }

    /// A video tag carrying a sequence header (AVCDecoderConfigurationRecord).
    pub fn is_video_config(&self) -> bool {
        self.kind == 9 && self.bytes.len() > 12 && self.bytes[12] == 0
    }
}

impl Flv {
    pub fn parse(data: &[u8]) -> Flv {
        assert!(data.len() >= 13 && &data[..3] == b"FLV", "not an FLV file");
        let header = data[..13].to_vec();
        let mut tags = Vec::new();
        let mut at = 13;
        while at + 11 <= data.len() {
            let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
            let end = at + 11 + size + 4;
            assert!(end <= data.len(), "truncated FLV tag at {at}");
            tags.push(Tag {
                kind: data[at] & 0x1f,
                bytes: data[at..end].to_vec(),
            });
            at = end;
        }
        Flv { header, tags }
    }

    pub fn read(path: &std::path::Path) -> Flv {
        Flv::parse(&std::fs::read(path).expect("read FLV"))
    }

    /// Header and tags back to bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = self.header.clone();
        for t in &self.tags {
            out.extend_from_slice(&t.bytes);
        }
        out
    }

    /// Timestamp of the last tag, in ms.
    pub fn duration_ms(&self) -> u32 {
        self.tags.iter().map(Tag::timestamp_ms).max().unwrap_or(0)
    }
}

/// `n` pseudo-random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(0x7e55e7a);
    (0..n).map(|_| rng.u8(..)).collect()
}
