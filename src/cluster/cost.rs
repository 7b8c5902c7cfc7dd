//! What a task costs, in cost units: 1000 units are one core of the 2-core reference machine the benchmarks
//! run on (docs/benchmarks.md), so a unit is a millicore there. The cost is computed from the task's work, not
//! measured, so it is known before the task runs and can be reserved when the task is placed.
//!
//! A mix costs (each term in units; a rate is pixels per second, in millions, Mpx/s):
//!
//! | term | coefficient | per |
//! |---|---|---|
//! | base (pipeline, clock, mixer threads) | [`MIX_BASE`] | mix |
//! | pull and parse | [`INPUT_PULL`] | distinct input source |
//! | decode video | [`DECODE_PER_MPXS`] × the source's pixel rate | distinct input whose picture is used |
//! | decode and resample audio, mix it | [`INPUT_AUDIO`] | distinct input whose sound is used |
//! | draw a picture scaled or converted | [`DRAW_SCALED`] | input drawn |
//! | draw a picture at its own size and colours | [`DRAW_NATIVE`] | input drawn |
//! | label, image overlay, background image | [`DRAW_STILL`] | each |
//! | composite the canvas | [`COMPOSITE_PER_MPXS`] × the canvas rate | mix with video |
//! | encode H.264 | ([`ENCODE_FLAT_PER_MPXS`] + [`ENCODE_COVERED_PER_MPXS`] × covered share) × the encoded rate | distinct encoding |
//! | encode H.265 | [`H265_FACTOR`] × the H.264 figure | distinct encoding |
//! | encode audio | [`AUDIO_ENCODE`] | distinct encoding |
//! | mux and push | [`OUTPUT_PUSH`] | output |
//!
//! The covered share is the part of the canvas the inputs' pictures cover (their rects clipped to the canvas,
//! summed, at most 1): x264 spends little on flat background, which is why a PK battle side (two 16:9 pictures
//! side by side, half the canvas) encodes for less than a co-hosting mix with a full-frame host.
//!
//! Inputs are taken at the canvas frame rate. A source whose size the caller does not know (a new task: nothing
//! has been pulled yet) is assumed to be 1280×720 when it is the mix's first input or drawn larger than 640×360,
//! and 640×360 otherwise: a co-hosting host and its guests. A source used twice in one mix is pulled and decoded
//! once (sources are compared as given: a stream id and the URL it resolves to count as two).
//!
//! A relay costs [`RELAY_PULL`] per pulled input (the backup is pulled too, as a hot standby) and
//! [`RELAY_OUTPUT`] per output: nothing is decoded or encoded.
//!
//! # Where the coefficients come from
//! All figures are on the 2-core reference machine, release build, `--content motion` (busy pictures).
//! - Decoding: one decoder thread per input costs 0.14 cores for a 1280×720 input and 0.037 for 640×360
//!   (docs/benchmarks.md, "what each change bought"): [`INPUT_PULL`] + [`DECODE_PER_MPXS`] × 27.6 Mpx/s = 134,
//!   and 41 for 640×360 (6.9 Mpx/s). The decoders are "a quarter" of S4 there (≈ 265): the inputs' terms,
//!   audio and pulls included, come to 289 here.
//! - x264 is "half of Tessera's CPU on S4 (≈ 0.6 cores)" (same page): the encode term gives 553 for a fully
//!   covered 1280×720 canvas at 30 fps, 387 for a PK side.
//! - Audio: mixing and encoding S4's four tones costs 0.07 cores offline: 4 × [`INPUT_AUDIO`] + [`AUDIO_ENCODE`] = 72.
//! - Drawing: an inset converted from BT.601 to the HD canvas' BT.709 and scaled costs about as much as
//!   decoding it; offline `gst-launch-1.0` runs of S9 and S16 without the encoder (docs/cluster.md) put it at
//!   0.035 cores per 640×360 inset, about 55 on the live server's scale (1.6 × offline).
//! - The rest ([`MIX_BASE`], [`COMPOSITE_PER_MPXS`], [`OUTPUT_PUSH`]) closes the measured totals: S4 1.060
//!   cores, PK1 0.888, PK2 1.514 for two. The model gives 1138 (+7.4 %), 902 (+1.6 %) and 1520 (+0.4 %).
//! - S9 and S16 overload two cores, so they have no live figure; offline they cost 1.59 × and 3.5 × S4
//!   (docs/cluster.md), which puts them near 1685 and 3710 units. The model gives 1609 (−4.5 %) and 3081
//!   (−17 %): S16 is the weakest fit.
//! - Relays: R5 costs 0.014 cores per output, pull included, 0.070 for five (docs/benchmarks.md); one output of
//!   the debug build 0.0245 and five 0.066 (docs/relay.md): a pull is about 15, an output about 11.
//! - H.265: x265 `superfast` took 3.2 × the CPU of x264 `veryfast` on the same 720p motion input, offline.
//! - [`DRAW_STILL`] is not calibrated (no scene has labels or overlays): a guess at blending a still picture.

