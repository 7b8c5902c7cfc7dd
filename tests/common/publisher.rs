//! A synthetic RTMP publisher: an in-process GStreamer pipeline, like an encoder in the field.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use gst::prelude::*;

use super::util::{init, make};

/// What the publisher's picture shows.
#[derive(Clone, Debug)]
pub enum Pattern {
    /// One colour, 0xRRGGBB; changeable live with [`Publisher::set_color`].
    Solid(u32),
    /// Four colours: top-left, top-right, bottom-left, bottom-right.
    Quadrants([u32; 4]),
    /// `a` during even wall-clock seconds, `b` during odd ones (`SystemTime`), switching at the second
    /// boundary (to within a frame), so publishers started at different times flip at the same instants.
    Flip { a: u32, b: u32 },
    /// Random noise in every frame: a picture no encoder can make small (streams of real bitrate).
    Snow,
}

#[derive(Clone, Debug)]
pub struct PublishOpts {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub pattern: Pattern,
    /// A sine at this frequency; `None` publishes silence (every stream has an audio track).
    pub tone_hz: Option<f64>,
    /// Amplitude of the sine, 0..1.
    pub tone_volume: f64,
    /// A `user_data_unregistered` SEI message (UUID, payload) put into every video frame, in front of its
    /// first slice. (x264enc writes its own message, its version string, on the first keyframe only.)
    pub sei: Option<([u8; 16], Vec<u8>)>,
}

impl Default for PublishOpts {
    fn default() -> Self {
        Self {
            width: 320,
            height: 180,
            fps: 30,
            pattern: Pattern::Solid(0xFF0000),
            tone_hz: None,
            tone_volume: 0.1,
            sei: None,
        }
    }
}

/// A live H.264 + AAC publisher to an RTMP URL: videotestsrc → x264enc (zerolatency, ultrafast, one
/// keyframe per second) and audiotestsrc → avenc_aac (48 kHz stereo), muxed by flvmux into rtmp2sink.
/// Dropping it stops it like [`Publisher::stop`].
pub struct Publisher {
    pipeline: gst::Pipeline,
    /// The solid-colour source of `Pattern::Solid`.
    solid: Option<gst::Element>,
    errors: Arc<Mutex<Vec<String>>>,
    url: String,
    stopped: bool,
}

fn argb(rgb: u32) -> u32 {
    0xFF00_0000 | (rgb & 0xFF_FFFF)
}

fn solid_source(rgb: u32) -> gst::Element {
    let src = make("videotestsrc");
    src.set_property("is-live", true);
    src.set_property_from_str("pattern", "solid-color");
    src.set_property("foreground-color", argb(rgb));
    src
}

fn video_caps(width: u32, height: u32, fps: u32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", width as i32)
        .field("height", height as i32)
        .field("framerate", gst::Fraction::new(fps as i32, 1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build()
}

fn capsfilter(caps: gst::Caps) -> gst::Element {
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .expect("capsfilter")
}

/// The colour a `Flip` shows at wall-clock time `t`.
fn flip_color(t: SystemTime, a: u32, b: u32) -> u32 {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if secs.is_multiple_of(2) {
        a
    } else {
        b
    }
}

/// `au` (AVC, 4-byte length prefixes, as h264parse hands flvmux) with `nal` inserted before its first slice.
fn with_nal_before_first_slice(au: &[u8], nal: &[u8]) -> Vec<u8> {
    let mut at = 0;
    while at + 5 <= au.len() && !(1..=5).contains(&(au[at + 4] & 0x1f)) {
        at += 4 + u32::from_be_bytes([au[at], au[at + 1], au[at + 2], au[at + 3]]) as usize;
    }
    let at = at.min(au.len());
    let mut out = Vec::with_capacity(au.len() + 4 + nal.len());
    out.extend_from_slice(&au[..at]);
    out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    out.extend_from_slice(nal);
    out.extend_from_slice(&au[at..]);
    out
}

/// Puts `nal` into every access unit leaving `parse` (an h264parse feeding flvmux).
fn insert_sei(parse: &gst::Element, nal: Vec<u8>) {
    parse
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
                let Ok(map) = buffer.map_readable() else {
                    return gst::PadProbeReturn::Ok;
                };
                let data = with_nal_before_first_slice(&map, &nal);
                drop(map);
                let mut out = gst::Buffer::from_mut_slice(data);
                {
                    let o = out.get_mut().unwrap();
                    o.set_pts(buffer.pts());
                    o.set_dts(buffer.dts());
                    o.set_duration(buffer.duration());
                    o.set_flags(buffer.flags());
                }
                *buffer = out;
            }
            gst::PadProbeReturn::Ok
        });
}

