//! A viewer: pulls an RTMP (or HTTP-FLV) URL, decodes it and keeps what tests look at.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Arc, Condvar, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use gst::prelude::*;
use gst_video::prelude::*;

use super::util::{init, make};

/// One decoded picture.
#[derive(Clone, Debug)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    /// RGB, 3 bytes per pixel, rows tightly packed (`width * 3` bytes each).
    pub data: Vec<u8>,
    pub pts: Option<gst::ClockTime>,
    /// When the probe's appsink got it.
    pub arrival: Instant,
}

impl Frame {
    /// The pixel at (x, y). Panics outside the picture.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        assert!(
            x < self.width && y < self.height,
            "pixel ({x},{y}) outside {}x{}",
            self.width,
            self.height
        );
        let i = ((y * self.width + x) * 3) as usize;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Pixel at a relative position (0.0..1.0 of width and height), e.g. `at(0.5, 0.5)` is the centre.
    pub fn at(&self, fx: f64, fy: f64) -> [u8; 3] {
        let x = ((fx * self.width as f64) as u32).min(self.width - 1);
        let y = ((fy * self.height as f64) as u32).min(self.height - 1);
        self.pixel(x, y)
    }

    /// The centre pixel.
    pub fn center(&self) -> [u8; 3] {
        self.pixel(self.width / 2, self.height / 2)
    }
}

const AUDIO_RATE: u32 = 48_000;
const AUDIO_RING: usize = AUDIO_RATE as usize * 10;
const TIMES_KEEP: Duration = Duration::from_secs(20);
const WATCH_KEEP: usize = 30 * 120;
/// Reconnect delay.
const RETRY: Duration = Duration::from_millis(300);
/// A session that delivered media and then nothing for this long is torn down and reconnected.
const STALL: Duration = Duration::from_secs(5);
/// A connection that delivers no media for this long is torn down and reconnected.
const NO_MEDIA: Duration = Duration::from_secs(10);

/// One frame's pts and the pixels at the watched points.
type WatchedFrame = (Option<gst::ClockTime>, Vec<[u8; 3]>);

/// Points being watched and what was recorded at them.
#[derive(Default)]
struct Watch {
    points: Vec<(u32, u32)>,
    frames: VecDeque<WatchedFrame>,
}

#[derive(Default)]
struct Shared {
    latest: Mutex<Option<Arc<Frame>>>,
    new_frame: Condvar,
    count: AtomicU64,
    times: Mutex<VecDeque<(Instant, Option<gst::ClockTime>)>>,
    watch: Mutex<Watch>,
    audio: Mutex<VecDeque<f32>>,
    audio_total: AtomicU64,
    sessions: AtomicU32,
    /// Caps names of the decoded streams of the newest session that announced all of its streams.
    streams: Mutex<Option<Vec<String>>>,
    attempts: AtomicU32,
    stop: AtomicBool,
    errors: Mutex<VecDeque<String>>,
    /// Demux with Tessera's own FLV demuxer (H.265 in either form) instead of decodebin's flvdemux.
    tessera_demux: bool,
}

impl Shared {
    fn note_error(&self, e: String) {
        let mut errors = self.errors.lock().unwrap();
        if errors.len() >= 20 {
            errors.pop_front();
        }
        errors.push_back(e);
    }
}

/// Media state of one connection attempt.
struct Session {
    got_media: AtomicBool,
    last_media: Mutex<Instant>,
    /// Caps names of the pads decodebin exposed so far.
    pads: Mutex<Vec<String>>,
}

