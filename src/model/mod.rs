//! The canonical, vendor-independent description of a mix. Every dialect translates into [`MixSpec`]; the
//! engine reads nothing else.

mod color;
pub mod geometry;
mod validate;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use color::Color;
pub use validate::{has_control, is_file_path, valid_id, Limits, Violation, ID_RULE};

/// Everything needed to run one mix: the picture, the sound and where it goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MixSpec {
    /// The output picture everything is placed on.
    #[serde(default)]
    pub canvas: Canvas,
    /// Live streams shown and heard in the mix.
    #[serde(default)]
    pub inputs: Vec<InputSpec>,
    /// Still images (watermarks, logos) placed on the canvas.
    #[serde(default)]
    pub overlays: Vec<ImageOverlay>,
    /// Where the mixed stream is published; at least one.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub outputs: Vec<OutputSpec>,
    /// Data carried inside the output video as H.264 SEI messages.
    #[serde(default)]
    pub sei: SeiSpec,
}

/// What the output video carries as SEI `user_data_unregistered` messages, in the output H.264 (video outputs
/// only): UUID `tessera-userdata` (the data as given, on keyframes and after each change) and `tessera-soundlvl`
/// (JSON `{"levels":[{"id":1,"level":62}]}` every frame, level 0-100); with `pass_input`, also the inputs' own
/// messages. docs/native-api.md has the details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
#[schema(default)]
pub struct SeiSpec {
    /// Opaque application data, base64 (1 to 4096 bytes once decoded), sent on every keyframe and after each change.
    #[schema(content_encoding = "base64")]
    pub user_data_base64: Option<String>,
    /// Sends each frame the sound level (0–100) of every input that has a `sound_level_id`.
    pub sound_levels: bool,
    /// Copies the `user_data_unregistered` SEI messages found in the inputs' H.264 into the output video, each
    /// on the output frame that carries the corresponding moment, with its own UUID and payload. Only inputs
    /// whose picture is used (`content` `av` or `video`) contribute; messages the output cannot keep up with
    /// are dropped.
    pub pass_input: bool,
}

/// The output picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
#[schema(default)]
pub struct Canvas {
    /// Width in pixels (even, because the encoder works on 4:2:0).
    #[schema(minimum = 16, maximum = 4096, multiple_of = 2)]
    pub width: u32,
    /// Height in pixels (even).
    #[schema(minimum = 16, maximum = 4096, multiple_of = 2)]
    pub height: u32,
    /// Frames per second the compositor produces.
    #[schema(minimum = 1, maximum = 60)]
    pub fps: u32,
    /// Colour shown where no input or image covers the canvas.
    pub background: Color,
    /// Optional picture (file path or http(s) URL of a PNG/JPEG) stretched over the whole canvas, above the colour.
    /// A file path is within the pictures folder, `engine.pictures_dir` (relative to it, or absolute inside it).
    pub background_image: Option<String>,
}

impl Default for Canvas {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
            background: Color::BLACK,
            background_image: None,
        }
    }
}

/// Where an input comes from: a stream id resolved through `ingest.pull_url`, or a full URL. Exactly one of
/// `stream_id` and `url`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// A stream id, pulled from `ingest.pull_url` with `{stream_id}` replaced.
    StreamId(String),
    /// An rtmp://, rtmps://, http:// or https:// (FLV) URL.
    Url(String),
}

/// Which parts of an input are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// Picture and sound.
    #[default]
    Av,
    /// Sound only: nothing is drawn.
    Audio,
    /// Picture only: the input is not heard.
    Video,
}

impl Content {
    pub fn has_video(self) -> bool {
        matches!(self, Content::Av | Content::Video)
    }
    pub fn has_audio(self) -> bool {
        matches!(self, Content::Av | Content::Audio)
    }
}

/// How the (cropped) input picture is fitted into its destination rectangle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Scale to the rectangle, ignoring the aspect ratio.
    #[default]
    Stretch,
    /// Keep the aspect ratio and fill the rectangle, cutting the excess evenly from both sides.
    CropToFill,
    /// Keep the aspect ratio and show the whole picture, centred; the uncovered part shows what is beneath.
    Letterbox,
}

/// A rectangle in pixels. For a destination it is on the canvas; for a crop it is on the input picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rect {
    #[schema(minimum = 0)]
    pub x: i32,
    #[schema(minimum = 0)]
    pub y: i32,
    #[schema(minimum = 2)]
    pub width: u32,
    #[schema(minimum = 2)]
    pub height: u32,
}

impl Rect {
    pub fn new(x: i32, y: i32, width: u32, height: u32) -> Self {
        Self {
            x,
            y,
            width,
            height,
        }
    }
}