/// Everything up to flvmux: returns the pipeline, the muxer (its src pad unlinked) and the solid source.
/// `file_secs`: `None` for live sources; `Some(n)` for non-live sources that stop after n seconds.
fn build_media(
    opts: &PublishOpts,
    name: &str,
    file_secs: Option<u32>,
) -> (gst::Pipeline, gst::Element, Option<gst::Element>) {
    init();
    assert!(
        opts.width >= 16 && opts.height >= 16 && opts.fps >= 1,
        "bad PublishOpts {opts:?}"
    );
    let pipeline = gst::Pipeline::with_name(name);
    let (w, h, fps) = (opts.width, opts.height, opts.fps);
    let live = file_secs.is_none();
    let source = |rgb: u32| {
        let src = solid_source(rgb);
        src.set_property("is-live", live);
        if let Some(secs) = file_secs {
            src.set_property("num-buffers", (secs * fps) as i32);
        }
        src
    };
    // --- video ---
    let mut solid = None;
    let video_out: gst::Element = match &opts.pattern {
        Pattern::Solid(rgb) => {
            let src = source(*rgb);
            solid = Some(src.clone());
            let caps = capsfilter(video_caps(w, h, fps));
            pipeline.add_many([&src, &caps]).unwrap();
            src.link(&caps).unwrap();
            caps
        }
        Pattern::Flip { a, b } => {
            let (a, b) = (*a, *b);
            let first = if live { SystemTime::now() } else { UNIX_EPOCH };
            let src = source(flip_color(first, a, b));
            let caps = capsfilter(video_caps(w, h, fps));
            pipeline.add_many([&src, &caps]).unwrap();
            src.link(&caps).unwrap();
            // videotestsrc renders frame N+1 right after frame N has been pushed, then waits on the
            // clock until N+1's time. So when frame N passes this probe, set the colour for the wall
            // time at which N+1 will be pushed.
            let frame = gst::ClockTime::from_nseconds(1_000_000_000 / fps as u64);
            let weak = src.downgrade();
            src.static_pad("src").unwrap().add_probe(
                gst::PadProbeType::BUFFER,
                move |_pad, info| {
                    let Some(src) = weak.upgrade() else {
                        return gst::PadProbeReturn::Ok;
                    };
                    let Some(buffer) = info.buffer() else {
                        return gst::PadProbeReturn::Ok;
                    };
                    let next_running = buffer.pts().map(|p| p + buffer.duration().unwrap_or(frame));
                    let next_wall = match (next_running, src.clock(), src.base_time()) {
                        // A file: flip on the stream's own seconds.
                        (Some(running), _, _) if !live => {
                            UNIX_EPOCH + Duration::from_nanos(running.nseconds())
                        }
                        (Some(running), Some(clock), Some(base)) => {
                            let now_clock = clock.time();
                            let now_wall = SystemTime::now();
                            let target = base + running;
                            if target >= now_clock {
                                now_wall + Duration::from_nanos((target - now_clock).nseconds())
                            } else {
                                now_wall - Duration::from_nanos((now_clock - target).nseconds())
                            }
                        }
                        _ => SystemTime::now() + Duration::from_nanos(frame.nseconds()),
                    };
                    src.set_property("foreground-color", argb(flip_color(next_wall, a, b)));
                    gst::PadProbeReturn::Ok
                },
            );
            caps
        }
        Pattern::Snow => {
            let src = make("videotestsrc");
            src.set_property_from_str("pattern", "snow");
            src.set_property("is-live", live);
            if let Some(secs) = file_secs {
                src.set_property("num-buffers", (secs * fps) as i32);
            }
            let caps = capsfilter(video_caps(w, h, fps));
            pipeline.add_many([&src, &caps]).unwrap();
            src.link(&caps).unwrap();
            caps
        }
        Pattern::Quadrants(colors) => {
            let comp = make("compositor");
            comp.set_property_from_str("background", "black");
            let caps = capsfilter(video_caps(w, h, fps));
            pipeline.add_many([&comp, &caps]).unwrap();
            comp.link(&caps).unwrap();
            // Even split so chroma planes stay aligned.
            let (w0, h0) = ((w / 2) & !1, (h / 2) & !1);
            let rects = [
                (0, 0, w0, h0),
                (w0, 0, w - w0, h0),
                (0, h0, w0, h - h0),
                (w0, h0, w - w0, h - h0),
            ];
            for (rgb, (x, y, qw, qh)) in colors.iter().zip(rects) {
                let src = source(*rgb);
                let qcaps = capsfilter(video_caps(qw, qh, fps));
                pipeline.add_many([&src, &qcaps]).unwrap();
                src.link(&qcaps).unwrap();
                let pad = comp.request_pad_simple("sink_%u").unwrap();
                pad.set_property("xpos", x as i32);
                pad.set_property("ypos", y as i32);
                qcaps.static_pad("src").unwrap().link(&pad).unwrap();
            }
            caps
        }
    };
    let convert = make("videoconvert");
    // x264enc picks High 4:4:4 unless I420 is forced in front of it.
    let i420 = capsfilter(
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .build(),
    );
    let enc = make("x264enc");
    enc.set_property_from_str("tune", "zerolatency");
    enc.set_property_from_str("speed-preset", "ultrafast");
    enc.set_property("key-int-max", fps);
    enc.set_property("bitrate", ((w * h * fps) / 15_000).clamp(300, 4_000));
    let parse = make("h264parse");
    if let Some((uuid, data)) = &opts.sei {
        insert_sei(&parse, ::tessera::engine::sei::sei_nal(uuid, data));
    }
    let vqueue = make("queue");

    // --- audio ---
    let asrc = make("audiotestsrc");
    asrc.set_property("is-live", live);
    if let Some(secs) = file_secs {
        asrc.set_property("num-buffers", (secs * 50) as i32);
    }
    asrc.set_property("samplesperbuffer", 960i32); // 20 ms
    match opts.tone_hz {
        Some(hz) => {
            asrc.set_property_from_str("wave", "sine");
            asrc.set_property("freq", hz);
            asrc.set_property("volume", opts.tone_volume);
        }
        None => asrc.set_property_from_str("wave", "silence"),
    }
    let acaps = capsfilter(
        gst::Caps::builder("audio/x-raw")
            .field("rate", 48_000i32)
            .field("channels", 2i32)
            .build(),
    );
    let aconv = make("audioconvert");
    let aenc = make("avenc_aac");
    let aqueue = make("queue");

    // --- mux ---
    let mux = make("flvmux");
    mux.set_property("streamable", true);

    pipeline
        .add_many([
            &convert, &i420, &enc, &parse, &vqueue, &asrc, &acaps, &aconv, &aenc, &aqueue, &mux,
        ])
        .unwrap();
    gst::Element::link_many([&video_out, &convert, &i420, &enc, &parse, &vqueue]).unwrap();
    gst::Element::link_many([&asrc, &acaps, &aconv, &aenc, &aqueue]).unwrap();
    vqueue.link_pads(None, &mux, Some("video")).unwrap();
    aqueue.link_pads(None, &mux, Some("audio")).unwrap();
    (pipeline, mux, solid)
}

