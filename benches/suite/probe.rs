//! Watching the contenders' outputs from the RTMP server, as a viewer would.
//!
//! - [`TagProbe`] reads an output's FLV tags without decoding (cheap enough to watch every output of a capacity
//!   run): frame rate and the worst gap, both in the stream's timestamps and in arrival time.
//! - [`StampProbe`] decodes one output and reads the stamp of every input from its rect in each frame: the
//!   end-to-end latency of each input and the skew between them.
//!
//! Both reconnect until stopped, so they can start before the output exists. Their sinks do not wait for
//! preroll: an FLV stream whose audio pad comes late (or never) would otherwise hold the pipeline in PAUSED, and
//! the probe would see no frame at all.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use gst::prelude::*;
use tessera::flv::{self, Item, TagKind};

use crate::{media, publish::Publisher};

/// Runs `build` → PLAYING until an error or EOS, then again after a pause, until `stop`.
fn supervise(
    stop: Arc<AtomicBool>,
    build: impl Fn() -> Result<gst::Pipeline, String> + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let Ok(pipeline) = build() else {
                std::thread::sleep(Duration::from_millis(300));
                continue;
            };
            let bus = pipeline.bus().expect("pipelines have a bus");
            if pipeline.set_state(gst::State::Playing).is_ok() {
                while !stop.load(Ordering::SeqCst) {
                    if bus
                        .timed_pop_filtered(
                            gst::ClockTime::from_mseconds(100),
                            &[gst::MessageType::Error, gst::MessageType::Eos],
                        )
                        .is_some()
                    {
                        break;
                    }
                }
            }
            let _ = pipeline.set_state(gst::State::Null);
            if !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    })
}

/// What a viewer saw of an output's pictures during a window.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct FlowStats {
    pub fps: f64,
    /// Worst step between consecutive video timestamps (a dropped or missing frame shows here), ms.
    pub worst_ts_gap_ms: f64,
    /// Worst time between two video tags arriving, ms.
    pub worst_arrival_gap_ms: f64,
    /// Audio dropouts: each step between audio timestamps longer than two AAC frames, and each run of silent
    /// AAC frames (every input sends a tone, so a silent frame in the window is sound the mixer did not get in
    /// time and filled with silence).
    pub audio_gaps: u32,
    /// Silent audio in the window, ms (AAC frames of 1024 samples at the stream's rate).
    pub silent_ms: f64,
}

/// An AAC frame (raw, without the FLV tag's two header bytes) this small carries silence: avenc_aac at
/// 128 kbit/s makes 6 bytes of a silent frame, 60 and more of a quiet tone.
const SILENT_AAC_BYTES: usize = 16;

pub struct TagProbe {
    frames: Arc<Mutex<Vec<(Instant, u32)>>>,
    /// Audio frames: arrival, timestamp (ms), whether silent.
    audio: Arc<Mutex<Vec<(Instant, u32, bool)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TagProbe {
    pub fn start(url: &str) -> TagProbe {
        let frames = Arc::new(Mutex::new(Vec::new()));
        let audio = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (frames, audio, url) = (frames.clone(), audio.clone(), url.to_string());
            supervise(stop.clone(), move || {
                let pipeline = gst::Pipeline::new();
                let src = rtmp2src(&url)?;
                let parser = Mutex::new(flv::Parser::new());
                let (frames, audio) = (frames.clone(), audio.clone());
                let sink = gst_app::AppSink::builder()
                    .sync(false)
                    .callbacks(
                        gst_app::AppSinkCallbacks::builder()
                            .new_sample(move |sink| {
                                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                                let now = Instant::now();
                                let Some(buffer) = sample.buffer() else {
                                    return Ok(gst::FlowSuccess::Ok);
                                };
                                let map =
                                    buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                                let mut parser = parser.lock().unwrap();
                                parser.push(map.as_slice());
                                while let Some(item) = parser.next_item() {
                                    let Item::Tag(t) = item else { continue };
                                    if flv::is_sequence_header(&t) {
                                        continue;
                                    }
                                    match t.kind {
                                        TagKind::Video => {
                                            frames.lock().unwrap().push((now, t.timestamp))
                                        }
                                        TagKind::Audio => {
                                            let silent =
                                                t.data.len().saturating_sub(2) <= SILENT_AAC_BYTES;
                                            audio.lock().unwrap().push((now, t.timestamp, silent));
                                        }
                                        _ => {}
                                    }
                                }
                                Ok(gst::FlowSuccess::Ok)
                            })
                            .build(),
                    )
                    .build();
                pipeline
                    .add_many([&src, sink.upcast_ref()])
                    .map_err(|e| e.to_string())?;
                src.link(&sink).map_err(|e| e.to_string())?;
                Ok(pipeline)
            })
        };
        TagProbe {
            frames,
            audio,
            stop,
            thread: Some(thread),
        }
    }

