//! Who published what, when: a tiny HTTP server that nginx-rtmp's `on_publish` and `on_publish_done` call (see
//! [`super::Nginx::start_with_publish_log`]). It answers 200 at once (so every publish is allowed) and records
//! each call with the instant it was accepted.
//!
//! Calls are taken one at a time in the order their connections arrive: nginx-rtmp's one worker opens a
//! connection per notification in the order of the events, so the recorded order is the order of the events on
//! nginx (a publisher's `publish_done` before the next one's `publish`, when one closed before the other
//! connected). Timestamps are `Instant`s of this process, comparable with the test's own.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// One notification from nginx-rtmp.
#[derive(Debug, Clone)]
pub struct PublishEvent {
    /// When the recorder accepted its connection.
    pub at: Instant,
    /// `publish` or `publish_done`.
    pub call: String,
    pub app: String,
    pub name: String,
    /// nginx-rtmp's id of the RTMP connection: one per publisher connection.
    pub clientid: String,
    pub addr: String,
}

/// A publisher's session on a stream: from its `on_publish` to its `on_publish_done` (`None` while it lasts).
///
/// nginx-rtmp calls `on_publish` before it looks at the stream, then refuses a second publisher while one
/// publishes, and calls no `on_publish_done` for the refused one. So a `publish` that comes while another
/// session of the stream is open is recorded as `refused` (its `end` is its `start`); should its
/// `publish_done` come after all (the first one ended between the callback and nginx's check), it was accepted
/// and its session ends there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishSession {
    pub start: Instant,
    pub end: Option<Instant>,
    pub clientid: String,
    /// Refused by nginx: another publisher had the stream. An attempt the cluster must not make.
    pub refused: bool,
}

impl PublishSession {
    /// Whether it was publishing at `t`.
    pub fn covers(&self, t: Instant) -> bool {
        !self.refused && self.start <= t && self.end.is_none_or(|e| t < e)
    }
}

/// The recorder; see the module's documentation. Stops (and frees its port) when dropped.
pub struct PublishRecorder {
    port: u16,
    events: Arc<Mutex<Vec<PublishEvent>>>,
    /// Requests it could not make sense of (none expected).
    garbage: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// When it started: the origin of the times [`PublishRecorder::describe`] prints.
    pub epoch: Instant,
}

/// Reads one HTTP/1.x request (head, then `Content-Length` bytes of body); returns the request line and the
/// body.
fn read_request(stream: &mut TcpStream) -> Option<(String, String)> {
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body_end = (head_end + length).min(buf.len());
    let body = String::from_utf8_lossy(&buf[head_end..body_end]).into_owned();
    let line = head.lines().next().unwrap_or("").to_string();
    Some((line, body))
}

