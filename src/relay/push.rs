//! One output of a project: `appsrc (video/x-flv, live) → rtmp2sink`, fed whole FLV tags by the router.
//!
//! Each output has its own bounded queue (the appsrc's, bounded by `egress.max_queue_bytes`: when it is full
//! the output drops what comes and resumes at the next keyframe) and its own supervisor: a connection that
//! errors, closes or stops moving bytes is rebuilt with exponential backoff and jitter
//! (`egress.retry_initial_ms` .. `retry_max_ms`); after [`RETRY_BUDGET`] consecutive attempts that never got
//! to push, the output is `failed` until the project restarts or the output changes. Every (re)connection
//! starts with the FLV header, metadata and sequence headers, then a keyframe.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use gst::prelude::*;
use tokio::sync::watch;

use super::{
    callback::Events,
    router::{OutTag, TagSink},
    status::OutputState,
};
use crate::config::EgressConfig;
use crate::engine::backoff::Backoff;

/// Consecutive failed attempts (none of which got to push) before an output gives up.
pub(crate) const RETRY_BUDGET: u32 = 10;
/// A connection that is not publishing this long after it started has failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// A connection with data waiting that moves no byte this long has failed.
const STUCK_TIMEOUT: Duration = Duration::from_secs(10);
/// Window of the bitrate shown.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// The part of an output that the router (streaming threads), its supervisor and status readers share.
pub(crate) struct OutputShared {
    pub id: String,
    pub url: String,
    name: Mutex<String>,
    appsrc: Mutex<Option<gst_app::AppSrc>>,
    /// Set until the next resumption point: after a (re)connect or an overflow.
    need_start: AtomicBool,
    /// Bytes handed to the current connection's appsrc.
    pushed: AtomicU64,
    max_queue_bytes: u64,
    state: Mutex<OutputState>,
    /// Bytes sent over RTMP since the project started.
    sent: AtomicU64,
    rate: Mutex<VecDeque<(Instant, u64)>>,
    events: Events,
}

impl TagSink for OutputShared {
    fn push(&self, tag: &OutTag, preamble: &[gst::Buffer]) {
        let Some(appsrc) = self.appsrc.lock().unwrap().clone() else {
            return;
        };
        let full = appsrc.current_level_bytes() > self.max_queue_bytes;
        if self.need_start.load(Ordering::Relaxed) {
            if !tag.resumption || full {
                return;
            }
            self.need_start.store(false, Ordering::Relaxed);
            for b in preamble {
                self.pushed.fetch_add(b.size() as u64, Ordering::Relaxed);
                let _ = appsrc.push_buffer(b.clone());
            }
        } else if full {
            // The target does not keep up: drop from here and resume at the next keyframe.
            tracing::warn!(output = %self.id, "relay output queue full; skipping to the next keyframe");
            self.need_start.store(true, Ordering::Relaxed);
            return;
        }
        self.pushed
            .fetch_add(tag.buffer.size() as u64, Ordering::Relaxed);
        let _ = appsrc.push_buffer(tag.buffer.clone());
    }
}

impl OutputShared {
    pub(crate) fn new(
        id: &str,
        name: &str,
        url: &str,
        config: &EgressConfig,
        events: Events,
    ) -> Arc<Self> {
        Arc::new(Self {
            id: id.to_string(),
            url: url.to_string(),
            name: Mutex::new(name.to_string()),
            appsrc: Mutex::new(None),
            need_start: AtomicBool::new(true),
            pushed: AtomicU64::new(0),
            max_queue_bytes: config.max_queue_bytes,
            state: Mutex::new(OutputState::Connecting { attempt: 0 }),
            sent: AtomicU64::new(0),
            rate: Mutex::new(VecDeque::new()),
            events,
        })
    }

    pub(crate) fn state(&self) -> OutputState {
        self.state.lock().unwrap().clone()
    }

    pub(crate) fn set_name(&self, name: &str) {
        *self.name.lock().unwrap() = name.to_string();
    }

    /// Bytes sent over RTMP since the project started.
    pub(crate) fn bytes(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Bitrate over the last seconds, kbit/s.
    pub(crate) fn bitrate_kbps(&self) -> u64 {
        let now = Instant::now();
        let rate = self.rate.lock().unwrap();
        let bytes: u64 = rate
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW)
            .map(|(_, b)| b)
            .sum();
        (bytes as f64 * 8.0 / RATE_WINDOW.as_secs_f64() / 1000.0) as u64
    }

