//! Rounded corners without an alpha canvas.
//!
//! Rounding a layer's corners needs per-pixel alpha, and the compositor keeps per-pixel alpha only when it blends
//! in an alpha format (AYUV): every frame then costs a conversion of each input into AYUV, four bytes a pixel of
//! blending, and a conversion back to I420 for the encoder. Instead the compositor blends opaque layers straight
//! into I420, and this module redraws only the pixels that rounding changes: for each rounded layer, the part of
//! its four corner squares that lies outside the rounded outline. Each such pixel is composited again from every
//! layer's picture, bottom to top, with the layer's coverage as alpha (anti-aliased along the arc). A canvas that
//! is AYUV anyway (a picture with transparent parts) gets its corners redrawn the same way.
//!
//! The pictures are the ones the compositor chose for the frame, taken on its `samples-selected` signal; the
//! redraw runs in a probe on its source pad. Both run on the compositor's own thread, one frame after another.

use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gst_base::prelude::*;
use gst_video::prelude::*;

/// Per-mix state shared with the compositor's thread.
#[derive(Default)]
pub struct Corners {
    /// Corner radius of each compositor pad that has one (inputs; 0 is left out).
    radii: Mutex<Vec<(gst::Pad, u32)>>,
    /// The pictures the compositor selected for the frame it is producing, with their pads.
    selected: Mutex<Vec<(gst::Pad, gst::Sample)>>,
}

impl Corners {
    /// Hooks into `compositor` (not yet running).
    pub fn attach(compositor: &gst::Element) -> Arc<Self> {
        let corners = Arc::new(Self::default());
        if let Some(agg) = compositor.downcast_ref::<gst_base::Aggregator>() {
            agg.set_emit_signals(true);
            let weak = Arc::downgrade(&corners);
            agg.connect_samples_selected(move |agg, _, _, _, _, _| {
                let Some(me) = weak.upgrade() else { return };
                if me.radii.lock().unwrap().is_empty() {
                    return;
                }
                let samples: Vec<(gst::Pad, gst::Sample)> = agg
                    .sink_pads()
                    .into_iter()
                    .filter_map(|pad| {
                        let agg_pad = pad.downcast_ref::<gst_base::AggregatorPad>()?;
                        let sample = agg.peek_next_sample(agg_pad)?;
                        Some((pad, sample))
                    })
                    .collect();
                *me.selected.lock().unwrap() = samples;
            });
        }
        let weak = Arc::downgrade(&corners);
        compositor
            .static_pad("src")
            .expect("compositor has a src pad")
            .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                if let (Some(me), Some(gst::PadProbeData::Buffer(buffer))) =
                    (weak.upgrade(), info.data.as_mut())
                {
                    me.redraw(pad, buffer);
                }
                gst::PadProbeReturn::Ok
            });
        corners
    }

    /// Sets the corner radius of the layer on compositor pad `pad` (0: square corners).
    pub fn set_radius(&self, pad: &gst::Pad, radius: u32) {
        let mut radii = self.radii.lock().unwrap();
        radii.retain(|(p, _)| p != pad);
        if radius > 0 {
            radii.push((pad.clone(), radius));
        }
    }

    /// Redraws the outside of every rounded corner in the compositor's output `buffer`.
    fn redraw(&self, src: &gst::Pad, buffer: &mut gst::Buffer) {
        let radii = self.radii.lock().unwrap().clone();
        let selected = std::mem::take(&mut *self.selected.lock().unwrap());
        if radii.is_empty() || selected.is_empty() {
            return;
        }
        let Some(out_info) = src
            .current_caps()
            .and_then(|c| gst_video::VideoInfo::from_caps(&c).ok())
        else {
            return;
        };
        // Read what the compositor used for each layer: its place, stacking, alpha and picture.
        let mut frames = Vec::new();
        for (pad, sample) in &selected {
            let (Some(buf), Some(caps)) = (sample.buffer(), sample.caps()) else {
                continue;
            };
            let Ok(info) = gst_video::VideoInfo::from_caps(caps) else {
                continue;
            };
            let Ok(frame) = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &info) else {
                continue;
            };
            let w: i32 = pad.property("width");
            let h: i32 = pad.property("height");
            let rect = Rect {
                x: pad.property("xpos"),
                y: pad.property("ypos"),
                w: if w > 0 { w } else { info.width() as i32 },
                h: if h > 0 { h } else { info.height() as i32 },
            };
            let z: u32 = pad.property("zorder");
            let alpha: f64 = pad.property("alpha");
            let radius = radii.iter().find(|(p, _)| p == pad).map_or(0, |(_, r)| *r);
            frames.push((z, rect, alpha as f32, radius, frame));
        }
        frames.sort_by_key(|f| f.0);
        let layers: Vec<Layer> = frames
            .iter()
            .filter_map(|(_, rect, alpha, radius, frame)| {
                Some(Layer {
                    rect: *rect,
                    alpha: *alpha,
                    radius: *radius,
                    picture: Picture::of(frame)?,
                })
            })
            .collect();
        if !layers.iter().any(|l| l.radius > 0) {
            return;
        }
        let buffer = buffer.make_mut();
        let Ok(mut out) = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &out_info)
        else {
            return;
        };
        let format = out.format();
        let (w, h) = (out.width() as i32, out.height() as i32);
        match format {
            gst_video::VideoFormat::I420 => {
                let strides = [
                    out.plane_stride()[0] as usize,
                    out.plane_stride()[1] as usize,
                    out.plane_stride()[2] as usize,
                ];
                let [y, u, v, _] = out.planes_data_mut();
                redraw_i420(
                    OutI420 {
                        w,
                        h,
                        y,
                        u,
                        v,
                        strides,
                    },
                    &layers,
                );
            }
            gst_video::VideoFormat::Ayuv => {
                let stride = out.plane_stride()[0] as usize;
                let Ok(data) = out.plane_data_mut(0) else {
                    return;
                };
                redraw_ayuv(w, h, data, stride, &layers);
            }
            _ => {}
        }
    }
}

