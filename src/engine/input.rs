//! The input hub: each source URL is pulled and decoded once, whatever number of mixes use it, and its decoded
//! frames and samples are fanned out to every subscribed mix ([`MediaSink`]).
//!
//! A pull runs in its own pipeline, supervised by a task: an error, an end of stream, a stall (no media for
//! `ingest.stall_timeout_ms`) or nothing arriving within `ingest.connect_timeout_ms` tears the pipeline down and
//! rebuilds it after a backoff. Mixes never see any of that except that media stops and later resumes: their own
//! pipelines keep running.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use gst::prelude::*;
use tokio::sync::watch;

use super::{backoff::Backoff, status::InputState, timing::Timing};
use crate::{config::IngestConfig, flv::demux::ReportHandle};

/// Receives one input's decoded media. Buffers carry absolute system-clock time as their PTS.
pub trait MediaSink: Send + Sync {
    fn video(&self, buffer: &gst::Buffer, caps: &gst::Caps);
    fn audio(&self, buffer: &gst::Buffer, caps: &gst::Caps);
}

/// Subscribers of one pull with their ids, swapped wholesale on change.
type SinkList = Arc<Vec<(u64, Arc<dyn MediaSink>)>>;

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
    pulls: Mutex<HashMap<String, Arc<Pull>>>,
}

/// One source being pulled.
struct Pull {
    url: String,
    /// Subscribers, replaced wholesale on change so streaming threads can push without holding the lock.
    sinks: Mutex<SinkList>,
    next_sink_id: AtomicU64,
    state: Mutex<InputState>,
    video_size: Mutex<Option<(u32, u32)>>,
    timing: Mutex<Timing>,
    /// Arrival of the newest buffer of the current session.
    last_media: Mutex<Option<Instant>>,
    /// Set by the streaming thread when the current session delivered something.
    session_live: AtomicBool,
    /// Set when the last subscriber left: streaming threads stop pacing and the supervisor exits.
    stopping: AtomicBool,
    stop_tx: watch::Sender<bool>,
}

/// A mix's interest in one input. Dropping it unsubscribes; the pull stops when nobody is left.
pub struct Subscription {
    pull: Arc<Pull>,
    id: u64,
    hub: Weak<HubInner>,
}

