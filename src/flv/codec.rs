//! The media inside FLV tags: what a video or audio tag's data says (codec, sequence header or frame, composition
//! time) and how to write one. Covers H.264 (codec id 7), H.265 in both forms seen in the field — the legacy
//! extension with codec id 12 (Chinese CDNs, SRS, Tencent, ZEGO) and enhanced RTMP (`ExVideoTagHeader`, FourCC
//! `hvc1`; H.264 as `avc1` too) — and AAC and MP3 audio.
//!
//! A video tag's header is read in one place, whatever the codec: [`parse_video`] goes on from it for the codecs
//! above (what the demuxer decodes), and [`is_keyframe`] and [`is_video_config`] answer from it for any codec
//! (legacy ids 2 to 7, 12 and 13; any FourCC) what the relay (`flv::is_video_keyframe`, `flv::is_sequence_header`)
//! and the outputs' resumption points need.
//!
//! Everything here is a pure function over bytes that never panics: the demuxer feeds it whatever the network
//! brings, and the randomised tests below and the cargo-fuzz target `fuzz/fuzz_targets/flv_demux.rs` (through
//! [`fuzz_one`]) throw random and mutated bytes at it.
//!
//! Video data layouts (after the FLV tag header):
//! - legacy: `FrameType(4) CodecId(4)`, then for codec 7/12/13 `PacketType(u8: 0 config, 1 frames, 2 end)
//!   CompositionTime(SI24 ms)` and the payload (for older codecs, the payload at once); frame type 5 is a
//!   command, not video;
//! - enhanced: `IsExHeader(1)=1 FrameType(3) PacketType(4)`, `FourCC(4)`, then for `CodedFrames` (1) of `avc1`
//!   and `hvc1` a SI24 composition time (AV1 and VP9 frames have none); `CodedFramesX` (3) has none (0);
//!   `SequenceStart` (0) carries the configuration record (`MPEG2TSSequenceStart` (5): AV1's video descriptor);
//!   `SequenceEnd` (2) nothing; `Metadata` (4) AMF values, not video.
//!
//! Frame payloads are length-prefixed NAL units (the record says how many length bytes: 1, 2 or 4).

/// Video codec carried by a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    H264,
    H265,
}

impl VideoCodec {
    pub fn name(self) -> &'static str {
        match self {
            Self::H264 => "H.264",
            Self::H265 => "H.265",
        }
    }

    /// Legacy FLV codec id.
    pub fn codec_id(self) -> u8 {
        match self {
            Self::H264 => 7,
            Self::H265 => 12,
        }
    }

    /// Enhanced RTMP FourCC.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            Self::H264 => *b"avc1",
            Self::H265 => *b"hvc1",
        }
    }
}

/// How a video tag signals its codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VideoForm {
    /// `ExVideoTagHeader` with a FourCC (the Enhanced RTMP specification, v1).
    #[default]
    Enhanced,
    /// FLV codec id in the first byte's low nibble (7 for H.264, 12 for H.265 as Chinese CDNs extend it).
    Legacy,
}

/// What a video tag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Video<'a> {
    /// A decoder configuration record (AVCDecoderConfigurationRecord / HEVCDecoderConfigurationRecord).
    Config {
        codec: VideoCodec,
        form: VideoForm,
        record: &'a [u8],
    },
    /// One access unit of length-prefixed NAL units.
    Frame {
        codec: VideoCodec,
        keyframe: bool,
        /// Composition time offset in ms (PTS − DTS).
        cts: i32,
        data: &'a [u8],
    },
    /// End of sequence: the decoder can be flushed; a new configuration may follow.
    End { codec: VideoCodec },
    /// Something a decoder has no use for (command frames, enhanced metadata, an empty frame).
    Skip,
}