/// A layer's place on the canvas, in canvas pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

/// A layer's picture: I420 (opaque) or AYUV (with alpha).
pub enum Picture<'a> {
    I420 {
        width: usize,
        height: usize,
        planes: [&'a [u8]; 3],
        strides: [usize; 3],
    },
    Ayuv {
        width: usize,
        height: usize,
        data: &'a [u8],
        stride: usize,
    },
}

impl<'a> Picture<'a> {
    fn of(frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>) -> Option<Self> {
        let (width, height) = (frame.width() as usize, frame.height() as usize);
        let s = frame.plane_stride();
        match frame.format() {
            gst_video::VideoFormat::I420 => Some(Picture::I420 {
                width,
                height,
                planes: [
                    frame.plane_data(0).ok()?,
                    frame.plane_data(1).ok()?,
                    frame.plane_data(2).ok()?,
                ],
                strides: [s[0] as usize, s[1] as usize, s[2] as usize],
            }),
            gst_video::VideoFormat::Ayuv => Some(Picture::Ayuv {
                width,
                height,
                data: frame.plane_data(0).ok()?,
                stride: s[0] as usize,
            }),
            _ => None,
        }
    }

    fn size(&self) -> (usize, usize) {
        match self {
            Picture::I420 { width, height, .. } | Picture::Ayuv { width, height, .. } => {
                (*width, *height)
            }
        }
    }

