//! Step 1: every rule that the request alone decides, one named step per part of the request.

use std::collections::HashSet;

use super::{
    fields::{crop_px, flag, len, parse_color, ranged, valid_id},
    refuse, Checked, CheckedInput, Kind,
};
use crate::api::tencent::{
    codes::{Reason, Refusal},
    request::{Dialect, InputParam, MixRequest, OutputParams},
    templates,
};
use crate::model::{AudioCodec, AudioEncoding, VideoEncoding};

const MAX_INPUTS: usize = 16;
/// Sample rates API 3.0 accepts.
const SAMPLE_RATES: [i64; 12] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
];
/// Audio bitrates the encoder takes; API 3.0's wider range is clamped into them.
const AUDIO_KBPS: std::ops::RangeInclusive<u32> = 16..=320;

/// A crop as [`CheckedInput`] keeps it: x, y, width, height in source pixels.
type Crop = (u32, u32, Option<u32>, Option<u32>);

/// Step 1: every rule the request alone decides, in the order Tencent's codes suggest.
pub fn check(req: &MixRequest, dialect: Dialect) -> Result<Checked, Refusal> {
    check_ids(req)?;
    let inputs = check_inputs(req, dialect)?;
    let template = check_template(req.template_id, &inputs)?;
    let output_type = check_output_type(&req.output, &inputs)?;
    let (video, video_kbps) = check_video(&req.output, dialect)?;
    let audio = check_audio(&req.output)?;
    let sei = check_sei(&req.output)?;

    let c = &req.control;
    Ok(Checked {
        session_id: req.session_id.clone(),
        output_id: req.output.stream_id.clone(),
        inputs,
        output_type,
        allow_copy: flag(c.allow_copy, "AllowCopy")?,
        template,
        crop_center: flag(c.use_mix_crop_center, "UseMixCropCenter")?,
        transparent_pictures: match dialect {
            // The CGI has no such switch; watermarks keep their transparency.
            Dialect::Legacy => true,
            Dialect::Cloud => flag(c.use_picture_transparent, "UsePictureTransparent")?,
        },
        video,
        video_kbps,
        audio,
        sei,
        pass_input_sei: flag(c.pass_input_sei, "PassInputSei")?,
    })
}

/// The session's and the output's ids.
fn check_ids(req: &MixRequest) -> Result<(), Refusal> {
    if !valid_id(&req.session_id) {
        return Err(refuse(
            Reason::Parameter,
            "the mix session id must be 1 to 80 letters, digits or underscores",
        ));
    }
    if !valid_id(&req.output.stream_id) {
        return Err(refuse(
            Reason::OutputId,
            "the output stream id must be 1 to 80 letters, digits or underscores",
        ));
    }
    Ok(())
}

/// How many inputs, each input, their layers (one each, no two alike) and the background: the inputs in layer
/// order.
fn check_inputs(req: &MixRequest, dialect: Dialect) -> Result<Vec<CheckedInput>, Refusal> {
    if req.inputs.is_empty() {
        return Err(refuse(Reason::Parse, "the input stream list is empty"));
    }
    if req.inputs.len() > MAX_INPUTS {
        return Err(refuse(
            Reason::StreamCount,
            format!(
                "{} input streams; at most {MAX_INPUTS} can be mixed",
                req.inputs.len()
            ),
        ));
    }

    let mut inputs = Vec::with_capacity(req.inputs.len());
    let mut layers = HashSet::new();
    for (n, input) in req.inputs.iter().enumerate() {
        inputs.push(check_input(n, input, dialect, &mut layers)?);
    }
    inputs.sort_by_key(|i| i.layer);
    if inputs[0].layer != 1 {
        return Err(refuse(
            Reason::Layer,
            "no background: one input must have image layer 1",
        ));
    }
    if inputs[0].kind == Kind::Audio && !inputs.iter().all(|i| i.kind == Kind::Audio) {
        return Err(refuse(
            Reason::BackgroundSize,
            "the background (layer 1) is sound only, but other inputs have pictures",
        ));
    }
    Ok(inputs)
}