    /// The frames that arrived in [from, to].
    pub fn stats(&self, from: Instant, to: Instant) -> FlowStats {
        let frames = self.frames.lock().unwrap();
        let window: Vec<_> = frames
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .collect();
        let secs = (to - from).as_secs_f64().max(1e-3);
        let mut stats = FlowStats {
            fps: window.len() as f64 / secs,
            ..FlowStats::default()
        };
        for pair in window.windows(2) {
            let ((a0, t0), (a1, t1)) = (pair[0], pair[1]);
            stats.worst_arrival_gap_ms = stats
                .worst_arrival_gap_ms
                .max((*a1 - *a0).as_secs_f64() * 1000.0);
            if t1 >= t0 {
                stats.worst_ts_gap_ms = stats.worst_ts_gap_ms.max(f64::from(t1 - t0));
            }
        }
        // Nothing arrived at all: the whole window is one gap.
        if window.len() < 2 {
            stats.worst_arrival_gap_ms = secs * 1000.0;
            stats.worst_ts_gap_ms = secs * 1000.0;
        }
        drop(frames);
        let audio = self.audio.lock().unwrap();
        let window: Vec<_> = audio
            .iter()
            .filter(|(t, _, _)| *t >= from && *t <= to)
            .collect();
        // The frame duration, from the timestamps themselves (1024 samples: 23 ms at 44.1 kHz).
        let mut steps: Vec<u32> = window
            .windows(2)
            .map(|p| p[1].1.saturating_sub(p[0].1))
            .collect();
        steps.sort_unstable();
        let frame_ms = steps.get(steps.len() / 2).copied().unwrap_or(23).max(1);
        let mut silent_run = false;
        for (i, (_, ts, silent)) in window.iter().enumerate() {
            if *silent {
                stats.silent_ms += f64::from(frame_ms);
                if !silent_run {
                    stats.audio_gaps += 1;
                }
            }
            silent_run = *silent;
            if let Some((_, prev, _)) = i.checked_sub(1).map(|j| window[j]) {
                if ts.saturating_sub(*prev) > 2 * frame_ms {
                    stats.audio_gaps += 1;
                }
            }
        }
        stats
    }
}

impl Drop for TagProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn rtmp2src(url: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make("rtmp2src")
        .property("location", url)
        .build()
        .map_err(|e| e.to_string())
}

/// One input's rect in an output: where its stamp's blocks land, and who sent it.
pub struct Watch {
    pub input: String,
    /// Output pixel positions of the 16 block centres.
    pub points: Vec<(u32, u32)>,
    pub publisher: Arc<Publisher>,
}

/// One decoded output frame: when it was seen, and each watched input's frame index and age in it (`None`: stamp
/// unreadable).
type Seen = (Instant, Vec<Option<(u32, f64)>>);

pub struct StampProbe {
    watches: Arc<Vec<Watch>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Latency figures of one window.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LatencyStats {
    /// Per input: (name, p50 s, p95 s, share of frames whose stamp was read).
    pub inputs: Vec<(String, f64, f64, f64)>,
    /// Spread between the inputs' ages within one frame, p50 and p95, seconds.
    pub skew_p50: f64,
    pub skew_p95: f64,
    pub frames: usize,
    /// Share of output frames, worst input, that show the same input frame as the frame before (an input frame
    /// arrived too late for its turn, or an input stalled). Ideal: 0 (inputs and output both run at 30 fps).
    pub repeated: f64,
    /// Share of output frames, worst input, that skip one or more input frames.
    pub skipped: f64,
}

impl LatencyStats {
    /// The worst input's p50 and p95.
    pub fn worst(&self) -> Option<(f64, f64)> {
        self.inputs
            .iter()
            .filter(|i| i.3 > 0.0)
            .map(|i| (i.1, i.2))
            .reduce(|a, b| (a.0.max(b.0), a.1.max(b.1)))
    }
}

pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let i = ((values.len() - 1) as f64 * p).round() as usize;
    values[i]
}