/// A text drawn on top of an input's picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// The text (UTF-8, one line).
    #[schema(min_length = 1, max_length = 256)]
    pub text: String,
    /// Font size in pixels.
    #[serde(default = "Label::default_font_size")]
    #[schema(default = Label::default_font_size, minimum = 6, maximum = 200)]
    pub font_size: u32,
    /// Text colour.
    #[serde(default = "Label::default_color")]
    #[schema(default = Label::default_color)]
    pub color: Color,
    /// Opacity in percent, 0 (invisible) to 100.
    #[serde(default = "Label::default_opacity")]
    #[schema(default = Label::default_opacity, maximum = 100)]
    pub opacity: u32,
    /// Left edge of the text, in pixels from the left of the input's rectangle.
    #[serde(default)]
    #[schema(default = 0, minimum = 0)]
    pub x: i32,
    /// Top edge of the text, in pixels from the top of the input's rectangle.
    #[serde(default)]
    #[schema(default = 0, minimum = 0)]
    pub y: i32,
}

impl Label {
    fn default_font_size() -> u32 {
        24
    }
    fn default_color() -> Color {
        Color::WHITE
    }
    fn default_opacity() -> u32 {
        100
    }
}

/// One live input of a mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Identifies the input within the mix (updates match inputs by id).
    #[schema(pattern = "^[A-Za-z0-9._~-]{1,128}$")]
    pub id: String,
    /// Where the stream is pulled from.
    pub source: Source,
    /// Picture and/or sound.
    #[serde(default)]
    #[schema(default = Content::default)]
    pub content: Content,
    /// Z-order: higher layers are drawn over lower ones; equal layers keep list order.
    #[serde(default = "InputSpec::default_layer")]
    #[schema(default = InputSpec::default_layer, maximum = 1000)]
    pub layer: u32,
    /// Where the picture goes on the canvas; the whole canvas when absent.
    #[serde(default)]
    pub rect: Option<Rect>,
    /// Part of the input picture to show; the whole picture when absent.
    #[serde(default)]
    pub crop: Option<Rect>,
    /// How the picture is fitted into `rect`.
    #[serde(default)]
    #[schema(default = Fit::default)]
    pub fit: Fit,
    /// Radius of the rounded corners in canvas pixels; 0 for square corners. At most half the rectangle's
    /// shorter side.
    #[serde(default)]
    #[schema(default = 0)]
    pub corner_radius: u32,
    /// Loudness in percent: 0 mutes, 100 keeps, 200 doubles.
    #[serde(default = "InputSpec::default_volume")]
    #[schema(default = InputSpec::default_volume, maximum = 200)]
    pub volume: u32,
    /// Optional text drawn over the picture.
    #[serde(default)]
    pub label: Option<Label>,
    /// Identifies this input in the sound-level SEI (`sei.sound_levels`).
    #[serde(default)]
    pub sound_level_id: Option<u32>,
}

impl InputSpec {
    fn default_layer() -> u32 {
        1
    }
    fn default_volume() -> u32 {
        100
    }

    /// A full-canvas audio+video input with every default, for tests and dialects.
    pub fn new(id: impl Into<String>, source: Source) -> Self {
        Self {
            id: id.into(),
            source,
            content: Content::Av,
            layer: 1,
            rect: None,
            crop: None,
            fit: Fit::Stretch,
            corner_radius: 0,
            volume: 100,
            label: None,
            sound_level_id: None,
        }
    }
}

/// A still picture placed on the canvas: an image, or a plain colour rectangle. Exactly one of `image` and
/// `color`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageOverlay {
    /// Identifies the overlay within the mix.
    #[schema(pattern = "^[A-Za-z0-9._~-]{1,128}$")]
    pub id: String,
    /// PNG or JPEG: a file path or an http(s) URL, scaled to `rect`. A file path is within the pictures folder,
    /// `engine.pictures_dir` (relative to it, or absolute inside it). Empty (or absent) when the overlay is a
    /// plain `color`.
    #[serde(default)]
    #[schema(default = "")]
    pub image: String,
    /// A plain rectangle of this colour instead of an image (exactly one of `image` and `color`).
    #[serde(default)]
    pub color: Option<Color>,
    /// Draws the image ignoring its alpha channel: transparent parts show the image's own colour values
    /// (black for most encoders) instead of what is beneath. No effect with `color`.
    #[serde(default)]
    #[schema(default = false)]
    pub opaque: bool,
    /// Where the image goes (it is scaled to this size).
    pub rect: Rect,
    /// Z-order, shared with the inputs' layers.
    #[serde(default = "ImageOverlay::default_layer")]
    #[schema(default = ImageOverlay::default_layer, maximum = 1000)]
    pub layer: u32,
}

impl ImageOverlay {
    fn default_layer() -> u32 {
        100
    }
}

