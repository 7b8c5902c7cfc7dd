//! Encoding and delivery. Each distinct encoding of a mix is one encoder branch (tee → x264 + AAC → FLV, or
//! AAC/MP3 → FLV alone for an audio-only output); its FLV tags are fanned out to one supervised push per target
//! ([`crate::media::push`]: a queue and an RTMP publisher, the same as a relay output). A target that is slow, refusing or
//! unreachable only loses its own data: its queue is bounded and it skips to the next resumption point (a video
//! keyframe; any audio tag when the stream has no video) when full, and it reconnects with backoff on its own.

use std::sync::{Arc, Mutex};

use gst::prelude::*;

use crate::{
    config::EgressConfig,
    flv::{
        codec::{VideoCodec as FlvCodec, VideoForm},
        mux::{MuxAudio, MuxEvent, MuxTrack, Muxer},
    },
    media::{
        meter::RateMeter,
        push::{Observer, PushSession, PushTarget},
        Handle, Policy, Retries, Supervisor,
    },
    model::{AudioCodec, FlvVideoForm, OutputSpec, VideoCodec},
};

/// x265's preset for H.265 outputs: H.265 costs several times H.264's CPU at the same preset, so a faster one
/// keeps an H.265 output's cost near an H.264 one's.
const X265_PRESET: &str = "superfast";

/// Delivers one encoder's FLV tags to its targets.
pub struct Fanout {
    /// FLV stream headers (file header, metadata, codec configuration), sent first on every (re)connect.
    headers: Mutex<Option<Arc<Vec<gst::Buffer>>>>,
    targets: Mutex<Arc<Vec<Arc<PushTarget>>>>,
    /// Whether the stream has a video track; without one every audio tag is a resumption point.
    has_video: bool,
    /// Encoded bytes per second, for status.
    pub bitrate: RateMeter,
    /// The live preview's viewers of this encoding.
    pub viewers: Arc<crate::preview::Viewers>,
    /// Asks the video encoder for a keyframe: a target that connects, or skipped ahead, starts at once instead
    /// of waiting up to a GOP for the next one. `None` without video.
    keyframe: Mutex<Option<KeyframeRequest>>,
    /// When a keyframe was last asked for: at most one per [`KEYFRAME_REQUEST_EVERY`].
    last_keyframe_request: Mutex<Option<std::time::Instant>>,
}

type KeyframeRequest = Box<dyn Fn() + Send + Sync>;

/// The shortest time between two keyframes asked for by waiting targets: targets reconnecting in a loop must not
/// turn the stream into keyframes.
const KEYFRAME_REQUEST_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl Fanout {
    fn new(has_video: bool) -> Arc<Self> {
        Arc::new(Self {
            headers: Mutex::new(None),
            targets: Mutex::new(Arc::new(Vec::new())),
            has_video,
            bitrate: RateMeter::new(std::time::Duration::from_secs(2)),
            viewers: crate::preview::Viewers::new("mix output"),
            keyframe: Mutex::new(None),
            last_keyframe_request: Mutex::new(None),
        })
    }

    /// New stream headers (file header, metadata, decoder configurations), sent first on every (re)connect.
    fn set_headers(&self, buffers: Vec<gst::Buffer>) {
        *self.headers.lock().unwrap() = Some(Arc::new(buffers));
    }

    /// One FLV tag for every target (none before the stream headers are known).
    fn deliver(&self, buffer: &gst::Buffer) {
        self.bitrate.record(buffer.size() as u64 * 8);
        let Some(headers) = self.headers.lock().unwrap().clone() else {
            return;
        };
        let targets = self.targets.lock().unwrap().clone();
        let watched = self.viewers.count() > 0;
        if targets.is_empty() && !watched {
            return;
        }
        let resumption = is_resumption_point(buffer, self.has_video);
        let mut waiting = false;
        for t in targets.iter() {
            waiting |= t.push(buffer, resumption, &headers);
        }
        if watched {
            waiting |= self.viewers.push(buffer, resumption, &headers);
        }
        if waiting {
            self.request_keyframe();
        }
    }

    fn request_keyframe(&self) {
        {
            let mut last = self.last_keyframe_request.lock().unwrap();
            let now = std::time::Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < KEYFRAME_REQUEST_EVERY) {
                return;
            }
            *last = Some(now);
        }
        if let Some(request) = self.keyframe.lock().unwrap().as_ref() {
            tracing::debug!("a target waits for a keyframe: asking the encoder for one");
            request();
        }
    }

    fn add_target(&self, t: Arc<PushTarget>) {
        let mut targets = self.targets.lock().unwrap();
        let mut next = Vec::clone(&targets);
        next.push(t);
        *targets = Arc::new(next);
    }

    fn remove_target(&self, url: &str) {
        let mut targets = self.targets.lock().unwrap();
        let next: Vec<_> = targets.iter().filter(|t| t.url != url).cloned().collect();
        *targets = Arc::new(next);
    }
}

