//! StartMix → [`MixSpec`]. Every ZEGO rule that has its own return code is checked here, in ZEGO's terms; what
//! remains is checked by the core model's validation and reported as 110200002.

use std::collections::HashSet;

use super::{codes::*, wire};
use crate::model::SeiSpec;
use crate::{
    config::ZegoConfig,
    model::{
        AudioCodec, AudioEncoding, Canvas, Color, Content, Fit, FlvVideoForm, ImageOverlay,
        InputSpec, Label, MixSpec, OutputSpec, Rect, Source, Target, VideoCodec, VideoEncoding,
    },
};

const MAX_OUTPUTS: usize = 3;
const MAX_SIZE: i64 = 3000;
/// ZEGO's limit: 100 CJK or 300 Latin characters, i.e. 300 bytes of UTF-8.
const MAX_LABEL_BYTES: usize = 300;
/// UserData limit, in bytes once decoded.
const MAX_USER_DATA: usize = 1000;
/// TaskId, UserId and RoomId: kept with the task and echoed back, so bounded (ZEGO's own room id limit).
const MAX_ID_BYTES: usize = 128;
/// The highest `VideoBitrate` / `AudioBitrate`, in bps: what the model's encoders take (50000 / 320 kbps).
const MAX_VIDEO_BPS: i64 = 50_000_000;
const MAX_AUDIO_BPS: i64 = 320_000;
/// Watermarks sit above every input.
const WATERMARK_LAYER: u32 = 1000;

fn param(msg: impl Into<String>) -> ZegoError {
    ZegoError::new(PARAMETER, msg)
}

/// `0xRRGGBBAA` (ZEGO ignores the alpha: backgrounds are opaque).
fn parse_color_hex(s: &str) -> Result<Color, ZegoError> {
    let hex = s
        .trim_start_matches("0x")
        .trim_start_matches("0X")
        .trim_start_matches('#');
    if !(hex.len() == 6 || hex.len() == 8) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(param(format!(
            "BackGroundColorHex {s:?} must be 0xRRGGBBAA"
        )));
    }
    let v = u32::from_str_radix(&hex[..6], 16).expect("checked hex");
    Ok(Color::from_rgb_u32(v))
}

/// An image reference: an http(s) URL, or a `preset-id://` name registered in the config (the operator's
/// location, a relative file path made absolute as it was always read: see [`crate::image::operator_location`]).
fn image_location(s: &str, config: &ZegoConfig, field: &str) -> Result<String, ZegoError> {
    if s.starts_with("http://") || s.starts_with("https://") {
        return Ok(s.to_string());
    }
    if s.starts_with("preset-id://") {
        let preset = config.image_presets.get(s);
        return preset
            .map(|l| crate::image::operator_location(l))
            .ok_or_else(|| {
                ZegoError::new(
                    IMAGE_SCHEME,
                    format!("{field} preset {s:?} is not registered"),
                )
            });
    }
    Err(ZegoError::new(
        IMAGE_SCHEME,
        format!("{field} must be an http(s):// URL or a preset-id:// name"),
    ))
}

/// Left/Top/Right/Bottom → rect; `None` when none of the four is given.
fn rect_of(r: &wire::RectInfo) -> Option<Result<Rect, String>> {
    if r.left.is_none() && r.top.is_none() && r.right.is_none() && r.bottom.is_none() {
        return None;
    }
    let (l, t, rt, b) = (
        r.left.unwrap_or(0),
        r.top.unwrap_or(0),
        r.right.unwrap_or(0),
        r.bottom.unwrap_or(0),
    );
    if l < 0 || t < 0 || rt <= l || b <= t {
        return Some(Err(format!(
            "RectInfo needs 0 <= Left < Right and 0 <= Top < Bottom (got Left {l}, Top {t}, Right {rt}, Bottom {b})"
        )));
    }
    Some(Ok(Rect::new(
        l as i32,
        t as i32,
        (rt - l) as u32,
        (b - t) as u32,
    )))
}

