//! One output target, for mixes and relays alike: `appsrc (video/x-flv, live) → rtmp2sink`, fed whole FLV tags by
//! a producer (a mix encoder's fan-out, a relay's router) through a [`PushTarget`], supervised as a
//! [`PushSession`].
//!
//! Each target has its own bounded queue (the appsrc's, bounded by `egress.max_queue_bytes`: when it is full the
//! target drops what comes and resumes at the next resumption point), so one slow or dead platform never holds
//! back another or the producer. Every (re)connection starts with the preamble (FLV header, metadata, sequence
//! headers), then a resumption point (a video keyframe; any audio tag in a stream without video). A requested
//! stop unpublishes cleanly.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use futures::future::BoxFuture;
use gst::prelude::*;

use super::{
    link::LinkState,
    meter::RateMeter,
    pipeline::PipelineRun,
    rtmp,
    supervisor::{Attempt, End, Liveness, Session},
};
use crate::config::EgressConfig;

/// A connection that has not published this long after it started has failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// A connection with data waiting that moves no byte this long has failed.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Window of the bitrate shown.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// What the producer of a target's tags and the target's attempts share.
pub struct PushTarget {
    /// Where it publishes.
    pub url: String,
    /// The appsrc of the attempt running now; tags that come while there is none are dropped.
    appsrc: Mutex<Option<gst_app::AppSrc>>,
    /// Set until the next resumption point: after a (re)connect or an overflow.
    need_start: AtomicBool,
    /// Bytes handed to the current attempt's appsrc.
    pushed: AtomicU64,
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
            appsrc: Mutex::new(None),
            need_start: AtomicBool::new(true),
            pushed: AtomicU64::new(0),
            max_queue_bytes: config.max_queue_bytes,
            sent: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            rate: RateMeter::new(RATE_WINDOW),
        })
    }

    /// Queues one FLV tag. `resumption`: the target may (re)start with it; `preamble` is sent first when it
    /// does. Never blocks: called from streaming threads.
    pub fn push(&self, buffer: &gst::Buffer, resumption: bool, preamble: &[gst::Buffer]) {
        let Some(appsrc) = self.appsrc.lock().unwrap().clone() else {
            return;
        };
        let full = appsrc.current_level_bytes() > self.max_queue_bytes;
        if self.need_start.load(Ordering::Relaxed) {
            if !resumption || full {
                return;
            }
            self.need_start.store(false, Ordering::Relaxed);
            for b in preamble {
                self.pushed.fetch_add(b.size() as u64, Ordering::Relaxed);
                let _ = appsrc.push_buffer(b.clone());
            }
        } else if full {
            // The target does not keep up: drop from here and resume at the next resumption point.
            tracing::warn!(url = %crate::media::redact(&self.url), "output queue full; skipping to the next keyframe");
            self.need_start.store(true, Ordering::Relaxed);
            return;
        }
        self.pushed
            .fetch_add(buffer.size() as u64, Ordering::Relaxed);
        let _ = appsrc.push_buffer(buffer.clone());
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

    /// Bytes the current attempt's sink has taken from its queue.
    fn consumed(&self, appsrc: &gst_app::AppSrc) -> u64 {
        self.pushed
            .load(Ordering::Relaxed)
            .saturating_sub(appsrc.current_level_bytes())
    }

    #[cfg(test)]
    pub(crate) fn attach_for_test(&self, appsrc: gst_app::AppSrc) {
        *self.appsrc.lock().unwrap() = Some(appsrc);
    }

    #[cfg(test)]
    pub(crate) fn needs_start(&self) -> bool {
        self.need_start.load(Ordering::SeqCst)
    }
}

/// The live FLV source of a target; the target's own queue bound applies, not the appsrc's.
pub fn flv_appsrc() -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .caps(&gst::Caps::new_empty_simple("video/x-flv"))
        .is_live(true)
        .format(gst::Format::Time)
        .max_bytes(0)
        .block(false)
        .build()
}

/// Hears a target's state changes (events, callbacks).
pub type Observer = Box<dyn Fn(&LinkState) + Send + Sync>;

/// A target as a supervised session.
pub struct PushSession {
    target: Arc<PushTarget>,
    config: EgressConfig,
    observer: Observer,
    /// Names the push's threads after the task it publishes for ([`super::cpu`]).
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

/// One connection of a target.
pub struct PushAttempt {
    run: PipelineRun,
    target: Arc<PushTarget>,
    appsrc: gst_app::AppSrc,
    sink: gst::Element,
    /// The sink's byte count at the last progress check (sent bytes are accounted from it).
    seen: AtomicU64,
}

impl Session for PushSession {
    type Attempt = PushAttempt;

