//! H.265 in FLV, written by hand: a live RTMP publisher and an HTTP-FLV file writer whose video is x265enc's
//! access units put into tags in either form in use — the legacy extension with codec id 12, or enhanced RTMP
//! (`hvc1`) — and whose audio is AAC. The tag bytes come from this file's own few lines, not from Tessera's
//! writer, so a mistake shared by Tessera's muxer and demuxer cannot hide.
//!
//! The sequence header is sent again before every keyframe, as hardware encoders do: nginx-rtmp keeps only
//! H.264's and AAC's headers for players that join later, so without it a late player never gets one.

use std::sync::{Arc, Mutex};

use gst::prelude::*;

use super::util::{init, make};

/// How the video tags signal H.265.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HevcForm {
    /// `FrameType|12`, packet type, composition time: what Chinese CDNs carry.
    CodecId12,
    /// `ExVideoTagHeader` with FourCC `hvc1`, `CodedFrames` with a composition time.
    Enhanced,
}

#[derive(Clone, Debug)]
pub struct HevcOpts {
    pub width: u32,
    pub height: u32,
    /// 0xRRGGBB.
    pub color: u32,
    pub tone_hz: Option<f64>,
    pub form: HevcForm,
}

impl Default for HevcOpts {
    fn default() -> Self {
        Self {
            width: 320,
            height: 180,
            color: 0xFF0000,
            tone_hz: None,
            form: HevcForm::Enhanced,
        }
    }
}

/// One FLV tag with its `PreviousTagSize`.
pub fn flv_tag(kind: u8, ts_ms: u32, data: &[u8]) -> Vec<u8> {
    let n = data.len() as u32;
    let mut t = vec![
        kind,
        (n >> 16) as u8,
        (n >> 8) as u8,
        n as u8,
        (ts_ms >> 16) as u8,
        (ts_ms >> 8) as u8,
        ts_ms as u8,
        (ts_ms >> 24) as u8,
        0,
        0,
        0,
    ];
    t.extend_from_slice(data);
    t.extend_from_slice(&(11 + n).to_be_bytes());
    t
}

/// The FLV file header (audio and video) and `PreviousTagSize0`.
pub const FLV_HEADER: [u8; 13] = [b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0];

/// Data of an H.265 video tag: the configuration record (`config`) or one access unit.
pub fn hevc_video_data(
    form: HevcForm,
    config: bool,
    keyframe: bool,
    cts: i32,
    payload: &[u8],
) -> Vec<u8> {
    let frame_type: u8 = if keyframe || config { 1 } else { 2 };
    let c = cts.to_be_bytes();
    let mut d = match form {
        HevcForm::CodecId12 => vec![(frame_type << 4) | 12, u8::from(!config), c[1], c[2], c[3]],
        HevcForm::Enhanced if config => vec![0x80 | (frame_type << 4), b'h', b'v', b'c', b'1'],
        HevcForm::Enhanced => vec![
            0x80 | (frame_type << 4) | 1,
            b'h',
            b'v',
            b'c',
            b'1',
            c[1],
            c[2],
            c[3],
        ],
    };
    d.extend_from_slice(payload);
    d
}

/// Turns encoded samples into FLV bytes.
struct Writer {
    form: HevcForm,
    base: Option<gst::ClockTime>,
    asc_sent: bool,
    emit: Box<dyn FnMut(Vec<u8>) + Send>,
}

/// A buffer time as running time: encoders shift timestamps and segment together (x264enc/x265enc by 1000 h so
/// that DTS never goes negative), so raw times of two tracks cannot be compared.
fn running(sample: &gst::Sample, t: gst::ClockTime) -> gst::ClockTime {
    sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
        .and_then(|s| s.to_running_time(t))
        .unwrap_or(t)
}

impl Writer {
    fn ms(&mut self, t: gst::ClockTime) -> u32 {
        let base = *self.base.get_or_insert(t);
        t.saturating_sub(base).mseconds() as u32
    }

    fn video(&mut self, sample: &gst::Sample) {
        let (Some(buf), Some(caps)) = (sample.buffer(), sample.caps()) else {
            return;
        };
        let record = caps
            .structure(0)
            .and_then(|s| s.get::<gst::Buffer>("codec_data").ok())
            .expect("hvc1 caps carry codec_data");
        let pts = running(sample, buf.pts().expect("pts"));
        let dts = buf.dts().map_or(pts, |d| running(sample, d));
        let ts = self.ms(dts);
        let keyframe = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
        if keyframe {
            let rec = record.map_readable().unwrap();
            let d = hevc_video_data(self.form, true, true, 0, &rec);
            (self.emit)(flv_tag(9, ts, &d));
        }
        let cts = pts.mseconds() as i32 - dts.mseconds() as i32;
        let map = buf.map_readable().unwrap();
        let d = hevc_video_data(self.form, false, keyframe, cts, &map);
        (self.emit)(flv_tag(9, ts, &d));
    }

    fn audio(&mut self, sample: &gst::Sample) {
        let (Some(buf), Some(caps)) = (sample.buffer(), sample.caps()) else {
            return;
        };
        let ts = self.ms(running(sample, buf.pts().expect("pts")));
        if !self.asc_sent {
            self.asc_sent = true;
            let asc = caps
                .structure(0)
                .and_then(|s| s.get::<gst::Buffer>("codec_data").ok())
                .expect("AAC caps carry codec_data");
            let mut d = vec![0xAF, 0];
            d.extend_from_slice(&asc.map_readable().unwrap());
            (self.emit)(flv_tag(8, ts, &d));
        }
        let mut d = vec![0xAF, 1];
        d.extend_from_slice(&buf.map_readable().unwrap());
        (self.emit)(flv_tag(8, ts, &d));
    }
}