fn input_source(i: &wire::MixInput, n: usize) -> Result<Source, ZegoError> {
    // The URL wins when both are given.
    match (
        i.stream_url.as_deref().filter(|u| !u.is_empty()),
        i.stream_id.as_deref().filter(|s| !s.is_empty()),
    ) {
        (Some(u), _) => {
            let ok = ["rtmp://", "rtmps://", "http://", "https://"]
                .iter()
                .any(|p| u.starts_with(p));
            if !ok {
                return Err(param(format!(
                    "MixInput[{n}].StreamUrl must be an RTMP or HTTP-FLV URL"
                )));
            }
            Ok(Source::Url(u.to_string()))
        }
        (None, Some(id)) => Ok(Source::StreamId(id.to_string())),
        (None, None) => Err(param(format!("MixInput[{n}] needs StreamId or StreamUrl"))),
    }
}

fn output_target(o: &wire::MixOutput, n: usize) -> Result<Target, ZegoError> {
    match (
        o.stream_url.as_deref().filter(|u| !u.is_empty()),
        o.stream_id.as_deref().filter(|s| !s.is_empty()),
    ) {
        (Some(u), _) if u.starts_with("rtmp://") || u.starts_with("rtmps://") => {
            Ok(Target::Url(u.to_string()))
        }
        (Some(_), _) => Err(param(format!(
            "MixOutput[{n}].StreamUrl must be an rtmp:// URL"
        ))),
        (None, Some(id)) => Ok(Target::StreamId(id.to_string())),
        (None, None) => Err(param(format!("MixOutput[{n}] needs StreamId or StreamUrl"))),
    }
}

fn check_size(v: Option<i64>, name: &str) -> Result<u32, ZegoError> {
    let v = v.unwrap_or(0);
    // ZEGO recommends 1 for audio-only mixes, the one odd value it accepts.
    if !(0..=MAX_SIZE).contains(&v) || (v > 1 && v % 2 != 0) {
        return Err(ZegoError::new(
            SIZE_INVALID,
            format!("{name} must be an even number from 0 to 3000"),
        ));
    }
    Ok(v as u32)
}

