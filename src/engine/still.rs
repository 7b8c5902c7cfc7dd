//! Still pictures (canvas colour, background image, watermarks) rendered once, at their final size and in the
//! compositor's own format, so the compositor only blends them: no per-frame decode, scale or conversion.

use gst::prelude::*;
use gst_video::prelude::*;

use crate::{error::Error, error::ErrorKind, model::Color};

/// The compositor's format when every layer is opaque: the encoder's own, so nothing is converted per frame.
pub const OPAQUE_CANVAS: &str = "I420";
/// The compositor's format while a picture has transparent parts: per-pixel alpha survives blending only in an
/// alpha format. Rounded corners need neither (see `corners`).
pub const ALPHA_CANVAS: &str = "AYUV";

/// The colorimetry (and chroma siting) of a canvas `height` pixels high: BT.709 above 576 lines, BT.601 up to
/// it, the defaults decoders and encoders assume for pictures of those sizes. The compositor converts every layer
/// whose picture is tagged otherwise, every frame (measured on S4: a 720p BT.709 host on a BT.601 canvas cost 0.18
/// cores), so the canvas takes the tags its largest inputs most likely carry.
pub fn canvas_colorimetry(height: u32) -> (&'static str, &'static str) {
    (if height > 576 { "bt709" } else { "bt601" }, "mpeg2")
}

/// A rendered picture: one buffer and its caps.
#[derive(Clone)]
pub struct Still {
    pub buffer: gst::Buffer,
    pub caps: gst::Caps,
    /// Whether every pixel is opaque; then the picture is I420 (see [`finish`]), otherwise AYUV.
    pub opaque: bool,
}

/// Fills `width`×`height` with `color`, for a canvas `canvas_height` pixels high.
pub fn solid(color: Color, width: u32, height: u32, canvas_height: u32) -> Result<Still, Error> {
    let src = gst::ElementFactory::make("videotestsrc")
        .property_from_str("pattern", "solid-color")
        .property("foreground-color", color.argb())
        .property("num-buffers", 1i32)
        .build()
        .map_err(Error::internal)?;
    finish(render(src, None, Some((width, height)))?, canvas_height)
}

/// Decodes a PNG or JPEG held in memory (see [`crate::image::load`], which checked its size and pixel count) and
/// scales it to `width`×`height`, for a canvas `canvas_height` pixels high. `opaque`: the alpha channel is set
/// opaque (transparent parts show the image's own colour values instead of what lies beneath).
pub fn image(
    bytes: &[u8],
    width: u32,
    height: u32,
    canvas_height: u32,
    opaque: bool,
) -> Result<Still, Error> {
    let mut still = decode_image(bytes, Some((width, height)))?;
    if opaque {
        let buffer = still.buffer.make_mut();
        let mut map = buffer.map_writable().map_err(Error::internal)?;
        // AYUV: A is the first byte of every 4.
        for px in map.as_mut_slice().chunks_exact_mut(4) {
            px[0] = 255;
        }
    }
    finish(still, canvas_height)
}

/// Turns a rendered AYUV picture into its final form: an opaque one becomes I420 in the colorimetry of a canvas
/// `canvas_height` high, the opaque canvas' own format, so the compositor blends it without converting it every
/// frame.
fn finish(mut still: Still, canvas_height: u32) -> Result<Still, Error> {
    let info = gst_video::VideoInfo::from_caps(&still.caps).map_err(Error::internal)?;
    let opaque = {
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(still.buffer.as_ref(), &info)
                .map_err(Error::internal)?;
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data(0).map_err(Error::internal)?;
        let row = info.width() as usize * 4;
        data.chunks(stride)
            .take(info.height() as usize)
            .all(|line| line[..row].chunks_exact(4).all(|px| px[0] == 255))
    };
    if !opaque {
        return Ok(still);
    }
    let (colorimetry, _) = canvas_colorimetry(canvas_height);
    let out_info =
        gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, info.width(), info.height())
            .par(gst::Fraction::new(1, 1))
            .fps(info.fps())
            .colorimetry(&colorimetry.parse().map_err(Error::internal)?)
            .chroma_site(gst_video::VideoChromaSite::MPEG2)
            .build()
            .map_err(Error::internal)?;
    let converter =
        gst_video::VideoConverter::new(&info, &out_info, None).map_err(Error::internal)?;
    let mut out = gst::Buffer::with_size(out_info.size()).map_err(Error::internal)?;
    {
        let in_frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(still.buffer.as_ref(), &info)
                .map_err(Error::internal)?;
        let mut out_frame = gst_video::VideoFrameRef::from_buffer_ref_writable(
            out.get_mut().expect("new buffer"),
            &out_info,
        )
        .map_err(Error::internal)?;
        converter.frame_ref(&in_frame, &mut out_frame);
    }
    still.buffer = out;
    still.caps = out_info.to_caps().map_err(Error::internal)?;
    still.opaque = true;
    Ok(still)
}

/// The natural size of a PNG or JPEG held in memory, by decoding it once (so a picture that cannot be decoded is
/// found out). Callers check its header first ([`crate::image::size_within`]).
pub fn image_size(bytes: &[u8]) -> Result<(u32, u32), Error> {
    let still = decode_image(bytes, None)?;
    let info = gst_video::VideoInfo::from_caps(&still.caps).map_err(Error::internal)?;
    Ok((info.width(), info.height()))
}