    /// Y, U, V and alpha (0–1) at picture pixel (x, y).
    fn yuva(&self, x: usize, y: usize) -> [f32; 4] {
        match self {
            Picture::I420 {
                planes, strides, ..
            } => [
                f32::from(planes[0][y * strides[0] + x]),
                f32::from(planes[1][(y / 2) * strides[1] + x / 2]),
                f32::from(planes[2][(y / 2) * strides[2] + x / 2]),
                1.0,
            ],
            Picture::Ayuv { data, stride, .. } => {
                let p = &data[y * stride + x * 4..];
                [
                    f32::from(p[1]),
                    f32::from(p[2]),
                    f32::from(p[3]),
                    f32::from(p[0]) / 255.0,
                ]
            }
        }
    }
}

/// One compositor layer as the redraw sees it.
pub struct Layer<'a> {
    pub rect: Rect,
    /// The pad's own alpha (0–1).
    pub alpha: f32,
    /// Corner radius in canvas pixels; 0 for square corners.
    pub radius: u32,
    pub picture: Picture<'a>,
}

impl Layer<'_> {
    /// The radius actually drawn: no more than half the shorter side.
    fn radius(&self) -> i32 {
        (self.radius as i32)
            .min(self.rect.w / 2)
            .min(self.rect.h / 2)
    }

    /// How much of canvas pixel (x, y) the layer covers, 0–1: 0 outside its rect, fractions along a rounded
    /// corner's arc.
    pub fn coverage(&self, x: i32, y: i32) -> f32 {
        let (lx, ly) = (x - self.rect.x, y - self.rect.y);
        if lx < 0 || ly < 0 || lx >= self.rect.w || ly >= self.rect.h {
            return 0.0;
        }
        let r = self.radius();
        if r <= 0 {
            return 1.0;
        }
        let cx = if lx < r {
            r
        } else if lx >= self.rect.w - r {
            self.rect.w - r
        } else {
            return 1.0;
        };
        let cy = if ly < r {
            r
        } else if ly >= self.rect.h - r {
            self.rect.h - r
        } else {
            return 1.0;
        };
        let dx = (lx as f32 + 0.5) - cx as f32;
        let dy = (ly as f32 + 0.5) - cy as f32;
        let d = (dx * dx + dy * dy).sqrt();
        (r as f32 - d + 0.5).clamp(0.0, 1.0)
    }

    /// The layer's Y, U, V and alpha at canvas pixel (x, y), which must be inside its rect. A picture of another
    /// size than the rect (the moment a layout changes) is sampled at the nearest pixel.
    fn sample(&self, x: i32, y: i32) -> [f32; 4] {
        let (pw, ph) = self.picture.size();
        let sx = ((x - self.rect.x) as usize * pw / self.rect.w as usize).min(pw - 1);
        let sy = ((y - self.rect.y) as usize * ph / self.rect.h as usize).min(ph - 1);
        self.picture.yuva(sx, sy)
    }

    /// Canvas areas (x0, y0, x1, y1), clipped to `w`×`h`, that hold this layer's corners.
    fn corner_squares(&self, w: i32, h: i32) -> Vec<(i32, i32, i32, i32)> {
        let r = self.radius();
        if r <= 0 {
            return Vec::new();
        }
        let Rect { x, y, w: lw, h: lh } = self.rect;
        [
            (x, y),
            (x + lw - r, y),
            (x, y + lh - r),
            (x + lw - r, y + lh - r),
        ]
        .into_iter()
        .map(|(x0, y0)| (x0.max(0), y0.max(0), (x0 + r).min(w), (y0 + r).min(h)))
        .filter(|(x0, y0, x1, y1)| x0 < x1 && y0 < y1)
        .collect()
    }
}

/// Canvas pixel (x, y) composited from `layers` (bottom first) over black: Y, U, V.
fn composite(layers: &[Layer], x: i32, y: i32) -> [f32; 3] {
    let mut v = [16.0, 128.0, 128.0];
    for l in layers {
        let c = l.coverage(x, y);
        if c <= 0.0 {
            continue;
        }
        let s = l.sample(x, y);
        let a = c * l.alpha * s[3];
        for i in 0..3 {
            v[i] = a * s[i] + (1.0 - a) * v[i];
        }
    }
    v
}