/// Input `n`: its layout, stream id, type, layer (not one of `layers`, which it joins), colour, picture,
/// crop, size and position.
fn check_input(
    n: usize,
    input: &InputParam,
    dialect: Dialect,
    layers: &mut HashSet<i64>,
) -> Result<CheckedInput, Refusal> {
    let Some(layout) = &input.layout else {
        return Err(refuse(
            Reason::StreamParameter,
            format!("input {n} ({:?}) has no layout parameters", input.stream_id),
        ));
    };
    if !valid_id(&input.stream_id) {
        return Err(refuse(
            Reason::StreamParameter,
            format!("input {n}: the stream id must be 1 to 80 letters, digits or underscores"),
        ));
    }
    let kind = match layout.input_type.unwrap_or(0) {
        0 => Kind::Av,
        2 => Kind::Picture,
        3 => Kind::Canvas,
        4 => Kind::Audio,
        5 => Kind::Video,
        other => {
            return Err(refuse(
                Reason::StreamParameter,
                format!("input {n}: input type {other} is not supported (0, 2, 3, 4 or 5)"),
            ))
        }
    };
    let layer = match layout.layer {
        Some(l) if (1..=16).contains(&l) => l,
        Some(l) => {
            return Err(refuse(
                Reason::Layer,
                format!("input {n}: image layer {l} is outside 1 to 16"),
            ))
        }
        None => {
            return Err(refuse(
                Reason::Layer,
                format!("input {n} ({:?}) has no image layer", input.stream_id),
            ))
        }
    };
    if !layers.insert(layer) {
        return Err(refuse(
            Reason::Layer,
            format!("image layer {layer} is used by more than one input"),
        ));
    }
    let color = match &layout.color {
        Some(c) => Some(parse_color(c).ok_or_else(|| {
            refuse(
                Reason::Color,
                format!("layer {layer}: color {c:?} is not 0xRRGGBB"),
            )
        })?),
        None => None,
    };
    let picture_id = match kind {
        Kind::Picture => Some(layout.picture_id.ok_or_else(|| {
            refuse(
                Reason::PictureIdMissing,
                format!("layer {layer} is a picture (input type 2) without a picture id"),
            )
        })?),
        _ => None,
    };
    let crop = check_crop(input, kind, layer, dialect)?;
    Ok(CheckedInput {
        stream_id: input.stream_id.clone(),
        kind,
        layer: layer as u32,
        width: len(layout.width, "image width", layer, dialect)?,
        height: len(layout.height, "image height", layer, dialect)?,
        x: len(layout.x, "location x", layer, dialect)?,
        y: len(layout.y, "location y", layer, dialect)?,
        color,
        picture_id,
        crop,
    })
}

/// An input's crop: only of video streams; x, y, width, height in source pixels (width/height 0 = to the
/// source's edge).
fn check_crop(
    input: &InputParam,
    kind: Kind,
    layer: i64,
    dialect: Dialect,
) -> Result<Option<Crop>, Refusal> {
    let crop = match &input.crop {
        None => None,
        Some(c) => {
            if matches!(kind, Kind::Canvas | Kind::Audio | Kind::Picture) {
                return Err(refuse(
                    Reason::Crop,
                    format!("layer {layer}: only video streams can be cropped"),
                ));
            }
            let w = crop_px(c.width, "crop width", layer, dialect)?.filter(|v| *v > 0);
            let h = crop_px(c.height, "crop height", layer, dialect)?.filter(|v| *v > 0);
            let x = crop_px(c.x, "crop x", layer, dialect)?.unwrap_or(0);
            let y = crop_px(c.y, "crop y", layer, dialect)?.unwrap_or(0);
            Some((x, y, w, h))
        }
    };
    Ok(crop)
}