/// Decodes `bytes` (fed by an appsrc to decodebin), scaled to `size` when given.
fn decode_image(bytes: &[u8], size: Option<(u32, u32)>) -> Result<Still, Error> {
    let data = std::sync::Mutex::new(Some(gst::Buffer::from_slice(bytes.to_vec())));
    let src = gst_app::AppSrc::builder()
        .format(gst::Format::Bytes)
        .callbacks(
            gst_app::AppSrcCallbacks::builder()
                .need_data(move |src, _| {
                    // All of it at once, then the end: the picture is already in memory.
                    if let Some(buffer) = data.lock().unwrap().take() {
                        let _ = src.push_buffer(buffer);
                        let _ = src.end_of_stream();
                    }
                })
                .build(),
        )
        .build();
    let decode = gst::ElementFactory::make("decodebin")
        .build()
        .map_err(Error::internal)?;
    render(src.upcast(), Some(decode), size).map_err(|e| {
        if e.kind == ErrorKind::Internal {
            Error::new(ErrorKind::Unavailable, "the image cannot be decoded")
        } else {
            e
        }
    })
}

fn render(
    src: gst::Element,
    decode: Option<gst::Element>,
    size: Option<(u32, u32)>,
) -> Result<Still, Error> {
    // No task and no bus watch that logs: GStreamer's warnings about it are forwarded as they are.
    let pipeline = gst::Pipeline::with_name("still");
    let convert = gst::ElementFactory::make("videoconvert")
        .build()
        .map_err(Error::internal)?;
    let scale = gst::ElementFactory::make("videoscale")
        .property("add-borders", false)
        .build()
        .map_err(Error::internal)?;
    let convert2 = gst::ElementFactory::make("videoconvert")
        .build()
        .map_err(Error::internal)?;
    let mut caps = gst::Caps::builder("video/x-raw")
        .field("format", ALPHA_CANVAS)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    if let Some((width, height)) = size {
        caps = caps
            .field("width", width as i32)
            .field("height", height as i32);
    }
    let caps = caps.build();
    let sink = gst_app::AppSink::builder().caps(&caps).sync(false).build();
    let tail: Vec<gst::Element> = vec![convert.clone(), scale, convert2, sink.clone().upcast()];
    pipeline.add(&src).map_err(Error::internal)?;
    pipeline.add_many(&tail).map_err(Error::internal)?;
    gst::Element::link_many(&tail).map_err(Error::internal)?;
    match decode {
        Some(decode) => {
            pipeline.add(&decode).map_err(Error::internal)?;
            src.link(&decode).map_err(Error::internal)?;
            let convert = convert.downgrade();
            decode.connect_pad_added(move |_, pad| {
                if let Some(sinkpad) = convert.upgrade().and_then(|c| c.static_pad("sink")) {
                    if !sinkpad.is_linked() {
                        let _ = pad.link(&sinkpad);
                    }
                }
            });
        }
        None => src.link(&convert).map_err(Error::internal)?,
    }
    pipeline
        .set_state(gst::State::Playing)
        .map_err(Error::internal)?;
    // Wait for the picture, but give up as soon as the pipeline reports an error (a 404, a truncated file).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut bus_error = None;
    let sample = loop {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            break Some(sample);
        }
        if let Some(msg) = pipeline
            .bus()
            .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]))
        {
            if let gst::MessageView::Error(e) = msg.view() {
                bus_error = Some(e.error().to_string());
            }
            break None;
        }
        if sink.is_eos() || std::time::Instant::now() > deadline {
            break None;
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    match sample {
        Some(sample) => {
            let buffer = sample
                .buffer_owned()
                .ok_or_else(|| Error::internal("still without buffer"))?;
            let caps = sample
                .caps_owned()
                .ok_or_else(|| Error::internal("still without caps"))?;
            Ok(Still {
                buffer,
                caps,
                opaque: false,
            })
        }
        None => Err(Error::internal(format!(
            "still picture not rendered: {}",
            bus_error.unwrap_or_else(|| "timeout".into())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::header_tests::{TINY_JPEG, TINY_PNG};

    /// Pictures are decoded from memory (appsrc → decodebin): PNG and JPEG, natural size or scaled.
    #[test]
    fn pictures_decode_from_memory() {
        crate::engine::init().unwrap();
        assert_eq!(image_size(TINY_PNG).unwrap(), (3, 2));
        assert_eq!(image_size(TINY_JPEG).unwrap(), (10, 6));
        for bytes in [TINY_PNG, TINY_JPEG] {
            let still = image(bytes, 32, 16, 360, true).unwrap();
            let info = gst_video::VideoInfo::from_caps(&still.caps).unwrap();
            assert_eq!((info.width(), info.height()), (32, 16));
            assert!(still.opaque);
        }
        let refused = image(b"\x89PNG\r\n\x1a\nnot really", 32, 16, 360, false).err();
        assert_eq!(refused.map(|e| e.kind), Some(ErrorKind::Unavailable));
    }
}
