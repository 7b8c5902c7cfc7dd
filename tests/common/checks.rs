//! Checks on decoded output shared by the test targets: named colours and pixel expectations.

use std::time::Duration;

use super::{color_close, Frame, OutputProbe};

pub const RED: u32 = 0xFF0000;
pub const GREEN: u32 = 0x00FF00;
pub const BLUE: u32 = 0x0000FF;
pub const YELLOW: u32 = 0xFFFF00;
pub const MAGENTA: u32 = 0xFF00FF;
pub const CYAN: u32 = 0x00FFFF;
/// Per-channel tolerance for colours that went through 4:2:0, H.264 and back.
pub const TOL: u8 = 48;

/// Waits until every (x, y, colour) holds in one output frame; panics with what was seen otherwise.
pub fn expect_pixels(probe: &OutputProbe, checks: &[(u32, u32, u32)], timeout: Duration) -> Frame {
    let found = probe.wait_until(timeout, |f| {
        checks
            .iter()
            .all(|&(x, y, c)| color_close(f.pixel(x, y), c, TOL))
    });
    match found {
        Some(f) => f,
        None => {
            let seen: Vec<String> = match probe.latest() {
                Some(f) => checks
                    .iter()
                    .map(|&(x, y, c)| format!("({x},{y}) want {c:06X} got {:?}", f.pixel(x, y)))
                    .collect(),
                None => vec!["no frame at all".into()],
            };
            panic!(
                "pixels never matched within {timeout:?}: {}",
                seen.join("; ")
            );
        }
    }
}

/// Asserts that every frame the probe recorded at its watched points since `watch` showed `colours` there.
pub fn assert_watched(probe: &OutputProbe, colours: &[u32], what: &str) {
    let frames = probe.watched();
    assert!(!frames.is_empty(), "{what}: no frame recorded");
    for (pts, pixels) in &frames {
        for (px, &want) in pixels.iter().zip(colours) {
            assert!(
                color_close(*px, want, TOL),
                "{what}: a frame at {pts:?} showed {px:?} where {want:06X} belongs ({} frames checked)",
                frames.len()
            );
        }
    }
}

/// Asserts the decoded output's timestamps (of the frames of the last ~20 s, more than 30 of them) never went back
/// and never jumped by more than `max_step`.
pub fn assert_pts_continuous(probe: &OutputProbe, max_step: Duration) {
    let pts: Vec<u64> = probe
        .frame_times()
        .iter()
        .filter_map(|(_, p)| p.map(|p| p.mseconds()))
        .collect();
    assert!(pts.len() > 30, "too few frames: {}", pts.len());
    for w in pts.windows(2) {
        assert!(
            w[1] >= w[0] && w[1] - w[0] <= max_step.as_millis() as u64,
            "output timestamps jump: {} → {} ms",
            w[0],
            w[1]
        );
    }
}

/// Writes a solid-colour PNG (`argb` = 0xAARRGGBB) with GStreamer.
pub fn write_png(path: &std::path::Path, argb: u32, w: u32, h: u32) {
    write_png_pattern(path, &format!("solid-color foreground-color={argb}"), w, h)
}

/// Writes a PNG of a `videotestsrc` pattern (e.g. `snow`, which does not compress).
pub fn write_png_pattern(path: &std::path::Path, pattern: &str, w: u32, h: u32) {
    use gst::prelude::*;
    super::init();
    let desc = format!(
        "videotestsrc num-buffers=1 pattern={pattern} ! video/x-raw,format=RGBA,width={w},height={h} ! pngenc ! filesink location={}",
        path.display()
    );
    let pipeline = gst::parse::launch(&desc).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    pipeline.bus().unwrap().timed_pop_filtered(
        gst::ClockTime::from_seconds(10),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        std::fs::metadata(path)
            .map(|m| m.len() > 0)
            .unwrap_or(false),
        "PNG not written"
    );
}