/// What an audio tag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audio<'a> {
    /// AAC AudioSpecificConfig.
    AacConfig(&'a [u8]),
    /// One raw AAC frame.
    AacFrame(&'a [u8]),
    /// MPEG-1/2 Layer III frames, with the tag's nominal rate and channel count.
    Mp3 {
        rate: u32,
        channels: u32,
        data: &'a [u8],
    },
}

/// Why a tag's data cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("empty {0} tag")]
    Empty(&'static str),
    #[error("{0} cut short")]
    Truncated(&'static str),
    #[error("unsupported FLV video codec id {0}")]
    UnsupportedVideoCodec(u8),
    #[error("unsupported enhanced-RTMP video FourCC {0:?}")]
    UnsupportedFourCc(String),
    #[error("unsupported enhanced-RTMP video packet type {0}")]
    UnsupportedPacketType(u8),
    #[error("unsupported FLV audio format {0}")]
    UnsupportedAudio(u8),
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, &'static str),
}

fn si24(b: &[u8]) -> i32 {
    let v = ((b[0] as i32) << 16) | ((b[1] as i32) << 8) | b[2] as i32;
    (v << 8) >> 8
}

const EX_SEQUENCE_START: u8 = 0;
const EX_CODED_FRAMES: u8 = 1;
const EX_SEQUENCE_END: u8 = 2;
const EX_CODED_FRAMES_X: u8 = 3;
const EX_METADATA: u8 = 4;
const EX_MPEG2TS_SEQUENCE_START: u8 = 5;
/// Frame type of keyframes.
const FRAME_TYPE_KEY: u8 = 1;
/// Frame type of video info / command frames (seek markers, not pictures).
const FRAME_TYPE_COMMAND: u8 = 5;

const AVC1: [u8; 4] = *b"avc1";
const HVC1: [u8; 4] = *b"hvc1";

/// How a video tag names its codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodecTag {
    /// Legacy FLV: the codec id in the first byte's low nibble.
    Id(u8),
    /// Enhanced RTMP: the FourCC after the first byte.
    FourCc([u8; 4]),
}

impl CodecTag {
    /// The codecs read here beyond the header.
    fn known(self) -> Result<VideoCodec, CodecError> {
        match self {
            Self::Id(7) | Self::FourCc(AVC1) => Ok(VideoCodec::H264),
            Self::Id(12) | Self::FourCc(HVC1) => Ok(VideoCodec::H265),
            Self::Id(other) => Err(CodecError::UnsupportedVideoCodec(other)),
            Self::FourCc(other) => Err(CodecError::UnsupportedFourCc(
                String::from_utf8_lossy(&other).into_owned(),
            )),
        }
    }

    /// Whether legacy tags of this codec are laid out as AVC's: `PacketType(u8: 0 config, 1 frames, 2 end)
    /// CompositionTime(SI24)` before the payload. AVC (7), and HEVC (12) and AV1 (13) as Chinese CDNs carry them.
    fn avc_like(self) -> bool {
        matches!(self, Self::Id(7 | 12 | 13))
    }

    /// Whether enhanced `CodedFrames` of this codec carry a composition time: the specification gives one to
    /// AVC and HEVC only (AV1 and VP9 frames follow the FourCC directly).
    fn has_cts(self) -> bool {
        matches!(self, Self::FourCc(AVC1 | HVC1))
    }

    fn tag_name(self) -> &'static str {
        match self.known() {
            Ok(codec) => video_tag_name(codec),
            Err(_) => "video tag",
        }
    }
}

/// The header of a video tag, whatever its codec: the first byte, and the FourCC of the enhanced form.
#[derive(Debug, Clone, Copy)]
struct VideoHeader<'a> {
    codec: CodecTag,
    /// 1 keyframe, 2 inter frame, 3 disposable inter frame, 4 generated keyframe, 5 info / command frame.
    frame_type: u8,
    /// Enhanced RTMP's packet type (0 in the legacy form, where AVC-like codecs carry it in the body).
    ex_packet_type: u8,
    /// The bytes after the header.
    body: &'a [u8],
}

/// What a video tag carries, whatever its codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoPacket<'a> {
    /// A decoder configuration: legacy packet type 0, enhanced `SequenceStart` or (`mpeg2ts`)
    /// `MPEG2TSSequenceStart`.
    Config {
        record: &'a [u8],
        mpeg2ts: bool,
    },
    /// Coded frames (an empty `data` has none), with the composition time offset in ms (0 where the form has
    /// none).
    Frames {
        cts: i32,
        data: &'a [u8],
    },
    End,
    /// A command frame or enhanced metadata: nothing for a decoder.
    Skip,
    /// A packet type not known here.
    Unknown(u8),
}

impl<'a> VideoHeader<'a> {
    fn parse(d: &'a [u8]) -> Result<Self, CodecError> {
        let &b0 = d.first().ok_or(CodecError::Empty("video"))?;
        if b0 & 0x80 == 0 {
            return Ok(Self {
                codec: CodecTag::Id(b0 & 0x0F),
                frame_type: b0 >> 4,
                ex_packet_type: 0,
                body: &d[1..],
            });
        }
        // Enhanced RTMP: [IsExHeader | FrameType(3) | PacketType(4)] FourCC ...
        if d.len() < 5 {
            return Err(CodecError::Truncated("enhanced-RTMP video tag"));
        }
        Ok(Self {
            codec: CodecTag::FourCc([d[1], d[2], d[3], d[4]]),
            frame_type: (b0 >> 4) & 0x07,
            ex_packet_type: b0 & 0x0F,
            body: &d[5..],
        })
    }