use crate::model::{AudioEncoding, Content, MixSpec, Source, VideoCodec, VideoEncoding};
use crate::relay::model::RelaySpec;

/// Cost units in one core of the reference machine.
pub const UNITS_PER_CORE: u64 = 1000;

/// Every mix: its pipeline, clock, compositor and mixer threads, FLV muxing.
pub const MIX_BASE: f64 = 30.0;
/// Each distinct input source: the RTMP/FLV pull, parsing, the input hub's fan-out.
pub const INPUT_PULL: f64 = 10.0;
/// Decoding video, per million decoded pixels per second (H.264, one thread per decoder).
pub const DECODE_PER_MPXS: f64 = 4.5;
/// Each distinct input whose sound is used: AAC decoding, resampling, its pad on the audio mixer.
pub const INPUT_AUDIO: f64 = 8.0;
/// Each input drawn scaled, cropped or converted (colorimetry) onto the canvas.
pub const DRAW_SCALED: f64 = 55.0;
/// Each input drawn at its own size and in the canvas' colours: blending only.
pub const DRAW_NATIVE: f64 = 10.0;
/// Each label, image overlay and background image (not calibrated).
pub const DRAW_STILL: f64 = 20.0;
/// Compositing, per million canvas pixels per second (background, blending the output frame).
pub const COMPOSITE_PER_MPXS: f64 = 1.5;
/// x264, per million encoded pixels per second, flat background.
pub const ENCODE_FLAT_PER_MPXS: f64 = 8.0;
/// x264, per million encoded pixels per second, on top of [`ENCODE_FLAT_PER_MPXS`], where inputs cover the canvas.
pub const ENCODE_COVERED_PER_MPXS: f64 = 12.0;
/// x265 `superfast` against x264 `veryfast`.
pub const H265_FACTOR: f64 = 3.0;
/// Each distinct encoding's audio encoder (and the audio mixer's output).
pub const AUDIO_ENCODE: f64 = 40.0;
/// Each output: its FLV tags and RTMP push.
pub const OUTPUT_PUSH: f64 = 10.0;
/// Each input a relay pulls (main, and backup when there is one).
pub const RELAY_PULL: f64 = 15.0;
/// Each relay output: forwarding FLV tags to one RTMP target.
pub const RELAY_OUTPUT: f64 = 11.0;
/// The share of a node's cores it takes when its capacity is derived from them: the rest is headroom for
/// bursts (keyframes, reconnects), the node's own API and the operating system.
pub const CORE_SHARE_PERCENT: u64 = 85;

/// Size assumed for a source whose size is unknown, when it is a mix's first input or drawn larger than
/// [`GUEST_SIZE`].
pub const HOST_SIZE: (u32, u32) = (1280, 720);
/// Size assumed for any other source whose size is unknown.
pub const GUEST_SIZE: (u32, u32) = (640, 360);

