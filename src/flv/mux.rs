//! Encoded media → FLV tags, for every encoding of a mix: the encoders end in one `appsink` per track
//! ([`Muxer::appsink`]) and the muxer writes each access unit as a tag the moment it arrives, in the configured
//! [`VideoForm`], with its decoder configuration in the stream headers. Unlike `flvmux` it does not interleave:
//! a video frame leaves without waiting for the audio encoder to pass its timestamp (AAC frames are 1024 samples
//! and the encoder holds one back), and FLV readers order the tracks by their own timestamps. It also carries
//! H.265, which GStreamer 1.22's `flvmux` cannot.
//!
//! What it emits ([`MuxEvent`]): stream headers (file header, `onMetaData` and sequence-header tags) whenever they
//! change, then one buffer per tag (tag header, data, `PreviousTagSize`). Nothing is emitted before every track's
//! configuration is known, so a target never starts with a frame whose decoder configuration it has not been
//! sent, and the video's sequence header is repeated before every keyframe for players that join through a server
//! that does not keep it (nginx-rtmp keeps only H.264's). Timestamps are the buffers' running time, from 0 at the
//! first buffer of either track.

use std::sync::{Arc, Mutex};

use super::codec::{self, VideoCodec, VideoForm};
use super::{write_header, write_tag, TagKind};

/// What the muxer produces.
pub enum MuxEvent {
    /// New stream headers: the file header, the metadata and the sequence-header tags, one buffer each.
    Headers(Vec<gst::Buffer>),
    /// One tag.
    Tag(gst::Buffer),
}

/// The audio an output carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxAudio {
    /// AAC; its AudioSpecificConfig comes from the encoder's caps (`codec_data`).
    Aac,
    /// MP3 frames (parsed); the header byte is derived from the caps.
    Mp3,
}

/// Receives the muxer's output.
pub type MuxSink = Box<dyn Fn(MuxEvent) + Send + Sync>;

struct State {
    /// Data of the video sequence-header tag, once the encoder's caps gave it.
    video_config: Option<Vec<u8>>,
    /// Data of the audio sequence-header tag (AAC), or an empty vector once MP3's first frame is seen.
    audio_config: Option<Vec<u8>>,
    /// Whether the current headers were emitted.
    headers_sent: bool,
    /// Running time of the first buffer: FLV time 0.
    base: Option<gst::ClockTime>,
    /// The first byte of MP3 tags (format, rate, size, channels).
    mp3_byte: u8,
    /// What the `onMetaData` tag says of the picture, from the encoder's caps: players and servers show it.
    picture: Option<Picture>,
    /// Sample rate and channels of the sound, from the encoder's caps, for `onMetaData`.
    sound: Option<(i32, i32)>,
}

/// The picture as `onMetaData` describes it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Picture {
    width: i32,
    height: i32,
    fps: f64,
}

/// Writes one encoder's tracks as FLV.
pub struct Muxer {
    codec: VideoCodec,
    form: VideoForm,
    has_video: bool,
    audio: MuxAudio,
    state: Mutex<State>,
    sink: MuxSink,
}

/// Which track an appsink feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxTrack {
    Video,
    Audio,
}

impl Muxer {
    pub fn new(
        codec: VideoCodec,
        form: VideoForm,
        has_video: bool,
        audio: MuxAudio,
        sink: MuxSink,
    ) -> Arc<Self> {
        Arc::new(Self {
            codec,
            form,
            has_video,
            audio,
            state: Mutex::new(State {
                video_config: None,
                audio_config: None,
                headers_sent: false,
                base: None,
                mp3_byte: 0x2F,
                picture: None,
                sound: None,
            }),
            sink,
        })
    }