    fn packet(&self) -> Result<VideoPacket<'a>, CodecError> {
        match self.codec {
            CodecTag::Id(_) => self.legacy_packet(),
            CodecTag::FourCc(_) => self.enhanced_packet(),
        }
    }

    fn legacy_packet(&self) -> Result<VideoPacket<'a>, CodecError> {
        if self.frame_type == FRAME_TYPE_COMMAND {
            return Ok(VideoPacket::Skip);
        }
        let d = self.body;
        if !self.codec.avc_like() {
            // Older codecs (H.263, screen video, VP6): the body is the frame.
            return Ok(VideoPacket::Frames { cts: 0, data: d });
        }
        if d.len() < 4 {
            return Err(CodecError::Truncated(self.codec.tag_name()));
        }
        let payload = &d[4..];
        Ok(match d[0] {
            0 => VideoPacket::Config {
                record: payload,
                mpeg2ts: false,
            },
            1 => VideoPacket::Frames {
                cts: si24(&d[1..4]),
                data: payload,
            },
            2 => VideoPacket::End,
            other => VideoPacket::Unknown(other),
        })
    }

    fn enhanced_packet(&self) -> Result<VideoPacket<'a>, CodecError> {
        let packet_type = self.ex_packet_type;
        if self.frame_type == FRAME_TYPE_COMMAND && packet_type != EX_SEQUENCE_START {
            return Ok(VideoPacket::Skip);
        }
        let rest = self.body;
        Ok(match packet_type {
            EX_SEQUENCE_START | EX_MPEG2TS_SEQUENCE_START => VideoPacket::Config {
                record: rest,
                mpeg2ts: packet_type == EX_MPEG2TS_SEQUENCE_START,
            },
            EX_CODED_FRAMES if self.codec.has_cts() => {
                if rest.len() < 3 {
                    return Err(CodecError::Truncated(self.codec.tag_name()));
                }
                VideoPacket::Frames {
                    cts: si24(&rest[..3]),
                    data: &rest[3..],
                }
            }
            EX_CODED_FRAMES | EX_CODED_FRAMES_X => VideoPacket::Frames { cts: 0, data: rest },
            EX_SEQUENCE_END => VideoPacket::End,
            EX_METADATA => VideoPacket::Skip,
            other => VideoPacket::Unknown(other),
        })
    }
}

/// Reads a video tag's data.
pub fn parse_video(d: &[u8]) -> Result<Video<'_>, CodecError> {
    let header = VideoHeader::parse(d)?;
    let codec = header.codec.known()?;
    let form = match header.codec {
        CodecTag::Id(_) => VideoForm::Legacy,
        CodecTag::FourCc(_) => VideoForm::Enhanced,
    };
    match header.packet()? {
        VideoPacket::Config {
            record,
            mpeg2ts: false,
        } => Ok(Video::Config {
            codec,
            form,
            record,
        }),
        VideoPacket::Config { mpeg2ts: true, .. } => {
            Err(CodecError::UnsupportedPacketType(EX_MPEG2TS_SEQUENCE_START))
        }
        VideoPacket::Frames { data: [], .. } => Ok(Video::Skip),
        VideoPacket::Frames { cts, data } => Ok(Video::Frame {
            codec,
            keyframe: header.frame_type == FRAME_TYPE_KEY,
            cts,
            data,
        }),
        VideoPacket::End => Ok(Video::End { codec }),
        VideoPacket::Skip => Ok(Video::Skip),
        VideoPacket::Unknown(other) => Err(match form {
            VideoForm::Legacy => CodecError::Invalid(video_tag_name(codec), "unknown packet type"),
            VideoForm::Enhanced => CodecError::UnsupportedPacketType(other),
        }),
    }
}

fn video_tag_name(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::H264 => "H.264 video tag",
        VideoCodec::H265 => "H.265 video tag",
    }
}

/// Whether a video tag's data is a frame a decoder can start at: a keyframe (frame type 1) with picture data,
/// not a configuration. Any codec, in either form; what the relay and the outputs resume at.
pub fn is_keyframe(d: &[u8]) -> bool {
    VideoHeader::parse(d).is_ok_and(|h| {
        h.frame_type == FRAME_TYPE_KEY
            && matches!(h.packet(), Ok(VideoPacket::Frames { data, .. }) if !data.is_empty())
    })
}