/// Translates a StartMix request. An input that is also an output (the same stream id, or the same URL) is refused.
pub fn start_mix(req: &wire::StartMix, config: &ZegoConfig) -> Result<MixSpec, ZegoError> {
    if req.task_id.is_empty() {
        return Err(param("TaskId is required"));
    }
    // ZEGO's strings are printable ASCII; a TaskId becomes part of the mix id, its record and the logs.
    if req.task_id.len() > MAX_ID_BYTES
        || !req.task_id.bytes().all(|b| b.is_ascii_graphic())
        || req.task_id == "."
        || req.task_id == ".."
    {
        return Err(param(format!(
            "TaskId must be 1 to {MAX_ID_BYTES} printable ASCII characters, and not . or .."
        )));
    }
    for (name, value) in [("UserId", &req.user_id), ("RoomId", &req.room_id)] {
        if value.len() > MAX_ID_BYTES || crate::model::has_control(value) {
            return Err(param(format!(
                "{name} must be at most {MAX_ID_BYTES} bytes, without control characters"
            )));
        }
    }
    if req.mix_input.len() > config.max_inputs {
        return Err(ZegoError::new(
            TOO_MANY_INPUTS,
            format!("at most {} MixInput entries per task", config.max_inputs),
        ));
    }
    if req.mix_output.is_empty() {
        return Err(param("MixOutput needs at least one entry"));
    }
    if req.mix_output.len() > MAX_OUTPUTS {
        return Err(ZegoError::new(
            TOO_MANY_OUTPUTS,
            "at most 3 MixOutput entries per task",
        ));
    }

    // Canvas: the first output's size and rate apply to every output.
    let first = &req.mix_output[0];
    let mut size = (0, 0);
    for (n, o) in req.mix_output.iter().enumerate() {
        let w = check_size(o.width, &format!("MixOutput[{n}].Width"))?;
        let h = check_size(o.height, &format!("MixOutput[{n}].Height"))?;
        if n == 0 {
            size = (w, h);
        }
    }
    let fps = first.fps.unwrap_or(15);
    if !(1..=60).contains(&fps) {
        return Err(param("MixOutput[0].Fps must be from 1 to 60"));
    }
    // Audio-only mixes (size 0 or 1) still carry a minimal picture.
    let (width, height) = (size.0.max(16), size.1.max(16));
    let background = match req
        .background_color_hex
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        Some(s) => parse_color_hex(s)?,
        None => Color::BLACK,
    };
    let background_image = match req.background_image.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(image_location(s, config, "BackgroundImage")?),
        None => None,
    };
    let canvas = Canvas {
        width,
        height,
        fps: fps as u32,
        background,
        background_image,
    };

    let mut outputs = Vec::new();
    let mut targets = HashSet::new();
    for (n, o) in req.mix_output.iter().enumerate() {
        let target = output_target(o, n)?;
        if !targets.insert(target.clone()) {
            return Err(ZegoError::new(
                DUPLICATE_OUTPUT,
                format!("MixOutput[{n}] repeats another output"),
            ));
        }
        let video_codec = match o.video_enc_id.unwrap_or(0) {
            0 => VideoCodec::H264,
            2 => {
                return Err(ZegoError::new(
                    CODEC_UNSUPPORTED,
                    "VideoEncId 2 (VP8) cannot be carried over RTMP/FLV",
                ))
            }
            3 => VideoCodec::H265,
            v => return Err(param(format!("MixOutput[{n}].VideoEncId {v} is unknown"))),
        };
        let codec = match o.audio_codec.unwrap_or(0) {
            // HE-AAC cannot be encoded with the available encoders; it is sent as AAC-LC (see docs/zego.md).
            0 | 1 => AudioCodec::Aac,
            2 => AudioCodec::Mp3,
            3 => {
                return Err(ZegoError::new(
                    CODEC_UNSUPPORTED,
                    "AudioCodec 3 (Opus) cannot be carried over RTMP/FLV",
                ))
            }
            v => return Err(param(format!("MixOutput[{n}].AudioCodec {v} is unknown"))),
        };
        let channels = o.sound_channel.or(req.sound_channel).unwrap_or(1);
        if !(1..=2).contains(&channels) {
            return Err(param("SoundChannel must be 1 or 2"));
        }
        // ZEGO documents no range beyond bps; negative values and values above what the encoders take are
        // refused. Low ones are raised to the floor: ZEGO's own samples send 12000 bps, and 0 or 1 for audio-only
        // mixes.
        let video_bps = o.video_bitrate.unwrap_or(1_200_000);
        if !(0..=MAX_VIDEO_BPS).contains(&video_bps) {
            return Err(param(format!(
                "MixOutput[{n}].VideoBitrate must be from 0 to {MAX_VIDEO_BPS} bps"
            )));
        }
        let audio_bps = o.audio_bitrate.unwrap_or(48_000);
        if !(0..=MAX_AUDIO_BPS).contains(&audio_bps) {
            return Err(param(format!(
                "MixOutput[{n}].AudioBitrate must be from 0 to {MAX_AUDIO_BPS} bps"
            )));
        }
        let video_kbps = (video_bps / 1000).max(100) as u32;
        let audio_kbps = (audio_bps / 1000).max(16) as u32;
        outputs.push(OutputSpec {
            target,
            video: Some(VideoEncoding {
                codec: video_codec,
                bitrate_kbps: video_kbps,
                fps: Some(fps as u32),
                // ZEGO's own mixer, and the Chinese CDNs its customers push to, carry H.265 with codec id 12.
                flv_form: match video_codec {
                    VideoCodec::H265 => FlvVideoForm::CodecId12,
                    VideoCodec::H264 => FlvVideoForm::default(),
                },
                ..VideoEncoding::default()
            }),
            audio: AudioEncoding {
                codec,
                bitrate_kbps: audio_kbps,
                sample_rate: 44_100,
                channels: channels as u32,
            },
        });
    }

    let mut inputs = Vec::new();
    let mut sources = HashSet::new();
    for (n, i) in req.mix_input.iter().enumerate() {
        let source = input_source(i, n)?;
        if !sources.insert(source.clone()) {
            return Err(ZegoError::new(
                DUPLICATE_INPUT,
                format!("MixInput[{n}] repeats another input stream"),
            ));
        }
        let same_as_output = match &source {
            Source::StreamId(id) => targets.contains(&Target::StreamId(id.clone())),
            Source::Url(u) => targets.contains(&Target::Url(u.clone())),
        };
        if same_as_output {
            return Err(ZegoError::new(
                INPUT_IS_OUTPUT,
                format!("MixInput[{n}] is also an output stream"),
            ));
        }
        let rect_info = i.rect_info.clone().unwrap_or_default();
        let (rect, mut content) = match rect_of(&rect_info) {
            None => (None, Content::Audio),
            Some(Ok(r)) => (Some(r), Content::Av),
            Some(Err(e)) => return Err(param(format!("MixInput[{n}].{e}"))),
        };
        match (i.content_control.unwrap_or(0), content) {
            (0, _) => {}
            (1, _) => content = Content::Audio,
            (2, Content::Av) => content = Content::Video,
            (2, _) => {
                return Err(param(format!(
                    "MixInput[{n}]: ContentControl 2 (video) needs a RectInfo"
                )))
            }
            (v, _) => {
                return Err(param(format!(
                    "MixInput[{n}].ContentControl {v} is unknown"
                )))
            }
        }
        let volume = i.volume.unwrap_or(100);
        if !(0..=200).contains(&volume) {
            return Err(param(format!("MixInput[{n}].Volume must be from 0 to 200")));
        }
        let fit = match i.render_mode.unwrap_or(0) {
            0 => Fit::CropToFill,
            1 => Fit::Letterbox,
            v => return Err(param(format!("MixInput[{n}].RenderMode {v} is unknown"))),
        };
        let label = match &i.label {
            Some(l) if !l.text.is_empty() => Some(label_of(l, n)?),
            _ => None,
        };
        let radius = rect_info.corner_radius.unwrap_or(0);
        let layer = rect_info.layer.unwrap_or(0);
        if radius < 0 || layer < 0 {
            return Err(param(format!(
                "MixInput[{n}]: Layer and CornerRadius must not be negative"
            )));
        }
        let sound_level_id = match (req.sound_level == Some(1), i.sound_level_id) {
            (_, Some(id)) if !(0..=i64::from(u32::MAX)).contains(&id) => {
                return Err(param(format!("MixInput[{n}].SoundLevelId is out of range")))
            }
            (true, None) => {
                return Err(param(format!(
                    "MixInput[{n}].SoundLevelId is required when SoundLevel is 1"
                )))
            }
            (_, id) => id.map(|v| v as u32),
        };
        inputs.push(InputSpec {
            id: format!("in{n}"),
            source,
            content,
            layer: layer.min(999) as u32,
            rect,
            crop: None,
            fit,
            corner_radius: radius as u32,
            volume: volume as u32,
            label,
            sound_level_id,
        });
    }

    let mut overlays = Vec::new();
    if let Some(wm) = &req.water_mark {
        let image = wm
            .image
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ZegoError::new(WATERMARK_IMAGE, "WaterMark.Image is required"))?;
        let image = image_location(image, config, "WaterMark.Image")?;
        let rect = match wm.rect_info.as_ref().and_then(rect_of) {
            Some(Ok(r)) if r.x as u32 + r.width <= width && r.y as u32 + r.height <= height => r,
            Some(Ok(_)) => {
                return Err(ZegoError::new(
                    WATERMARK_RECT,
                    "WaterMark.RectInfo must lie inside the canvas",
                ))
            }
            Some(Err(e)) => return Err(ZegoError::new(WATERMARK_RECT, format!("WaterMark.{e}"))),
            None => {
                return Err(ZegoError::new(
                    WATERMARK_RECT,
                    "WaterMark.RectInfo is required",
                ))
            }
        };
        overlays.push(ImageOverlay {
            id: "watermark".into(),
            image,
            color: None,
            opaque: false,
            rect,
            layer: WATERMARK_LAYER,
        });
    }

    let user_data_base64 = match req.user_data.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(b64) => {
            let spec = SeiSpec {
                user_data_base64: Some(b64.to_string()),
                ..Default::default()
            };
            match spec.user_data() {
                Some(d) if (1..=MAX_USER_DATA).contains(&d.len()) => Some(b64.to_string()),
                _ => return Err(param("UserData must be base64 of 1 to 1000 bytes")),
            }
        }
    };
    Ok(MixSpec {
        canvas,
        inputs,
        overlays,
        outputs,
        sei: SeiSpec {
            user_data_base64,
            sound_levels: req.sound_level == Some(1),
            ..Default::default()
        },
    })
}