/// videotestsrc → x265enc → h265parse (hvc1) and audiotestsrc → avenc_aac, each into an appsink feeding `writer`.
fn build_media(
    opts: &HevcOpts,
    live: bool,
    secs: Option<u32>,
    writer: Arc<Mutex<Writer>>,
) -> gst::Pipeline {
    init();
    let pipeline = gst::Pipeline::with_name("hevc-publisher");
    let vsrc = make("videotestsrc");
    vsrc.set_property("is-live", live);
    vsrc.set_property_from_str("pattern", "solid-color");
    vsrc.set_property("foreground-color", 0xFF00_0000 | opts.color);
    let asrc = make("audiotestsrc");
    asrc.set_property("is-live", live);
    match opts.tone_hz {
        Some(hz) => {
            asrc.set_property("freq", hz);
            asrc.set_property("volume", 0.1f64);
        }
        None => asrc.set_property_from_str("wave", "silence"),
    }
    if let Some(secs) = secs {
        vsrc.set_property("num-buffers", (secs * 30) as i32);
        // 1024 samples per buffer at 48 kHz.
        asrc.set_property("num-buffers", (secs * 48_000 / 1024) as i32);
    }
    let vcaps = make("capsfilter");
    vcaps.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", opts.width as i32)
            .field("height", opts.height as i32)
            .field("framerate", gst::Fraction::new(30, 1))
            .build(),
    );
    let x265 = make("x265enc");
    x265.set_property_from_str("speed-preset", "ultrafast");
    x265.set_property_from_str("tune", "zerolatency");
    x265.set_property("key-int-max", 30i32);
    x265.set_property("bitrate", 600u32);
    let parse = make("h265parse");
    let hcaps = make("capsfilter");
    hcaps.set_property(
        "caps",
        gst::Caps::builder("video/x-h265")
            .field("stream-format", "hvc1")
            .field("alignment", "au")
            .build(),
    );
    let aconv = make("audioconvert");
    let acaps = make("capsfilter");
    acaps.set_property(
        "caps",
        gst::Caps::builder("audio/x-raw")
            .field("rate", 48_000i32)
            .field("channels", 2i32)
            .build(),
    );
    let aenc = make("avenc_aac");
    let sink = |video: bool| {
        let writer = writer.clone();
        gst_app::AppSink::builder()
            .sync(false)
            .callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let mut w = writer.lock().unwrap();
                        if video {
                            w.video(&sample);
                        } else {
                            w.audio(&sample);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            )
            .build()
    };
    let vsink = sink(true);
    let asink = sink(false);
    let video = [&vsrc, &vcaps, &x265, &parse, &hcaps, vsink.upcast_ref()];
    let audio = [&asrc, &aconv, &acaps, &aenc, asink.upcast_ref()];
    pipeline.add_many(video).unwrap();
    pipeline.add_many(audio).unwrap();
    gst::Element::link_many(video).unwrap();
    gst::Element::link_many(audio).unwrap();
    pipeline
}

/// A live H.265 + AAC publisher to an RTMP URL (tags pushed through `appsrc → rtmp2sink`). Stops when dropped.
pub struct HevcPublisher {
    media: gst::Pipeline,
    out: gst::Pipeline,
}

impl HevcPublisher {
    pub fn start(url: &str, opts: HevcOpts) -> HevcPublisher {
        init();
        let out = gst::Pipeline::with_name("hevc-rtmp");
        let appsrc = gst_app::AppSrc::builder()
            .caps(&gst::Caps::builder("video/x-flv").build())
            .is_live(true)
            .format(gst::Format::Time)
            .build();
        let rtmp = make("rtmp2sink");
        rtmp.set_property("location", url);
        rtmp.set_property("sync", false);
        out.add_many([appsrc.upcast_ref(), &rtmp]).unwrap();
        appsrc.link(&rtmp).unwrap();
        out.set_state(gst::State::Playing)
            .expect("rtmp2sink to PLAYING");
        let _ = appsrc.push_buffer(gst::Buffer::from_slice(FLV_HEADER));
        let push = appsrc.clone();
        let writer = Arc::new(Mutex::new(Writer {
            form: opts.form,
            base: None,
            asc_sent: false,
            emit: Box::new(move |bytes| {
                let _ = push.push_buffer(gst::Buffer::from_mut_slice(bytes));
            }),
        }));
        let media = build_media(&opts, true, None, writer);
        media
            .set_state(gst::State::Playing)
            .expect("publisher to PLAYING");
        HevcPublisher { media, out }
    }
}

impl Drop for HevcPublisher {
    fn drop(&mut self) {
        let _ = self.media.set_state(gst::State::Null);
        let _ = self.out.set_state(gst::State::Null);
    }
}

/// The bytes of an H.265 + AAC FLV file of `secs` seconds (file header included).
pub fn hevc_flv_bytes(opts: &HevcOpts, secs: u32) -> Vec<u8> {
    let bytes = Arc::new(Mutex::new(FLV_HEADER.to_vec()));
    let sink = bytes.clone();
    let writer = Arc::new(Mutex::new(Writer {
        form: opts.form,
        base: None,
        asc_sent: false,
        emit: Box::new(move |b| sink.lock().unwrap().extend_from_slice(&b)),
    }));
    let pipeline = build_media(opts, false, Some(secs), writer);
    pipeline
        .set_state(gst::State::Playing)
        .expect("writer to PLAYING");
    let bus = pipeline.bus().unwrap();
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = pipeline.set_state(gst::State::Null);
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        other => panic!("writing H.265 FLV failed: {other:?}"),
    }
    let out = bytes.lock().unwrap().clone();
    out
}