/// Whether a video tag's data is a decoder configuration (a sequence header). Any codec, in either form.
pub fn is_video_config(d: &[u8]) -> bool {
    matches!(
        VideoHeader::parse(d).and_then(|h| h.packet()),
        Ok(VideoPacket::Config { .. })
    )
}

/// Reads an audio tag's data.
pub fn parse_audio(d: &[u8]) -> Result<Audio<'_>, CodecError> {
    let &b0 = d.first().ok_or(CodecError::Empty("audio"))?;
    match b0 >> 4 {
        10 => {
            if d.len() < 2 {
                return Err(CodecError::Truncated("AAC audio tag"));
            }
            match d[1] {
                0 => Ok(Audio::AacConfig(&d[2..])),
                1 => Ok(Audio::AacFrame(&d[2..])),
                _ => Err(CodecError::Invalid("AAC audio tag", "unknown packet type")),
            }
        }
        2 | 14 => {
            let rate = if b0 >> 4 == 14 {
                8000
            } else {
                [5512, 11025, 22050, 44100][((b0 >> 2) & 3) as usize]
            };
            Ok(Audio::Mp3 {
                rate,
                channels: if b0 & 1 == 1 { 2 } else { 1 },
                data: &d[1..],
            })
        }
        other => Err(CodecError::UnsupportedAudio(other)),
    }
}

/// The facts of a decoder configuration record the demuxer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoConfig {
    /// Bytes of each NAL unit's length prefix in frames (1, 2 or 4).
    pub nal_length_size: usize,
}

/// A bounds-checked reader over a configuration record.
struct Reader<'a> {
    d: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.d.len());
        let end = end.ok_or(CodecError::Truncated(self.what))?;
        let s = &self.d[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize, CodecError> {
        let b = self.take(2)?;
        Ok(((b[0] as usize) << 8) | b[1] as usize)
    }

    /// Skips `count` NAL units, each with a 16-bit length, checking that at least one is non-empty if required.
    fn nal_units(&mut self, count: usize) -> Result<(), CodecError> {
        for _ in 0..count {
            let len = self.u16()?;
            if len == 0 {
                return Err(CodecError::Invalid(self.what, "empty parameter set"));
            }
            self.take(len)?;
        }
        Ok(())
    }
}

const AVC_RECORD: &str = "H.264 sequence header (AVCDecoderConfigurationRecord)";
const HEVC_RECORD: &str = "H.265 sequence header (HEVCDecoderConfigurationRecord)";

/// Checks a configuration record end to end (every parameter set within bounds) and returns what frames need.
pub fn check_config(codec: VideoCodec, record: &[u8]) -> Result<VideoConfig, CodecError> {
    match codec {
        VideoCodec::H264 => check_avc_record(record),
        VideoCodec::H265 => check_hevc_record(record),
    }
}

fn check_avc_record(d: &[u8]) -> Result<VideoConfig, CodecError> {
    let mut r = Reader {
        d,
        pos: 0,
        what: AVC_RECORD,
    };
    if r.u8()? != 1 {
        return Err(CodecError::Invalid(
            AVC_RECORD,
            "configuration version is not 1",
        ));
    }
    r.take(3)?; // profile, compatibility, level
    let nal_length_size = (r.u8()? & 0x03) as usize + 1;
    let sps = (r.u8()? & 0x1F) as usize;
    if sps == 0 {
        return Err(CodecError::Invalid(AVC_RECORD, "no sequence parameter set"));
    }
    r.nal_units(sps)?;
    let pps = r.u8()? as usize;
    if pps == 0 {
        return Err(CodecError::Invalid(AVC_RECORD, "no picture parameter set"));
    }
    r.nal_units(pps)?;
    check_length_size(nal_length_size, AVC_RECORD)
}

fn check_hevc_record(d: &[u8]) -> Result<VideoConfig, CodecError> {
    let mut r = Reader {
        d,
        pos: 0,
        what: HEVC_RECORD,
    };
    if r.u8()? != 1 {
        return Err(CodecError::Invalid(
            HEVC_RECORD,
            "configuration version is not 1",
        ));
    }
    // profile/tier/level, compatibility and constraint flags, level, segmentation, parallelism, chroma format,
    // bit depths, average frame rate.
    r.take(20)?;
    let nal_length_size = (r.u8()? & 0x03) as usize + 1;
    let arrays = r.u8()? as usize;
    let (mut vps, mut sps, mut pps) = (false, false, false);
    for _ in 0..arrays {
        let nal_type = r.u8()? & 0x3F;
        let count = r.u16()?;
        r.nal_units(count)?;
        match nal_type {
            32 => vps |= count > 0,
            33 => sps |= count > 0,
            34 => pps |= count > 0,
            _ => {}
        }
    }
    if !(vps && sps && pps) {
        return Err(CodecError::Invalid(HEVC_RECORD, "VPS, SPS or PPS missing"));
    }
    check_length_size(nal_length_size, HEVC_RECORD)
}