/// A mix's cost, term by term, in cost units (each rounded to the nearest unit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MixCost {
    /// [`MIX_BASE`].
    pub base: u64,
    /// Pulling, parsing and decoding the distinct inputs, video and audio.
    pub inputs: u64,
    /// Drawing inputs and still pictures, compositing the canvas.
    pub picture: u64,
    /// The encoders, video and audio.
    pub encode: u64,
    /// Muxing and pushing each output.
    pub outputs: u64,
}

impl MixCost {
    pub fn total(&self) -> u64 {
        self.base + self.inputs + self.picture + self.encode + self.outputs
    }
}

fn mpxs(w: u32, h: u32, fps: u32) -> f64 {
    f64::from(w) * f64::from(h) * f64::from(fps) / 1e6
}

fn units(x: f64) -> u64 {
    x.round().max(0.0) as u64
}

/// Pulling and decoding each distinct source of a mix, in units, in the order of first use: what a node that
/// already decodes that source for another mix (a PK battle's other side) does not add again. Their sum is
/// [`MixCost::inputs`].
pub fn mix_input_costs(
    spec: &MixSpec,
    size_of: impl Fn(&Source) -> Option<(u32, u32)>,
) -> Vec<(Source, u64)> {
    let size = |i: usize| source_size(spec, i, &size_of);
    input_costs(spec, &size)
        .into_iter()
        .map(|(source, cost)| (source.clone(), cost))
        .collect()
}

/// The size input `i`'s source is taken to have: known, or the default for its place in the mix.
fn source_size(
    spec: &MixSpec,
    i: usize,
    size_of: &impl Fn(&Source) -> Option<(u32, u32)>,
) -> (u32, u32) {
    let input = &spec.inputs[i];
    size_of(&input.source).unwrap_or_else(|| {
        let r = spec.input_rect(input);
        if i == 0 || r.width > GUEST_SIZE.0 || r.height > GUEST_SIZE.1 {
            HOST_SIZE
        } else {
            GUEST_SIZE
        }
    })
}

/// Each distinct source (the first input naming it stands for it; what is used is the union of its uses).
fn input_costs<'a>(
    spec: &'a MixSpec,
    size: &impl Fn(usize) -> (u32, u32),
) -> Vec<(&'a Source, u64)> {
    let video = spec.has_video_output();
    let mut costs = Vec::new();
    for (i, input) in spec.inputs.iter().enumerate() {
        if spec.inputs[..i].iter().any(|p| p.source == input.source) {
            continue;
        }
        let (mut uses_video, mut uses_audio) = (false, false);
        for u in spec.inputs[i..].iter().filter(|p| p.source == input.source) {
            uses_video |= u.content.has_video();
            uses_audio |= u.content.has_audio();
        }
        let mut cost = INPUT_PULL;
        if video && uses_video {
            let (w, h) = size(i);
            cost += DECODE_PER_MPXS * mpxs(w, h, spec.canvas.fps);
        }
        if uses_audio {
            cost += INPUT_AUDIO;
        }
        costs.push((&input.source, units(cost)));
    }
    costs
}