    fn build(&mut self, _n: u32) -> Result<PushAttempt, String> {
        if !super::fence::open() {
            // The node's lease may have passed to another node: connecting could make a second publisher.
            return Err("fenced: this node's cluster lease is not renewed; not publishing".into());
        }
        let pipeline =
            gst::Pipeline::with_name(&super::gstlog::pipeline_name("push", self.tag.as_deref()));
        let appsrc = flv_appsrc();
        let sink = rtmp::rtmp_sink(&self.target.url, &self.config)
            .map_err(|e| format!("cannot build the output pipeline: {e}"))?;
        pipeline
            .add_many([appsrc.upcast_ref(), &sink])
            .and_then(|_| appsrc.link(&sink))
            .map_err(|e| format!("cannot build the output pipeline: {e}"))?;
        if let Some(pad) = appsrc.static_pad("src") {
            // Tags queued before a freeze must not go out after it.
            super::fence::guard_pad(&pad);
        }
        Ok(PushAttempt {
            run: PipelineRun::new(pipeline, self.tag.clone()).unpublishing(appsrc.clone()),
            target: self.target.clone(),
            appsrc,
            sink,
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
        self.target.attempts.fetch_add(1, Ordering::Relaxed);
        self.target.pushed.store(0, Ordering::Relaxed);
        self.target.need_start.store(true, Ordering::Relaxed);
        *self.target.appsrc.lock().unwrap() = Some(self.appsrc.clone());
        self.run.start()
    }

    /// Bytes written to the socket once media was taken from the queue (the handshake alone is not media).
    /// Also accounts them as sent.
    fn progress(&self) -> u64 {
        let out = rtmp::sent_bytes(&self.sink);
        let before = self.seen.swap(out, Ordering::Relaxed);
        if out > before {
            self.target.sent.fetch_add(out - before, Ordering::Relaxed);
            self.target.rate.record(out - before);
        }
        if self.target.consumed(&self.appsrc) > 0 {
            out
        } else {
            0
        }
    }

    fn connected(&self) -> bool {
        rtmp::sent_bytes(&self.sink) > 0
    }

    fn waiting(&self) -> bool {
        self.appsrc.current_level_bytes() > 0
    }

    fn stop(mut self, by_request: bool) {
        {
            let mut current = self.target.appsrc.lock().unwrap();
            if current.as_ref() == Some(&self.appsrc) {
                *current = None;
            }
        }
        if !self.connected() {
            self.run.no_unpublish();
        }
        self.run.stop(by_request);
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

    fn wait(cond: impl Fn() -> bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
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
        let pipeline = gst::Pipeline::new();
        let appsrc = flv_appsrc();
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .property("async", false)
            .build()
            .unwrap();
        pipeline.add_many([appsrc.upcast_ref(), &sink]).unwrap();
        appsrc.link(&sink).unwrap();
        // The target is stuck: the sink takes nothing until the probe goes.
        // What the sink got: the FLV header as `None`, tags by timestamp.
        let received: Arc<Mutex<Vec<Option<u32>>>> = Arc::default();
        let sinkpad = sink.static_pad("sink").unwrap();
        let block = sinkpad
            .add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| {
                gst::PadProbeReturn::Ok
            })
            .unwrap();
        let r = received.clone();
        sinkpad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(map) = info.buffer().and_then(|b| b.map_readable().ok()) {
                let ts =
                    (map[0] != b'F').then(|| u32::from_be_bytes([map[7], map[4], map[5], map[6]]));
                r.lock().unwrap().push(ts);
            }
            gst::PadProbeReturn::Ok
        });
        pipeline.set_state(gst::State::Playing).unwrap();
        out.attach_for_test(appsrc.clone());
        let preamble = vec![gst::Buffer::from_slice(*b"FLV\x01\x05\0\0\0\x09\0\0\0\0")];

        // Inter frames before any keyframe are not sent; then everything until the queue is full.
        out.push(&tag(0, false), false, &preamble);
        assert_eq!(appsrc.current_level_bytes(), 0);
        for i in 0..100 {
            out.push(&tag(i * 33, i == 1), i == 1, &preamble);
        }
        let level = appsrc.current_level_bytes();
        assert!((500..600).contains(&level), "queue not bounded: {level}");
        assert!(out.needs_start());

        // The target catches up; inter frames are still dropped, the next keyframe restarts with the preamble.
        sinkpad.remove_probe(block);
        assert!(wait(|| appsrc.current_level_bytes() == 0));
        out.push(&tag(5000, false), false, &preamble);
        out.push(&tag(5033, true), true, &preamble);
        out.push(&tag(5066, false), false, &preamble);
        assert!(wait(|| received.lock().unwrap().last() == Some(&Some(5066))));
        let got = received.lock().unwrap().clone();
        assert!(!got.contains(&Some(5000)));
        assert_eq!(got[got.len() - 3..], [None, Some(5033), Some(5066)]);
        // Before the stall: preamble, then from the keyframe at 33 ms on, in order, without gaps.
        assert_eq!(got[..3], [None, Some(33), Some(66)]);
        assert!(!out.needs_start());
        pipeline.set_state(gst::State::Null).unwrap();
    }
}

/// What the operator sees of one output (`/metrics`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputMetrics {
    /// How events and status name it: its stream id, or its URL without user info or query.
    pub output: String,
    /// Whether it publishes now.
    pub up: bool,
    pub sent_bytes: u64,
    /// Connections tried after the first.
    pub reconnects: u64,
}