fn check_length_size(n: usize, what: &'static str) -> Result<VideoConfig, CodecError> {
    if n == 3 {
        return Err(CodecError::Invalid(what, "NAL length size 3"));
    }
    Ok(VideoConfig { nal_length_size: n })
}

/// Checks that a frame is a whole number of length-prefixed NAL units.
pub fn check_frame(config: VideoConfig, data: &[u8]) -> Result<(), CodecError> {
    let n = config.nal_length_size;
    let mut pos = 0usize;
    while pos < data.len() {
        let Some(len) = data.get(pos..pos + n) else {
            return Err(CodecError::Truncated("video frame (NAL length)"));
        };
        let len = len.iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        pos += n;
        if len == 0 || data.len() - pos < len {
            return Err(CodecError::Invalid(
                "video frame",
                "NAL unit length out of bounds",
            ));
        }
        pos += len;
    }
    Ok(())
}

/// Sample rate and channel count of an AAC AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    pub rate: u32,
    pub channels: u32,
}

const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Reads an AudioSpecificConfig's rate and channels.
pub fn parse_asc(d: &[u8]) -> Result<AacConfig, CodecError> {
    const WHAT: &str = "AAC sequence header (AudioSpecificConfig)";
    if d.len() < 2 {
        return Err(CodecError::Truncated(WHAT));
    }
    let bits = u64::from_be_bytes({
        let mut b = [0u8; 8];
        let n = d.len().min(8);
        b[..n].copy_from_slice(&d[..n]);
        b
    });
    let field = |at: u32, width: u32| ((bits >> (64 - at - width)) & ((1 << width) - 1)) as u32;
    let mut at = 5;
    if field(0, 5) == 31 {
        at += 6; // escaped object type
    }
    let index = field(at, 4);
    at += 4;
    let rate = if index == 15 {
        if d.len() < 5 {
            return Err(CodecError::Truncated(WHAT));
        }
        let r = field(at, 24);
        at += 24;
        r
    } else {
        *AAC_RATES.get(index as usize).ok_or(CodecError::Invalid(
            WHAT,
            "reserved sampling frequency index",
        ))?
    };
    let channels = field(at, 4);
    if rate == 0 || channels == 0 || channels > 8 {
        return Err(CodecError::Invalid(
            WHAT,
            "unsupported rate or channel configuration",
        ));
    }
    Ok(AacConfig {
        rate,
        channels: if channels == 7 { 8 } else { channels },
    })
}

/// The first byte of a legacy video tag.
fn legacy_b0(codec: VideoCodec, keyframe: bool) -> u8 {
    (if keyframe { 0x10 } else { 0x20 }) | codec.codec_id()
}

/// The first five bytes of an enhanced video tag.
fn enhanced_head(codec: VideoCodec, keyframe: bool, packet_type: u8) -> [u8; 5] {
    let f = codec.fourcc();
    let frame_type = if keyframe { 1 } else { 2 };
    [
        0x80 | (frame_type << 4) | packet_type,
        f[0],
        f[1],
        f[2],
        f[3],
    ]
}

/// Data of a video tag carrying a configuration record.
pub fn video_config_tag(codec: VideoCodec, form: VideoForm, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.len() + 5);
    match form {
        VideoForm::Legacy => out.extend_from_slice(&[legacy_b0(codec, true), 0, 0, 0, 0]),
        VideoForm::Enhanced => {
            out.extend_from_slice(&enhanced_head(codec, true, EX_SEQUENCE_START))
        }
    }
    out.extend_from_slice(record);
    out
}

/// Data of a video tag carrying one access unit (length-prefixed NAL units).
pub fn video_frame_tag(
    codec: VideoCodec,
    form: VideoForm,
    keyframe: bool,
    cts: i32,
    data: &[u8],
) -> Vec<u8> {
    let c = cts.clamp(-(1 << 23), (1 << 23) - 1).to_be_bytes();
    let mut out = Vec::with_capacity(data.len() + 8);
    match form {
        VideoForm::Legacy => out.extend_from_slice(&[legacy_b0(codec, keyframe), 1]),
        VideoForm::Enhanced if cts == 0 => {
            out.extend_from_slice(&enhanced_head(codec, keyframe, EX_CODED_FRAMES_X));
            out.extend_from_slice(data);
            return out;
        }
        VideoForm::Enhanced => {
            out.extend_from_slice(&enhanced_head(codec, keyframe, EX_CODED_FRAMES))
        }
    }
    out.extend_from_slice(&c[1..]);
    out.extend_from_slice(data);
    out
}