/// A mix's cost, term by term. `size_of` gives a source's picture size where the caller knows it (a running
/// task's status); `None` takes the defaults ([`HOST_SIZE`], [`GUEST_SIZE`]).
pub fn mix_cost_parts(spec: &MixSpec, size_of: impl Fn(&Source) -> Option<(u32, u32)>) -> MixCost {
    let canvas = &spec.canvas;
    let fps = canvas.fps;
    let video = spec.has_video_output();
    let hd_canvas = canvas.height > 576;

    let size = |i: usize| source_size(spec, i, &size_of);
    let inputs: u64 = input_costs(spec, &size).iter().map(|(_, c)| c).sum();

    let mut picture = 0.0;
    let mut covered = 0.0;
    if video {
        picture += COMPOSITE_PER_MPXS * mpxs(canvas.width, canvas.height, fps);
        let canvas_area = f64::from(canvas.width) * f64::from(canvas.height);
        for (i, input) in spec.inputs.iter().enumerate() {
            if input.content == Content::Audio {
                continue;
            }
            let (w, h) = size(i);
            let r = spec.input_rect(input);
            let (sw, sh) = input.crop.map_or((w, h), |c| (c.width, c.height));
            let same_colours = (h > 576) == hd_canvas;
            picture += if (sw, sh) == (r.width, r.height) && same_colours {
                DRAW_NATIVE
            } else {
                DRAW_SCALED
            };
            if input.label.is_some() {
                picture += DRAW_STILL;
            }
            let x0 = i64::from(r.x).clamp(0, i64::from(canvas.width));
            let y0 = i64::from(r.y).clamp(0, i64::from(canvas.height));
            let x1 = (i64::from(r.x) + i64::from(r.width)).clamp(0, i64::from(canvas.width));
            let y1 = (i64::from(r.y) + i64::from(r.height)).clamp(0, i64::from(canvas.height));
            covered += ((x1 - x0) * (y1 - y0)) as f64 / canvas_area;
        }
        let stills = spec.overlays.len() + usize::from(canvas.background_image.is_some());
        picture += DRAW_STILL * stills as f64;
    }
    let covered = covered.min(1.0);

    // One encoder per distinct encoding (video and audio together, as the engine shares them).
    let mut encode = 0.0;
    let mut seen: Vec<(Option<&VideoEncoding>, &AudioEncoding)> =
        Vec::with_capacity(spec.outputs.len());
    for o in &spec.outputs {
        let key = (o.video.as_ref(), &o.audio);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        if let Some(v) = &o.video {
            let rate = mpxs(canvas.width, canvas.height, v.fps.unwrap_or(fps));
            let x264 = (ENCODE_FLAT_PER_MPXS + ENCODE_COVERED_PER_MPXS * covered) * rate;
            encode += match v.codec {
                VideoCodec::H264 => x264,
                VideoCodec::H265 => H265_FACTOR * x264,
            };
        }
        encode += AUDIO_ENCODE;
    }

    MixCost {
        base: units(MIX_BASE),
        inputs,
        picture: units(picture),
        encode: units(encode),
        outputs: units(OUTPUT_PUSH * spec.outputs.len() as f64),
    }
}

/// A mix's cost in units (see the module's table).
pub fn mix_cost(spec: &MixSpec, size_of: impl Fn(&Source) -> Option<(u32, u32)>) -> u64 {
    mix_cost_parts(spec, size_of).total()
}

/// A relay's cost in units: its pulls and outputs.
pub fn relay_cost(spec: &RelaySpec) -> u64 {
    let pulls = 1 + usize::from(spec.backup.is_some());
    units(RELAY_PULL * pulls as f64 + RELAY_OUTPUT * spec.outputs.len() as f64)
}

