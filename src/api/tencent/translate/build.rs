//! Step 3: the [`MixSpec`] from a checked request and the facts: the canvas, each layer's rectangle and crop,
//! the output and the SEI.

use std::collections::HashSet;

use base64::Engine as _;

use super::{refuse, Checked, CheckedInput, Facts, Kind, Len};
use crate::api::tencent::{
    codes::{Reason, Refusal},
    templates,
};
use crate::model::{
    Canvas, Color, Content, Fit, ImageOverlay, InputSpec, MixSpec, OutputSpec, Rect, SeiSpec,
    Source, Target, VideoEncoding,
};

/// Bitrates the encoders take; Tencent's wider ranges are clamped into them (and logged).
const MIN_VIDEO_KBPS: u32 = 100;

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

impl Facts {
    /// The picture size of an input's stream, when known.
    fn stream_size(&self, i: &CheckedInput) -> Option<(u32, u32)> {
        self.streams.get(&i.stream_id).copied().flatten()
    }

    /// A picture input's location and natural size.
    fn picture(&self, i: &CheckedInput) -> Result<(String, (u32, u32)), Refusal> {
        let id = i.picture_id.unwrap_or_default();
        self.pictures.get(&id).cloned().ok_or_else(|| {
            refuse(
                Reason::PictureNotFound,
                format!("layer {}: picture {id} is not registered", i.layer),
            )
        })
    }
}

/// Step 3: the spec, from a checked request and what its streams and pictures turned out to be.
pub fn build(c: &Checked, facts: &Facts) -> Result<MixSpec, Refusal> {
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

    let canvas = canvas(c, facts)?;
    let (spec_inputs, overlays) = layers(c, facts, &canvas)?;
    let output = output(c, &canvas);
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

/// The canvas: the background's size (even, at least 16×16; 320×180 when only sound is mixed) and colour.
fn canvas(c: &Checked, facts: &Facts) -> Result<Canvas, Refusal> {
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
                let (_, (w, h)) = facts.picture(bg)?;
                Some((
                    given(bg.width).unwrap_or(f64::from(w)),
                    given(bg.height).unwrap_or(f64::from(h)),
                ))
            }
            Kind::Av | Kind::Video => {
                let natural = facts.stream_size(bg);
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
    Ok(Canvas {
        width: cw,
        height: ch,
        fps: c.video.fps.unwrap_or(30),
        background: match bg.kind {
            Kind::Canvas => bg.color.unwrap_or(Color::BLACK),
            _ => Color::BLACK,
        },
        background_image: None,
    })
}

/// Every input in layer order: streams become inputs, pictures and canvases overlays (the background's own
/// picture or colour is the canvas).
fn layers(
    c: &Checked,
    facts: &Facts,
    canvas: &Canvas,
) -> Result<(Vec<InputSpec>, Vec<ImageOverlay>), Refusal> {
    let (cw, ch) = (canvas.width, canvas.height);
    let cells = c.template.and_then(|t| templates::place(t, cw, ch));

    let mut spec_inputs = Vec::new();
    let mut overlays = Vec::new();
    let mut ids = HashSet::new();
    for (n, i) in c.inputs.iter().enumerate() {
        let natural = match i.kind {
            Kind::Picture => Some(facts.picture(i)?.1),
            Kind::Av | Kind::Video => facts.stream_size(i),
            Kind::Canvas | Kind::Audio => None,
        };
        let crop = source_crop(i, natural)?;
        let rect = if let Some(cells) = &cells {
            Some(cells[n])
        } else if n == 0 {
            Some(Rect::new(0, 0, cw, ch))
        } else if i.kind == Kind::Audio {
            None
        } else {
            Some(placed(i, natural, crop, canvas)?)
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
                    let (location, _) = facts.picture(i)?;
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
                    Kind::Picture => (facts.picture(i)?.0, None),
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
    Ok((spec_inputs, overlays))
}

/// Crop: inside the source picture (of `natural` size); its size is the default layout size.
fn source_crop(i: &CheckedInput, natural: Option<(u32, u32)>) -> Result<Option<Rect>, Refusal> {
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
    Ok(crop)
}

/// Where a layer above the background goes without a template: its size and position as given (pixels or
/// fractions of the canvas), by default the crop's or the source's size at (0, 0); it must lie inside the canvas.
fn placed(
    i: &CheckedInput,
    natural: Option<(u32, u32)>,
    crop: Option<Rect>,
    canvas: &Canvas,
) -> Result<Rect, Refusal> {
    let (cw, ch) = (canvas.width, canvas.height);
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
    Ok(Rect::new(x as i32, y as i32, w as u32, h as u32))
}

/// The one output: video at the requested bitrate (or one picked by canvas size, at least the encoder's
/// minimum), none when only sound is mixed; the checked audio.
fn output(c: &Checked, canvas: &Canvas) -> OutputSpec {
    let (cw, ch) = (canvas.width, canvas.height);
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
    output
}
