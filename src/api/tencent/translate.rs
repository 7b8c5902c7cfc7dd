//! The one mapping from a Tencent [`MixRequest`] (either dialect) to the core [`MixSpec`].
//!
//! It runs in two steps around the only facts that need the outside world:
//! 1. [`check`]: every rule that the request alone decides (ids, layers, types, ranges, template, output type).
//! 2. the caller learns the [`Facts`]: which input streams exist and their picture size, pictures' sizes;
//! 3. [`build`]: the canvas (the background's size), every rectangle (pixels or fractions of the background, or
//!    the template's cells), crops, and the output encoding.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;

use super::{
    codes::{Reason, Refusal},
    request::{Dialect, MixRequest},
    templates,
};
use crate::model::{
    AudioCodec, AudioEncoding, Canvas, Color, Content, Fit, ImageOverlay, InputSpec, MixSpec,
    OutputSpec, Rect, SeiSpec, Source, Target, VideoEncoding,
};

const MAX_INPUTS: usize = 16;
const MAX_ID_BYTES: usize = 80;
/// Sample rates API 3.0 accepts.
const SAMPLE_RATES: [i64; 12] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
];
/// Bitrates the encoders take; Tencent's wider ranges are clamped into them (and logged).
const MIN_VIDEO_KBPS: u32 = 100;
const AUDIO_KBPS: std::ops::RangeInclusive<u32> = 16..=320;

fn refuse(reason: Reason, message: impl Into<String>) -> Refusal {
    Refusal::new(reason, message)
}

/// What an input is (`input_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 0: a stream, picture and sound.
    Av,
    /// 2: a picture by id.
    Picture,
    /// 3: a plain colour rectangle.
    Canvas,
    /// 4: a stream, sound only.
    Audio,
    /// 5: a stream, picture only.
    Video,
}

impl Kind {
    fn is_stream(self) -> bool {
        matches!(self, Kind::Av | Kind::Audio | Kind::Video)
    }
}

/// A size or position: pixels, or a fraction of the background's width / height.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Len {
    Px(f64),
    Frac(f64),
}

impl Len {
    fn resolve(self, of: u32) -> f64 {
        match self {
            Len::Px(v) => v,
            Len::Frac(f) => f * f64::from(of),
        }
    }
}

/// An input after [`check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedInput {
    pub stream_id: String,
    pub kind: Kind,
    pub layer: u32,
    width: Option<Len>,
    height: Option<Len>,
    x: Option<Len>,
    y: Option<Len>,
    color: Option<Color>,
    pub picture_id: Option<i64>,
    /// x, y, width, height in source pixels (width/height `None` = to the source's edge).
    crop: Option<(u32, u32, Option<u32>, Option<u32>)>,
}

/// A request that passed every rule it can be judged by alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub session_id: String,
    pub output_id: String,
    /// Inputs in layer order: the background first.
    pub inputs: Vec<CheckedInput>,
    /// 1: the output is a new stream; 0: it replaces one of the inputs.
    pub output_type: i64,
    pub allow_copy: bool,
    template: Option<u32>,
    crop_center: bool,
    transparent_pictures: bool,
    video: VideoEncoding,
    /// `None` = the system picks by canvas size.
    video_kbps: Option<u32>,
    audio: AudioEncoding,
    sei: Option<String>,
    /// `PassInputSei`: the inputs' own SEI messages go into the output.
    pass_input_sei: bool,
}

impl Checked {
    /// Stream ids the request pulls.
    pub fn streams(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.inputs
            .iter()
            .filter(|i| i.kind.is_stream())
            .filter(|i| seen.insert(i.stream_id.clone()))
            .map(|i| i.stream_id.clone())
            .collect()
    }

    /// Picture ids the request shows.
    pub fn pictures(&self) -> Vec<i64> {
        self.inputs.iter().filter_map(|i| i.picture_id).collect()
    }

    /// Whether every input is sound only: the output then has no video.
    pub fn audio_only(&self) -> bool {
        self.inputs.iter().all(|i| i.kind == Kind::Audio)
    }
}

/// What the world says about a request's streams and pictures.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    /// Found streams and their picture size (`None`: found, but no picture known).
    pub streams: HashMap<String, Option<(u32, u32)>>,
    /// Pictures by id: location and natural size. Absent: not found (-34).
    pub pictures: HashMap<i64, (String, (u32, u32))>,
}