    /// An appsink that feeds `track` into this muxer. The appsinks own the muxer (it holds no reference back to
    /// them), so it lives exactly as long as the encoder branch.
    pub fn appsink(self: &Arc<Self>, track: MuxTrack) -> gst_app::AppSink {
        let muxer = self.clone();
        gst_app::AppSink::builder()
            .sync(false)
            .callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                        muxer.on_sample(track, &sample);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            )
            .build()
    }

    fn on_sample(&self, track: MuxTrack, sample: &gst::Sample) {
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
            return;
        };
        let running = |t: Option<gst::ClockTime>| {
            let t = t?;
            match sample
                .segment()
                .and_then(|s| s.downcast_ref::<gst::ClockTime>())
            {
                Some(seg) => seg.to_running_time(t),
                None => Some(t),
            }
        };
        let Some(pts) = running(buffer.pts()) else {
            return;
        };
        let dts = running(buffer.dts()).unwrap_or(pts);
        let Ok(map) = buffer.map_readable() else {
            return;
        };
        let mut st = self.state.lock().unwrap();
        let changed = match track {
            MuxTrack::Video => {
                let record = caps
                    .structure(0)
                    .and_then(|s| s.get::<gst::Buffer>("codec_data").ok());
                let Some(record) = record else {
                    tracing::warn!("video encoder gave no codec_data; frame dropped");
                    return;
                };
                let Ok(rec) = record.map_readable() else {
                    return;
                };
                let tag = codec::video_config_tag(self.codec, self.form, &rec);
                replace(&mut st.video_config, tag)
            }
            MuxTrack::Audio => match self.audio {
                MuxAudio::Aac => {
                    let asc = caps
                        .structure(0)
                        .and_then(|s| s.get::<gst::Buffer>("codec_data").ok());
                    let Some(asc) = asc else {
                        return;
                    };
                    let Ok(asc) = asc.map_readable() else {
                        return;
                    };
                    replace(&mut st.audio_config, codec::aac_tag(true, &asc))
                }
                MuxAudio::Mp3 => {
                    st.mp3_byte = mp3_byte(caps);
                    replace(&mut st.audio_config, Vec::new())
                }
            },
        };
        let described = describe(&mut st, track, caps);
        if changed || described {
            st.headers_sent = false;
        }
        let ready = st.audio_config.is_some() && (!self.has_video || st.video_config.is_some());
        if !ready {
            return;
        }
        let base = *st.base.get_or_insert(dts.min(pts));
        let ms = |t: gst::ClockTime| (t.saturating_sub(base).mseconds()) as u32;
        if !st.headers_sent {
            st.headers_sent = true;
            let metadata = self.metadata(&st);
            (self.sink)(MuxEvent::Headers(self.headers(&st, &metadata)));
            // Targets already connected take the new configuration in-stream.
            if let Some(b) = tag_buffer(TagKind::Script, ms(dts), &metadata, pts) {
                (self.sink)(MuxEvent::Tag(b));
            }
            for (kind, cfg) in [
                (TagKind::Video, &st.video_config),
                (TagKind::Audio, &st.audio_config),
            ] {
                if let Some(cfg) = cfg.as_ref().filter(|c| !c.is_empty()) {
                    if let Some(b) = tag_buffer(kind, ms(dts), cfg, pts) {
                        (self.sink)(MuxEvent::Tag(b));
                    }
                }
            }
        }
        let data = match track {
            MuxTrack::Video => {
                let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                // The sequence header again before every keyframe: servers that keep only H.264's for players
                // joining later (nginx-rtmp) would otherwise leave them without one.
                if keyframe {
                    if let Some(b) = st
                        .video_config
                        .as_ref()
                        .and_then(|cfg| tag_buffer(TagKind::Video, ms(dts), cfg, pts))
                    {
                        (self.sink)(MuxEvent::Tag(b));
                    }
                }
                let cts = pts.mseconds() as i64 - dts.mseconds() as i64;
                codec::video_frame_tag(self.codec, self.form, keyframe, cts as i32, &map)
            }
            MuxTrack::Audio => match self.audio {
                MuxAudio::Aac => codec::aac_tag(false, &map),
                MuxAudio::Mp3 => {
                    let mut d = Vec::with_capacity(map.len() + 1);
                    d.push(st.mp3_byte);
                    d.extend_from_slice(&map);
                    d
                }
            },
        };
        let kind = match track {
            MuxTrack::Video => TagKind::Video,
            MuxTrack::Audio => TagKind::Audio,
        };
        let ts = match track {
            MuxTrack::Video => ms(dts),
            MuxTrack::Audio => ms(pts),
        };
        drop(st);
        if let Some(b) = tag_buffer(kind, ts, &data, pts) {
            (self.sink)(MuxEvent::Tag(b));
        }
    }

    fn headers(&self, st: &State, metadata: &[u8]) -> Vec<gst::Buffer> {
        let mut file = Vec::new();
        write_header(&mut file, true, self.has_video);
        let mut buffers = vec![file];
        let configs = [
            (TagKind::Script, Some(metadata.to_vec())),
            (TagKind::Video, st.video_config.clone()),
            (
                TagKind::Audio,
                st.audio_config.clone().filter(|a| !a.is_empty()),
            ),
        ];
        for (kind, data) in configs {
            let mut t = Vec::new();
            if let Some(data) = data {
                if write_tag(&mut t, kind, 0, &data).is_ok() {
                    buffers.push(t);
                }
            }
        }
        buffers
            .into_iter()
            .map(|b| {
                let mut b = gst::Buffer::from_mut_slice(b);
                b.get_mut()
                    .expect("new buffer")
                    .set_flags(gst::BufferFlags::HEADER);
                b
            })
            .collect()
    }

    /// The `onMetaData` tag's data, as `flvmux` and ffmpeg write it: what is known of the picture and sound.
    fn metadata(&self, st: &State) -> Vec<u8> {
        let mut fields: Vec<(&str, Amf)> = Vec::new();
        if let (true, Some(p)) = (self.has_video, st.picture) {
            fields.push(("width", Amf::Number(p.width as f64)));
            fields.push(("height", Amf::Number(p.height as f64)));
            if p.fps > 0.0 {
                fields.push(("framerate", Amf::Number(p.fps)));
            }
            let id = match self.form {
                VideoForm::Legacy => self.codec.codec_id() as f64,
                VideoForm::Enhanced => u32::from_be_bytes(self.codec.fourcc()) as f64,
            };
            fields.push(("videocodecid", Amf::Number(id)));
        }
        let audio_id = match self.audio {
            MuxAudio::Aac => 10.0,
            MuxAudio::Mp3 => 2.0,
        };
        fields.push(("audiocodecid", Amf::Number(audio_id)));
        if let Some((rate, channels)) = st.sound {
            fields.push(("audiosamplerate", Amf::Number(rate as f64)));
            fields.push(("audiosamplesize", Amf::Number(16.0)));
            fields.push(("stereo", Amf::Bool(channels > 1)));
        }
        fields.push(("encoder", Amf::Str("Tessera")));
        let mut out = Vec::new();
        amf_string(&mut out, "onMetaData");
        // An ECMA array: its type, a count, then name/value pairs ended by an empty name and the end marker.
        out.push(0x08);
        out.extend_from_slice(&(fields.len() as u32).to_be_bytes());
        for (name, value) in fields {
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            match value {
                Amf::Number(n) => {
                    out.push(0x00);
                    out.extend_from_slice(&n.to_be_bytes());
                }
                Amf::Bool(b) => out.extend_from_slice(&[0x01, b as u8]),
                Amf::Str(s) => amf_string(&mut out, s),
            }
        }
        out.extend_from_slice(&[0, 0, 0x09]);
        out
    }
}

