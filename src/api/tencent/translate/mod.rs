//! The one mapping from a Tencent [`MixRequest`](super::request::MixRequest) (either dialect) to the core
//! [`MixSpec`](crate::model::MixSpec).
//!
//! It runs in two steps around the only facts that need the outside world:
//! 1. [`check()`]: every rule that the request alone decides (ids, layers, types, ranges, template, output type).
//! 2. the caller learns the [`Facts`]: which input streams exist and their picture size, pictures' sizes;
//! 3. [`build()`]: the canvas (the background's size), every rectangle (pixels or fractions of the background, or
//!    the template's cells), crops, and the output encoding.
//!
//! Files by job: this one holds the types the steps share; `fields.rs` reads single values (ids, colours, sizes,
//! flags, ranges), `check.rs` is step 1 and `build.rs` step 3.

use std::collections::{HashMap, HashSet};

use super::codes::{Reason, Refusal};
use crate::model::{AudioEncoding, Color, VideoEncoding};

mod build;
mod check;
mod fields;
#[cfg(test)]
mod tests;

pub use build::build;
pub use check::check;
pub use fields::{parse_color, valid_id};

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
