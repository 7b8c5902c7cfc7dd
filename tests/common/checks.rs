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