/// Where one copy of the mixed stream goes. Exactly one of `stream_id` and `url`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// Published to `egress.push_url` with this stream id.
    StreamId(String),
    /// Published to this rtmp:// or rtmps:// URL.
    Url(String),
}

/// Video codecs an output can be encoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VideoCodec {
    #[default]
    H264,
    /// H.265 (HEVC), written into FLV in [`VideoEncoding::flv_form`].
    H265,
}

/// How an H.265 output is signalled in FLV (H.264 is always written the classic way, codec id 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlvVideoForm {
    /// Enhanced RTMP (`ExVideoTagHeader`, FourCC `hvc1`): what current players, OBS, FFmpeg 6.1+ and YouTube read.
    #[default]
    Enhanced,
    /// The legacy extension with FLV codec id 12, as Chinese CDNs (Tencent, SRS, ZEGO) carry H.265.
    #[serde(rename = "codec_id_12")]
    CodecId12,
}

/// Audio codecs an output can be encoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AudioCodec {
    /// AAC-LC.
    #[default]
    Aac,
    /// MPEG-1 Layer III (FLV carries it; sample rates 44100, 22050, 11025 only).
    Mp3,
}

/// Video encoding of an output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
#[schema(default)]
pub struct VideoEncoding {
    pub codec: VideoCodec,
    /// Target bitrate in kbit/s.
    #[schema(minimum = 100, maximum = 50000)]
    pub bitrate_kbps: u32,
    /// Output frame rate; the canvas rate when absent.
    #[schema(minimum = 1, maximum = 60)]
    pub fps: Option<u32>,
    /// Keyframe interval in seconds.
    #[schema(minimum = 1, maximum = 10)]
    pub gop_s: u32,
    /// How H.265 is written into FLV, for targets that read only one form (ignored for H.264).
    pub flv_form: FlvVideoForm,
}

impl Default for VideoEncoding {
    fn default() -> Self {
        Self {
            codec: VideoCodec::H264,
            bitrate_kbps: 2500,
            fps: None,
            gop_s: 2,
            flv_form: FlvVideoForm::Enhanced,
        }
    }
}

/// Audio encoding of an output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
#[schema(default)]
pub struct AudioEncoding {
    /// `aac` (AAC-LC), or `mp3`, which needs a sample rate of 44100, 22050 or 11025.
    pub codec: AudioCodec,
    /// Bitrate in kbit/s.
    #[schema(minimum = 16, maximum = 320)]
    pub bitrate_kbps: u32,
    /// Sample rate in Hz: 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200 or 96000.
    #[schema(minimum = 8000, maximum = 96000)]
    pub sample_rate: u32,
    /// 1 (mono) or 2 (stereo).
    #[schema(minimum = 1, maximum = 2)]
    pub channels: u32,
}

impl Default for AudioEncoding {
    fn default() -> Self {
        Self {
            codec: AudioCodec::Aac,
            bitrate_kbps: 128,
            sample_rate: 48_000,
            channels: 2,
        }
    }
}

/// One output of a mix. Outputs with identical encodings share one encoder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub target: Target,
    /// The video track: an absent `video` means the default encoding, an explicit `"video": null` an audio-only
    /// output (no video track at all, no SEI; `None` here). When every output is audio-only the mix draws
    /// nothing and its `output_fps` is 0.
    #[serde(default = "OutputSpec::default_video")]
    #[schema(default = OutputSpec::default_video)]
    pub video: Option<VideoEncoding>,
    #[serde(default)]
    #[schema(default = AudioEncoding::default)]
    pub audio: AudioEncoding,
}

impl OutputSpec {
    pub fn new(target: Target) -> Self {
        Self {
            target,
            video: Self::default_video(),
            audio: AudioEncoding::default(),
        }
    }

    /// An output with the default audio encoding and no video track.
    pub fn audio_only(target: Target) -> Self {
        Self {
            video: None,
            ..Self::new(target)
        }
    }

    fn default_video() -> Option<VideoEncoding> {
        Some(VideoEncoding::default())
    }
}

impl SeiSpec {
    /// The decoded user data, if any and valid.
    pub fn user_data(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let b64 = self.user_data_base64.as_deref()?;
        base64::engine::general_purpose::STANDARD.decode(b64).ok()
    }
}

impl MixSpec {
    /// Whether any output carries video. When none does, the mix builds no picture at all (no compositor, no
    /// input video branches, no still pictures).
    pub fn has_video_output(&self) -> bool {
        self.outputs.iter().any(|o| o.video.is_some())
    }

    /// The destination rectangle of an input: its own, or the whole canvas.
    pub fn input_rect(&self, input: &InputSpec) -> Rect {
        input
            .rect
            .unwrap_or_else(|| Rect::new(0, 0, self.canvas.width, self.canvas.height))
    }
}
