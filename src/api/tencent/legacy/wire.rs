//! The legacy CGI's body as it is on the wire (`POST /common_access`). Field names are the reference's; an
//! unknown field is refused with its name (-1) rather than ignored, so a typo never silently changes a mix.
//! Numbers may be JSON numbers or digit strings.

use serde::Deserialize;

use super::super::request::{CropParams, InputParam, LayoutParams, MixRequest, OutputParams};
use crate::api::lenient;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    #[serde(default, rename = "eventId", deserialize_with = "lenient::int")]
    pub event_id: Option<i64>,
    pub interface: Interface,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    #[serde(rename = "interfaceName")]
    pub interface_name: String,
    pub para: Para,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Para {
    #[serde(default, deserialize_with = "lenient::int")]
    pub app_id: Option<i64>,
    /// `mix_streamv2.start_mix_stream_advanced` or `mix_streamv2.cancel_mix_stream`.
    pub interface: String,
    #[serde(default)]
    pub mix_stream_session_id: String,
    #[serde(default, deserialize_with = "lenient::int")]
    pub mix_stream_template_id: Option<i64>,
    #[serde(default)]
    pub output_stream_id: String,
    #[serde(default, deserialize_with = "lenient::int")]
    pub output_stream_type: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub output_stream_bitrate: Option<i64>,
    #[serde(default)]
    pub input_stream_list: Vec<Input>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    #[serde(default)]
    pub input_stream_id: String,
    pub layout_params: Option<Layout>,
    pub crop_params: Option<Crop>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    #[serde(default, deserialize_with = "lenient::int")]
    pub image_layer: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub input_type: Option<i64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub image_width: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub image_height: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub location_x: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub location_y: Option<f64>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub picture_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crop {
    #[serde(default, deserialize_with = "lenient::float")]
    pub crop_width: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub crop_height: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub crop_x: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub crop_y: Option<f64>,
}

impl From<&Para> for MixRequest {
    fn from(p: &Para) -> Self {
        let Para {
            app_id: _,
            interface: _,
            mix_stream_session_id,
            mix_stream_template_id,
            output_stream_id,
            output_stream_type,
            output_stream_bitrate,
            input_stream_list,
        } = p;
        MixRequest {
            session_id: mix_stream_session_id.clone(),
            template_id: *mix_stream_template_id,
            output: OutputParams {
                stream_id: output_stream_id.clone(),
                stream_type: *output_stream_type,
                bitrate_kbps: *output_stream_bitrate,
                ..Default::default()
            },
            inputs: input_stream_list.iter().map(InputParam::from).collect(),
            control: Default::default(),
        }
    }
}

impl From<&Input> for InputParam {
    fn from(i: &Input) -> Self {
        let Input {
            input_stream_id,
            layout_params,
            crop_params,
        } = i;
        InputParam {
            stream_id: input_stream_id.clone(),
            layout: layout_params.as_ref().map(|l| {
                let Layout {
                    image_layer,
                    input_type,
                    image_width,
                    image_height,
                    location_x,
                    location_y,
                    color,
                    picture_id,
                } = l;
                LayoutParams {
                    layer: *image_layer,
                    input_type: *input_type,
                    width: *image_width,
                    height: *image_height,
                    x: *location_x,
                    y: *location_y,
                    color: color.clone(),
                    picture_id: *picture_id,
                }
            }),
            crop: crop_params.as_ref().map(|c| {
                let Crop {
                    crop_width,
                    crop_height,
                    crop_x,
                    crop_y,
                } = c;
                CropParams {
                    width: *crop_width,
                    height: *crop_height,
                    x: *crop_x,
                    y: *crop_y,
                }
            }),
        }
    }
}