    fn record_sent(&self, bytes: u64) {
        self.sent.fetch_add(bytes, Ordering::Relaxed);
        let now = Instant::now();
        let mut rate = self.rate.lock().unwrap();
        rate.push_back((now, bytes));
        while rate
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            rate.pop_front();
        }
    }

    /// Sets the state; a change of kind (connecting → pushing, ...) is a callback event.
    fn set_state(&self, state: OutputState) {
        let changed = {
            let mut s = self.state.lock().unwrap();
            let changed = s.kind() != state.kind();
            *s = state.clone();
            changed
        };
        if changed {
            let name = self.name.lock().unwrap().clone();
            self.events.output(&self.id, &name, &state);
        }
    }

    /// Bytes the sink has taken from the queue in this connection.
    fn consumed(&self, appsrc: &gst_app::AppSrc) -> u64 {
        self.pushed
            .load(Ordering::Relaxed)
            .saturating_sub(appsrc.current_level_bytes())
    }
}

/// How a connection ended.
enum End {
    Stopped,
    Failed { reason: String, pushed: bool },
}

pub(crate) async fn supervise(
    shared: Arc<OutputShared>,
    config: EgressConfig,
    mut stop_rx: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(
        Duration::from_millis(config.retry_initial_ms),
        Duration::from_millis(config.retry_max_ms),
    );
    loop {
        shared.set_state(OutputState::Connecting {
            attempt: backoff.attempt(),
        });
        let end = match build(&shared.url, &config) {
            Ok((pipeline, appsrc, sink)) => {
                let pipeline = crate::engine::teardown::NullOnDrop(pipeline);
                shared.pushed.store(0, Ordering::Relaxed);
                shared.need_start.store(true, Ordering::Relaxed);
                *shared.appsrc.lock().unwrap() = Some(appsrc.clone());
                let end = run(&pipeline, &appsrc, &sink, &shared, &mut stop_rx).await;
                *shared.appsrc.lock().unwrap() = None;
                let stopped = matches!(end, End::Stopped);
                let _ = tokio::task::spawn_blocking(move || {
                    crate::engine::teardown::stop(&pipeline, stopped)
                })
                .await;
                end
            }
            Err(e) => End::Failed {
                reason: format!("cannot build the output pipeline: {e}"),
                pushed: false,
            },
        };
        let (reason, pushed) = match end {
            End::Stopped => return,
            End::Failed { reason, pushed } => (reason, pushed),
        };
        if pushed {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        let attempt = backoff.attempt();
        if attempt >= RETRY_BUDGET {
            tracing::error!(output = %shared.id, %reason, attempt, "relay output failed; giving up");
            shared.set_state(OutputState::Failed { last_error: reason });
            let _ = stop_rx.changed().await;
            return;
        }
        tracing::warn!(output = %shared.id, %reason, attempt, ?delay, "relay output down; will retry");
        shared.set_state(OutputState::Retrying {
            attempt,
            last_error: reason,
            retry_in_ms: delay.as_millis() as u64,
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop_rx.changed() => return,
        }
    }
}

/// The live FLV source of an output; the output's own queue bounds it, not the appsrc.
fn flv_appsrc() -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .caps(&gst::Caps::new_empty_simple("video/x-flv"))
        .is_live(true)
        .format(gst::Format::Time)
        .max_bytes(0)
        .block(false)
        .build()
}

fn build(
    url: &str,
    config: &EgressConfig,
) -> Result<(gst::Pipeline, gst_app::AppSrc, gst::Element), gst::glib::BoolError> {
    let pipeline = gst::Pipeline::with_name("relay-push");
    let appsrc = flv_appsrc();
    let sink = crate::engine::rtmp_sink(url, config)?;
    pipeline.add_many([appsrc.upcast_ref(), &sink])?;
    appsrc.link(&sink)?;
    Ok((pipeline, appsrc, sink))
}

/// Bytes rtmp2sink has written to the socket; 0 until it publishes (its connection only exists then).
fn out_bytes(sink: &gst::Element) -> u64 {
    sink.property::<Option<gst::Structure>>("stats")
        .and_then(|s| s.get::<u64>("out-bytes-total").ok())
        .unwrap_or(0)
}

async fn run(
    pipeline: &gst::Pipeline,
    appsrc: &gst_app::AppSrc,
    sink: &gst::Element,
    shared: &OutputShared,
    stop_rx: &mut watch::Receiver<bool>,
) -> End {
    let Some(bus) = pipeline.bus() else {
        return End::Failed {
            reason: "pipeline without bus".into(),
            pushed: false,
        };
    };
    let mut messages = bus.stream();
    let p = pipeline.clone();
    let started = match tokio::task::spawn_blocking(move || p.set_state(gst::State::Playing)).await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = started {
        return End::Failed {
            reason: format!("cannot start: {e}"),
            pushed: false,
        };
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last_out = 0u64;
    let mut last_progress = Instant::now();
    let mut pushing = false;
    let fail = |reason: String, pushing: bool| End::Failed {
        reason,
        pushed: pushing,
    };
    loop {
        tokio::select! {
            _ = stop_rx.changed() => {
                // Unpublish cleanly (FCUnpublish, deleteStream) when the server still listens.
                let _ = appsrc.end_of_stream();
                let deadline = tokio::time::sleep(Duration::from_secs(1));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        msg = messages.next() => match msg.as_ref().map(|m| m.view()) {
                            None | Some(gst::MessageView::Eos(_)) | Some(gst::MessageView::Error(_)) => break,
                            _ => {}
                        },
                    }
                }
                return End::Stopped;
            }
            msg = messages.next() => {
                let Some(msg) = msg else { return fail("bus closed".into(), pushing) };
                match msg.view() {
                    gst::MessageView::Error(err) => {
                        tracing::debug!(output = %shared.id, error = %err.error(), debug = ?err.debug(), "relay output error");
                        return fail(err.error().message().chars().take(200).collect(), pushing);
                    }
                    gst::MessageView::Eos(_) => return fail("connection closed".into(), pushing),
                    _ => {}
                }
            }
            _ = tick.tick() => {
                let out = out_bytes(sink);
                if out > last_out {
                    shared.record_sent(out - last_out);
                    last_out = out;
                    last_progress = Instant::now();
                }
                let connected = out > 0;
                if connected && !pushing && shared.consumed(appsrc) > 0 {
                    pushing = true;
                    tracing::info!(output = %shared.id, "relay output pushing");
                    shared.set_state(OutputState::Pushing);
                }
                if connected && appsrc.current_level_bytes() > 0 && last_progress.elapsed() > STUCK_TIMEOUT {
                    return fail(format!("no data delivered for {} s", STUCK_TIMEOUT.as_secs()), pushing);
                }
                if !connected && started.elapsed() > CONNECT_TIMEOUT {
                    return fail(format!("not publishing after {} s", CONNECT_TIMEOUT.as_secs()), pushing);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::{Tag, TagKind};

    fn out_tag(ts: u32, key: bool) -> OutTag {
        let data = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0xAB];
        let bytes = Tag::new(TagKind::Video, ts, data).encode_at(ts).unwrap();
        OutTag {
            buffer: gst::Buffer::from_mut_slice(bytes),
            resumption: key,
        }
    }

    /// A full queue drops until the next keyframe, which comes with the preamble; nothing blocks meanwhile.
    #[test]
    fn full_queue_skips_to_the_next_keyframe() {
        gst::init().unwrap();
        let (events, _rx) = Events::detached("t");
        let config = EgressConfig {
            max_queue_bytes: 500,
            ..EgressConfig::default()
        };
        let out = OutputShared::new("o", "", "rtmp://h/a/b", &config, events);
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
        *out.appsrc.lock().unwrap() = Some(appsrc.clone());
        let preamble = vec![gst::Buffer::from_slice(*b"FLV\x01\x05\0\0\0\x09\0\0\0\0")];

        // Inter frames before any keyframe are not sent; then everything until the queue is full.
        out.push(&out_tag(0, false), &preamble);
        assert_eq!(appsrc.current_level_bytes(), 0);
        for i in 0..100 {
            out.push(&out_tag(i * 33, i == 1), &preamble);
        }
        let level = appsrc.current_level_bytes();
        assert!((500..600).contains(&level), "queue not bounded: {level}");
        assert!(out.need_start.load(Ordering::SeqCst));

        // The target catches up; inter frames are still dropped, the next keyframe restarts with the preamble.
        sinkpad.remove_probe(block);
        assert!(wait(|| appsrc.current_level_bytes() == 0));
        out.push(&out_tag(5000, false), &preamble);
        out.push(&out_tag(5033, true), &preamble);
        out.push(&out_tag(5066, false), &preamble);
        assert!(wait(|| received.lock().unwrap().last() == Some(&Some(5066))));
        let got = received.lock().unwrap().clone();
        assert!(!got.contains(&Some(5000)));
        assert_eq!(got[got.len() - 3..], [None, Some(5033), Some(5066)]);
        // Before the stall: preamble, then from the keyframe at 33 ms on, in order, without gaps.
        assert_eq!(got[..3], [None, Some(33), Some(66)]);
        assert!(!out.need_start.load(Ordering::SeqCst));
        pipeline.set_state(gst::State::Null).unwrap();
    }

    fn wait(cond: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}