/// An AMF0 value of the metadata.
enum Amf {
    Number(f64),
    Bool(bool),
    Str(&'static str),
}

/// An AMF0 string value (type, length, bytes).
fn amf_string(out: &mut Vec<u8>, s: &str) {
    out.push(0x02);
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Records what `onMetaData` says of `track` (the picture's size and rate, the sound's rate and channels) from its
/// encoder's caps; whether that changed.
fn describe(st: &mut State, track: MuxTrack, caps: &gst::CapsRef) -> bool {
    let s = caps.structure(0);
    match track {
        MuxTrack::Video => {
            let picture = s.and_then(|s| {
                let fps = s
                    .get::<gst::Fraction>("framerate")
                    .ok()
                    .filter(|f| f.denom() > 0)
                    .map_or(0.0, |f| f.numer() as f64 / f.denom() as f64);
                Some(Picture {
                    width: s.get("width").ok()?,
                    height: s.get("height").ok()?,
                    fps,
                })
            });
            std::mem::replace(&mut st.picture, picture) != picture
        }
        MuxTrack::Audio => {
            let sound =
                s.and_then(|s| Some((s.get::<i32>("rate").ok()?, s.get::<i32>("channels").ok()?)));
            std::mem::replace(&mut st.sound, sound) != sound
        }
    }
}

/// Sets `slot` to `value`; whether it changed.
fn replace(slot: &mut Option<Vec<u8>>, value: Vec<u8>) -> bool {
    if slot.as_ref() == Some(&value) {
        return false;
    }
    *slot = Some(value);
    true
}

/// The FLV header byte of MP3 tags for these caps (rates FLV cannot name fall back to 44 kHz).
fn mp3_byte(caps: &gst::CapsRef) -> u8 {
    let s = caps.structure(0);
    let rate = s.and_then(|s| s.get::<i32>("rate").ok()).unwrap_or(44100);
    let channels = s.and_then(|s| s.get::<i32>("channels").ok()).unwrap_or(2);
    let rate_bits = match rate {
        11025 => 1,
        22050 => 2,
        _ => 3,
    };
    0x20 | (rate_bits << 2) | 0x02 | u8::from(channels == 2)
}

fn tag_buffer(kind: TagKind, ts: u32, data: &[u8], pts: gst::ClockTime) -> Option<gst::Buffer> {
    let mut out = Vec::with_capacity(data.len() + 15);
    write_tag(&mut out, kind, ts, data).ok()?;
    let mut b = gst::Buffer::from_mut_slice(out);
    b.get_mut().expect("new buffer").set_pts(pts);
    Some(b)
}