/// The event a request describes: its form body (POST) or its query string (GET), whichever names `call`.
fn parse_event(at: Instant, line: &str, body: &str) -> Option<PublishEvent> {
    let target = line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .chain(url::form_urlencoded::parse(query.as_bytes()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    Some(PublishEvent {
        at,
        call: get("call")?,
        app: get("app").unwrap_or_default(),
        name: get("name").unwrap_or_default(),
        clientid: get("clientid").unwrap_or_default(),
        addr: get("addr").unwrap_or_default(),
    })
}

impl PublishRecorder {
    /// Listens on a free port of 127.0.0.1.
    pub fn start() -> PublishRecorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the publish recorder");
        let port = listener.local_addr().unwrap().port();
        let events = Arc::new(Mutex::new(Vec::new()));
        let garbage = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (events, garbage, stop) = (events.clone(), garbage.clone(), stop.clone());
            std::thread::Builder::new()
                .name("publish-recorder".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        let at = Instant::now();
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(mut stream) = conn else { continue };
                        let Some((line, body)) = read_request(&mut stream) else {
                            continue;
                        };
                        match parse_event(at, &line, &body) {
                            Some(e) => events.lock().unwrap().push(e),
                            None => garbage.lock().unwrap().push(format!("{line} {body}")),
                        }
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        let _ = stream.flush();
                    }
                })
                .expect("spawn the publish recorder")
        };
        PublishRecorder {
            port,
            events,
            garbage,
            stop,
            thread: Some(thread),
            epoch: Instant::now(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every notification so far, in order.
    pub fn events(&self) -> Vec<PublishEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Requests that named no `call` (none expected).
    pub fn garbage(&self) -> Vec<String> {
        self.garbage.lock().unwrap().clone()
    }

    fn events_of(&self, app: &str, name: &str) -> Vec<PublishEvent> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.app == app && e.name == name)
            .cloned()
            .collect()
    }

    /// Every session on `app/name`, refused ones included, by start: each `publish` opens one, the
    /// `publish_done` of the same connection (clientid) closes it (see [`PublishSession`]).
    pub fn all_sessions(&self, app: &str, name: &str) -> Vec<PublishSession> {
        let mut sessions: Vec<PublishSession> = Vec::new();
        for e in self.events_of(app, name) {
            match e.call.as_str() {
                "publish" => {
                    let busy = sessions.iter().any(|s| !s.refused && s.end.is_none());
                    sessions.push(PublishSession {
                        start: e.at,
                        end: busy.then_some(e.at),
                        clientid: e.clientid,
                        refused: busy,
                    })
                }
                "publish_done" => {
                    if let Some(s) = sessions
                        .iter_mut()
                        .rev()
                        .find(|s| s.clientid == e.clientid && (s.end.is_none() || s.refused))
                    {
                        s.refused = false;
                        s.end = Some(e.at);
                    }
                }
                _ => {}
            }
        }
        sessions
    }

    /// The sessions nginx accepted on `app/name`, by start.
    pub fn sessions(&self, app: &str, name: &str) -> Vec<PublishSession> {
        self.all_sessions(app, name)
            .into_iter()
            .filter(|s| !s.refused)
            .collect()
    }

    /// The publishes nginx refused on `app/name` because another publisher had it.
    pub fn refused(&self, app: &str, name: &str) -> Vec<PublishSession> {
        self.all_sessions(app, name)
            .into_iter()
            .filter(|s| s.refused)
            .collect()
    }

    /// Every `on_publish` call on `app/name` (accepted by nginx or not), in order.
    pub fn attempts(&self, app: &str, name: &str) -> Vec<Instant> {
        self.events_of(app, name)
            .into_iter()
            .filter(|e| e.call == "publish")
            .map(|e| e.at)
            .collect()
    }

    /// The sessions of `app/name` still open.
    pub fn open_sessions(&self, app: &str, name: &str) -> Vec<PublishSession> {
        self.sessions(app, name)
            .into_iter()
            .filter(|s| s.end.is_none())
            .collect()
    }

    /// Whether `app/name` has an open session now.
    pub fn is_publishing(&self, app: &str, name: &str) -> bool {
        !self.open_sessions(app, name).is_empty()
    }

    /// The first session of `app/name` that started after `t`.
    pub fn session_after(&self, app: &str, name: &str, t: Instant) -> Option<PublishSession> {
        self.sessions(app, name).into_iter().find(|s| s.start > t)
    }

    /// Waits until `app/name` has a session that started after `t`; that session.
    pub fn wait_session_after(
        &self,
        app: &str,
        name: &str,
        t: Instant,
        timeout: Duration,
    ) -> Option<PublishSession> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.session_after(app, name, t) {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `app/name` has an open session; panics with its history otherwise.
    pub fn wait_publishing(&self, app: &str, name: &str, timeout: Duration) -> PublishSession {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.open_sessions(app, name).pop() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{app}/{name} never published within {timeout:?}; its history: {}",
                self.describe(app, name)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pairs of sessions of `app/name` where the later one (accepted or refused) started while the earlier one
    /// was up: two publishers at once, or one trying while another publishes.
    pub fn overlaps(&self, app: &str, name: &str) -> Vec<(PublishSession, PublishSession)> {
        let sessions = self.all_sessions(app, name);
        let mut found = Vec::new();
        for (i, a) in sessions.iter().enumerate() {
            for b in &sessions[i + 1..] {
                if a.covers(b.start) {
                    found.push((a.clone(), b.clone()));
                }
            }
        }
        found
    }

    /// Panics when two sessions of `app/name` were up at once, with the stream's history.
    pub fn assert_no_overlap(&self, app: &str, name: &str) {
        let overlaps = self.overlaps(app, name);
        assert!(
            overlaps.is_empty(),
            "{app}/{name}: expected one publisher at a time, saw {} overlapping pair(s); history: {}",
            overlaps.len(),
            self.describe(app, name)
        );
    }

    /// `app/name`'s sessions for a message: `[#3 1.234s–2.345s, #7 3.000s–…, #8 3.100s refused]`, seconds since
    /// the recorder started.
    pub fn describe(&self, app: &str, name: &str) -> String {
        let t = |i: Instant| format!("{:.3}s", i.duration_since(self.epoch).as_secs_f64());
        let parts: Vec<String> = self
            .all_sessions(app, name)
            .iter()
            .map(|s| match s.refused {
                true => format!("#{} {} refused", s.clientid, t(s.start)),
                false => format!(
                    "#{} {}–{}",
                    s.clientid,
                    t(s.start),
                    s.end.map(t).unwrap_or_else(|| "…".into())
                ),
            })
            .collect();
        format!("[{}]", parts.join(", "))
    }

    /// Seconds since the recorder started, for messages that mention an instant.
    pub fn secs(&self, t: Instant) -> String {
        format!(
            "{:.3}s",
            t.saturating_duration_since(self.epoch).as_secs_f64()
        )
    }
}

impl Drop for PublishRecorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ =
            TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
