//! The input hub: each source URL is pulled and decoded once, whatever number of mixes use it, and its decoded
//! frames and samples are fanned out to every subscribed mix ([`MediaSink`]).
//!
//! A pull runs in its own pipeline, a session on [`crate::media`]'s supervisor: an error, an end of stream, a
//! stall (no media for `ingest.stall_timeout_ms`) or nothing arriving within `ingest.connect_timeout_ms` tears the
//! pipeline down and rebuilds it after a backoff, forever. Mixes never see any of that except that media stops and later resumes: their own
//! pipelines keep running.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use gst::prelude::*;

use super::timing::Timing;
use crate::{
    config::IngestConfig,
    events::{EventBus, EventKind, TaskRef},
    flv::demux::ReportHandle,
    media::{
        pipeline::PipelineRun, rtmp, Attempt, End, Handle, LinkState, Liveness, Policy, Retries,
        Session, Supervisor,
    },
};

/// Receives one input's decoded media. Buffers carry absolute system-clock time as their PTS.
pub trait MediaSink: Send + Sync {
    fn video(&self, buffer: &gst::Buffer, caps: &gst::Caps);
    fn audio(&self, buffer: &gst::Buffer, caps: &gst::Caps);
}

/// Whose input a subscription is: the mix and the input's id in it, named in the events the pull's state
/// changes raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputTag {
    pub mix: String,
    pub input: String,
}

/// One subscriber of a pull.
#[derive(Clone)]
struct Subscriber {
    id: u64,
    sink: Arc<dyn MediaSink>,
    tag: Option<InputTag>,
}

/// Subscribers of one pull, swapped wholesale on change.
type SinkList = Arc<Vec<Subscriber>>;

/// A sink that drops everything: subscribing with it keeps a pull running (probes, restarts).
pub struct Discard;

impl MediaSink for Discard {
    fn video(&self, _: &gst::Buffer, _: &gst::Caps) {}
    fn audio(&self, _: &gst::Buffer, _: &gst::Caps) {}
}

/// Pulls shared between mixes, keyed by URL.
#[derive(Clone)]
pub struct InputHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    config: IngestConfig,
    events: EventBus,
    pulls: Mutex<HashMap<String, Arc<Pull>>>,
}

/// One source being pulled.
struct Pull {
    url: String,
    /// Subscribers, replaced wholesale on change so streaming threads can push without holding the lock.
    sinks: Mutex<SinkList>,
    next_sink_id: AtomicU64,
    video_size: Mutex<Option<(u32, u32)>>,
    timing: Mutex<Timing>,
    /// Buffers delivered in the current attempt: its progress.
    delivered: AtomicU64,
    /// Set when the last subscriber left: streaming threads stop pacing.
    stopping: AtomicBool,
    /// The supervised link; stopping it (or dropping the pull) ends the pulling.
    link: Mutex<Option<Handle>>,
    events: EventBus,
    /// What the pull has done, for the operator.
    counts: PullCounts,
}

/// A pull's counts since it started.
#[derive(Default)]
struct PullCounts {
    /// Bytes read from the source.
    bytes: Arc<AtomicU64>,
    video_frames: AtomicU64,
    audio_frames: AtomicU64,
    /// Pipelines built (attempts).
    attempts: AtomicU64,
    /// When the newest decoded frame arrived.
    last_frame: Mutex<Option<Instant>>,
}

/// One pulled input as the operator sees it ([`InputHub::metrics`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InputMetrics {
    /// The URL pulled, without user info or query.
    pub input: String,
    pub up: bool,
    pub received_bytes: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub reconnects: u64,
    /// Seconds since the newest frame; `None` before any.
    pub last_frame_age: Option<f64>,
    /// The mixes it feeds (its decoding CPU is split between them).
    pub mixes: Vec<String>,
    /// Its thread tag ([`crate::media::cpu`]).
    pub url: String,
}

/// A mix's interest in one input. Dropping it unsubscribes; the pull stops when nobody is left.
pub struct Subscription {
    pull: Arc<Pull>,
    id: u64,
    hub: Weak<HubInner>,
}