/// Whether an FLV tag (header included) is a video keyframe with picture data, in any form we write (read by
/// [`crate::flv::codec::is_keyframe`], as the relay reads its tags).
fn is_keyframe_tag(tag: &[u8]) -> bool {
    tag.len() > 11 && tag[0] == 9 && crate::flv::codec::is_keyframe(&tag[11..])
}

/// Whether an FLV tag is audio (tag type 8).
fn is_audio_tag(tag: &[u8]) -> bool {
    tag.len() > 11 && tag[0] == 8
}

/// Whether a target may (re)start with this FLV tag: a video keyframe, or, in a stream without video, any
/// audio tag (every audio frame decodes on its own once the stream headers are sent).
fn is_resumption_point(buffer: &gst::BufferRef, has_video: bool) -> bool {
    let Ok(map) = buffer.map_readable() else {
        return false;
    };
    if has_video {
        is_keyframe_tag(&map)
    } else {
        is_audio_tag(&map)
    }
}

/// One running target: what its producer pushes into, and its supervised link.
pub struct Target {
    pub shared: Arc<PushTarget>,
    pub link: Handle,
}

/// One encoding of a mix and its targets.
pub struct Encoder {
    pub spec: EncodeKey,
    /// x264enc or x265enc, whose bitrate can change while it runs; `None` for an audio-only output.
    video_encoder: Option<gst::Element>,
    /// Where canvas frames are dropped or repeated on the way to the video encoder: its queue (overruns: the
    /// encoder fell behind) and its rate adapter (`drop` / `duplicate`), if the output has its own frame rate.
    frame_loss: Option<(Arc<std::sync::atomic::AtomicU64>, Option<gst::Element>)>,
    pub fanout: Arc<Fanout>,
    pub targets: Vec<(String, Target)>,
}

/// What makes two outputs shareable: the same encoding. `video: None` is audio only, a distinct encoding (so
/// switching an output between audio-only and video restarts the mix like other encoding changes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncodeKey {
    pub video: Option<crate::model::VideoEncoding>,
    pub audio: crate::model::AudioEncoding,
}

impl EncodeKey {
    pub fn of(o: &OutputSpec) -> Self {
        Self {
            video: o.video.clone(),
            audio: o.audio.clone(),
        }
    }

    /// The key with the video bitrate blanked: encoders that differ only there can be retuned live. An
    /// audio-only key is its own shape.
    pub fn without_bitrate(&self) -> Self {
        let mut k = self.clone();
        if let Some(v) = k.video.as_mut() {
            v.bitrate_kbps = 0;
        }
        k
    }
}

/// Canvas frames queued in front of a video encoder (see [`Encoder::add`]).
const ENCODER_QUEUE_FRAMES: u32 = 4;

fn make(factory: &str) -> Result<gst::Element, gst::glib::BoolError> {
    gst::ElementFactory::make(factory).build()
}

/// A capsfilter asking an encoder for what the FLV muxer takes: length-prefixed access units (`stream_format`,
/// with the configuration record in `codec_data`), one per buffer.
fn muxable(media: &str, stream_format: &str) -> Result<gst::Element, gst::glib::BoolError> {
    gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder(media)
                .field("stream-format", stream_format)
                .field("alignment", "au")
                .build(),
        )
        .build()
}

