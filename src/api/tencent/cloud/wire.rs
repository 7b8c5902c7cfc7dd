//! API 3.0 bodies as they are on the wire (`CreateCommonMixStream`, `CancelCommonMixStream`, version
//! 2018-08-01). Unknown fields are refused with their name (newer SDK fields such as `PortraitSegmentParams` or
//! `WebPageUrl` are not implemented, and ignoring them would change the picture silently).

use serde::Deserialize;

use super::super::request::{
    ControlParams, CropParams, InputParam, LayoutParams, MixRequest, OutputParams,
};
use crate::api::lenient;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Create {
    pub mix_stream_session_id: Option<String>,
    pub input_stream_list: Option<Vec<Input>>,
    pub output_params: Option<Output>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub mix_stream_template_id: Option<i64>,
    pub control_params: Option<Control>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Cancel {
    pub mix_stream_session_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Input {
    #[serde(default)]
    pub input_stream_name: String,
    pub layout_params: Option<Layout>,
    pub crop_params: Option<Crop>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Layout {
    #[serde(default, deserialize_with = "lenient::int")]
    pub image_layer: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub input_type: Option<i64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub image_height: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub image_width: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub location_x: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub location_y: Option<f64>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub watermark_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Crop {
    #[serde(default, deserialize_with = "lenient::float")]
    pub crop_width: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub crop_height: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub crop_start_location_x: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub crop_start_location_y: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Output {
    #[serde(default)]
    pub output_stream_name: String,
    #[serde(default, deserialize_with = "lenient::int")]
    pub output_stream_type: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub output_stream_bit_rate: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub output_stream_gop: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub output_stream_frame_rate: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub output_audio_bit_rate: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub output_audio_sample_rate: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub output_audio_channels: Option<i64>,
    #[serde(default)]
    pub mix_sei: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Control {
    #[serde(default, deserialize_with = "lenient::int")]
    pub use_mix_crop_center: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub allow_copy: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub pass_input_sei: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub use_picture_transparent: Option<i64>,
}

/// Which required parameter is absent, named as the caller wrote it.
pub fn missing(c: &Create) -> Option<&'static str> {
    if c.mix_stream_session_id.is_none() {
        Some("MixStreamSessionId")
    } else if c.input_stream_list.is_none() {
        Some("InputStreamList")
    } else if c.output_params.is_none() {
        Some("OutputParams")
    } else if c
        .output_params
        .as_ref()
        .is_some_and(|o| o.output_stream_name.is_empty())
    {
        Some("OutputParams.OutputStreamName")
    } else {
        None
    }
}

impl From<&Create> for MixRequest {
    fn from(c: &Create) -> Self {
        let Create {
            mix_stream_session_id,
            input_stream_list,
            output_params,
            mix_stream_template_id,
            control_params,
        } = c;
        MixRequest {
            session_id: mix_stream_session_id.clone().unwrap_or_default(),
            template_id: *mix_stream_template_id,
            output: output_params
                .as_ref()
                .map(OutputParams::from)
                .unwrap_or_default(),
            inputs: input_stream_list
                .iter()
                .flatten()
                .map(InputParam::from)
                .collect(),
            control: control_params
                .as_ref()
                .map(ControlParams::from)
                .unwrap_or_default(),
        }
    }
}

impl From<&Output> for OutputParams {
    fn from(o: &Output) -> Self {
        let Output {
            output_stream_name,
            output_stream_type,
            output_stream_bit_rate,
            output_stream_gop,
            output_stream_frame_rate,
            output_audio_bit_rate,
            output_audio_sample_rate,
            output_audio_channels,
            mix_sei,
        } = o;
        OutputParams {
            stream_id: output_stream_name.clone(),
            stream_type: *output_stream_type,
            bitrate_kbps: *output_stream_bit_rate,
            gop_s: *output_stream_gop,
            fps: *output_stream_frame_rate,
            audio_bitrate_kbps: *output_audio_bit_rate,
            audio_sample_rate: *output_audio_sample_rate,
            audio_channels: *output_audio_channels,
            sei: mix_sei.clone(),
        }
    }
}

impl From<&Control> for ControlParams {
    fn from(c: &Control) -> Self {
        let Control {
            use_mix_crop_center,
            allow_copy,
            pass_input_sei,
            use_picture_transparent,
        } = c;
        ControlParams {
            use_mix_crop_center: *use_mix_crop_center,
            allow_copy: *allow_copy,
            pass_input_sei: *pass_input_sei,
            use_picture_transparent: *use_picture_transparent,
        }
    }
}

impl From<&Input> for InputParam {
    fn from(i: &Input) -> Self {
        let Input {
            input_stream_name,
            layout_params,
            crop_params,
        } = i;
        InputParam {
            stream_id: input_stream_name.clone(),
            layout: layout_params.as_ref().map(|l| {
                let Layout {
                    image_layer,
                    input_type,
                    image_height,
                    image_width,
                    location_x,
                    location_y,
                    color,
                    watermark_id,
                } = l;
                LayoutParams {
                    layer: *image_layer,
                    input_type: *input_type,
                    width: *image_width,
                    height: *image_height,
                    x: *location_x,
                    y: *location_y,
                    color: color.clone(),
                    picture_id: *watermark_id,
                }
            }),
            crop: crop_params.as_ref().map(|c| {
                let Crop {
                    crop_width,
                    crop_height,
                    crop_start_location_x,
                    crop_start_location_y,
                } = c;
                CropParams {
                    width: *crop_width,
                    height: *crop_height,
                    x: *crop_start_location_x,
                    y: *crop_start_location_y,
                }
            }),
        }
    }
}
