//! One output target, for mixes and relays alike: whole FLV tags from a producer (a mix encoder's fan-out, a
//! relay's router) through a [`PushTarget`]'s queue to Tessera's RTMP publisher ([`crate::rtmp`]), supervised as
//! a [`PushSession`].
//!
//! Each target has its own bounded queue (bounded by `egress.max_queue_bytes`: when it is full the target drops
//! what comes and resumes at the next resumption point), so one slow or dead platform never holds back another
//! or the producer. Every (re)connection starts with the preamble (FLV header, metadata, sequence headers), then a
//! resumption point (a video keyframe; any audio tag in a stream without video). A requested stop unpublishes
//! cleanly. A connection is a task on the runtime that owns its socket: whichever way the attempt ends, the
//! socket closes with it.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use futures::{future::BoxFuture, FutureExt};
use tokio::sync::{oneshot, Notify};

use super::{
    link::LinkState,
    meter::RateMeter,
    rtmp,
    supervisor::{Attempt, End, Liveness, Session},
};
use crate::{config::EgressConfig, flv};

/// A connection that has not published this long after it started has failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// A connection with data waiting that moves no byte this long has failed.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Window of the bitrate shown.
const RATE_WINDOW: Duration = Duration::from_secs(2);
/// How long a requested stop waits for the connection to unpublish before it drops it.
const UNPUBLISH_WAIT: Duration = Duration::from_secs(1);

/// What the producer of a target's tags and the target's attempts share.
pub struct PushTarget {
    /// Where it publishes.
    pub url: String,
    /// The queue of the attempt running now; tags that come while there is none are dropped.
    queue: Mutex<Option<Arc<Queue>>>,
    /// Set until the next resumption point: after a (re)connect or an overflow.
    need_start: AtomicBool,
    max_queue_bytes: u64,
    /// Bytes sent over RTMP since the target was created, over every attempt.
    sent: AtomicU64,
    /// Attempts started (connections tried).
    attempts: AtomicU64,
    rate: RateMeter,
}

impl PushTarget {
    pub fn new(url: &str, config: &EgressConfig) -> Arc<Self> {
        Arc::new(Self {
            url: url.to_string(),
            queue: Mutex::new(None),
            need_start: AtomicBool::new(true),
            max_queue_bytes: config.max_queue_bytes,
            sent: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            rate: RateMeter::new(RATE_WINDOW),
        })
    }

    /// Queues one FLV tag. `resumption`: the target may (re)start with it; `preamble` is sent first when it
    /// does. Never blocks: called from streaming threads. Returns whether the target is connected and waiting
    /// for a resumption point (the caller may ask its encoder for a keyframe).
    pub fn push(&self, buffer: &gst::Buffer, resumption: bool, preamble: &[gst::Buffer]) -> bool {
        let Some(queue) = self.queue.lock().unwrap().clone() else {
            return false;
        };
        let full = queue.level() > self.max_queue_bytes;
        if self.need_start.load(Ordering::Relaxed) {
            if !resumption || full {
                return !full;
            }
            self.need_start.store(false, Ordering::Relaxed);
            for b in preamble {
                queue.push(b.clone());
            }
        } else if full {
            // The target does not keep up: drop from here and resume at the next resumption point.
            tracing::warn!(url = %crate::media::redact(&self.url), "output queue full; skipping to the next keyframe");
            self.need_start.store(true, Ordering::Relaxed);
            return false;
        }
        queue.push(buffer.clone());
        false
    }