impl InputHub {
    pub fn new(config: IngestConfig, events: EventBus) -> Self {
        Self {
            inner: Arc::new(HubInner {
                config,
                events,
                pulls: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Starts delivering `url`'s media to `sink`, starting the pull if nobody else uses it yet. `tag` names the
    /// mix input it feeds, for events (probes have none).
    pub fn subscribe(
        &self,
        url: &str,
        sink: Arc<dyn MediaSink>,
        tag: Option<InputTag>,
    ) -> Subscription {
        let mut pulls = self.inner.pulls.lock().unwrap();
        let pull = pulls
            .entry(url.to_string())
            .or_insert_with(|| {
                Pull::start(url, self.inner.config.clone(), self.inner.events.clone())
            })
            .clone();
        let id = pull.next_sink_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut sinks = pull.sinks.lock().unwrap();
            let mut next = Vec::clone(&sinks);
            next.push(Subscriber {
                id,
                sink,
                tag: tag.clone(),
            });
            *sinks = Arc::new(next);
        }
        // A pull that is live already says so to its new mix too: events carry state, not just changes.
        if let (Some(tag), true) = (tag, pull.state().is_live()) {
            self.inner.events.publish(
                TaskRef::Mix(tag.mix),
                EventKind::InputLive { input: tag.input },
            );
        }
        Subscription {
            pull,
            id,
            hub: Arc::downgrade(&self.inner),
        }
    }

    /// Number of sources being pulled (for tests and metrics).
    pub fn active_pulls(&self) -> usize {
        self.inner.pulls.lock().unwrap().len()
    }

    /// What every pull has done so far.
    pub fn metrics(&self) -> Vec<InputMetrics> {
        let pulls: Vec<Arc<Pull>> = self.inner.pulls.lock().unwrap().values().cloned().collect();
        pulls
            .iter()
            .map(|p| {
                let c = &p.counts;
                let mut mixes: Vec<String> = p
                    .sinks
                    .lock()
                    .unwrap()
                    .iter()
                    .filter_map(|s| s.tag.as_ref().map(|t| t.mix.clone()))
                    .collect();
                mixes.sort();
                mixes.dedup();
                InputMetrics {
                    input: crate::media::label(&p.url),
                    up: p.state().is_live(),
                    received_bytes: c.bytes.load(Ordering::Relaxed),
                    video_frames: c.video_frames.load(Ordering::Relaxed),
                    audio_frames: c.audio_frames.load(Ordering::Relaxed),
                    reconnects: p.reconnects(),
                    last_frame_age: p.last_frame_age().map(|a| a.as_secs_f64()),
                    mixes,
                    url: p.url.clone(),
                }
            })
            .collect()
    }
}

impl Subscription {
    pub fn state(&self) -> LinkState {
        self.pull.state()
    }

    pub fn video_size(&self) -> Option<(u32, u32)> {
        *self.pull.video_size.lock().unwrap()
    }

    pub fn url(&self) -> &str {
        &self.pull.url
    }

    /// Time since the input's newest decoded frame; `None` before any.
    pub fn last_frame_age(&self) -> Option<Duration> {
        self.pull.last_frame_age()
    }

    /// Connections tried after the first.
    pub fn reconnects(&self) -> u64 {
        self.pull.reconnects()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let mut pulls = hub.pulls.lock().unwrap();
        let empty = {
            let mut sinks = self.pull.sinks.lock().unwrap();
            let next: Vec<Subscriber> = sinks.iter().filter(|s| s.id != self.id).cloned().collect();
            let empty = next.is_empty();
            *sinks = Arc::new(next);
            empty
        };
        if empty {
            pulls.remove(&self.pull.url);
            self.pull.stopping.store(true, Ordering::SeqCst);
            if let Some(link) = self.pull.link.lock().unwrap().as_ref() {
                link.stop();
            }
        }
    }
}

impl Pull {
    fn start(url: &str, config: IngestConfig, events: EventBus) -> Arc<Pull> {
        let pull = Arc::new(Pull {
            url: url.to_string(),
            sinks: Mutex::new(Arc::new(Vec::new())),
            next_sink_id: AtomicU64::new(0),
            video_size: Mutex::new(None),
            timing: Mutex::new(Timing::default()),
            delivered: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            link: Mutex::new(None),
            events,
            counts: PullCounts::default(),
        });
        let policy = Policy {
            initial: Duration::from_millis(config.retry_initial_ms),
            max: Duration::from_millis(config.retry_max_ms),
            retries: Retries::Forever,
        };
        let link = Supervisor::spawn(
            DecodePull {
                pull: Arc::downgrade(&pull),
                url: url.to_string(),
                config,
                was_live: false,
                tag: crate::media::cpu::tag(crate::media::cpu::Owner::Input(url.to_string())),
            },
            policy,
        );
        *pull.link.lock().unwrap() = Some(link);
        pull
    }

    /// Time since the newest decoded frame (status and metrics); `None` before any.
    fn last_frame_age(&self) -> Option<Duration> {
        self.counts.last_frame.lock().unwrap().map(|t| t.elapsed())
    }

    /// Connections tried after the first (status and metrics).
    fn reconnects(&self) -> u64 {
        self.counts
            .attempts
            .load(Ordering::Relaxed)
            .saturating_sub(1)
    }

    fn state(&self) -> LinkState {
        self.link
            .lock()
            .unwrap()
            .as_ref()
            .map_or(LinkState::Connecting { attempt: 0 }, Handle::state)
    }

    /// Called from streaming threads with each decoded buffer.
    fn deliver(&self, sample: &gst::Sample, is_video: bool) {
        let (Some(buffer), Some(caps)) = (sample.buffer_owned(), sample.caps_owned()) else {
            return;
        };
        let Some(pts) = buffer.pts() else {
            return;
        };
        let now = gst::SystemClock::obtain().time();
        let (mapped, wait) = self
            .timing
            .lock()
            .unwrap()
            .map(pts.nseconds(), now.nseconds());
        self.delivered.fetch_add(1, Ordering::Relaxed);
        *self.counts.last_frame.lock().unwrap() = Some(Instant::now());
        if is_video {
            self.counts.video_frames.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counts.audio_frames.fetch_add(1, Ordering::Relaxed);
        }
        if is_video {
            if let Ok(info) = gst_video::VideoInfo::from_caps(&caps) {
                let size = Some((info.width(), info.height()));
                let mut current = self.video_size.lock().unwrap();
                if *current != size {
                    *current = size;
                }
            }
        }
        // Pace input that arrives faster than real time, in small steps so a stop is not held up.
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline && !self.stopping.load(Ordering::Relaxed) {
            std::thread::sleep((deadline - Instant::now()).min(Duration::from_millis(50)));
        }
        let mut out = buffer.copy();
        {
            let out = out.make_mut();
            out.set_pts(gst::ClockTime::from_nseconds(mapped));
            out.set_dts(gst::ClockTime::NONE);
        }
        let sinks = self.sinks.lock().unwrap().clone();
        for s in sinks.iter() {
            if is_video {
                s.sink.video(&out, &caps);
            } else {
                s.sink.audio(&out, &caps);
            }
        }
    }

    /// Tells every mix this pull feeds that its input changed state.
    fn announce(&self, kind: impl Fn(&str) -> EventKind) {
        let sinks = self.sinks.lock().unwrap().clone();
        for tag in sinks.iter().filter_map(|s| s.tag.as_ref()) {
            self.events
                .publish(TaskRef::Mix(tag.mix.clone()), kind(&tag.input));
        }
    }
}

/// Pulling and decoding one source, as a supervised session.
struct DecodePull {
    pull: Weak<Pull>,
    url: String,
    config: IngestConfig,
    /// Whether the link was live before its current state (a live input that fails is "lost").
    was_live: bool,
    /// Names the decode's threads (its CPU is split between the mixes it feeds).
    tag: String,
}

/// One pipeline of a pull.
struct DecodeAttempt {
    run: PipelineRun,
    report: ReportHandle,
    pull: Weak<Pull>,
}

impl Session for DecodePull {
    type Attempt = DecodeAttempt;

    fn build(&mut self, _n: u32) -> Result<DecodeAttempt, String> {
        let pull = self.pull.upgrade().ok_or("the input is no longer used")?;
        pull.timing.lock().unwrap().reset();
        pull.delivered.store(0, Ordering::Relaxed);
        pull.counts.attempts.fetch_add(1, Ordering::Relaxed);
        let (pipeline, report) = build_pipeline(
            &self.url,
            &self.tag,
            self.config.decoder_threads,
            self.pull.clone(),
            pull.counts.bytes.clone(),
        )
        .map_err(|e| format!("cannot build pull pipeline: {e}"))?;
        Ok(DecodeAttempt {
            run: PipelineRun::new(pipeline, Some(self.tag.clone())),
            report,
            pull: self.pull.clone(),
        })
    }

    fn liveness(&self) -> Liveness {
        Liveness {
            connect: self.config.connect_timeout(),
            stall: self.config.stall_timeout(),
        }
    }

    fn observe(&mut self, state: &LinkState) {
        let Some(pull) = self.pull.upgrade() else {
            return;
        };
        match state {
            LinkState::Connecting { attempt } => {
                pull.announce(|input| EventKind::InputConnecting {
                    input: input.into(),
                    attempt: *attempt,
                });
            }
            LinkState::Live => {
                tracing::info!(url = %crate::media::redact(&self.url), "input live");
                pull.announce(|input| EventKind::InputLive {
                    input: input.into(),
                });
            }
            LinkState::Retrying {
                last_error,
                attempt,
                retry_in_ms,
            } => {
                tracing::warn!(url = %crate::media::redact(&self.url), reason = %last_error, attempt, retry_in_ms, "input down; will retry");
                if self.was_live {
                    pull.announce(|input| EventKind::InputLost {
                        input: input.into(),
                        reason: last_error.clone(),
                    });
                }
            }
            LinkState::Idle | LinkState::Failed { .. } => {}
        }
        self.was_live = state.is_live();
    }
}

impl Attempt for DecodeAttempt {
    fn start(&mut self) -> Result<BoxFuture<'static, End>, String> {
        self.run.start()
    }

    fn progress(&self) -> u64 {
        self.pull
            .upgrade()
            .map_or(0, |p| p.delivered.load(Ordering::Relaxed))
    }

    fn explain(&self, end: End) -> End {
        End::Failed(with_demux_warning(end.reason(), &self.report))
    }

    fn stop(self, by_request: bool) {
        self.run.stop(by_request);
    }
}

/// `failed`, explained by what the demuxer had to drop (a stream that arrives but cannot be shown), if anything.
fn with_demux_warning(failed: String, report: &ReportHandle) -> String {
    match report.lock().unwrap().warning.clone() {
        Some(w) => format!("{failed}: {w}"),
        None => failed,
    }
}

/// `source → FLV demuxer → decoders` (see [`crate::flv::demux`]); each decoded track is linked by
/// [`link_decoded`]. Returns the demuxer's report too, which explains a stream that gives no media.
fn build_pipeline(
    url: &str,
    tag: &str,
    decoder_threads: u32,
    pull: Weak<Pull>,
    bytes: Arc<AtomicU64>,
) -> Result<(gst::Pipeline, ReportHandle), gst::glib::BoolError> {
    let pipeline =
        gst::Pipeline::with_name(&crate::media::gstlog::pipeline_name("pull", Some(tag)));
    pipeline.use_clock(Some(&gst::SystemClock::obtain()));
    let src = rtmp::live_source(url)?;
    if let Some(pad) = src.static_pad("src") {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                bytes.fetch_add(b.size() as u64, Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
    }
    pipeline.add(&src)?;
    let weak_pipeline = pipeline.downgrade();
    let report = crate::flv::demux::attach(
        &pipeline,
        &src,
        decoder_threads,
        Arc::new(move |_, pad, track| {
            let (Some(pipeline), Some(_)) = (weak_pipeline.upgrade(), pull.upgrade()) else {
                return;
            };
            let is_video = track == crate::flv::demux::Track::Video;
            if let Err(e) = link_decoded(&pipeline, pad, pull.clone(), is_video) {
                tracing::warn!(error = %e, "cannot link decoded stream");
            }
        }),
    )?;
    Ok((pipeline, report))
}

fn link_decoded(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    pull: Weak<Pull>,
    is_video: bool,
) -> Result<(), gst::glib::BoolError> {
    let (chain, out_caps) = if is_video {
        (
            vec![gst::ElementFactory::make("videoconvert").build()?],
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        )
    } else {
        (
            vec![
                gst::ElementFactory::make("audioconvert").build()?,
                gst::ElementFactory::make("audioresample").build()?,
            ],
            super::mix_audio_caps(),
        )
    };
    let capsfilter = gst::ElementFactory::make("capsfilter")
        .property("caps", &out_caps)
        .build()?;
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .max_buffers(4)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    match pull.upgrade() {
                        Some(p) => {
                            p.deliver(&sample, is_video);
                            Ok(gst::FlowSuccess::Ok)
                        }
                        None => Err(gst::FlowError::Flushing),
                    }
                })
                .build(),
        )
        .build();
    let mut elements: Vec<gst::Element> = chain;
    elements.push(capsfilter);
    elements.push(sink.upcast());
    pipeline.add_many(&elements)?;
    gst::Element::link_many(&elements)?;
    for e in elements.iter().rev() {
        e.sync_state_with_parent()?;
    }
    let sinkpad = elements[0]
        .static_pad("sink")
        .expect("converters have a sink pad");
    pad.link(&sinkpad)
        .map_err(|e| gst::glib::bool_error!("link decoded pad: {e:?}"))?;
    Ok(())
}