impl Session {
    fn media(&self, shared: &Shared) {
        *self.last_media.lock().unwrap() = Instant::now();
        if !self.got_media.swap(true, Ordering::SeqCst) {
            shared.sessions.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Pulls `url` (rtmp:// via rtmp2src, http(s):// via souphttpsrc) → decodebin; video → RGB at source
/// size, audio → F32 mono 48 kHz; both into appsinks (sync=false: frames are taken as fast as they come,
/// so `arrival` is the real arrival time). Reconnects by itself every 300 ms until the stream exists, and
/// again whenever the connection ends, errors or stalls (5 s without media), until stopped.
pub struct OutputProbe {
    url: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl OutputProbe {
    pub fn start(url: &str) -> OutputProbe {
        Self::start_inner(url, false)
    }

    /// Like [`OutputProbe::start`], demuxing with Tessera's FLV demuxer (`tessera::flv::demux`): the only one here
    /// that reads H.265 in FLV. `streams` stays `None`.
    pub fn start_tessera_demux(url: &str) -> OutputProbe {
        Self::start_inner(url, true)
    }

    fn start_inner(url: &str, tessera_demux: bool) -> OutputProbe {
        init();
        let shared = Arc::new(Shared {
            tessera_demux,
            ..Shared::default()
        });
        let thread = {
            let shared = shared.clone();
            let url = url.to_string();
            std::thread::Builder::new()
                .name("output-probe".into())
                .spawn(move || supervise(&url, &shared))
                .expect("spawn probe thread")
        };
        OutputProbe {
            url: url.to_string(),
            shared,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The newest decoded frame.
    pub fn latest(&self) -> Option<Frame> {
        self.shared.latest.lock().unwrap().as_deref().cloned()
    }

    /// Waits for a frame (the current newest one, then each newer one as it arrives) that satisfies `pred`;
    /// `None` after `timeout`.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&Frame) -> bool) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        let mut seen: Option<Instant> = None;
        let mut latest = self.shared.latest.lock().unwrap();
        loop {
            if let Some(frame) = latest.as_ref() {
                if seen != Some(frame.arrival) {
                    seen = Some(frame.arrival);
                    let frame = frame.clone();
                    drop(latest);
                    if pred(&frame) {
                        return Some((*frame).clone());
                    }
                    latest = self.shared.latest.lock().unwrap();
                    continue;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            latest = self
                .shared
                .new_frame
                .wait_timeout(latest, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Frames decoded so far, over all sessions.
    pub fn frame_count(&self) -> u64 {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// Arrival time and pts of the frames of the last ~20 s, oldest first.
    pub fn frame_times(&self) -> Vec<(Instant, Option<gst::ClockTime>)> {
        self.shared.times.lock().unwrap().iter().cloned().collect()
    }

    /// From now on, record for each frame the pixel at each of `points` (replaces earlier points and
    /// clears what was recorded). Points outside a frame read as [0, 0, 0].
    pub fn watch(&self, points: &[(u32, u32)]) {
        let mut w = self.shared.watch.lock().unwrap();
        w.points = points.to_vec();
        w.frames.clear();
    }

    /// What [`OutputProbe::watch`] recorded: per frame, its pts and the pixel at each point (oldest first,
    /// the last ~2 minutes at 30 fps).
    pub fn watched(&self) -> Vec<(Option<gst::ClockTime>, Vec<[u8; 3]>)> {
        self.shared
            .watch
            .lock()
            .unwrap()
            .frames
            .iter()
            .cloned()
            .collect()
    }

    /// The newest `last` of audio (mono, 48 kHz, F32), at most 10 s; fewer if less has arrived.
    pub fn audio(&self, last: Duration) -> Vec<f32> {
        let n = ((last.as_secs_f64() * AUDIO_RATE as f64) as usize).min(AUDIO_RING);
        let ring = self.shared.audio.lock().unwrap();
        let skip = ring.len().saturating_sub(n);
        ring.iter().skip(skip).copied().collect()
    }

    /// Audio samples received so far, over all sessions (to wait for fresh audio).
    pub fn audio_samples_total(&self) -> u64 {
        self.shared.audio_total.load(Ordering::SeqCst)
    }

    /// Waits until `n` more frames have been decoded (media, not wall time: a loaded machine shows as much of the
    /// output as an idle one before what it did meanwhile is judged); panics with `what` if they do not within
    /// `timeout`.
    pub fn let_frames_pass(&self, n: u64, timeout: Duration, what: &str) {
        let before = self.frame_count();
        assert!(
            super::util::wait_for(timeout, || self.frame_count() >= before + n),
            "{what}: {} of {n} frames within {timeout:?} on {} (probe errors {:?})",
            self.frame_count() - before,
            self.url,
            self.errors()
        );
    }

    /// Waits until `dur` of audio has arrived after this call (media, not wall time: what a change needs to reach
    /// the sound); panics if it does not within `timeout`.
    pub fn let_audio_pass(&self, dur: Duration, timeout: Duration) {
        assert!(
            self.fresh_audio(dur, timeout).is_some(),
            "{dur:?} of audio did not arrive within {timeout:?} on {} (probe errors {:?})",
            self.url,
            self.errors()
        );
    }

    /// Waits until at least `dur` of audio has arrived after this call, then returns the newest `dur`.
    /// `None` if it does not within `timeout`.
    pub fn fresh_audio(&self, dur: Duration, timeout: Duration) -> Option<Vec<f32>> {
        let start = self.audio_samples_total();
        let need = (dur.as_secs_f64() * AUDIO_RATE as f64) as u64;
        super::util::wait_for(timeout, || self.audio_samples_total() >= start + need)
            .then(|| self.audio(dur))
    }

    /// The decoded streams of the output by caps name (`audio/x-raw`, `video/x-raw`), sorted, once a session knows
    /// them all (decodebin's no-more-pads; flvdemux signals it once it has both tracks, or after 6 s of media with
    /// one only); `None` before. Tells "no video track" from "no video frame yet".
    pub fn streams(&self) -> Option<Vec<String>> {
        self.shared.streams.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for [`OutputProbe::streams`].
    pub fn wait_streams(&self, timeout: Duration) -> Option<Vec<String>> {
        super::util::wait_for(timeout, || self.streams().is_some());
        self.streams()
    }

    /// Connections that delivered media (the first one included): 1 means one continuous session.
    pub fn sessions(&self) -> u32 {
        self.shared.sessions.load(Ordering::SeqCst)
    }

    /// Connection attempts so far (successful or not).
    pub fn attempts(&self) -> u32 {
        self.shared.attempts.load(Ordering::SeqCst)
    }

    /// The last few errors of the probe's pipelines (connection refused, stream not found, EOS, stall), for
    /// assertion messages.
    pub fn errors(&self) -> Vec<String> {
        self.shared.errors.lock().unwrap().iter().cloned().collect()
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for OutputProbe {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How much output audio a tone level is judged over: long enough that a hiccup of a loaded machine (a late
/// buffer the mixer fills with silence) cannot decide a verdict alone, and a bin of 1 Hz.
pub const TONE_WINDOW: Duration = Duration::from_secs(1);

/// Listens to fresh output audio, one [`TONE_WINDOW`] after another, until `ready` holds for the tone levels of
/// `freqs` (see [`super::util::tone_level`]) over one window; returns those levels. For "is it there" checks; a
/// check that goes on to judge the window (ratios, absent tones) waits for steady sound with
/// [`wait_steady_levels`]. Panics after `timeout` with the levels of every window heard.
pub fn wait_levels(
    probe: &OutputProbe,
    freqs: &[f64],
    timeout: Duration,
    ready: impl Fn(&[f64]) -> bool,
) -> Vec<f64> {
    listen(probe, freqs, timeout, 1, ready)
}

/// Like [`wait_levels`], until `ready` holds over two windows in a row; returns the levels of the second, for the
/// caller to judge further (ratios, absent tones) over that window. Two in a row: the judged window is steady
/// sound, not one a tone enters part-way through (an input joining, a live change taking effect), which would
/// skew a ratio.
pub fn wait_steady_levels(
    probe: &OutputProbe,
    freqs: &[f64],
    timeout: Duration,
    ready: impl Fn(&[f64]) -> bool,
) -> Vec<f64> {
    listen(probe, freqs, timeout, 2, ready)
}

fn listen(
    probe: &OutputProbe,
    freqs: &[f64],
    timeout: Duration,
    in_a_row: usize,
    ready: impl Fn(&[f64]) -> bool,
) -> Vec<f64> {
    let deadline = Instant::now() + timeout;
    let mut heard: Vec<Vec<f64>> = Vec::new();
    let mut run = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(samples) = probe.fresh_audio(TONE_WINDOW, left) {
            let levels: Vec<f64> = freqs
                .iter()
                .map(|&f| super::util::tone_level(&samples, AUDIO_RATE, f))
                .collect();
            run = if ready(&levels) { run + 1 } else { 0 };
            if run >= in_a_row {
                return levels;
            }
            heard.push(levels);
        }
        assert!(
            Instant::now() < deadline,
            "audio levels for {freqs:?} Hz never matched in {in_a_row} window(s) in a row within {timeout:?} on \
             {}: heard {} ({} audio samples in all; probe errors {:?})",
            probe.url(),
            heard
                .iter()
                .map(|l| format!("{l:.4?}"))
                .collect::<Vec<_>>()
                .join(" "),
            probe.audio_samples_total(),
            probe.errors()
        );
    }
}

fn supervise(url: &str, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        shared.attempts.fetch_add(1, Ordering::SeqCst);
        let session = Arc::new(Session {
            got_media: AtomicBool::new(false),
            last_media: Mutex::new(Instant::now()),
            pads: Mutex::new(Vec::new()),
        });
        match build(url, shared, &session) {
            Ok(pipeline) => {
                let reason = run_session(&pipeline, shared, &session);
                shared.note_error(reason);
                let _ = pipeline.set_state(gst::State::Null);
            }
            Err(e) => shared.note_error(e),
        }
        let until = Instant::now() + RETRY;
        while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Plays one connection until it ends; returns why it ended.
fn run_session(pipeline: &gst::Pipeline, shared: &Shared, session: &Session) -> String {
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        return format!("set PLAYING failed: {e}");
    }
    let bus = pipeline.bus().unwrap();
    let started = Instant::now();
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return "stopped".into();
        }
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    return format!(
                        "error from {}: {} ({:?})",
                        msg.src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_default(),
                        e.error(),
                        e.debug()
                    )
                }
                gst::MessageView::Eos(_) => return "end of stream".into(),
                _ => {}
            }
        }
        if session.got_media.load(Ordering::SeqCst) {
            if session.last_media.lock().unwrap().elapsed() > STALL {
                return format!("stalled: no media for {STALL:?}");
            }
        } else if started.elapsed() > NO_MEDIA {
            return format!("no media within {NO_MEDIA:?} of connecting");
        }
    }
}

fn build(url: &str, shared: &Arc<Shared>, session: &Arc<Session>) -> Result<gst::Pipeline, String> {
    let pipeline = gst::Pipeline::with_name("output-probe");
    let src = if url.starts_with("rtmp://") || url.starts_with("rtmps://") {
        let s = make("rtmp2src");
        s.set_property("location", url);
        s.set_property("timeout", 3u32);
        s
    } else if url.starts_with("http://") || url.starts_with("https://") {
        let s = make("souphttpsrc");
        s.set_property("location", url);
        s
    } else {
        return Err(format!("unsupported probe URL {url}"));
    };
    if shared.tessera_demux {
        pipeline.add(&src).unwrap();
        let (shared, session) = (shared.clone(), session.clone());
        tessera::flv::demux::attach(
            &pipeline,
            &src,
            0,
            Arc::new(move |pipeline, pad, track| {
                let result = match track {
                    tessera::flv::demux::Track::Video => {
                        video_branch(pipeline, pad, shared.clone(), session.clone())
                    }
                    tessera::flv::demux::Track::Audio => {
                        audio_branch(pipeline, pad, shared.clone(), session.clone())
                    }
                };
                if let Err(e) = result {
                    shared.note_error(format!("cannot link {track:?}: {e}"));
                }
            }),
        )
        .map_err(|e| e.to_string())?;
        return Ok(pipeline);
    }
    let decodebin = make("decodebin");
    pipeline.add_many([&src, &decodebin]).unwrap();
    src.link(&decodebin).map_err(|e| e.to_string())?;

    // Low-latency decoding: frame threading would hold frames back by one per thread.
    decodebin.connect("deep-element-added", false, |args| {
        let element = args[2].get::<gst::Element>().ok()?;
        let factory = element
            .factory()
            .map(|f| f.name().to_string())
            .unwrap_or_default();
        if factory.starts_with("avdec_h26") {
            element.set_property_from_str("thread-type", "slice");
        }
        None
    });

    {
        let (shared, session) = (shared.clone(), session.clone());
        decodebin.connect_no_more_pads(move |_| {
            let mut pads = session.pads.lock().unwrap().clone();
            pads.sort();
            *shared.streams.lock().unwrap() = Some(pads);
        });
    }

    let weak_pipeline = pipeline.downgrade();
    let shared = shared.clone();
    let session = session.clone();
    decodebin.connect_pad_added(move |_db, pad| {
        let Some(pipeline) = weak_pipeline.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
            return;
        };
        session.pads.lock().unwrap().push(name.clone());
        let result = if name.starts_with("video/") {
            video_branch(&pipeline, pad, shared.clone(), session.clone())
        } else if name.starts_with("audio/") {
            audio_branch(&pipeline, pad, shared.clone(), session.clone())
        } else {
            Ok(())
        };
        if let Err(e) = result {
            shared.note_error(format!("cannot link {name}: {e}"));
        }
    });
    Ok(pipeline)
}

fn add_chain(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    elements: &[&gst::Element],
) -> Result<(), String> {
    pipeline
        .add_many(elements.iter().copied())
        .map_err(|e| e.to_string())?;
    gst::Element::link_many(elements.iter().copied()).map_err(|e| e.to_string())?;
    for e in elements.iter().rev() {
        e.sync_state_with_parent().map_err(|e| e.to_string())?;
    }
    let sink = elements[0].static_pad("sink").unwrap();
    pad.link(&sink).map(|_| ()).map_err(|e| format!("{e:?}"))
}

fn video_branch(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    shared: Arc<Shared>,
    session: Arc<Session>,
) -> Result<(), String> {
    let queue = make("queue");
    let convert = make("videoconvert");
    let appsink = gst_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "RGB")
                .build(),
        )
        .sync(false)
        .max_buffers(4)
        .enable_last_sample(false)
        .qos(false)
        .build();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let arrival = Instant::now();
                on_video(&shared, &session, &sample, arrival);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let appsink: gst::Element = appsink.upcast();
    add_chain(pipeline, pad, &[&queue, &convert, &appsink])
}

fn on_video(shared: &Shared, session: &Session, sample: &gst::Sample, arrival: Instant) {
    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
        return;
    };
    let Ok(info) = gst_video::VideoInfo::from_caps(caps) else {
        return;
    };
    let Ok(vframe) = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info) else {
        return;
    };
    let (w, h) = (info.width(), info.height());
    let stride = vframe.plane_stride()[0] as usize;
    let Ok(plane) = vframe.plane_data(0) else {
        return;
    };
    let row = w as usize * 3;
    let mut data = Vec::with_capacity(row * h as usize);
    if stride == row {
        data.extend_from_slice(&plane[..row * h as usize]);
    } else {
        for y in 0..h as usize {
            data.extend_from_slice(&plane[y * stride..y * stride + row]);
        }
    }
    let pts = buffer.pts();
    let frame = Arc::new(Frame {
        width: w,
        height: h,
        data,
        pts,
        arrival,
    });
    session.media(shared);
    {
        let mut watch = shared.watch.lock().unwrap();
        if !watch.points.is_empty() {
            let pixels = watch
                .points
                .iter()
                .map(|&(x, y)| {
                    if x < w && y < h {
                        frame.pixel(x, y)
                    } else {
                        [0, 0, 0]
                    }
                })
                .collect();
            if watch.frames.len() >= WATCH_KEEP {
                watch.frames.pop_front();
            }
            watch.frames.push_back((pts, pixels));
        }
    }
    {
        let mut times = shared.times.lock().unwrap();
        while times
            .front()
            .is_some_and(|(t, _)| arrival.duration_since(*t) > TIMES_KEEP)
        {
            times.pop_front();
        }
        times.push_back((arrival, pts));
    }
    *shared.latest.lock().unwrap() = Some(frame);
    shared.count.fetch_add(1, Ordering::SeqCst);
    shared.new_frame.notify_all();
}

fn audio_branch(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    shared: Arc<Shared>,
    session: Arc<Session>,
) -> Result<(), String> {
    let queue = make("queue");
    let convert = make("audioconvert");
    let resample = make("audioresample");
    let appsink = gst_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("audio/x-raw")
                .field("format", "F32LE")
                .field("layout", "interleaved")
                .field("rate", AUDIO_RATE as i32)
                .field("channels", 1i32)
                .build(),
        )
        .sync(false)
        .enable_last_sample(false)
        .qos(false)
        .build();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buffer) = sample.buffer() {
                    if let Ok(map) = buffer.map_readable() {
                        let samples: Vec<f32> = map
                            .as_slice()
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect();
                        session.media(&shared);
                        let mut ring = shared.audio.lock().unwrap();
                        let excess = (ring.len() + samples.len()).saturating_sub(AUDIO_RING);
                        let excess = excess.min(ring.len());
                        ring.drain(..excess);
                        ring.extend(samples.iter().copied());
                        shared
                            .audio_total
                            .fetch_add(samples.len() as u64, Ordering::SeqCst);
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let appsink: gst::Element = appsink.upcast();
    add_chain(pipeline, pad, &[&queue, &convert, &resample, &appsink])
}

/// Decodes a JPEG (a snapshot) into a [`Frame`]; panics when it is not one.
pub fn decode_jpeg(bytes: &[u8]) -> Frame {
    init();
    let caps = gst::Caps::new_empty_simple("image/jpeg");
    let pipeline = gst::parse::launch(
        "appsrc name=src ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false",
    )
    .expect("a JPEG decoder")
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    src.set_caps(Some(&caps));
    pipeline.set_state(gst::State::Playing).unwrap();
    src.push_buffer(gst::Buffer::from_slice(bytes.to_vec()))
        .unwrap();
    src.end_of_stream().unwrap();
    let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(10));
    pipeline.set_state(gst::State::Null).unwrap();
    let sample = sample.expect("the JPEG decoded to a picture");
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let buffer = sample.buffer().unwrap();
    let map = buffer.map_readable().unwrap();
    let (w, h) = (info.width(), info.height());
    let stride = info.stride()[0] as usize;
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for row in 0..h as usize {
        data.extend_from_slice(&map[row * stride..row * stride + w as usize * 3]);
    }
    Frame {
        width: w,
        height: h,
        data,
        pts: None,
        arrival: Instant::now(),
    }
}

/// GETs `url` and returns status and body (a snapshot); panics when the request fails.
pub fn fetch(url: &str) -> (u16, Vec<u8>) {
    let resp = reqwest::blocking::get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.bytes().map(|b| b.to_vec()).unwrap_or_default())
}

/// The JPEG at `url` (a snapshot), decoded; panics unless it is served as one.
pub fn snapshot(url: &str) -> Frame {
    let (status, body) = fetch(url);
    assert_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&body));
    decode_jpeg(&body)
}