/// The URLs the caller chose (`ingest.forbid_private_sources` checks them): input and output `StreamUrl`s and
/// http(s) images; `preset-id://` images are the operator's.
pub fn caller_urls(req: &wire::StartMix) -> Vec<(String, String)> {
    let mut urls = Vec::new();
    for (n, i) in req.mix_input.iter().enumerate() {
        if let Some(u) = i.stream_url.as_deref().filter(|u| !u.is_empty()) {
            urls.push((format!("MixInput[{n}].StreamUrl"), u.to_string()));
        }
    }
    let is_http = |s: &&str| s.starts_with("http://") || s.starts_with("https://");
    if let Some(u) = req.background_image.as_deref().filter(is_http) {
        urls.push(("BackgroundImage".into(), u.to_string()));
    }
    if let Some(u) = req
        .water_mark
        .as_ref()
        .and_then(|w| w.image.as_deref())
        .filter(is_http)
    {
        urls.push(("WaterMark.Image".into(), u.to_string()));
    }
    for (n, o) in req.mix_output.iter().enumerate() {
        if let Some(u) = o.stream_url.as_deref().filter(|u| !u.is_empty()) {
            urls.push((format!("MixOutput[{n}].StreamUrl"), u.to_string()));
        }
    }
    urls
}

fn label_of(l: &wire::Label, n: usize) -> Result<Label, ZegoError> {
    if l.text.len() > MAX_LABEL_BYTES {
        return Err(ZegoError::new(
            LABEL_TOO_LONG,
            format!("MixInput[{n}].Label.Text is longer than 100 Chinese or 300 Latin characters"),
        ));
    }
    let font = l.font.as_ref();
    let size = font.and_then(|f| f.font_size).unwrap_or(24);
    if !(12..=100).contains(&size) {
        return Err(param(format!(
            "MixInput[{n}].Label.Font.FontSize must be from 12 to 100"
        )));
    }
    let transparency = font.and_then(|f| f.transparency).unwrap_or(0);
    if !(0..=100).contains(&transparency) {
        return Err(param(format!(
            "MixInput[{n}].Label.Font.Transparency must be from 0 to 100"
        )));
    }
    // R + G·256 + B·65536.
    let c = font.and_then(|f| f.font_color).unwrap_or(0xFFFFFF);
    if !(0..=0xFFFFFF).contains(&c) {
        return Err(param(format!(
            "MixInput[{n}].Label.Font.FontColor must be R + G*256 + B*65536"
        )));
    }
    let color = Color::rgb(
        (c & 0xFF) as u8,
        ((c >> 8) & 0xFF) as u8,
        ((c >> 16) & 0xFF) as u8,
    );
    Ok(Label {
        text: l.text.clone(),
        font_size: size as u32,
        color,
        opacity: (100 - transparency) as u32,
        x: l.left.unwrap_or(0).clamp(0, i64::from(i32::MAX)) as i32,
        y: l.top.unwrap_or(0).clamp(0, i64::from(i32::MAX)) as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: serde_json::Value) -> wire::StartMix {
        serde_json::from_value(json).unwrap()
    }

    fn code(json: serde_json::Value) -> u32 {
        start_mix(&req(json), &ZegoConfig::default())
            .map(|_| 0)
            .unwrap_or_else(|e| e.code)
    }

    fn sample() -> serde_json::Value {
        // The basic request of the ZEGO documentation (5.1).
        serde_json::json!({
            "TaskId": "2213699902971205739", "UserId": "123",
            "MixInput": [
                {"RectInfo": {"Bottom": 640, "Left": 0, "Right": 180, "Top": 0}, "StreamId": "stream1"},
                {"RectInfo": {"Bottom": 640, "Left": 180, "Right": 360, "Top": 0}, "StreamId": "stream2"}
            ],
            "MixOutput": [{"Fps": 15, "Width": 360, "Height": 640, "StreamId": "stream3", "VideoBitrate": 1200000}]
        })
    }

    #[test]
    fn documented_sample_maps_to_the_model() {
        let spec = start_mix(&req(sample()), &ZegoConfig::default()).unwrap();
        assert_eq!(
            (spec.canvas.width, spec.canvas.height, spec.canvas.fps),
            (360, 640, 15)
        );
        assert_eq!(spec.canvas.background, Color::BLACK);
        assert_eq!(spec.inputs[1].rect, Some(Rect::new(180, 0, 180, 640)));
        assert_eq!(spec.inputs[0].fit, Fit::CropToFill);
        assert_eq!(
            spec.outputs[0].video.as_ref().map(|v| v.bitrate_kbps),
            Some(1200)
        );
        assert_eq!(spec.outputs[0].audio.channels, 1);
        spec.validate(&Default::default()).unwrap();
    }

    #[test]
    fn video_enc_id_3_is_h265_with_codec_id_12() {
        let mut j = sample();
        j["MixOutput"][0]["VideoEncId"] = 3.into();
        let spec = start_mix(&req(j), &ZegoConfig::default()).unwrap();
        let v = spec.outputs[0].video.as_ref().unwrap();
        assert_eq!(
            (v.codec, v.flv_form),
            (VideoCodec::H265, FlvVideoForm::CodecId12)
        );
        spec.validate(&Default::default()).unwrap();
        let h264 = start_mix(&req(sample()), &ZegoConfig::default()).unwrap();
        assert_eq!(
            h264.outputs[0].video.as_ref().unwrap().codec,
            VideoCodec::H264
        );
    }

    #[test]
    fn fields_map_as_documented() {
        let mut j = sample();
        j["BackGroundColorHex"] = "0x87CEFA00".into();
        j["MixInput"][0]["RenderMode"] = 1.into();
        j["MixInput"][0]["ContentControl"] = 2.into();
        j["MixInput"][0]["Volume"] = 0.into();
        j["MixInput"][0]["RectInfo"]["Layer"] = 3.into();
        j["MixInput"][0]["RectInfo"]["CornerRadius"] = 10.into();
        j["MixInput"][0]["Label"] = serde_json::json!({"Text": "Hi", "Left": 5, "Top": 6, "Font": {"FontSize": 30, "FontColor": 256, "Transparency": 40}});
        j["MixInput"][1].as_object_mut().unwrap().remove("RectInfo");
        let spec = start_mix(&req(j), &ZegoConfig::default()).unwrap();
        assert_eq!(spec.canvas.background, Color::rgb(0x87, 0xCE, 0xFA));
        let a = &spec.inputs[0];
        assert_eq!(
            (a.fit, a.content, a.volume, a.layer, a.corner_radius),
            (Fit::Letterbox, Content::Video, 0, 3, 10)
        );
        let l = a.label.as_ref().unwrap();
        assert_eq!(
            (l.x, l.y, l.font_size, l.opacity, l.color),
            (5, 6, 30, 60, Color::rgb(0, 1, 0))
        );
        // No RectInfo: audio only.
        assert_eq!(spec.inputs[1].content, Content::Audio);
    }

    #[test]
    fn ids_are_capped() {
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut j = sample();
            f(&mut j);
            code(j)
        };
        assert_eq!(with(&|j| j["TaskId"] = "t".repeat(128).into()), 0);
        assert_eq!(with(&|j| j["TaskId"] = "t".repeat(129).into()), PARAMETER);
        assert_eq!(with(&|j| j["TaskId"] = "a b".into()), PARAMETER);
        assert_eq!(with(&|j| j["TaskId"] = ".".into()), PARAMETER);
        assert_eq!(with(&|j| j["TaskId"] = "..".into()), PARAMETER);
        assert_eq!(with(&|j| j["TaskId"] = "...".into()), 0);
        assert_eq!(with(&|j| j["TaskId"] = "任务".into()), PARAMETER);
        assert_eq!(with(&|j| j["UserId"] = "u".repeat(128).into()), 0);
        assert_eq!(with(&|j| j["UserId"] = "u".repeat(129).into()), PARAMETER);
        assert_eq!(with(&|j| j["RoomId"] = "r".repeat(129).into()), PARAMETER);
        // Stream ids and URLs keep the core's caps (128 characters, 2048 bytes), reported as parameter errors.
        let long_url = format!("rtmp://h/{}", "a".repeat(2048));
        let mut j = sample();
        j["MixInput"][0]["StreamUrl"] = long_url.into();
        let spec = start_mix(&req(j), &ZegoConfig::default()).unwrap();
        assert!(spec.validate(&Default::default()).is_err());
    }

    #[test]
    fn caller_urls_are_stream_urls_and_http_images_and_outputs() {
        let mut j = sample();
        j["MixInput"][1]["StreamUrl"] = "rtmp://10.0.0.1/live/b".into();
        j["BackgroundImage"] = "http://10.0.0.2/bg.png".into();
        j["WaterMark"] = serde_json::json!({"Image": "preset-id://logo"});
        j["MixOutput"][0]["StreamUrl"] = "rtmp://10.0.0.3/live/o".into();
        let fields: Vec<String> = caller_urls(&req(j)).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "MixInput[1].StreamUrl",
                "BackgroundImage",
                "MixOutput[0].StreamUrl"
            ]
        );
    }

    #[test]
    fn every_rule_has_its_code() {
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut j = sample();
            f(&mut j);
            code(j)
        };
        assert_eq!(with(&|_| {}), 0);
        assert_eq!(
            with(&|j| j["MixInput"][1]["StreamId"] = "stream1".into()),
            DUPLICATE_INPUT
        );
        assert_eq!(
            with(&|j| j["MixInput"][1]["StreamId"] = "stream3".into()),
            INPUT_IS_OUTPUT
        );
        assert_eq!(
            with(&|j| {
                let o = j["MixOutput"][0].clone();
                j["MixOutput"].as_array_mut().unwrap().push(o);
            }),
            DUPLICATE_OUTPUT
        );
        assert_eq!(
            with(&|j| {
                let o = j["MixOutput"][0].clone();
                for (n, s) in ["a", "b", "c"].iter().enumerate() {
                    let mut o = o.clone();
                    o["StreamId"] = (*s).into();
                    j["MixOutput"].as_array_mut().unwrap().insert(n, o);
                }
            }),
            TOO_MANY_OUTPUTS
        );
        assert_eq!(
            with(&|j| {
                let i = j["MixInput"][0].clone();
                for n in 0..8 {
                    let mut i = i.clone();
                    i["StreamId"] = format!("x{n}").into();
                    j["MixInput"].as_array_mut().unwrap().push(i);
                }
            }),
            TOO_MANY_INPUTS
        );
        assert_eq!(
            with(&|j| j["MixOutput"][0]["Width"] = 361.into()),
            SIZE_INVALID
        );
        assert_eq!(
            with(&|j| j["MixOutput"][0]["Height"] = 3002.into()),
            SIZE_INVALID
        );
        assert_eq!(
            with(&|j| j["MixOutput"][0]["VideoEncId"] = 2.into()),
            CODEC_UNSUPPORTED
        );
        assert_eq!(
            with(&|j| j["MixOutput"][0]["AudioCodec"] = 3.into()),
            CODEC_UNSUPPORTED
        );
        assert_eq!(
            with(&|j| j["BackgroundImage"] = "ftp://x/y.png".into()),
            IMAGE_SCHEME
        );
        assert_eq!(
            with(&|j| j["BackgroundImage"] = "preset-id://nope.jpg".into()),
            IMAGE_SCHEME
        );
        assert_eq!(
            with(
                &|j| j["WaterMark"] = serde_json::json!({"RectInfo": {"Top": 0, "Left": 0, "Bottom": 10, "Right": 10}})
            ),
            WATERMARK_IMAGE
        );
        assert_eq!(
            with(&|j| j["WaterMark"] = serde_json::json!({"Image": "http://h/i.png"})),
            WATERMARK_RECT
        );
        assert_eq!(
            with(
                &|j| j["WaterMark"] = serde_json::json!({"Image": "http://h/i.png", "RectInfo": {"Top": 0, "Left": 300, "Bottom": 10, "Right": 400}})
            ),
            WATERMARK_RECT
        );
        assert_eq!(
            with(&|j| j["MixInput"][0]["Label"] = serde_json::json!({"Text": "长".repeat(101)})),
            LABEL_TOO_LONG
        );
        assert_eq!(
            with(&|j| j["MixInput"][0]["Label"] = serde_json::json!({"Text": "长".repeat(100)})),
            0
        );
        assert_eq!(
            with(&|j| j["MixInput"][0]["Volume"] = 201.into()),
            PARAMETER
        );
        assert_eq!(
            with(&|j| j["MixInput"][0]["RectInfo"]["Right"] = 0.into()),
            PARAMETER
        );
        assert_eq!(
            with(&|j| j["MixInput"][0]["StreamId"] = serde_json::Value::Null),
            PARAMETER
        );
        assert_eq!(with(&|j| j["MixOutput"] = serde_json::json!([])), PARAMETER);
    }

    /// Bitrates ZEGO would not take are refused with 110200002 instead of being clamped into range; ZEGO's own
    /// samples' low values (12000 bps video, 0 or 1 for audio-only mixes) are still raised to the floor.
    #[test]
    fn out_of_range_bitrates_are_refused() {
        let with = |field: &str, v: i64| {
            let mut j = sample();
            j["MixOutput"][0][field] = v.into();
            code(j)
        };
        for (field, bad) in [
            ("VideoBitrate", -5),
            ("VideoBitrate", 50_000_001),
            ("AudioBitrate", -1),
            ("AudioBitrate", 320_001),
        ] {
            assert_eq!(with(field, bad), PARAMETER, "{field} {bad}");
        }
        for (field, good) in [
            ("VideoBitrate", 0),
            ("VideoBitrate", 1),
            ("VideoBitrate", 12_000),
            ("VideoBitrate", 50_000_000),
            ("AudioBitrate", 0),
            ("AudioBitrate", 320_000),
        ] {
            assert_eq!(with(field, good), 0, "{field} {good}");
        }
    }

    #[test]
    fn presets_resolve_to_their_registered_location() {
        let mut config = ZegoConfig::default();
        config
            .image_presets
            .insert("preset-id://bg.jpg".into(), "/srv/bg.jpg".into());
        let mut j = sample();
        j["BackgroundImage"] = "preset-id://bg.jpg".into();
        j["WaterMark"] = serde_json::json!({"Image": "preset-id://bg.jpg", "RectInfo": {"Top": 0, "Left": 0, "Bottom": 20, "Right": 20}});
        let spec = start_mix(&req(j), &config).unwrap();
        assert_eq!(spec.canvas.background_image.as_deref(), Some("/srv/bg.jpg"));
        assert_eq!(spec.overlays[0].image, "/srv/bg.jpg");
    }

    #[test]
    fn stream_url_wins_over_stream_id() {
        let mut j = sample();
        j["MixInput"][0]["StreamUrl"] = "http://cdn/live/x.flv".into();
        let spec = start_mix(&req(j), &ZegoConfig::default()).unwrap();
        assert_eq!(
            spec.inputs[0].source,
            Source::Url("http://cdn/live/x.flv".into())
        );
    }
}