/// The units a node takes: `configured` when it is not 0, otherwise [`CORE_SHARE_PERCENT`] of its cores (an
/// 8-core machine takes 6800 units: five S4 mixes).
pub fn node_capacity(cores: usize, configured: u64) -> u64 {
    if configured > 0 {
        configured
    } else {
        (cores as u64).saturating_mul(UNITS_PER_CORE * CORE_SHARE_PERCENT / 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The benchmark scenes as the bench runs them: the specs of benches/scenes/ and their streams' sizes from
    /// benches/scenes/index.toml.
    fn scene_mix(json: &str) -> MixSpec {
        serde_json::from_str(json).expect("a scene spec parses")
    }

    fn scene_sizes() -> HashMap<String, (u32, u32)> {
        let index: toml::Value = toml::from_str(include_str!("../../benches/scenes/index.toml"))
            .expect("index.toml parses");
        let mut sizes = HashMap::new();
        for scene in index["scene"].as_table().expect("scenes").values() {
            for (stream, size) in scene["streams"].as_table().expect("streams") {
                let (w, h) = size.as_str().and_then(|s| s.split_once('x')).expect("WxH");
                sizes.insert(stream.clone(), (w.parse().unwrap(), h.parse().unwrap()));
            }
        }
        sizes
    }

    fn known(sizes: &HashMap<String, (u32, u32)>) -> impl Fn(&Source) -> Option<(u32, u32)> + '_ {
        |s| match s {
            Source::StreamId(id) => sizes.get(id).copied(),
            Source::Url(_) => None,
        }
    }

    fn s4() -> MixSpec {
        scene_mix(include_str!("../../benches/scenes/s4.json"))
    }
    fn s9() -> MixSpec {
        scene_mix(include_str!("../../benches/scenes/s9.json"))
    }
    fn s16() -> MixSpec {
        scene_mix(include_str!("../../benches/scenes/s16.json"))
    }
    fn pk_a() -> MixSpec {
        scene_mix(include_str!("../../benches/scenes/pk2-a.json"))
    }
    fn pk_b() -> MixSpec {
        scene_mix(include_str!("../../benches/scenes/pk2-b.json"))
    }
    fn r5() -> RelaySpec {
        serde_json::from_str(include_str!("../../benches/scenes/r5.relay.json")).expect("r5 parses")
    }

    /// Within ±`tolerance_pct` % of `cores` (the measured or derived figure).
    fn assert_near(what: &str, units: u64, cores: f64, tolerance_pct: f64) {
        let expected = cores * UNITS_PER_CORE as f64;
        let off = (units as f64 / expected - 1.0) * 100.0;
        eprintln!("{what}: model {units} units, figure {expected:.0} ({off:+.1} %)");
        assert!(
            off.abs() <= tolerance_pct,
            "{what}: the model gives {units} units, the figure is {expected:.0} ({off:+.1} %, tolerance ±{tolerance_pct} %)"
        );
    }

    /// The model against the benchmark (±25 %). Measured live, release build, `--content motion`, 2-core
    /// reference machine, docs/benchmarks.md (2026-11-21): S4 1.060 cores, PK1 0.888, PK2 1.514 for two mixes
    /// (decoding shared), R5 0.014 per output (0.070 for five). S9 and S16 overload two cores, so they have no
    /// live figure: theirs are offline ratios to S4 (gst-launch-1.0 on the bench's input files, docs/cluster.md:
    /// 1.59 × and 3.5 × S4) times S4's 1.060.
    #[test]
    fn cluster_cost_model_fits_the_benchmark_scenes() {
        let sizes = scene_sizes();
        let size_of = known(&sizes);
        const TOLERANCE: f64 = 25.0;
        assert_near("S4", mix_cost(&s4(), &size_of), 1.060, TOLERANCE);
        assert_near("PK1", mix_cost(&pk_a(), &size_of), 0.888, TOLERANCE);
        // PK2: both sides on one node, their shared inputs pulled and decoded once.
        let a = mix_cost_parts(&pk_a(), &size_of);
        let b = mix_cost_parts(&pk_b(), &size_of);
        assert_near("PK2", a.total() + b.total() - b.inputs, 1.514, TOLERANCE);
        assert_near("S9", mix_cost(&s9(), &size_of), 1.59 * 1.060, TOLERANCE);
        assert_near("S16", mix_cost(&s16(), &size_of), 3.5 * 1.060, TOLERANCE);
        assert_near("R5", relay_cost(&r5()), 5.0 * 0.014, TOLERANCE);

        // The parts the benchmark page names: decoders about a quarter of S4, x264 about 0.6 cores.
        let parts = mix_cost_parts(&s4(), &size_of);
        assert_near(
            "S4 inputs (decoders ≈ ¼)",
            parts.inputs,
            1.060 / 4.0,
            TOLERANCE,
        );
        assert_near(
            "S4 encode (x264 ≈ 0.6)",
            parts.encode - AUDIO_ENCODE as u64,
            0.6,
            TOLERANCE,
        );
    }

    /// Without any size known (a new task), the defaults (first input 1280×720, the rest 640×360 unless drawn
    /// larger) keep the scenes within the same tolerance.
    #[test]
    fn cluster_cost_unknown_sizes_take_the_defaults() {
        let sizes = scene_sizes();
        for (name, spec) in [("S4", s4()), ("S9", s9()), ("S16", s16()), ("PK1", pk_a())] {
            let exact = mix_cost(&spec, known(&sizes)) as f64;
            let guessed = mix_cost(&spec, |_| None) as f64;
            let off = (guessed / exact - 1.0) * 100.0;
            eprintln!("{name}: sizes known {exact}, unknown {guessed} ({off:+.1} %)");
            assert!(off.abs() <= 25.0, "{name}: {off:+.1} %");
        }
        // S4's sizes are exactly the defaults.
        assert_eq!(mix_cost(&s4(), |_| None), mix_cost(&s4(), known(&sizes)));
    }

    #[test]
    fn cluster_cost_follows_the_work() {
        let s4 = s4();
        let base = mix_cost(&s4, |_| None);

        // A second output with the same encoding shares the encoder: only the push is added.
        let mut two = s4.clone();
        let mut out = two.outputs[0].clone();
        out.target = crate::model::Target::StreamId("copy".into());
        two.outputs.push(out.clone());
        assert_eq!(mix_cost(&two, |_| None), base + OUTPUT_PUSH as u64);

        // A different bitrate is another encoder.
        let mut three = two.clone();
        three.outputs[1].video.as_mut().unwrap().bitrate_kbps = 1000;
        assert!(mix_cost(&three, |_| None) > base + 500);

        // H.265 costs about three times H.264's encode.
        let mut hevc = s4.clone();
        hevc.outputs[0].video.as_mut().unwrap().codec = VideoCodec::H265;
        let h264 = mix_cost_parts(&s4, |_| None).encode;
        let h265 = mix_cost_parts(&hevc, |_| None).encode;
        assert!(h265 > 2 * h264 && h265 < 4 * h264, "{h264} {h265}");

        // The same source twice is pulled and decoded once (drawn twice).
        let mut dup = s4.clone();
        dup.inputs[3].source = dup.inputs[2].source.clone();
        let d = mix_cost_parts(&dup, |_| None);
        let o = mix_cost_parts(&s4, |_| None);
        assert!(d.inputs < o.inputs && d.picture == o.picture);

        // An audio-only mix decodes, draws and encodes no picture.
        let mut audio = s4.clone();
        for o in &mut audio.outputs {
            o.video = None;
        }
        let a = mix_cost_parts(&audio, |_| None);
        assert_eq!(a.picture, 0);
        assert_eq!(a.encode, AUDIO_ENCODE as u64);
        assert!(a.total() < 200, "{a:?}");

        // 1080p at 30 fps costs more than 720p; 15 fps less.
        let mut big = s4.clone();
        big.canvas.width = 1920;
        big.canvas.height = 1080;
        assert!(mix_cost(&big, |_| None) > base);
        let mut slow = s4.clone();
        slow.canvas.fps = 15;
        assert!(mix_cost(&slow, |_| None) < base);

        // Known sizes matter: a 1080p guest costs more to decode.
        let big_guest = mix_cost(&s4, |s| (s == &s4.inputs[1].source).then_some((1920, 1080)));
        assert!(big_guest > base);
    }

    #[test]
    fn cluster_relay_cost_counts_pulls_and_outputs() {
        let mut r = r5();
        assert_eq!(relay_cost(&r), 70);
        r.backup = Some(crate::relay::model::RelayInput::Push("b".into()));
        assert_eq!(relay_cost(&r), 85);
        r.outputs.clear();
        assert_eq!(relay_cost(&r), 30);
    }

    #[test]
    fn cluster_node_capacity_from_cores_or_config() {
        assert_eq!(node_capacity(8, 0), 6800);
        assert_eq!(node_capacity(2, 0), 1700);
        assert_eq!(node_capacity(0, 0), 0);
        assert_eq!(node_capacity(8, 12_345), 12_345);
        assert_eq!(node_capacity(usize::MAX, 0), u64::MAX);
    }
}