impl Publisher {
    /// A 320×180 publisher of one colour (0xRRGGBB) with a silent audio track.
    pub fn solid(url: &str, rgb: u32) -> Publisher {
        Publisher::start(
            url,
            PublishOpts {
                pattern: Pattern::Solid(rgb),
                ..PublishOpts::default()
            },
        )
    }

    /// Builds and plays the publisher. Returns once the pipeline is PLAYING; does not wait for the RTMP
    /// server (connection errors are collected in [`Publisher::errors`]).
    pub fn start(url: &str, opts: PublishOpts) -> Publisher {
        let name = format!("publisher-{}", url.rsplit('/').next().unwrap_or(""));
        let (pipeline, mux, solid) = build_media(&opts, &name, None);
        let sink = make("rtmp2sink");
        sink.set_property("location", url);
        pipeline.add(&sink).unwrap();
        mux.link(&sink).unwrap();

        let errors = Arc::new(Mutex::new(Vec::new()));
        {
            let errors = errors.clone();
            pipeline.bus().unwrap().set_sync_handler(move |_bus, msg| {
                if let gst::MessageView::Error(e) = msg.view() {
                    let text = format!(
                        "{}: {} ({:?})",
                        msg.src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_default(),
                        e.error(),
                        e.debug()
                    );
                    errors.lock().unwrap().push(text);
                }
                gst::BusSyncReply::Drop
            });
        }

        pipeline
            .set_state(gst::State::Playing)
            .expect("publisher pipeline to PLAYING");
        let (res, state, _) = pipeline.state(gst::ClockTime::from_seconds(10));
        if res.is_err() || state != gst::State::Playing {
            let errs = errors.lock().unwrap().clone();
            if errs.is_empty() {
                let _ = pipeline.set_state(gst::State::Null);
                panic!("publisher to {url} did not reach PLAYING ({res:?}, {state:?})");
            }
            // Typically the RTMP server refused the connection: hand back a failed publisher, as a real
            // encoder that could not connect would be.
            eprintln!("publisher to {url} failed to start: {errs:?}");
        }
        Publisher {
            pipeline,
            solid,
            errors,
            url: url.to_string(),
            stopped: false,
        }
    }