fn byte(v: f32) -> u8 {
    (v + 0.5).clamp(0.0, 255.0) as u8
}

/// Whether canvas pixel (x, y) needs redrawing: it lies in a rounded layer's corner square (where the compositor
/// drew that layer square) but not wholly inside its arc.
fn rounded_off(layers: &[Layer], x: i32, y: i32) -> bool {
    layers
        .iter()
        .any(|l| l.in_corner_square(x, y) && l.coverage(x, y) < 1.0)
}

impl Layer<'_> {
    fn in_corner_square(&self, x: i32, y: i32) -> bool {
        let r = self.radius();
        let (lx, ly) = (x - self.rect.x, y - self.rect.y);
        r > 0
            && lx >= 0
            && ly >= 0
            && lx < self.rect.w
            && ly < self.rect.h
            && (lx < r || lx >= self.rect.w - r)
            && (ly < r || ly >= self.rect.h - r)
    }
}

/// An I420 canvas frame to redraw in place.
pub struct OutI420<'a> {
    pub w: i32,
    pub h: i32,
    pub y: &'a mut [u8],
    pub u: &'a mut [u8],
    pub v: &'a mut [u8],
    pub strides: [usize; 3],
}

/// Redraws the rounded-off pixels of an I420 canvas. Chroma is shared by 2×2 pixels: a chroma sample is redrawn
/// when any of its four pixels is, as the average of their four composites.
pub fn redraw_i420(out: OutI420, layers: &[Layer]) {
    let OutI420 {
        w,
        h,
        y: py,
        u: pu,
        v: pv,
        strides,
    } = out;
    for l in layers {
        for (x0, y0, x1, y1) in l.corner_squares(w, h) {
            for y in y0..y1 {
                for x in x0..x1 {
                    if rounded_off(layers, x, y) {
                        py[y as usize * strides[0] + x as usize] = byte(composite(layers, x, y)[0]);
                    }
                }
            }
            let (cw, ch) = ((w + 1) / 2, (h + 1) / 2);
            for cy in y0 / 2..((y1 + 1) / 2).min(ch) {
                for cx in x0 / 2..((x1 + 1) / 2).min(cw) {
                    let block = [(0, 0), (1, 0), (0, 1), (1, 1)]
                        .map(|(dx, dy)| ((2 * cx + dx).min(w - 1), (2 * cy + dy).min(h - 1)));
                    if !block.iter().any(|&(x, y)| rounded_off(layers, x, y)) {
                        continue;
                    }
                    let (mut u, mut v) = (0.0, 0.0);
                    for (x, y) in block {
                        let c = composite(layers, x, y);
                        u += c[1];
                        v += c[2];
                    }
                    pu[cy as usize * strides[1] + cx as usize] = byte(u / 4.0);
                    pv[cy as usize * strides[2] + cx as usize] = byte(v / 4.0);
                }
            }
        }
    }
}