/// `[A-Za-z0-9_]{1,80}`: Tencent's rule for session and stream ids.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_BYTES
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `0xRRGGBB` (also `#RRGGBB`).
pub fn parse_color(s: &str) -> Option<Color> {
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .or_else(|| s.strip_prefix('#'))?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().map(Color::from_rgb_u32)
}

/// A size or position as sent: absent or 0 = not given; (0, 1) a fraction, which must lie in [0.01, 0.99];
/// otherwise pixels up to the dialect's maximum.
fn len(v: Option<f64>, field: &str, layer: i64, dialect: Dialect) -> Result<Option<Len>, Refusal> {
    let Some(v) = v else { return Ok(None) };
    let max = dialect.max_pixels();
    if !v.is_finite() || v < 0.0 || v > max {
        return Err(refuse(
            Reason::StreamParameter,
            format!("{field} of layer {layer} is {v}; it must be pixels from 0 to {max} or a fraction from 0.01 to 0.99"),
        ));
    }
    if v == 0.0 {
        return Ok(None);
    }
    if v < 1.0 {
        if !(0.01..=0.99).contains(&v) {
            return Err(refuse(
                Reason::StreamParameter,
                format!("{field} of layer {layer} is {v}; a fraction must be from 0.01 to 0.99"),
            ));
        }
        return Ok(Some(Len::Frac(v)));
    }
    Ok(Some(Len::Px(v)))
}

fn crop_px(
    v: Option<f64>,
    field: &str,
    layer: i64,
    dialect: Dialect,
) -> Result<Option<u32>, Refusal> {
    let Some(v) = v else { return Ok(None) };
    let max = dialect.max_pixels();
    if !v.is_finite() || v < 0.0 || v > max {
        return Err(refuse(
            Reason::Crop,
            format!("{field} of layer {layer} is {v}; it must be pixels from 0 to {max}"),
        ));
    }
    Ok(Some(v.round() as u32))
}

fn flag(v: Option<i64>, field: &str) -> Result<bool, Refusal> {
    match v {
        None | Some(0) => Ok(false),
        Some(1) => Ok(true),
        Some(other) => Err(refuse(
            Reason::Parameter,
            format!("{field} is {other}; it must be 0 or 1"),
        )),
    }
}