impl Encoder {
    /// Builds the encoder branch behind the tees of a running (or about to run) pipeline. `video_tee` is only
    /// used (and required) when `key` has video; an audio-only branch feeds the muxer its audio alone.
    pub fn add(
        pipeline: &gst::Pipeline,
        video_tee: Option<&gst::Element>,
        audio_tee: &gst::Element,
        key: EncodeKey,
        canvas_fps: u32,
        encoder_threads: u32,
        sei: &Arc<super::sei::SeiSource>,
    ) -> Result<Self, gst::glib::BoolError> {
        let video = match (&key.video, video_tee) {
            (Some(v), Some(tee)) => {
                let fps = v.fps.unwrap_or(canvas_fps);
                // A few frames absorb a hiccup of the encoder; when it falls further behind, the oldest canvas frames
                // go (the output skips ahead) instead of piling up: latency and memory stay bounded.
                let vqueue = gst::ElementFactory::make("queue")
                    .property("max-size-buffers", ENCODER_QUEUE_FRAMES)
                    .property("max-size-bytes", 0u32)
                    .property("max-size-time", 0u64)
                    .property_from_str("leaky", "downstream")
                    .build()?;
                let vconvert = make("videoconvert")?;
                // Only an output with its own frame rate gets a rate adapter: videorate holds every frame until
                // the next one arrives (to know how often to repeat it), a frame of latency the canvas's own
                // rate, which the compositor already keeps exactly, does not need.
                let vrate = (fps != canvas_fps)
                    .then(|| {
                        gst::ElementFactory::make("videorate")
                            .property("skip-to-first", true)
                            .build()
                    })
                    .transpose()?;
                let overruns = Arc::new(std::sync::atomic::AtomicU64::new(0));
                {
                    let overruns = overruns.clone();
                    vqueue.connect("overrun", false, move |_| {
                        overruns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        None
                    });
                }
                let frame_loss = (overruns, vrate.clone());
                let vcaps = gst::ElementFactory::make("capsfilter")
                    .property(
                        "caps",
                        gst::Caps::builder("video/x-raw")
                            .field("format", "I420")
                            .field("framerate", gst::Fraction::new(fps as i32, 1))
                            .build(),
                    )
                    .build()?;
                let mut chain = vec![vqueue, vconvert];
                chain.extend(vrate);
                chain.push(vcaps);
                let encoder = match v.codec {
                    VideoCodec::H264 => {
                        let x264 = gst::ElementFactory::make("x264enc")
                            .property_from_str("speed-preset", "veryfast")
                            .property_from_str("tune", "zerolatency")
                            .property("bitrate", v.bitrate_kbps)
                            .property("key-int-max", fps * v.gop_s)
                            .property("bframes", 0u32)
                            .property("threads", encoder_threads)
                            .build()?;
                        // SEI rides on the video only: audio-only outputs carry none.
                        sei.attach(&x264);
                        chain.extend([x264.clone(), muxable("video/x-h264", "avc")?]);
                        x264
                    }
                    VideoCodec::H265 => {
                        let x265 = gst::ElementFactory::make("x265enc")
                            .property_from_str("speed-preset", X265_PRESET)
                            .property_from_str("tune", "zerolatency")
                            .property("bitrate", v.bitrate_kbps)
                            .property("key-int-max", (fps * v.gop_s) as i32)
                            .build()?;
                        let parse = make("h265parse")?;
                        chain.extend([x265.clone(), parse, muxable("video/x-h265", "hvc1")?]);
                        x265
                    }
                };
                Some((tee, chain, encoder, frame_loss))
            }
            (Some(_), None) => {
                return Err(gst::glib::bool_error!(
                    "a video encoding needs the mix's picture"
                ))
            }
            (None, _) => None,
        };
        let aqueue = gst::ElementFactory::make("queue")
            .property("max-size-buffers", 0u32)
            .property("max-size-bytes", 0u32)
            .property("max-size-time", 1_000_000_000u64)
            .property_from_str("leaky", "downstream")
            .build()?;
        let aconvert = make("audioconvert")?;
        let aresample = make("audioresample")?;
        let acaps = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst::Caps::builder("audio/x-raw")
                    .field("rate", key.audio.sample_rate as i32)
                    .field("channels", key.audio.channels as i32)
                    .build(),
            )
            .build()?;
        let aenc = match key.audio.codec {
            // The "fast" coder: the default two-loop search costs about 0.04 cores more per mix on a few mixed voices
            // (measured on S4's four tones) for no difference audible at these bitrates.
            AudioCodec::Aac => gst::ElementFactory::make("avenc_aac")
                .property("bitrate", (key.audio.bitrate_kbps * 1000) as i32)
                .property_from_str("aac-coder", "fast")
                .build()?,
            AudioCodec::Mp3 => gst::ElementFactory::make("lamemp3enc")
                .property_from_str("target", "bitrate")
                .property("bitrate", key.audio.bitrate_kbps as i32)
                .property("cbr", true)
                .build()?,
        };
        // The muxer takes MP3 only as parsed frames.
        let aparse = match key.audio.codec {
            AudioCodec::Aac => make("identity")?,
            AudioCodec::Mp3 => make("mpegaudioparse")?,
        };
        let fanout = Fanout::new(key.video.is_some());
        let audio_chain = [
            aqueue.clone(),
            aconvert,
            aresample,
            acaps,
            aenc,
            aparse.clone(),
        ];
        let mut elements: Vec<gst::Element> = Vec::new();
        if let Some((_, chain, _, _)) = &video {
            elements.extend(chain.iter().cloned());
        }
        elements.extend(audio_chain.iter().cloned());
        // Every encoding ends in Tessera's FLV muxer (one appsink per track). It writes each access unit the moment
        // the encoder gives it: flvmux would hold every video frame until the audio encoder had passed its
        // timestamp (AAC's 1024-sample frames and encoder delay, about 45 ms at 44.1 kHz), and it cannot carry
        // H.265 in GStreamer 1.22. FLV readers order the tracks by their own timestamps.
        let (flv_codec, form) = match &key.video {
            Some(v) if v.codec == VideoCodec::H265 => (
                FlvCodec::H265,
                match v.flv_form {
                    FlvVideoForm::Enhanced => VideoForm::Enhanced,
                    FlvVideoForm::CodecId12 => VideoForm::Legacy,
                },
            ),
            _ => (FlvCodec::H264, VideoForm::Legacy),
        };
        let weak = Arc::downgrade(&fanout);
        let muxer = Muxer::new(
            flv_codec,
            form,
            key.video.is_some(),
            match key.audio.codec {
                AudioCodec::Aac => MuxAudio::Aac,
                AudioCodec::Mp3 => MuxAudio::Mp3,
            },
            Box::new(move |event| {
                if let Some(f) = weak.upgrade() {
                    match event {
                        MuxEvent::Headers(buffers) => f.set_headers(buffers),
                        MuxEvent::Tag(buffer) => f.deliver(&buffer),
                    }
                }
            }),
        );
        let vsink: gst::Element = muxer.appsink(MuxTrack::Video).upcast();
        let asink: gst::Element = muxer.appsink(MuxTrack::Audio).upcast();
        let (video_end, audio_end, tail): (Option<gst::Element>, gst::Element, Vec<gst::Element>) =
            if video.is_some() {
                (Some(vsink.clone()), asink.clone(), vec![vsink, asink])
            } else {
                (None, asink.clone(), vec![asink])
            };
        elements.extend(tail.iter().cloned());
        pipeline.add_many(&elements)?;
        let mut branches = vec![(audio_tee, &audio_chain[0])];
        if let (Some((tee, chain, _, _)), Some(end)) = (&video, &video_end) {
            gst::Element::link_many(chain)?;
            chain.last().expect("a video chain").link(end)?;
            branches.push((tee, &chain[0]));
        }
        gst::Element::link_many(&audio_chain)?;
        aparse.link(&audio_end)?;
        if let Some((_, _, encoder, _)) = &video {
            let weak = encoder.downgrade();
            *fanout.keyframe.lock().unwrap() = Some(Box::new(move || {
                if let Some(src) = weak.upgrade().and_then(|e| e.static_pad("src")) {
                    // An upstream event into the encoder's output pad: it only queues the request (under its
                    // object lock), so asking from the streaming thread that carries its output is safe.
                    src.send_event(
                        gst_video::UpstreamForceKeyUnitEvent::builder()
                            .all_headers(true)
                            .build(),
                    );
                }
            }));
        }
        for e in elements.iter().rev() {
            e.sync_state_with_parent()?;
        }
        for (tee, queue) in branches {
            let pad = tee
                .request_pad_simple("src_%u")
                .ok_or_else(|| gst::glib::bool_error!("tee refused a pad"))?;
            pad.link(&queue.static_pad("sink").expect("queue sink"))
                .map_err(|e| gst::glib::bool_error!("link tee: {e:?}"))?;
        }
        Ok(Self {
            spec: key,
            frame_loss: video.as_ref().map(|(_, _, _, loss)| loss.clone()),
            video_encoder: video.map(|(_, _, encoder, _)| encoder),
            fanout,
            targets: Vec::new(),
        })
    }

    /// Canvas frames dropped or repeated on the way to the video encoder so far (0 for an audio-only output).
    pub fn frames_lost(&self) -> u64 {
        self.frame_loss.as_ref().map_or(0, |(overruns, rate)| {
            overruns.load(std::sync::atomic::Ordering::Relaxed)
                + rate.as_ref().map_or(0, |r| {
                    r.property::<u64>("drop") + r.property::<u64>("duplicate")
                })
        })
    }

    /// Changes the video bitrate without restarting the encoder (nothing to do for an audio-only encoder).
    pub fn set_video_bitrate(&mut self, kbps: u32) {
        if let (Some(video), Some(encoder)) = (self.spec.video.as_mut(), &self.video_encoder) {
            if video.bitrate_kbps != kbps {
                encoder.set_property("bitrate", kbps);
                video.bitrate_kbps = kbps;
            }
        }
    }

    /// Starts delivering to `url` (idempotent per URL); `observer` hears its state changes, `tag` names its
    /// threads.
    pub fn add_target(&mut self, url: &str, config: &EgressConfig, observer: Observer, tag: &str) {
        if self.targets.iter().any(|(u, _)| u == url) {
            return;
        }
        let shared = PushTarget::new(url, config);
        self.fanout.add_target(shared.clone());
        let link = Supervisor::spawn(
            PushSession::new(
                shared.clone(),
                config.clone(),
                observer,
                Some(tag.to_string()),
            ),
            Policy {
                initial: std::time::Duration::from_millis(config.retry_initial_ms),
                max: std::time::Duration::from_millis(config.retry_max_ms),
                // A mix's outputs are retried until the mix ends: "live means live".
                retries: Retries::Forever,
            },
        );
        self.targets
            .push((url.to_string(), Target { shared, link }));
    }

    pub fn remove_target(&mut self, url: &str) {
        self.fanout.remove_target(url);
        self.targets.retain(|(u, _)| u != url);
    }

    /// Detaches every target (nothing more is fed to them) and hands them over, still running.
    pub fn take_targets(&mut self) -> Vec<Target> {
        *self.fanout.targets.lock().unwrap() = Arc::new(Vec::new());
        std::mem::take(&mut self.targets)
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An FLV tag of `tag_type` whose data starts with `head` (11-byte tag header, then data, then a few bytes
    /// of payload).
    fn tag_with(tag_type: u8, head: &[u8]) -> gst::Buffer {
        let mut data = vec![0u8; 11];
        data[0] = tag_type;
        data.extend_from_slice(head);
        data.extend_from_slice(&[0, 0, 0, 1, 0x65]);
        gst::Buffer::from_slice(data)
    }

    /// A legacy tag whose first data byte is `first`; for video, a frame (packet type 1).
    fn tag(tag_type: u8, first: u8) -> gst::Buffer {
        tag_with(tag_type, &[first, 1, 0, 0, 0])
    }

    #[test]
    fn targets_resume_on_keyframes_or_on_audio_without_video() {
        gst::init().unwrap();
        let keyframe = tag(9, 0x17);
        let inter = tag(9, 0x27);
        let aac = tag(8, 0xAF);
        let metadata = tag(18, 2);
        assert!(is_resumption_point(&keyframe, true));
        assert!(!is_resumption_point(&inter, true));
        // H.265 keyframes in both forms; sequence headers are not resumption points (they go with the headers).
        assert!(is_resumption_point(&tag(9, 0x1C), true));
        assert!(is_resumption_point(&tag_with(9, b"\x93hvc1"), true));
        assert!(!is_resumption_point(&tag_with(9, b"\xA3hvc1"), true));
        assert!(!is_resumption_point(&tag_with(9, b"\x90hvc1"), true));
        assert!(!is_resumption_point(
            &tag_with(9, &[0x17, 0, 0, 0, 0]),
            true
        ));
        assert!(!is_resumption_point(&aac, true));
        assert!(!is_resumption_point(&metadata, true));
        assert!(is_resumption_point(&aac, false));
        assert!(!is_resumption_point(&metadata, false));
        assert!(!is_resumption_point(
            &gst::Buffer::from_slice([8u8; 4]),
            false
        ));
    }

    #[test]
    fn audio_only_is_its_own_encoding_shape() {
        let video = EncodeKey::of(&OutputSpec::new(crate::model::Target::StreamId("a".into())));
        let audio = EncodeKey::of(&OutputSpec::audio_only(crate::model::Target::StreamId(
            "a".into(),
        )));
        assert_ne!(video.without_bitrate(), audio.without_bitrate());
        assert_eq!(audio.without_bitrate(), audio);
        let mut faster = video.clone();
        if let Some(v) = faster.video.as_mut() {
            v.bitrate_kbps += 100;
        }
        assert_eq!(faster.without_bitrate(), video.without_bitrate());
    }
}
