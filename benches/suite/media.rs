//! The bench's input media: FLV files generated once (cached under `target/bench-media/`) and the frame stamp
//! painted into every picture, which the latency probe reads back from the contenders' outputs.
//!
//! The stamp is a row of 16 square blocks across the picture's centre: block 0 is always white, block 15
//! always black (guards: a row that does not show them is not a stamp), blocks 1–14 carry the frame's index
//! in its file, most significant bit first. The publisher knows when it sent each frame, so the index read
//! from an output frame gives that frame's age: no OCR, no clocks in the picture.
//!
//! The row sits in the middle of the picture, 16 blocks of width/40 (16 px at 640x360): it survives the S4
//! crop (the centre 320x180 of a 640x360 guest) and scaling down to 320x180 (8 px blocks).

use std::path::{Path, PathBuf};

use gst::prelude::*;

pub const FPS: u32 = 30;
/// Length of every input file: the publisher loops it, so latencies up to this are unambiguous.
pub const FILE_SECS: u32 = 10;
const BLOCKS: u32 = 16;
/// Luma of a white and a black block (video range).
const WHITE: u8 = 235;
const BLACK: u8 = 16;

/// A picture size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Size {
    pub w: u32,
    pub h: u32,
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (w, h) = s
            .split_once('x')
            .ok_or_else(|| format!("size {s:?}: want WxH"))?;
        let (w, h) = (
            w.parse().map_err(|_| format!("size {s:?}: bad width"))?,
            h.parse().map_err(|_| format!("size {s:?}: bad height"))?,
        );
        Ok(Size { w, h })
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.w, self.h)
    }
}

/// Where the stamp's blocks are in a picture of `size`: block size and the top-left of block 0.
fn stamp_geometry(size: Size) -> (u32, u32, u32) {
    let b = size.w / 40;
    (b, size.w / 2 - BLOCKS / 2 * b, size.h / 2 - b / 2)
}

/// Centres of the 16 blocks in source pixels.
pub fn stamp_points(size: Size) -> Vec<(f64, f64)> {
    let (b, x0, y0) = stamp_geometry(size);
    (0..BLOCKS)
        .map(|i| {
            (
                f64::from(x0 + i * b) + f64::from(b) / 2.0,
                f64::from(y0) + f64::from(b) / 2.0,
            )
        })
        .collect()
}

fn stamp_bits(index: u32) -> [bool; BLOCKS as usize] {
    let mut bits = [false; BLOCKS as usize];
    bits[0] = true;
    for (i, bit) in bits.iter_mut().enumerate().take(15).skip(1) {
        *bit = index >> (14 - i) & 1 == 1;
    }
    bits
}

/// Paints the stamp of frame `index` into an I420 picture (luma blocks, neutral chroma under them).
fn paint(data: &mut [u8], size: Size, index: u32) {
    let (b, x0, y0) = stamp_geometry(size);
    let (w, h) = (size.w as usize, size.h as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    for (i, white) in stamp_bits(index).into_iter().enumerate() {
        let luma = if white { WHITE } else { BLACK };
        let bx = (x0 + i as u32 * b) as usize;
        for y in y0 as usize..(y0 + b) as usize {
            data[y * w + bx..y * w + bx + b as usize].fill(luma);
        }
        for plane in 0..2 {
            let base = w * h + plane * cw * ch;
            for y in y0 as usize / 2..(y0 + b) as usize / 2 {
                data[base + y * cw + bx / 2..base + y * cw + (bx + b as usize) / 2].fill(128);
            }
        }
    }
}

/// Reads a stamp from luma samples taken at the 16 block centres; `None` when the guards are not there.
pub fn read_stamp(samples: &[u8]) -> Option<u32> {
    if samples.len() != BLOCKS as usize {
        return None;
    }
    let bit = |v: u8| v >= 126;
    if !bit(samples[0]) || bit(samples[15]) {
        return None;
    }
    Some((1..15).fold(0, |acc, i| acc << 1 | u32::from(bit(samples[i]))))
}

/// What the input pictures show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// A scrolling SMPTE pattern: every pixel changes every frame, so decoding and encoding cost what busy
    /// camera pictures cost (2.5 Mbps at 720p, 800 kbps at 360p, as sent).
    Motion,
    /// A flat colour (the stamp aside), like `pipelines/synthetic-input.sh`: nearly free to decode and encode.
    /// The conditions of the reference figures in the GStreamer notes.
    Still,
    /// What a webcam in a room sends: colour under a fine moving texture (a zone plate) and per-frame sensor
    /// noise, at the bitrate live encoders use for it (1.5 Mbps at every size). High entropy in every frame, so
    /// decoding costs what it costs on real cameras, where flat or scrolling patterns flatter a decoder.
    Camera,
}

/// One generated input file.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub path: PathBuf,
}