impl InputHub {
    pub fn new(config: IngestConfig) -> Self {
        Self {
            inner: Arc::new(HubInner {
                config,
                pulls: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Starts delivering `url`'s media to `sink`, starting the pull if nobody else uses it yet.
    pub fn subscribe(&self, url: &str, sink: Arc<dyn MediaSink>) -> Subscription {
        let mut pulls = self.inner.pulls.lock().unwrap();
        let pull = pulls
            .entry(url.to_string())
            .or_insert_with(|| Pull::start(url, self.inner.config.clone()))
            .clone();
        let id = pull.next_sink_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut sinks = pull.sinks.lock().unwrap();
            let mut next = Vec::clone(&sinks);
            next.push((id, sink));
            *sinks = Arc::new(next);
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
}

impl Subscription {
    pub fn state(&self) -> InputState {
        self.pull.state.lock().unwrap().clone()
    }

    pub fn video_size(&self) -> Option<(u32, u32)> {
        *self.pull.video_size.lock().unwrap()
    }

    pub fn url(&self) -> &str {
        &self.pull.url
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
            let next: Vec<_> = sinks
                .iter()
                .filter(|(id, _)| *id != self.id)
                .cloned()
                .collect();
            let empty = next.is_empty();
            *sinks = Arc::new(next);
            empty
        };
        if empty {
            pulls.remove(&self.pull.url);
            self.pull.stopping.store(true, Ordering::SeqCst);
            let _ = self.pull.stop_tx.send(true);
        }
    }
}

impl Pull {
    fn start(url: &str, config: IngestConfig) -> Arc<Pull> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let pull = Arc::new(Pull {
            url: url.to_string(),
            sinks: Mutex::new(Arc::new(Vec::new())),
            next_sink_id: AtomicU64::new(0),
            state: Mutex::new(InputState::Connecting { attempt: 0 }),
            video_size: Mutex::new(None),
            timing: Mutex::new(Timing::default()),
            last_media: Mutex::new(None),
            session_live: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            stop_tx,
        });
        tokio::spawn(supervise(
            Arc::downgrade(&pull),
            pull.url.clone(),
            config,
            stop_rx,
        ));
        pull
    }

    fn set_state(&self, state: InputState) {
        *self.state.lock().unwrap() = state;
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
        *self.last_media.lock().unwrap() = Some(Instant::now());
        if !self.session_live.swap(true, Ordering::SeqCst) {
            tracing::info!(url = %self.url, "input live");
            self.set_state(InputState::Live);
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
        for (_, sink) in sinks.iter() {
            if is_video {
                sink.video(&out, &caps);
            } else {
                sink.audio(&out, &caps);
            }
        }
    }
}

/// Why a pull session ended.
enum SessionEnd {
    Stopped,
    Failed(String),
}

async fn supervise(
    pull: Weak<Pull>,
    url: String,
    config: IngestConfig,
    mut stop_rx: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(
        Duration::from_millis(config.retry_initial_ms),
        Duration::from_millis(config.retry_max_ms),
    );
    loop {
        let Some(p) = pull.upgrade() else { return };
        if *stop_rx.borrow() {
            return;
        }
        p.set_state(InputState::Connecting {
            attempt: backoff.attempt(),
        });
        p.session_live.store(false, Ordering::SeqCst);
        p.timing.lock().unwrap().reset();
        *p.last_media.lock().unwrap() = None;
        drop(p);

        let end = match build_pipeline(&url, config.decoder_threads, pull.clone()) {
            Ok((pipeline, report)) => {
                let pipeline = crate::engine::teardown::NullOnDrop(pipeline);
                let end = run_session(&pipeline, &report, &pull, &config, &mut stop_rx).await;
                let stopped = matches!(end, SessionEnd::Stopped);
                let _ =
                    tokio::task::spawn_blocking(move || super::teardown::stop(&pipeline, stopped))
                        .await;
                end
            }
            Err(e) => SessionEnd::Failed(format!("cannot build pull pipeline: {e}")),
        };
        let reason = match end {
            SessionEnd::Stopped => return,
            SessionEnd::Failed(reason) => reason,
        };
        let Some(p) = pull.upgrade() else { return };
        if p.session_live.load(Ordering::SeqCst) {
            backoff.reset();
            p.set_state(InputState::Lost {
                reason: reason.clone(),
            });
        }
        let delay = backoff.next_delay();
        tracing::warn!(%url, %reason, attempt = backoff.attempt(), ?delay, "input down; will retry");
        p.set_state(InputState::Retrying {
            attempt: backoff.attempt(),
            last_error: reason,
            retry_in_ms: delay.as_millis() as u64,
        });
        drop(p);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop_rx.changed() => return,
        }
    }
}

async fn run_session(
    pipeline: &gst::Pipeline,
    report: &ReportHandle,
    pull: &Weak<Pull>,
    config: &IngestConfig,
    stop_rx: &mut watch::Receiver<bool>,
) -> SessionEnd {
    let Some(bus) = pipeline.bus() else {
        return SessionEnd::Failed("pipeline without bus".into());
    };
    let mut messages = bus.stream();
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        return SessionEnd::Failed(format!("cannot start: {e}"));
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = stop_rx.changed() => return SessionEnd::Stopped,
            msg = messages.next() => {
                let Some(msg) = msg else { return SessionEnd::Failed("bus closed".into()) };
                match msg.view() {
                    gst::MessageView::Error(err) => {
                        tracing::debug!(error = %err.error(), debug = ?err.debug(), "pull error");
                        return SessionEnd::Failed(describe_error(&err.error()));
                    }
                    gst::MessageView::Eos(_) => return SessionEnd::Failed(with_demux_warning("stream ended".into(), report)),
                    _ => {}
                }
            }
            _ = tick.tick() => {
                let Some(p) = pull.upgrade() else { return SessionEnd::Stopped };
                let last = *p.last_media.lock().unwrap();
                let failed = match last {
                    Some(t) if t.elapsed() > config.stall_timeout() => {
                        format!("no media for {} ms", config.stall_timeout_ms)
                    }
                    None if started.elapsed() > config.connect_timeout() => {
                        format!("no media within {} ms", config.connect_timeout_ms)
                    }
                    _ => continue,
                };
                return SessionEnd::Failed(with_demux_warning(failed, report));
            }
        }
    }
}

/// `failed`, explained by what the demuxer had to drop (a stream that arrives but cannot be shown), if anything.
fn with_demux_warning(failed: String, report: &ReportHandle) -> String {
    match report.lock().unwrap().warning.clone() {
        Some(w) => format!("{failed}: {w}"),
        None => failed,
    }
}

/// A short, safe description of a GStreamer error for status views (full details go to the log).
fn describe_error(err: &gst::glib::Error) -> String {
    let msg = err.message();
    let msg: String = msg.chars().take(200).collect();
    msg
}

/// `source → FLV demuxer → decoders` (see [`crate::flv::demux`]); each decoded track is linked by
/// [`link_decoded`]. Returns the demuxer's report too, which explains a stream that gives no media.
fn build_pipeline(
    url: &str,
    decoder_threads: u32,
    pull: Weak<Pull>,
) -> Result<(gst::Pipeline, ReportHandle), gst::glib::BoolError> {
    let pipeline = gst::Pipeline::with_name("pull");
    pipeline.use_clock(Some(&gst::SystemClock::obtain()));
    let src = if url.starts_with("rtmp") {
        gst::ElementFactory::make("rtmp2src")
            .property("location", url)
            .build()?
    } else {
        gst::ElementFactory::make("souphttpsrc")
            .property("location", url)
            .build()?
    };
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