/// Redraws the rounded-off pixels of an AYUV canvas (opaque result).
pub fn redraw_ayuv(w: i32, h: i32, data: &mut [u8], stride: usize, layers: &[Layer]) {
    for l in layers {
        for (x0, y0, x1, y1) in l.corner_squares(w, h) {
            for y in y0..y1 {
                for x in x0..x1 {
                    if rounded_off(layers, x, y) {
                        let c = composite(layers, x, y);
                        let p = &mut data[y as usize * stride + x as usize * 4..];
                        p[0] = 255;
                        p[1] = byte(c[0]);
                        p[2] = byte(c[1]);
                        p[3] = byte(c[2]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A solid I420 picture of `w`×`h` filled with (y, u, v).
    fn solid(w: usize, h: usize, yuv: [u8; 3]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        (
            vec![yuv[0]; w * h],
            vec![yuv[1]; cw * ch],
            vec![yuv[2]; cw * ch],
        )
    }

    fn i420<'a>(w: usize, h: usize, p: &'a (Vec<u8>, Vec<u8>, Vec<u8>)) -> Picture<'a> {
        Picture::I420 {
            width: w,
            height: h,
            planes: [&p.0, &p.1, &p.2],
            strides: [w, w.div_ceil(2), w.div_ceil(2)],
        }
    }

    #[test]
    fn coverage_is_full_inside_and_zero_beyond_the_arc() {
        let pic = solid(40, 20, [0, 0, 0]);
        let l = Layer {
            rect: Rect {
                x: 10,
                y: 10,
                w: 40,
                h: 20,
            },
            alpha: 1.0,
            radius: 8,
            picture: i420(40, 20, &pic),
        };
        assert_eq!(l.coverage(9, 15), 0.0, "left of the rect");
        assert_eq!(l.coverage(10, 10), 0.0, "the very corner");
        assert_eq!(l.coverage(49, 29), 0.0, "the opposite corner");
        assert_eq!(l.coverage(30, 10), 1.0, "middle of the top edge");
        assert_eq!(l.coverage(10, 20), 1.0, "middle of the left edge");
        assert_eq!(l.coverage(18, 18), 1.0, "the arc's centre");
        let on_arc = l.coverage(12, 12);
        assert!(on_arc > 0.0 && on_arc < 1.0 || on_arc == 0.0);
        // Radius larger than half the height is clamped to it.
        let big = Layer { radius: 100, ..l };
        assert_eq!(big.radius(), 10);
    }

    #[test]
    fn corners_show_the_layer_beneath_and_nothing_else_changes() {
        // Canvas 32×32: a blue full-canvas layer, a red 24×24 layer at (4, 4) with radius 8. The compositor drew
        // the red one square; the redraw must put blue back outside the arcs.
        let bg = solid(32, 32, BLUE);
        let fg = solid(24, 24, RED);
        let layers = canvas_and_rounded(&bg, &fg);
        let mut out = square_composite(BLUE, (4, 28), RED);
        let before = out.clone();
        redraw(&mut out, &layers);
        // Each outer corner pixel is blue again, in luma and chroma.
        for (x, y) in [(4, 4), (27, 4), (4, 27), (27, 27)] {
            assert_eq!(out.0[y * 32 + x], BLUE[0], "luma at ({x}, {y})");
            assert_eq!(out.1[(y / 2) * 16 + x / 2], BLUE[1], "U at ({x}, {y})");
            assert_eq!(out.2[(y / 2) * 16 + x / 2], BLUE[2], "V at ({x}, {y})");
        }
        // Inside the arcs and along the edges the picture stays red.
        for (x, y) in [(16, 4), (4, 16), (16, 16), (11, 11), (27, 16)] {
            assert_eq!(out.0[y * 32 + x], RED[0], "luma at ({x}, {y})");
            assert_eq!(out.1[(y / 2) * 16 + x / 2], RED[1], "U at ({x}, {y})");
        }
        // Pixels outside the layer's corner squares are untouched.
        let corner = |c: usize| (4..12).contains(&c) || (20..28).contains(&c);
        for y in 0..32 {
            for x in 0..32 {
                if !(corner(x) && corner(y)) {
                    assert_eq!(out.0[y * 32 + x], before.0[y * 32 + x], "({x}, {y})");
                }
            }
        }
        // Along the arc, a blend of the two.
        let edge: Vec<u8> = (4..12).map(|i| out.0[i * 32 + i]).collect();
        assert!(
            edge.iter().any(|&l| l > BLUE[0] && l < RED[0]),
            "anti-aliased arc: {edge:?}"
        );
    }

    #[test]
    fn a_layer_above_the_corner_keeps_the_corner_hidden() {
        let bg = solid(32, 32, BLUE);
        let fg = solid(24, 24, RED);
        let top = solid(6, 6, GREEN);
        let mut layers = canvas_and_rounded(&bg, &fg);
        layers.push(Layer {
            rect: rect(2, 2, 6, 6),
            alpha: 1.0,
            radius: 0,
            picture: i420(6, 6, &top),
        });
        let mut out = square_composite(BLUE, (4, 28), RED);
        for y in 2..8 {
            for x in 2..8 {
                out.0[y * 32 + x] = GREEN[0];
                out.1[(y / 2) * 16 + x / 2] = GREEN[1];
                out.2[(y / 2) * 16 + x / 2] = GREEN[2];
            }
        }
        redraw(&mut out, &layers);
        // (4, 4) is the red layer's rounded-off corner, but the green layer lies above it.
        assert_eq!(out.0[4 * 32 + 4], GREEN[0]);
        assert_eq!(out.1[2 * 16 + 2], GREEN[1]);
        // (27, 27): rounded off, nothing above: blue.
        assert_eq!(out.0[27 * 32 + 27], BLUE[0]);
    }

    #[test]
    fn an_ayuv_canvas_gets_the_same_corners() {
        let bg = solid(32, 32, BLUE);
        let fg = solid(24, 24, RED);
        let layers = canvas_and_rounded(&bg, &fg);
        let mut data = vec![0u8; 32 * 32 * 4];
        for (i, p) in data.chunks_exact_mut(4).enumerate() {
            let (x, y) = (i % 32, i / 32);
            let c = if (4..28).contains(&x) && (4..28).contains(&y) {
                RED
            } else {
                BLUE
            };
            p.copy_from_slice(&[255, c[0], c[1], c[2]]);
        }
        redraw_ayuv(32, 32, &mut data, 128, &layers);
        let px = |x: usize, y: usize| &data[(y * 32 + x) * 4..(y * 32 + x) * 4 + 4];
        assert_eq!(px(4, 4), [255, BLUE[0], BLUE[1], BLUE[2]]);
        assert_eq!(px(16, 16), [255, RED[0], RED[1], RED[2]]);
    }

    const BLUE: [u8; 3] = [41, 240, 110];
    const RED: [u8; 3] = [81, 90, 240];
    const GREEN: [u8; 3] = [145, 54, 34];

    type Planes = (Vec<u8>, Vec<u8>, Vec<u8>);

    /// The scene most tests use: `bg` over the whole 32×32 canvas, `fg` (24×24) at (4, 4) with radius 8.
    fn canvas_and_rounded<'a>(bg: &'a Planes, fg: &'a Planes) -> Vec<Layer<'a>> {
        vec![
            Layer {
                rect: rect(0, 0, 32, 32),
                alpha: 1.0,
                radius: 0,
                picture: i420(32, 32, bg),
            },
            Layer {
                rect: rect(4, 4, 24, 24),
                alpha: 1.0,
                radius: 8,
                picture: i420(24, 24, fg),
            },
        ]
    }

    fn rect(x: i32, y: i32, w: i32, h: i32) -> Rect {
        Rect { x, y, w, h }
    }

    /// A 32×32 canvas of `bg` with `fg` over `span.0..span.1` in both directions, square, as the compositor
    /// draws it.
    fn square_composite(
        bg: [u8; 3],
        span: (usize, usize),
        fg: [u8; 3],
    ) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut out = solid(32, 32, bg);
        for y in span.0..span.1 {
            for x in span.0..span.1 {
                out.0[y * 32 + x] = fg[0];
                out.1[(y / 2) * 16 + x / 2] = fg[1];
                out.2[(y / 2) * 16 + x / 2] = fg[2];
            }
        }
        out
    }

    fn redraw(out: &mut (Vec<u8>, Vec<u8>, Vec<u8>), layers: &[Layer]) {
        let (y, u, v) = (&mut out.0, &mut out.1, &mut out.2);
        redraw_i420(
            OutI420 {
                w: 32,
                h: 32,
                y,
                u,
                v,
                strides: [32, 16, 16],
            },
            layers,
        );
    }
}
