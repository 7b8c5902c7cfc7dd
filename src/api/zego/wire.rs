//! ZEGO's request and response bodies, as they are on the wire. Unknown fields are ignored, as ZEGO does (its own
//! samples send extra ones, such as `Appid` in the body).

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StartMix {
    pub task_id: String,
    pub user_id: String,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub sequence: Option<i64>,
    pub room_id: String,
    pub user_data: Option<String>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub sound_level: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub by_pass: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub sound_channel: Option<i64>,
    pub background_image: Option<String>,
    #[serde(rename = "BackGroundColorHex")]
    pub background_color_hex: Option<String>,
    pub water_mark: Option<WaterMark>,
    pub ex_para: Vec<ExPara>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub alignment_type: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub max_idle_time: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub wait_video_input: Option<i64>,
    pub mix_input: Vec<MixInput>,
    pub mix_output: Vec<MixOutput>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RectInfo {
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub layer: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub top: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub left: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub bottom: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub right: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub corner_radius: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MixInput {
    pub stream_id: Option<String>,
    pub stream_url: Option<String>,
    pub rect_info: Option<RectInfo>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub content_control: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub sound_level_id: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub volume: Option<i64>,
    pub label: Option<Label>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub render_mode: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Label {
    pub text: String,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub left: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub top: Option<i64>,
    pub font: Option<Font>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Font {
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub font_type: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub font_size: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub font_color: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub transparency: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MixOutput {
    pub stream_id: Option<String>,
    pub stream_url: Option<String>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub video_bitrate: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub video_enc_id: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub fps: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub width: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub height: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub audio_codec: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub audio_bitrate: Option<i64>,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub sound_channel: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WaterMark {
    pub image: Option<String>,
    pub rect_info: Option<RectInfo>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExPara {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StopMix {
    pub task_id: String,
    pub user_id: String,
    #[serde(deserialize_with = "crate::api::lenient::int")]
    pub sequence: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlayInfo {
    pub stream_id: String,
    #[serde(rename = "RTMP")]
    pub rtmp: String,
    #[serde(rename = "FLV")]
    pub flv: String,
    #[serde(rename = "HLS")]
    pub hls: String,
    pub status: i64,
    pub user_name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartMixData {
    pub user_id: String,
    pub sequence: i64,
    pub room_id: String,
    pub play_info: Vec<PlayInfo>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskInfoData {
    pub task_id: String,
    pub mix_duration: u64,
}