    /// Changes the colour of a `Pattern::Solid` publisher, live (takes effect within a frame or two).
    /// Panics for other patterns.
    pub fn set_color(&self, rgb: u32) {
        let src = self.solid.as_ref().expect("set_color needs Pattern::Solid");
        src.set_property("foreground-color", argb(rgb));
    }

    /// The URL this publisher publishes to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Errors the pipeline posted so far (e.g. the RTMP server refused or dropped the connection).
    /// A publisher whose connection broke stays broken: start a new one.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    /// Whether the pipeline reported an error (typically: the RTMP connection failed or broke).
    pub fn failed(&self) -> bool {
        !self.errors.lock().unwrap().is_empty()
    }

    /// Stops abruptly: pipeline to NULL without EOS, the TCP connection just closes, like a killed encoder.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if !self.stopped {
            self.stopped = true;
            let _ = self.pipeline.set_state(gst::State::Null);
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Writes an FLV file (H.264 + AAC, same encoding and patterns as [`Publisher`]) of `secs` seconds to
/// `path`, e.g. into [`super::Nginx::http_dir`] for HTTP-FLV inputs. `Pattern::Flip` flips on the file's
/// own seconds (even: `a`). Panics on failure.
pub fn write_flv(path: &std::path::Path, opts: &PublishOpts, secs: u32) {
    assert!(secs >= 1);
    let (pipeline, mux, _) = build_media(opts, "flv-writer", Some(secs));
    let sink = make("filesink");
    sink.set_property("location", path.to_str().expect("utf-8 path"));
    pipeline.add(&sink).unwrap();
    mux.link(&sink).unwrap();
    pipeline
        .set_state(gst::State::Playing)
        .expect("flv writer to PLAYING");
    let bus = pipeline.bus().unwrap();
    let result = match bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        Some(msg) => match msg.view() {
            gst::MessageView::Eos(_) => Ok(()),
            gst::MessageView::Error(e) => Err(format!("{} ({:?})", e.error(), e.debug())),
            _ => unreachable!(),
        },
        None => Err("timed out".to_string()),
    };
    let _ = pipeline.set_state(gst::State::Null);
    if let Err(e) = result {
        panic!("writing {} failed: {e}", path.display());
    }
}