impl StampProbe {
    pub fn start(url: &str, watches: Vec<Watch>) -> StampProbe {
        let watches = Arc::new(watches);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (watches, seen, url) = (watches.clone(), seen.clone(), url.to_string());
            supervise(stop.clone(), move || {
                // HTTP-FLV (Tessera's live preview) or RTMP.
                let source = if url.starts_with("http") {
                    format!("souphttpsrc location={url} is-live=true")
                } else {
                    format!("rtmp2src location={url}")
                };
                let desc = format!(
                    "{source} ! flvdemux name=d \
                     d.video ! queue ! h264parse ! avdec_h264 ! video/x-raw,format=I420 \
                     ! appsink name=sink sync=false async=false \
                     d.audio ! queue ! fakesink sync=false async=false"
                );
                let pipeline = gst::parse::launch(&desc)
                    .map_err(|e| e.to_string())?
                    .downcast::<gst::Pipeline>()
                    .map_err(|_| "not a pipeline".to_string())?;
                let sink = pipeline
                    .by_name("sink")
                    .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
                    .ok_or("no appsink")?;
                let (watches, seen) = (watches.clone(), seen.clone());
                sink.set_callbacks(
                    gst_app::AppSinkCallbacks::builder()
                        .new_sample(move |sink| {
                            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                            let now = Instant::now();
                            if let Some(ages) = read_frame(&sample, &watches, now) {
                                seen.lock().unwrap().push((now, ages));
                            }
                            Ok(gst::FlowSuccess::Ok)
                        })
                        .build(),
                );
                Ok(pipeline)
            })
        };
        StampProbe {
            watches,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn stats(&self, from: Instant, to: Instant) -> LatencyStats {
        let seen = self.seen.lock().unwrap();
        let window: Vec<_> = seen
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .collect();
        let mut stats = LatencyStats {
            frames: window.len(),
            ..LatencyStats::default()
        };
        for (i, w) in self.watches.iter().enumerate() {
            let mut ages: Vec<f64> = window
                .iter()
                .filter_map(|(_, a)| a[i].map(|r| r.1))
                .collect();
            // Consecutive output frames that both show this input: the input frame index should step by one.
            // A step back is the publisher looping its file; not counted.
            let (mut repeated, mut skipped, mut pairs) = (0usize, 0usize, 0usize);
            for pair in window.windows(2) {
                if let (Some((a, _)), Some((b, _))) = (pair[0].1[i], pair[1].1[i]) {
                    pairs += 1;
                    if b == a {
                        repeated += 1;
                    } else if b > a + 1 {
                        skipped += 1;
                    }
                }
            }
            let share = |n: usize| n as f64 / pairs.max(1) as f64;
            stats.repeated = stats.repeated.max(share(repeated));
            stats.skipped = stats.skipped.max(share(skipped));
            let read = ages.len() as f64 / window.len().max(1) as f64;
            stats.inputs.push((
                w.input.clone(),
                percentile(&mut ages, 0.5),
                percentile(&mut ages, 0.95),
                read,
            ));
        }
        let mut skews: Vec<f64> = window
            .iter()
            .filter_map(|(_, a)| {
                let read: Vec<f64> = a.iter().flatten().map(|r| r.1).collect();
                (read.len() == a.len() && a.len() > 1).then(|| {
                    read.iter().copied().fold(f64::MIN, f64::max)
                        - read.iter().copied().fold(f64::MAX, f64::min)
                })
            })
            .collect();
        stats.skew_p50 = percentile(&mut skews, 0.5);
        stats.skew_p95 = percentile(&mut skews, 0.95);
        stats
    }
}

impl Drop for StampProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_frame(
    sample: &gst::Sample,
    watches: &[Watch],
    now: Instant,
) -> Option<Vec<Option<(u32, f64)>>> {
    let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
    let buffer = sample.buffer()?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).ok()?;
    let luma = frame.plane_data(0).ok()?;
    let stride = info.stride()[0] as usize;
    let (w, h) = (info.width(), info.height());
    Some(
        watches
            .iter()
            .map(|watch| {
                let samples: Vec<u8> = watch
                    .points
                    .iter()
                    .map(|&(x, y)| {
                        // A 3x3 average: one pixel can sit on a block edge after scaling.
                        let mut sum = 0u32;
                        let mut n = 0u32;
                        for yy in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                            for xx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                                sum += u32::from(luma[yy as usize * stride + xx as usize]);
                                n += 1;
                            }
                        }
                        (sum / n.max(1)) as u8
                    })
                    .collect();
                media::read_stamp(&samples)
                    .and_then(|index| Some((index, watch.publisher.age(index, now)?)))
            })
            .collect(),
    )
}