    /// Bytes sent since the target was created.
    pub fn bytes(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Connections tried after the first.
    pub fn reconnects(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// Bitrate sent over the last seconds, kbit/s.
    pub fn bitrate_kbps(&self) -> u64 {
        (self.rate.amount_per_sec() * 8.0 / 1000.0) as u64
    }

    #[cfg(test)]
    pub(crate) fn attach_for_test(&self) -> Arc<Queue> {
        let queue = Arc::new(Queue::default());
        *self.queue.lock().unwrap() = Some(queue.clone());
        queue
    }

    #[cfg(test)]
    pub(crate) fn needs_start(&self) -> bool {
        self.need_start.load(Ordering::SeqCst)
    }
}

/// The FLV bytes waiting for one connection, in order, with their size.
#[derive(Default)]
pub(crate) struct Queue {
    buffers: Mutex<VecDeque<gst::Buffer>>,
    bytes: AtomicU64,
    /// Wakes the connection when a buffer comes (a permit is kept when it is not waiting).
    ready: Notify,
}

impl Queue {
    fn push(&self, buffer: gst::Buffer) {
        self.bytes
            .fetch_add(buffer.size() as u64, Ordering::Relaxed);
        self.buffers.lock().unwrap().push_back(buffer);
        self.ready.notify_one();
    }

    /// Bytes waiting.
    pub(crate) fn level(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn try_pop(&self) -> Option<gst::Buffer> {
        let buffer = self.buffers.lock().unwrap().pop_front()?;
        self.bytes
            .fetch_sub(buffer.size() as u64, Ordering::Relaxed);
        Some(buffer)
    }

    /// The next buffer. Cancel-safe: nothing is taken before it returns.
    async fn pop(&self) -> gst::Buffer {
        loop {
            if let Some(buffer) = self.try_pop() {
                return buffer;
            }
            self.ready.notified().await;
        }
    }
}

/// Hears a target's state changes (events, callbacks).
pub type Observer = Box<dyn Fn(&LinkState) + Send + Sync>;

/// A target as a supervised session.
pub struct PushSession {
    target: Arc<PushTarget>,
    config: EgressConfig,
    observer: Observer,
    /// Names the task the push works for in its log lines.
    tag: Option<String>,
}

impl PushSession {
    pub fn new(
        target: Arc<PushTarget>,
        config: EgressConfig,
        observer: Observer,
        tag: Option<String>,
    ) -> Self {
        Self {
            target,
            config,
            observer,
            tag,
        }
    }
}

/// What a connection's task and its attempt share.
#[derive(Default)]
struct Progress {
    /// The server answered the publish.
    published: AtomicBool,
    /// Bytes written to the socket once the first tag went (the handshake alone is not media).
    sent: AtomicU64,
}

/// One connection of a target.
pub struct PushAttempt {
    target: Arc<PushTarget>,
    options: crate::rtmp::Options,
    tag: Option<String>,
    queue: Arc<Queue>,
    progress: Arc<Progress>,
    /// Asks the connection to end; `true`: unpublish first.
    stop: Option<oneshot::Sender<bool>>,
    /// Disconnected once the connection's task has ended (its socket is closed then).
    done: Option<std::sync::mpsc::Receiver<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// `progress.sent` at the last progress check (sent bytes are accounted from it).
    seen: AtomicU64,
}

impl Session for PushSession {
    type Attempt = PushAttempt;

    fn build(&mut self, _n: u32) -> Result<PushAttempt, String> {
        if !super::fence::open() {
            // The node's lease may have passed to another node: connecting could make a second publisher.
            return Err("fenced: this node's cluster lease is not renewed; not publishing".into());
        }
        Ok(PushAttempt {
            target: self.target.clone(),
            options: rtmp::options(self.config.rtmps_verify),
            tag: self.tag.clone(),
            queue: Arc::default(),
            progress: Arc::default(),
            stop: None,
            done: None,
            task: None,
            seen: AtomicU64::new(0),
        })
    }

    fn liveness(&self) -> Liveness {
        Liveness {
            connect: CONNECT_TIMEOUT,
            stall: STALL_TIMEOUT,
        }
    }

    fn observe(&mut self, state: &LinkState) {
        (self.observer)(state);
    }
}

impl Attempt for PushAttempt {
    fn start(&mut self) -> Result<BoxFuture<'static, End>, String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "an output needs the runtime".to_string())?;
        self.target.attempts.fetch_add(1, Ordering::Relaxed);
        self.target.need_start.store(true, Ordering::Relaxed);
        *self.target.queue.lock().unwrap() = Some(self.queue.clone());
        let (stop_tx, stop_rx) = oneshot::channel();
        let (end_tx, end_rx) = oneshot::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let connection = Connection {
            url: self.target.url.clone(),
            options: self.options.clone(),
            queue: self.queue.clone(),
            progress: self.progress.clone(),
        };
        let (tag, url) = (self.tag.clone(), self.target.url.clone());
        self.task = Some(runtime.spawn(async move {
            let end = connection.run(stop_rx).await;
            if let End::Failed(why) = &end {
                // What a failed output pipeline's error line said, for the output's own connection.
                let task = tag
                    .as_deref()
                    .map_or_else(super::gstlog::Task::default, super::gstlog::Task::of_tag);
                tracing::warn!(
                    mix = task.mix.as_deref(),
                    relay = task.relay.as_deref(),
                    url = %super::redact(&url),
                    error = %why,
                    "output attempt failed"
                );
            }
            let _ = end_tx.send(end);
            drop(done_tx);
        }));
        self.stop = Some(stop_tx);
        self.done = Some(done_rx);
        Ok(async move {
            end_rx
                .await
                .unwrap_or(End::Failed("output task ended".into()))
        }
        .boxed())
    }

    /// Bytes written to the socket once media was taken from the queue. Also accounts them as sent.
    fn progress(&self) -> u64 {
        let out = self.progress.sent.load(Ordering::Relaxed);
        let before = self.seen.swap(out, Ordering::Relaxed);
        if out > before {
            self.target.sent.fetch_add(out - before, Ordering::Relaxed);
            self.target.rate.record(out - before);
        }
        out
    }

    fn connected(&self) -> bool {
        self.progress.published.load(Ordering::Relaxed)
    }

    fn waiting(&self) -> bool {
        self.queue.level() > 0
    }

    fn stop(mut self, by_request: bool) {
        {
            let mut current = self.target.queue.lock().unwrap();
            if current
                .as_ref()
                .is_some_and(|q| Arc::ptr_eq(q, &self.queue))
            {
                *current = None;
            }
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(by_request && self.connected());
        }
        if let Some(done) = self.done.take() {
            // Disconnected once the task ended; a connection that does not end in time is dropped.
            let _ = done.recv_timeout(UNPUBLISH_WAIT + Duration::from_millis(500));
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One RTMP connection publishing a target's queue.
struct Connection {
    url: String,
    options: crate::rtmp::Options,
    queue: Arc<Queue>,
    progress: Arc<Progress>,
}

impl Connection {
    /// Connects, publishes, then sends what the queue holds until it fails or `stop` asks it to end
    /// (unpublishing first when `stop` says so).
    async fn run(self, mut stop: oneshot::Receiver<bool>) -> End {
        let mut publisher = tokio::select! {
            connected = crate::rtmp::publish(&self.url, &self.options) => match connected {
                Ok(p) => p,
                Err(e) => return End::Failed(e.to_string()),
            },
            _ = &mut stop => return End::Finished,
        };
        self.progress.published.store(true, Ordering::Relaxed);
        let mut parser = flv::Parser::new();
        loop {
            let buffer = tokio::select! {
                biased;
                unpublish = &mut stop => {
                    if unpublish.unwrap_or(false) {
                        let _ = tokio::time::timeout(UNPUBLISH_WAIT, publisher.close()).await;
                    }
                    return End::Finished;
                }
                buffer = self.queue.pop() => buffer,
                why = publisher.ended() => return End::Failed(why.to_string()),
            };
            if let Ok(map) = buffer.map_readable() {
                parser.push(&map);
            }
            while let Some(item) = parser.next_item() {
                let flv::Item::Tag(tag) = item else { continue };
                if !super::fence::open() {
                    // Tags queued before a freeze must not go out after it; the connection goes with them.
                    return End::Failed("fenced: this node's cluster lease is not renewed".into());
                }
                if let Err(e) = publisher.send(&tag).await {
                    return End::Failed(e.to_string());
                }
                self.progress
                    .sent
                    .store(publisher.bytes_sent(), Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An FLV video tag (header included) at `ts`; a keyframe or not.
    fn tag(ts: u32, key: bool) -> gst::Buffer {
        let data = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0xAB];
        let bytes = crate::flv::Tag::new(crate::flv::TagKind::Video, ts, data)
            .encode_at(ts)
            .unwrap();
        gst::Buffer::from_mut_slice(bytes)
    }

    /// What a queue holds, in order: the FLV header as `None`, tags by timestamp; emptied.
    fn drain(queue: &Queue) -> Vec<Option<u32>> {
        std::iter::from_fn(|| queue.try_pop())
            .map(|b| {
                let map = b.map_readable().unwrap();
                (map[0] != b'F').then(|| u32::from_be_bytes([map[7], map[4], map[5], map[6]]))
            })
            .collect()
    }

    /// A full queue drops until the next resumption point, which comes with the preamble; nothing blocks.
    #[test]
    fn full_queue_skips_to_the_next_keyframe() {
        gst::init().unwrap();
        let config = EgressConfig {
            max_queue_bytes: 500,
            ..EgressConfig::default()
        };
        let out = PushTarget::new("rtmp://h/a/b", &config);
        // The target is stuck: nothing takes from its queue.
        let queue = out.attach_for_test();
        let preamble = vec![gst::Buffer::from_slice(*b"FLV\x01\x05\0\0\0\x09\0\0\0\0")];

        // Inter frames before any keyframe are not sent; then everything until the queue is full.
        out.push(&tag(0, false), false, &preamble);
        assert_eq!(queue.level(), 0);
        for i in 0..100 {
            out.push(&tag(i * 33, i == 1), i == 1, &preamble);
        }
        let level = queue.level();
        assert!((500..600).contains(&level), "queue not bounded: {level}");
        assert!(out.needs_start());

        // Before the stall: preamble, then from the keyframe at 33 ms on, in order, without gaps.
        let got = drain(&queue);
        assert_eq!(got[..3], [None, Some(33), Some(66)]);
        assert_eq!(queue.level(), 0);
        // The target caught up; inter frames are still dropped, the next keyframe restarts with the preamble.
        out.push(&tag(5000, false), false, &preamble);
        out.push(&tag(5033, true), true, &preamble);
        out.push(&tag(5066, false), false, &preamble);
        assert_eq!(drain(&queue), [None, Some(5033), Some(5066)]);
        assert!(!out.needs_start());
    }
}

/// What the operator sees of one output (`/metrics`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutputMetrics {
    /// How events and status name it: its stream id, or its URL without user info or query.
    pub output: String,
    /// Whether it publishes now.
    pub up: bool,
    pub sent_bytes: u64,
    /// Connections tried after the first.
    pub reconnects: u64,
}
