//! One mix request as both Tencent dialects express it. The legacy CGI (`layout_params.image_layer`, …) and API
//! 3.0 (`LayoutParams.ImageLayer`, …) name the same things differently; each wire module fills this struct, and
//! [`super::translate`] alone gives it meaning. Values stay as sent (numbers unchecked, options unset) so that the
//! shared mapping applies every range rule and picks every error code.

/// `start_mix_stream_advanced` / `CreateCommonMixStream`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MixRequest {
    /// `mix_stream_session_id` / `MixStreamSessionId`: names the session across updates and the cancel.
    pub session_id: String,
    /// `mix_stream_template_id` / `MixStreamTemplateId`; 0 or absent = custom layout.
    pub template_id: Option<i64>,
    pub output: OutputParams,
    pub inputs: Vec<InputParam>,
    pub control: ControlParams,
}

/// `output_stream_*` / `OutputParams`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputParams {
    /// `output_stream_id` / `OutputStreamName`: published at the egress URL of this stream id.
    pub stream_id: String,
    /// 0: the output id is one of the inputs (the mix replaces that stream for viewers); 1: a new stream.
    pub stream_type: Option<i64>,
    /// Video bitrate, kbit/s.
    pub bitrate_kbps: Option<i64>,
    /// API 3.0 only: keyframe interval, seconds.
    pub gop_s: Option<i64>,
    /// API 3.0 only.
    pub fps: Option<i64>,
    /// API 3.0 only: kbit/s.
    pub audio_bitrate_kbps: Option<i64>,
    /// API 3.0 only: Hz.
    pub audio_sample_rate: Option<i64>,
    /// API 3.0 only: 1 or 2.
    pub audio_channels: Option<i64>,
    /// API 3.0 only (`MixSei`): text carried in the output's SEI.
    pub sei: Option<String>,
}

/// One entry of `input_stream_list` / `InputStreamList`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputParam {
    /// The stream pulled (input types 0, 4, 5), or only a name (pictures and canvases).
    pub stream_id: String,
    /// Required: an input without it is refused (-4).
    pub layout: Option<LayoutParams>,
    pub crop: Option<CropParams>,
}

/// `layout_params` / `LayoutParams`. Sizes and positions are pixels, or fractions of the background when in
/// (0, 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayoutParams {
    /// 1 = the background (defines the canvas); 2–16 above it.
    pub layer: Option<i64>,
    /// 0 audio+video (default), 2 picture, 3 canvas, 4 audio only, 5 video only.
    pub input_type: Option<i64>,
    pub width: Option<f64>,
    pub height: Option<f64>,
    pub x: Option<f64>,
    pub y: Option<f64>,
    /// Canvas colour, `0xRRGGBB`.
    pub color: Option<String>,
    /// `picture_id` / `WatermarkId` of a picture input.
    pub picture_id: Option<i64>,
}

/// `crop_params` / `CropParams`, in pixels of the source picture.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CropParams {
    pub width: Option<f64>,
    pub height: Option<f64>,
    pub x: Option<f64>,
    pub y: Option<f64>,
}

/// API 3.0 `ControlParams` (the legacy CGI has none: all off).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlParams {
    /// `UseMixCropCenter`: fill each rectangle keeping the aspect ratio, cropping the centre.
    pub use_mix_crop_center: Option<i64>,
    /// `AllowCopy`: with one input and output type 1, copy that stream instead of ending the session.
    pub allow_copy: Option<i64>,
    /// `PassInputSei`: carry the inputs' user-data SEI messages into the output.
    pub pass_input_sei: Option<i64>,
    /// `UsePictureTransparent`: honour pictures' alpha channel (otherwise pictures are drawn opaque).
    pub use_picture_transparent: Option<i64>,
}

/// Which dialect a request came in; decides the ranges that differ between the two (pixels up to 3000 vs 2000,
/// bitrate up to 50000 vs 10000) and the picture-transparency default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Legacy,
    Cloud,
}

impl Dialect {
    /// Largest pixel size or position.
    pub fn max_pixels(self) -> f64 {
        match self {
            Dialect::Legacy => 3000.0,
            Dialect::Cloud => 2000.0,
        }
    }

    /// Largest output video bitrate, kbit/s.
    pub fn max_bitrate(self) -> i64 {
        match self {
            Dialect::Legacy => 50_000,
            Dialect::Cloud => 10_000,
        }
    }
}