/// `template_id`: 0 or absent for none; otherwise a known template for exactly this many inputs.
fn check_template(
    template_id: Option<i64>,
    inputs: &[CheckedInput],
) -> Result<Option<u32>, Refusal> {
    let template = match template_id.unwrap_or(0) {
        0 => None,
        t => {
            let id = u32::try_from(t)
                .ok()
                .filter(|id| templates::IDS.contains(id));
            let Some(id) = id else {
                return Err(refuse(
                    Reason::Template,
                    format!("template {t} does not exist"),
                ));
            };
            let want = templates::input_count(id).unwrap_or(0);
            if inputs.len() != want {
                return Err(refuse(
                    Reason::Template,
                    format!(
                        "template {id} takes {want} inputs; the request has {}",
                        inputs.len()
                    ),
                ));
            }
            Some(id)
        }
    };
    Ok(template)
}

/// The output type: 0 replaces one of the input streams, 1 is a new stream.
fn check_output_type(output: &OutputParams, inputs: &[CheckedInput]) -> Result<i64, Refusal> {
    let output_id = &output.stream_id;
    let output_type = output.stream_type.unwrap_or(0);
    let among_inputs = inputs
        .iter()
        .any(|i| i.kind.is_stream() && &i.stream_id == output_id);
    match output_type {
        0 if !among_inputs => {
            return Err(refuse(
                Reason::OutputType,
                format!(
                    "output type 0 means the output replaces an input, but {output_id:?} is not an input stream"
                ),
            ))
        }
        1 if among_inputs => {
            return Err(refuse(
                Reason::OutputType,
                format!(
                    "output type 1 means a new stream, but {output_id:?} is one of the inputs"
                ),
            ))
        }
        0 | 1 => {}
        other => {
            return Err(refuse(
                Reason::OutputType,
                format!("output stream type {other} is not 0 or 1"),
            ))
        }
    }
    Ok(output_type)
}

/// The output's video: bitrate (`None` = the system picks), frame rate and GOP.
fn check_video(
    output: &OutputParams,
    dialect: Dialect,
) -> Result<(VideoEncoding, Option<u32>), Refusal> {
    let video_kbps = match output.bitrate_kbps {
        None => None,
        Some(b) if (1..=dialect.max_bitrate()).contains(&b) => Some(b as u32),
        Some(b) => {
            return Err(refuse(
                Reason::Bitrate,
                format!(
                    "output bitrate {b} is outside 1 to {} kbit/s",
                    dialect.max_bitrate()
                ),
            ))
        }
    };
    let defaults = VideoEncoding::default();
    let video = VideoEncoding {
        fps: Some(ranged(output.fps, 1..=60, "output frame rate")?.unwrap_or(30)),
        gop_s: ranged(output.gop_s, 1..=10, "output GOP")?.unwrap_or(defaults.gop_s),
        ..defaults
    };
    Ok((video, video_kbps))
}

/// The output's sound: AAC at a sample rate API 3.0 knows, the bitrate clamped into what the encoder takes.
fn check_audio(output: &OutputParams) -> Result<AudioEncoding, Refusal> {
    let audio_defaults = AudioEncoding::default();
    let sample_rate = match output.audio_sample_rate {
        None => audio_defaults.sample_rate,
        Some(r) if SAMPLE_RATES.contains(&r) => r as u32,
        Some(r) => {
            return Err(refuse(
                Reason::Parameter,
                format!("output audio sample rate {r} is not supported"),
            ))
        }
    };
    let audio = AudioEncoding {
        codec: AudioCodec::Aac,
        bitrate_kbps: ranged(output.audio_bitrate_kbps, 1..=500, "output audio bitrate")?
            .map(|b| b.clamp(*AUDIO_KBPS.start(), *AUDIO_KBPS.end()))
            .unwrap_or(audio_defaults.bitrate_kbps),
        sample_rate,
        channels: ranged(output.audio_channels, 1..=2, "output audio channels")?
            .unwrap_or(audio_defaults.channels),
    };
    Ok(audio)
}

/// `MixSei`: the text the output's SEI carries (empty = none).
fn check_sei(output: &OutputParams) -> Result<Option<String>, Refusal> {
    let sei = match output.sei.as_deref().filter(|s| !s.is_empty()) {
        Some(s) if s.len() > 4096 => {
            return Err(refuse(
                Reason::Parameter,
                "MixSei is longer than 4096 bytes",
            ))
        }
        other => other.map(str::to_string),
    };
    Ok(sei)
}