fn ranged(
    v: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
    field: &str,
) -> Result<Option<u32>, Refusal> {
    match v {
        None => Ok(None),
        Some(v) if range.contains(&v) => Ok(Some(v as u32)),
        Some(v) => Err(refuse(
            Reason::Parameter,
            format!(
                "{field} is {v}; it must be from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

/// Step 1: every rule the request alone decides, in the order Tencent's codes suggest.
pub fn check(req: &MixRequest, dialect: Dialect) -> Result<Checked, Refusal> {
    if !valid_id(&req.session_id) {
        return Err(refuse(
            Reason::Parameter,
            "the mix session id must be 1 to 80 letters, digits or underscores",
        ));
    }
    let output_id = &req.output.stream_id;
    if !valid_id(output_id) {
        return Err(refuse(
            Reason::OutputId,
            "the output stream id must be 1 to 80 letters, digits or underscores",
        ));
    }
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
        inputs.push(CheckedInput {
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
        });
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

    let template = match req.template_id.unwrap_or(0) {
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

    let output_type = req.output.stream_type.unwrap_or(0);
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

    let video_kbps = match req.output.bitrate_kbps {
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
        fps: Some(ranged(req.output.fps, 1..=60, "output frame rate")?.unwrap_or(30)),
        gop_s: ranged(req.output.gop_s, 1..=10, "output GOP")?.unwrap_or(defaults.gop_s),
        ..defaults
    };
    let audio_defaults = AudioEncoding::default();
    let sample_rate = match req.output.audio_sample_rate {
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
        bitrate_kbps: ranged(
            req.output.audio_bitrate_kbps,
            1..=500,
            "output audio bitrate",
        )?
        .map(|b| b.clamp(*AUDIO_KBPS.start(), *AUDIO_KBPS.end()))
        .unwrap_or(audio_defaults.bitrate_kbps),
        sample_rate,
        channels: ranged(req.output.audio_channels, 1..=2, "output audio channels")?
            .unwrap_or(audio_defaults.channels),
    };
    let sei = match req.output.sei.as_deref().filter(|s| !s.is_empty()) {
        Some(s) if s.len() > 4096 => {
            return Err(refuse(
                Reason::Parameter,
                "MixSei is longer than 4096 bytes",
            ))
        }
        other => other.map(str::to_string),
    };

    let c = &req.control;
    Ok(Checked {
        session_id: req.session_id.clone(),
        output_id: output_id.clone(),
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

/// A bitrate "the system decides": enough for the canvas at its frame rate.
fn auto_kbps(width: u32, height: u32) -> u32 {
    match u64::from(width) * u64::from(height) {
        0..=230_400 => 800,           // up to 640×360
        230_401..=518_400 => 1_200,   // up to 960×540
        518_401..=921_600 => 1_800,   // up to 1280×720
        921_601..=2_073_600 => 3_000, // up to 1920×1080
        _ => 5_000,
    }
}

fn even(v: f64) -> u32 {
    ((v.round() as u32) / 2 * 2).max(2)
}

/// Step 3: the spec, from a checked request and what its streams and pictures turned out to be.
pub fn build(c: &Checked, facts: &Facts) -> Result<MixSpec, Refusal> {
    let stream_size = |i: &CheckedInput| facts.streams.get(&i.stream_id).copied().flatten();
    let picture = |i: &CheckedInput| -> Result<(String, (u32, u32)), Refusal> {
        let id = i.picture_id.unwrap_or_default();
        facts.pictures.get(&id).cloned().ok_or_else(|| {
            refuse(
                Reason::PictureNotFound,
                format!("layer {}: picture {id} is not registered", i.layer),
            )
        })
    };
    // Only streams that could be pulled reach this point; a missing one is the caller's -505.
    if let Some(missing) = c
        .inputs
        .iter()
        .find(|i| i.kind.is_stream() && !facts.streams.contains_key(&i.stream_id))
    {
        return Err(refuse(
            Reason::InputNotFound,
            format!("input stream {:?} cannot be found", missing.stream_id),
        ));
    }

    // The background defines the canvas.
    let bg = &c.inputs[0];
    // Under a template, sizes and positions in the request are ignored, the background's too.
    let given = |l: Option<Len>| match l {
        Some(Len::Px(v)) if c.template.is_none() => Some(v),
        _ => None,
    };
    let px = |l: Option<Len>| match l {
        Some(Len::Px(v)) => Some(v),
        _ => None,
    };
    let bg_size =
        match bg.kind {
            // A canvas has no size but the one it is given, template or not.
            Kind::Canvas => match (px(bg.width), px(bg.height)) {
                (Some(w), Some(h)) => Some((w, h)),
                _ => return Err(refuse(
                    Reason::BackgroundSize,
                    "the background canvas (layer 1) needs its image width and height in pixels",
                )),
            },
            Kind::Picture => {
                let (_, (w, h)) = picture(bg)?;
                Some((
                    given(bg.width).unwrap_or(f64::from(w)),
                    given(bg.height).unwrap_or(f64::from(h)),
                ))
            }
            Kind::Av | Kind::Video => {
                let natural = stream_size(bg);
                match (given(bg.width), given(bg.height), natural) {
                    (Some(w), Some(h), _) => Some((w, h)),
                    (w, h, Some((nw, nh))) => {
                        Some((w.unwrap_or(f64::from(nw)), h.unwrap_or(f64::from(nh))))
                    }
                    _ => {
                        return Err(refuse(
                            Reason::BackgroundSize,
                            format!(
                        "the size of the background stream {:?} is not known (no video received)",
                        bg.stream_id
                    ),
                        ))
                    }
                }
            }
            Kind::Audio => None,
        };
    let (cw, ch) = match bg_size {
        Some((w, h)) => (even(w).max(16), even(h).max(16)),
        // Sound only: the canvas is never encoded.
        None => (320, 180),
    };
    let canvas = Canvas {
        width: cw,
        height: ch,
        fps: c.video.fps.unwrap_or(30),
        background: match bg.kind {
            Kind::Canvas => bg.color.unwrap_or(Color::BLACK),
            _ => Color::BLACK,
        },
        background_image: None,
    };
    let cells = c.template.and_then(|t| templates::place(t, cw, ch));

    let mut spec_inputs = Vec::new();
    let mut overlays = Vec::new();
    let mut ids = HashSet::new();
    for (n, i) in c.inputs.iter().enumerate() {
        let natural = match i.kind {
            Kind::Picture => Some(picture(i)?.1),
            Kind::Av | Kind::Video => stream_size(i),
            Kind::Canvas | Kind::Audio => None,
        };
        // Crop: inside the source picture; its size is the default layout size.
        let crop = match i.crop {
            None => None,
            Some((x, y, w, h)) => {
                let Some((sw, sh)) = natural else {
                    return Err(refuse(
                        Reason::Crop,
                        format!(
                            "layer {}: the size of {:?} is not known, so it cannot be cropped",
                            i.layer, i.stream_id
                        ),
                    ));
                };
                let w = w.unwrap_or(sw.saturating_sub(x));
                let h = h.unwrap_or(sh.saturating_sub(y));
                if w < 2 || h < 2 || x + w > sw || y + h > sh {
                    return Err(refuse(
                        Reason::Crop,
                        format!(
                            "layer {}: crop {w}x{h} at ({x},{y}) lies outside the {sw}x{sh} picture of {:?}",
                            i.layer, i.stream_id
                        ),
                    ));
                }
                Some(Rect::new(x as i32, y as i32, w, h))
            }
        };
        let rect = if let Some(cells) = &cells {
            Some(cells[n])
        } else if n == 0 {
            Some(Rect::new(0, 0, cw, ch))
        } else if i.kind == Kind::Audio {
            None
        } else {
            let default = crop.map(|r| (r.width, r.height)).or(natural);
            let w = i
                .width
                .map(|l| l.resolve(cw))
                .or(default.map(|d| f64::from(d.0)));
            let h = i
                .height
                .map(|l| l.resolve(ch))
                .or(default.map(|d| f64::from(d.1)));
            let (Some(w), Some(h)) = (w, h) else {
                return Err(refuse(
                    Reason::StreamParameter,
                    format!(
                        "layer {}: image width and height are needed (the size of {:?} is not known)",
                        i.layer, i.stream_id
                    ),
                ));
            };
            let x = i.x.map_or(0.0, |l| l.resolve(cw)).round();
            let y = i.y.map_or(0.0, |l| l.resolve(ch)).round();
            let (w, h) = (w.round().max(2.0), h.round().max(2.0));
            if x + w > f64::from(cw) || y + h > f64::from(ch) {
                return Err(refuse(
                    Reason::Overflow,
                    format!(
                        "layer {}: {w}x{h} at ({x},{y}) does not lie inside the {cw}x{ch} background",
                        i.layer
                    ),
                ));
            }
            Some(Rect::new(x as i32, y as i32, w as u32, h as u32))
        };
        let fit = if cells.is_some() {
            Fit::Letterbox
        } else if c.crop_center {
            Fit::CropToFill
        } else {
            Fit::Stretch
        };
        let id = if ids.insert(i.stream_id.clone()) {
            i.stream_id.clone()
        } else {
            format!("{}_layer{}", i.stream_id, i.layer)
        };
        ids.insert(id.clone());
        match i.kind {
            Kind::Av | Kind::Audio | Kind::Video => {
                let mut input = InputSpec::new(id, Source::StreamId(i.stream_id.clone()));
                input.content = match i.kind {
                    Kind::Audio => Content::Audio,
                    Kind::Video => Content::Video,
                    _ => Content::Av,
                };
                input.layer = i.layer;
                input.rect = rect;
                input.crop = crop;
                input.fit = fit;
                spec_inputs.push(input);
            }
            Kind::Picture | Kind::Canvas if n == 0 && cells.is_none() => {
                // The background picture or canvas covers the canvas: the canvas colour / image does it.
                if i.kind == Kind::Picture {
                    let (location, _) = picture(i)?;
                    overlays.push(ImageOverlay {
                        id,
                        image: location,
                        color: None,
                        opaque: !c.transparent_pictures,
                        rect: Rect::new(0, 0, cw, ch),
                        layer: i.layer,
                    });
                }
            }
            Kind::Picture | Kind::Canvas => {
                let rect = rect.expect("pictures and canvases always get a rectangle");
                let (image, color) = match i.kind {
                    Kind::Picture => (picture(i)?.0, None),
                    _ => (String::new(), Some(i.color.unwrap_or(Color::BLACK))),
                };
                overlays.push(ImageOverlay {
                    id,
                    image,
                    color,
                    opaque: !c.transparent_pictures,
                    rect,
                    layer: i.layer,
                });
            }
        }
    }

    let video = if c.audio_only() {
        None
    } else {
        let wanted = c.video_kbps.unwrap_or_else(|| auto_kbps(cw, ch));
        if wanted < MIN_VIDEO_KBPS {
            tracing::info!(
                session = %c.session_id,
                wanted,
                used = MIN_VIDEO_KBPS,
                "output bitrate raised to the encoder's minimum"
            );
        }
        Some(VideoEncoding {
            bitrate_kbps: wanted.max(MIN_VIDEO_KBPS),
            ..c.video.clone()
        })
    };
    let mut output = OutputSpec::new(Target::StreamId(c.output_id.clone()));
    output.video = video;
    output.audio = c.audio.clone();
    Ok(MixSpec {
        canvas,
        inputs: spec_inputs,
        overlays,
        outputs: vec![output],
        sei: SeiSpec {
            user_data_base64: c
                .sei
                .as_ref()
                .map(|s| base64::engine::general_purpose::STANDARD.encode(s.as_bytes())),
            sound_levels: false,
            pass_input: c.pass_input_sei,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tencent::request::{
        ControlParams, CropParams, InputParam, LayoutParams, OutputParams,
    };

    fn input(id: &str, layer: i64) -> InputParam {
        InputParam {
            stream_id: id.into(),
            layout: Some(LayoutParams {
                layer: Some(layer),
                ..Default::default()
            }),
            crop: None,
        }
    }

    fn at(mut i: InputParam, w: f64, h: f64, x: f64, y: f64) -> InputParam {
        let l = i.layout.as_mut().unwrap();
        (l.width, l.height, l.x, l.y) = (Some(w), Some(h), Some(x), Some(y));
        i
    }

    fn req(inputs: Vec<InputParam>) -> MixRequest {
        MixRequest {
            session_id: "s".into(),
            template_id: None,
            output: OutputParams {
                stream_id: "out".into(),
                stream_type: Some(1),
                ..Default::default()
            },
            inputs,
            control: ControlParams::default(),
        }
    }

    fn facts() -> Facts {
        let mut f = Facts::default();
        f.streams.insert("big".into(), Some((640, 360)));
        f.streams.insert("small".into(), Some((320, 180)));
        f.streams.insert("voice".into(), None);
        f.pictures.insert(5, ("/p/5.png".into(), (100, 50)));
        f
    }

    fn spec(r: &MixRequest, d: Dialect) -> Result<MixSpec, Reason> {
        check(r, d)
            .and_then(|c| build(&c, &facts()))
            .map_err(|e| e.reason)
    }

    #[test]
    fn background_size_is_the_canvas_and_fractions_are_of_it() {
        let s = spec(
            &req(vec![
                input("big", 1),
                at(input("small", 2), 0.25, 0.5, 0.5, 0.25),
            ]),
            Dialect::Legacy,
        )
        .unwrap();
        assert_eq!((s.canvas.width, s.canvas.height), (640, 360));
        assert_eq!(s.inputs[0].rect, Some(Rect::new(0, 0, 640, 360)));
        assert_eq!(s.inputs[1].rect, Some(Rect::new(320, 90, 160, 180)));
        // No size given: the stream's own.
        let s = spec(
            &req(vec![input("big", 1), input("small", 2)]),
            Dialect::Legacy,
        )
        .unwrap();
        assert_eq!(s.inputs[1].rect, Some(Rect::new(0, 0, 320, 180)));
        // Auto bitrate by canvas size.
        assert_eq!(s.outputs[0].video.as_ref().unwrap().bitrate_kbps, 800);
    }

    #[test]
    fn crops_default_the_layer_size_and_must_fit_the_source() {
        let mut small = input("small", 2);
        small.crop = Some(CropParams {
            width: Some(100.0),
            height: Some(50.0),
            x: Some(10.0),
            y: Some(20.0),
        });
        let s = spec(&req(vec![input("big", 1), small.clone()]), Dialect::Legacy).unwrap();
        assert_eq!(s.inputs[1].crop, Some(Rect::new(10, 20, 100, 50)));
        assert_eq!(s.inputs[1].rect, Some(Rect::new(0, 0, 100, 50)));
        small.crop.as_mut().unwrap().x = Some(300.0);
        assert_eq!(
            spec(&req(vec![input("big", 1), small]), Dialect::Legacy),
            Err(Reason::Crop)
        );
    }

    #[test]
    fn ranges_differ_between_the_dialects() {
        let wide = req(vec![
            input("big", 1),
            at(input("small", 2), 2500.0, 10.0, 0.0, 0.0),
        ]);
        assert_eq!(spec(&wide, Dialect::Cloud), Err(Reason::StreamParameter));
        // Legal for the CGI, but it does not fit the 640-wide background.
        assert_eq!(spec(&wide, Dialect::Legacy), Err(Reason::Overflow));
        let mut r = req(vec![input("big", 1), input("small", 2)]);
        r.output.bitrate_kbps = Some(20_000);
        assert_eq!(spec(&r, Dialect::Cloud), Err(Reason::Bitrate));
        let s = spec(&r, Dialect::Legacy).unwrap();
        assert_eq!(s.outputs[0].video.as_ref().unwrap().bitrate_kbps, 20_000);
        r.output.bitrate_kbps = Some(5);
        let s = spec(&r, Dialect::Legacy).unwrap();
        assert_eq!(s.outputs[0].video.as_ref().unwrap().bitrate_kbps, 100);
    }

    #[test]
    fn pictures_canvases_and_templates() {
        let mut canvas = input("c1", 1);
        {
            let l = canvas.layout.as_mut().unwrap();
            (l.input_type, l.width, l.height, l.color) =
                (Some(3), Some(800.0), Some(600.0), Some("0x00FF00".into()));
        }
        let mut pic = at(input("logo", 3), 0.0, 0.0, 10.0, 10.0);
        {
            let l = pic.layout.as_mut().unwrap();
            (l.input_type, l.picture_id) = (Some(2), Some(5));
        }
        let r = req(vec![canvas, input("big", 2), pic]);
        let s = spec(&r, Dialect::Cloud).unwrap();
        assert_eq!((s.canvas.width, s.canvas.height), (800, 600));
        assert_eq!(s.canvas.background, Color::from_rgb_u32(0x00FF00));
        assert_eq!(s.overlays[0].rect, Rect::new(10, 10, 100, 50));
        // API 3.0 draws pictures opaque unless UsePictureTransparent; the CGI keeps their alpha.
        assert!(s.overlays[0].opaque);
        assert!(!spec(&r, Dialect::Legacy).unwrap().overlays[0].opaque);

        let mut t = req(vec![
            at(input("big", 1), 10.0, 10.0, 5.0, 5.0),
            input("small", 2),
        ]);
        t.template_id = Some(30);
        let s = spec(&t, Dialect::Legacy).unwrap();
        assert_eq!((s.canvas.width, s.canvas.height), (640, 360));
        assert_eq!(s.inputs[1].rect, Some(Rect::new(320, 0, 320, 360)));
        assert_eq!(s.inputs[1].fit, Fit::Letterbox);
    }

    #[test]
    fn sound_only_mixes_have_no_video_output() {
        let voice = |id: &str, layer| {
            let mut i = input(id, layer);
            i.layout.as_mut().unwrap().input_type = Some(4);
            i
        };
        let mut r = req(vec![voice("voice", 1), voice("big", 2)]);
        r.output.sei = Some("hi".into());
        let s = spec(&r, Dialect::Legacy).unwrap();
        assert!(s.outputs[0].video.is_none());
        assert_eq!(s.sei.user_data_base64.as_deref(), Some("aGk="));
        // A sound-only background under pictured inputs has no size to give.
        let r = req(vec![voice("voice", 1), input("big", 2)]);
        assert_eq!(spec(&r, Dialect::Legacy), Err(Reason::BackgroundSize));
    }

    #[test]
    fn pass_input_sei_carries_the_inputs_sei() {
        let mut r = req(vec![input("big", 1), input("small", 2)]);
        assert!(!spec(&r, Dialect::Cloud).unwrap().sei.pass_input);
        r.control.pass_input_sei = Some(1);
        assert!(spec(&r, Dialect::Cloud).unwrap().sei.pass_input);
        r.control.pass_input_sei = Some(2);
        assert_eq!(spec(&r, Dialect::Cloud), Err(Reason::Parameter));
    }
}