/// The file for pictures of `size`, variant `variant` (pattern speed or colour, and tone differ), generating it
/// if it is not cached yet.
pub fn input_file(
    cache: &Path,
    content: Content,
    size: Size,
    variant: u32,
) -> Result<InputFile, String> {
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    // The version in the name invalidates old caches when the generator changes.
    let kind = match content {
        Content::Motion => "motion",
        Content::Still => "still",
        Content::Camera => "camera",
    };
    let path = cache.join(format!("v1-{kind}-{size}-{variant}.flv"));
    if !path.exists() {
        let tmp = path.with_extension("tmp");
        generate(&tmp, content, size, variant)?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(InputFile { path })
}

/// Encodes `FILE_SECS` of `content` with the stamp, and a tone, to H.264 + AAC in FLV. 720p and
/// larger at 2.5 Mbps (as R5 asks), smaller at 800 kbps, camera pictures at 1.5 Mbps; a keyframe every second
/// (as live encoders send).
fn generate(path: &Path, content: Content, size: Size, variant: u32) -> Result<(), String> {
    let frames = FILE_SECS * FPS;
    let kbps = match content {
        Content::Camera => 1500,
        _ if size.h >= 720 => 2500,
        _ => 800,
    };
    let caps = format!(
        "video/x-raw,format=I420,width={w},height={h},framerate={FPS}/1",
        w = size.w,
        h = size.h
    );
    // The picture before the stamp: one test source, or (camera) a texture with noise blended over it.
    let picture = match content {
        Content::Motion => format!(
            "videotestsrc pattern=smpte horizontal-speed={} num-buffers={frames} ! {caps}",
            2 + variant
        ),
        Content::Still => format!(
            "videotestsrc pattern=solid-color foreground-color={} num-buffers={frames} ! {caps}",
            [0xFFC0_3030u32, 0xFF30_C030, 0xFF30_30C0, 0xFFC0_C030][variant as usize % 4]
        ),
        // Colour bars drifting slowly (the scene), a fine moving zone plate over them (texture that never
        // repeats), and per-frame noise (the sensor). The compositor comes last, so the stamp follows it.
        Content::Camera => format!(
            "videotestsrc pattern=smpte horizontal-speed=1 num-buffers={frames} ! {caps} ! cam.sink_0 \
             videotestsrc pattern=zone-plate kx2={k} ky2={k} kt={kt} num-buffers={frames} ! {caps} ! cam.sink_1 \
             videotestsrc pattern=snow num-buffers={frames} ! {caps} ! cam.sink_2 \
             compositor name=cam sink_1::alpha=0.35 sink_2::alpha=0.12 ! {caps}",
            k = 60 + 10 * variant,
            kt = 2 + variant,
        ),
    };
    let audio_buffers = (FILE_SECS * 44_100).div_ceil(1024);
    let desc = format!(
        "{picture} ! identity name=stamp \
         ! x264enc speed-preset=faster tune=zerolatency bitrate={kbps} key-int-max={FPS} \
         ! h264parse ! queue ! mux.video \
         audiotestsrc wave=sine freq={freq} volume=0.1 samplesperbuffer=1024 num-buffers={audio_buffers} \
         ! audio/x-raw,rate=44100,channels=2 ! avenc_aac bitrate=128000 ! aacparse ! queue ! mux.audio \
         flvmux name=mux streamable=true ! filesink location={loc}",
        freq = 440 + 110 * variant,
        loc = path.display(),
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| format!("input generator: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "input generator: not a pipeline".to_string())?;
    let stamp = pipeline.by_name("stamp").expect("named in the description");
    stamp
        .static_pad("src")
        .expect("identity has a src pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(ref mut buffer)) = info.data {
                let index = buffer
                    .pts()
                    .map(|t| (t.nseconds() * u64::from(FPS) + 500_000_000) / 1_000_000_000)
                    .unwrap_or(0) as u32;
                if let Ok(mut map) = buffer.make_mut().map_writable() {
                    paint(map.as_mut_slice(), size, index);
                }
            }
            gst::PadProbeReturn::Ok
        });
    run_to_eos(pipeline.upcast_ref(), 300, "input generator")
}

/// Plays a finite pipeline until its end (or its first error, or `timeout_s`), then stops it. `what` names it
/// in the error.
pub fn run_to_eos(pipeline: &gst::Element, timeout_s: u64, what: &str) -> Result<(), String> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("{what}: {e}"))?;
    let bus = pipeline.bus().expect("pipelines have a bus");
    let result = match bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(timeout_s),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        Some(m) => match m.view() {
            gst::MessageView::Error(e) => Err(format!("{what}: {}", e.error())),
            _ => Ok(()),
        },
        None => Err(format!("{what}: timed out")),
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Checks the stamp encoding round-trips (run by the smoke: a bench target has no test harness).
pub fn self_check() {
    for index in [0, 1, 299, 8191, 16383] {
        let samples: Vec<u8> = stamp_bits(index)
            .iter()
            .map(|&b| if b { WHITE } else { BLACK })
            .collect();
        assert_eq!(read_stamp(&samples), Some(index));
    }
    assert_eq!(read_stamp(&[WHITE; 16]), None);
}