/// Data of a video tag that ends the sequence.
pub fn video_end_tag(codec: VideoCodec, form: VideoForm) -> Vec<u8> {
    match form {
        VideoForm::Legacy => vec![legacy_b0(codec, true), 2, 0, 0, 0],
        VideoForm::Enhanced => enhanced_head(codec, true, EX_SEQUENCE_END).to_vec(),
    }
}

/// Data of an AAC tag: the AudioSpecificConfig (`config`) or one raw frame. FLV fixes the header byte for AAC
/// (44 kHz, 16 bit, stereo); the real values are in the AudioSpecificConfig.
pub fn aac_tag(config: bool, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2);
    out.extend_from_slice(&[0xAF, if config { 0 } else { 1 }]);
    out.extend_from_slice(data);
    out
}

/// Runs bytes through everything that reads untrusted FLV: the tag parser, then each tag's media parsing and
/// the checks of configuration records and frames, as the demuxer does. For fuzzing (`fuzz/`, and the
/// randomised test below); it must never panic, whatever the bytes. Returns the number of usable tags.
#[doc(hidden)]
pub fn fuzz_one(bytes: &[u8]) -> usize {
    let mut parser = super::Parser::with_max_tag_size(1 << 20);
    let mut config = None;
    let mut usable = 0;
    // Uneven chunks, as a network delivers them.
    for chunk in bytes.chunks(bytes.first().map_or(1, |&b| usize::from(b % 97) + 1)) {
        parser.push(chunk);
        while let Some(item) = parser.next_item() {
            let super::Item::Tag(tag) = item else {
                continue;
            };
            match tag.kind {
                super::TagKind::Video => match parse_video(&tag.data) {
                    Ok(Video::Config { codec, record, .. }) => {
                        config = check_config(codec, record).ok();
                        usable += usize::from(config.is_some());
                    }
                    Ok(Video::Frame { data, .. }) => {
                        if let Some(c) = config {
                            usable += usize::from(check_frame(c, data).is_ok());
                        }
                    }
                    _ => {}
                },
                super::TagKind::Audio => match parse_audio(&tag.data) {
                    Ok(Audio::AacConfig(asc)) => usable += usize::from(parse_asc(asc).is_ok()),
                    Ok(_) => usable += 1,
                    Err(_) => {}
                },
                super::TagKind::Script => {}
            }
        }
    }
    usable
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal but complete HEVCDecoderConfigurationRecord with one VPS, SPS and PPS (bytes are not real
    /// parameter sets; the demuxer only checks structure).
    pub(crate) fn hevc_record() -> Vec<u8> {
        let mut r = vec![1u8];
        r.extend_from_slice(&[0; 20]);
        r.push(0xFF); // lengthSizeMinusOne = 3
        r.push(3);
        for (t, body) in [
            (32u8, &[0x40u8, 1][..]),
            (33, &[0x42, 1, 1]),
            (34, &[0x44, 1]),
        ] {
            r.push(0x80 | t);
            r.extend_from_slice(&[0, 1, 0, body.len() as u8]);
            r.extend_from_slice(body);
        }
        r
    }

    fn avc_record() -> Vec<u8> {
        vec![
            1, 0x42, 0, 0x1E, 0xFF, 0xE1, 0, 2, 0x67, 0x42, 1, 0, 2, 0x68, 0xCE,
        ]
    }

    #[test]
    fn both_hevc_forms_round_trip() {
        let rec = hevc_record();
        for form in [VideoForm::Legacy, VideoForm::Enhanced] {
            let t = video_config_tag(VideoCodec::H265, form, &rec);
            assert_eq!(
                parse_video(&t),
                Ok(Video::Config {
                    codec: VideoCodec::H265,
                    form,
                    record: &rec
                })
            );
            for cts in [0, 40, -33] {
                let f = video_frame_tag(VideoCodec::H265, form, true, cts, &[0, 0, 0, 1, 0x26]);
                assert_eq!(
                    parse_video(&f),
                    Ok(Video::Frame {
                        codec: VideoCodec::H265,
                        keyframe: true,
                        cts,
                        data: &[0, 0, 0, 1, 0x26]
                    })
                );
            }
            let e = video_end_tag(VideoCodec::H265, form);
            assert_eq!(
                parse_video(&e),
                Ok(Video::End {
                    codec: VideoCodec::H265
                })
            );
        }
        // The legacy form is what Chinese CDNs send: 0x1C / 0x2C first bytes.
        assert_eq!(
            video_frame_tag(VideoCodec::H265, VideoForm::Legacy, false, 0, &[])[0],
            0x2C
        );
        assert_eq!(
            &video_config_tag(VideoCodec::H265, VideoForm::Enhanced, &[])[..5],
            b"\x90hvc1"
        );
    }

    #[test]
    fn the_relay_helpers_agree_with_the_writers() {
        use crate::flv::{is_sequence_header, is_video_keyframe, Tag, TagKind};
        for form in [VideoForm::Legacy, VideoForm::Enhanced] {
            let cfg = Tag::new(
                TagKind::Video,
                0,
                video_config_tag(VideoCodec::H265, form, &hevc_record()),
            );
            assert!(is_sequence_header(&cfg));
            let key = Tag::new(
                TagKind::Video,
                0,
                video_frame_tag(VideoCodec::H265, form, true, 0, &[0, 0, 0, 1, 1]),
            );
            assert!(is_video_keyframe(&key) && !is_sequence_header(&key));
            let delta = Tag::new(
                TagKind::Video,
                0,
                video_frame_tag(VideoCodec::H265, form, false, 5, &[0, 0, 0, 1, 1]),
            );
            assert!(!is_video_keyframe(&delta));
        }
    }

    /// Random short video tags: wherever [`parse_video`] reads one, the relay's checks say the same of it.
    #[test]
    fn the_relay_checks_agree_with_parse_video() {
        let mut rng = fastrand::Rng::with_seed(0xF1A6);
        let firsts = [
            0x17, 0x27, 0x57, 0x1C, 0x2C, 0x5C, 0x90, 0x91, 0x93, 0xA1, 0xD0, 0xD1, 0x95,
        ];
        for _ in 0..20_000 {
            let mut d = vec![firsts[rng.usize(..firsts.len())]];
            if d[0] & 0x80 != 0 && rng.bool() {
                d.extend_from_slice(if rng.bool() { b"hvc1" } else { b"avc1" });
            }
            d.extend((0..rng.usize(0..6)).map(|_| rng.u8(0..4)));
            let (config, keyframe) = (is_video_config(&d), is_keyframe(&d));
            match parse_video(&d) {
                Ok(Video::Config { .. }) => assert!(config && !keyframe, "{d:02x?}"),
                Ok(Video::Frame { keyframe: k, .. }) => {
                    assert!(!config && keyframe == k, "{d:02x?}")
                }
                Ok(Video::End { .. } | Video::Skip) => assert!(!config && !keyframe, "{d:02x?}"),
                Err(_) => {}
            }
        }
    }

    #[test]
    fn h264_is_read_in_both_forms() {
        let legacy = [0x17, 0, 0, 0, 0, 1, 2];
        assert!(matches!(
            parse_video(&legacy),
            Ok(Video::Config {
                codec: VideoCodec::H264,
                form: VideoForm::Legacy,
                ..
            })
        ));
        let ex = video_frame_tag(
            VideoCodec::H264,
            VideoForm::Enhanced,
            false,
            0,
            &[0, 0, 0, 1, 9],
        );
        assert!(matches!(
            parse_video(&ex),
            Ok(Video::Frame {
                codec: VideoCodec::H264,
                keyframe: false,
                ..
            })
        ));
        assert_eq!(
            check_config(VideoCodec::H264, &avc_record()),
            Ok(VideoConfig { nal_length_size: 4 })
        );
    }

    #[test]
    fn records_are_checked_end_to_end() {
        let rec = hevc_record();
        assert_eq!(
            check_config(VideoCodec::H265, &rec),
            Ok(VideoConfig { nal_length_size: 4 })
        );
        for cut in 0..rec.len() {
            let err = check_config(VideoCodec::H265, &rec[..cut]).unwrap_err();
            assert!(err.to_string().contains("H.265 sequence header"), "{err}");
        }
        let mut no_pps = rec.clone();
        no_pps[22] = 2;
        assert!(check_config(VideoCodec::H265, &no_pps).is_err());
        let avc = avc_record();
        for cut in 0..avc.len() {
            assert!(check_config(VideoCodec::H264, &avc[..cut]).is_err());
        }
    }

    #[test]
    fn frames_must_be_whole_nal_units() {
        let c = VideoConfig { nal_length_size: 4 };
        assert!(check_frame(c, &[0, 0, 0, 2, 1, 2, 0, 0, 0, 1, 3]).is_ok());
        assert!(check_frame(c, &[0, 0, 0, 3, 1, 2]).is_err());
        assert!(check_frame(c, &[0, 0, 0]).is_err());
        assert!(check_frame(c, &[0, 0, 0, 0]).is_err());
        assert!(check_frame(VideoConfig { nal_length_size: 2 }, &[0, 1, 7]).is_ok());
    }

    #[test]
    fn unsupported_and_cut_tags_are_errors_not_panics() {
        assert_eq!(parse_video(&[]), Err(CodecError::Empty("video")));
        assert_eq!(
            parse_video(&[0x14]),
            Err(CodecError::UnsupportedVideoCodec(4))
        );
        assert!(matches!(
            parse_video(b"\x90av01\x01"),
            Err(CodecError::UnsupportedFourCc(_))
        ));
        assert!(matches!(
            parse_video(&[0x1C, 1]),
            Err(CodecError::Truncated(_))
        ));
        assert!(matches!(
            parse_video(b"\x91hvc"),
            Err(CodecError::Truncated(_))
        ));
        assert_eq!(parse_video(&[0x57, 0]), Ok(Video::Skip));
        assert_eq!(
            parse_audio(&[0xAF]),
            Err(CodecError::Truncated("AAC audio tag"))
        );
        assert_eq!(
            parse_audio(&[0x7F, 0]),
            Err(CodecError::UnsupportedAudio(7))
        );
    }

    /// A valid stream of both H.265 forms and AAC, then random bytes and thousands of mutations of it: no panic,
    /// and the untouched stream is fully usable.
    #[test]
    fn fuzzing_never_panics() {
        let mut stream = Vec::new();
        crate::flv::write_header(&mut stream, true, true);
        let rec = hevc_record();
        for (i, form) in [VideoForm::Legacy, VideoForm::Enhanced]
            .into_iter()
            .enumerate()
        {
            let t = i as u32 * 100;
            for data in [
                video_config_tag(VideoCodec::H265, form, &rec),
                video_frame_tag(VideoCodec::H265, form, true, 0, &[0, 0, 0, 2, 0x26, 1]),
                video_frame_tag(VideoCodec::H265, form, false, 33, &[0, 0, 0, 1, 2]),
                video_end_tag(VideoCodec::H265, form),
            ] {
                crate::flv::write_tag(&mut stream, crate::flv::TagKind::Video, t, &data).unwrap();
            }
            crate::flv::write_tag(
                &mut stream,
                crate::flv::TagKind::Audio,
                t,
                &aac_tag(true, &[0x12, 0x10]),
            )
            .unwrap();
            crate::flv::write_tag(
                &mut stream,
                crate::flv::TagKind::Audio,
                t,
                &aac_tag(false, &[1, 2, 3]),
            )
            .unwrap();
        }
        assert_eq!(fuzz_one(&stream), 10);
        let mut rng = fastrand::Rng::with_seed(0x7E55E4A);
        for _ in 0..300 {
            let n = rng.usize(0..600);
            let random: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            fuzz_one(&random);
        }
        for _ in 0..5000 {
            let mut m = stream.clone();
            for _ in 0..rng.usize(1..6) {
                match rng.u8(0..4) {
                    0 => {
                        let i = rng.usize(..m.len());
                        m[i] = rng.u8(..);
                    }
                    1 => m.truncate(rng.usize(..m.len())),
                    2 => {
                        let i = rng.usize(..m.len());
                        m.insert(i, rng.u8(..));
                    }
                    _ => {
                        let i = rng.usize(..m.len());
                        m.remove(i);
                    }
                }
                if m.is_empty() {
                    break;
                }
            }
            fuzz_one(&m);
        }
    }

    #[test]
    fn audio_tags() {
        assert_eq!(
            parse_audio(&aac_tag(true, &[0x12, 0x10])),
            Ok(Audio::AacConfig(&[0x12, 0x10]))
        );
        assert_eq!(
            parse_audio(&aac_tag(false, &[1, 2])),
            Ok(Audio::AacFrame(&[1, 2]))
        );
        assert_eq!(
            parse_audio(&[0x2F, 0xFF]),
            Ok(Audio::Mp3 {
                rate: 44100,
                channels: 2,
                data: &[0xFF]
            })
        );
        // AAC-LC 44.1 kHz stereo, 48 kHz mono.
        assert_eq!(
            parse_asc(&[0x12, 0x10]),
            Ok(AacConfig {
                rate: 44100,
                channels: 2
            })
        );
        assert_eq!(
            parse_asc(&[0x11, 0x88]),
            Ok(AacConfig {
                rate: 48000,
                channels: 1
            })
        );
        assert!(parse_asc(&[0x12]).is_err());
        assert!(parse_asc(&[0x17, 0x80]).is_err());
    }
}
